"""CIFAR-10 as uint8 tensors in memory, and a fast tensor batch iterator.

Two sources, tried in each root of `data_roots()` in order:
  (a) a torchvision root holding `cifar-10-batches-py/` (online users: `load_cifar10(download=True)`);
  (b) the offline JPEG ImageFolder archive `cifar10-jpeg.tar.gz` (lossy re-encode; see ../shared/data/README.md),
      checksum-verified, decoded once (~15 s) and cached as a uint8 `.npz` beside the other caches.

A place the user names is authoritative: an explicit `data` (--data DIR), else a non-empty $LANDSCAPE_DATA, is the
only root searched, a DIR holding neither source is an error that says what was looked for (never a silent
fallback to other data), and `download=True` downloads into it. Only when neither is given are the default
places searched (../shared/data beside the cwd and beside this checkout, then the cache directory), and
`download=True` downloads into the cache directory.

Image order in the JPEG copy. The archive numbers images per class (`train/cat/0000.jpg`), so the original
CIFAR-10 order is lost. We interleave classes round-robin (image k of class c goes to position 10k + c): every
prefix `limit=N` is then class-balanced, which is what a test on "the first 1,000 test images" needs.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .errors import DataNotFound

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# Normalization of the public CIFAR ResNet checkpoints (ImageNet statistics, as they were trained with).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

ARCHIVE_NAME = "cifar10-jpeg.tar.gz"
ARCHIVE_SHA256 = "45b041e867f5a40f79bfde38d3dd1fd511103d50068c1afecf6445e25234d4db"
TORCHVISION_DIR = "cifar-10-batches-py"
HOW_TO_GET = (
    "get it with `python -c 'import landscape.data as d; d.load_cifar10(download=True)'` (online), "
    f"or point --data / LANDSCAPE_DATA at a folder holding {ARCHIVE_NAME} or {TORCHVISION_DIR}/"
)


@dataclass(frozen=True)
class Split:
    """One split: images uint8 [N, 3, H, W] (RGB, CHW; 32×32 for CIFAR), labels int64 [N], and the per-channel
    normalization its batches use (mean and std of pixel values in [0, 1])."""

    images: Tensor
    labels: Tensor
    mean: tuple[float, float, float] = MEAN
    std: tuple[float, float, float] = STD

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, limit: int | None) -> Split:
        """The first `limit` images (class-balanced prefix, see module docstring); None keeps all."""
        if limit is None:
            return self
        if limit < 1:
            raise ValueError(f"limit must be ≥ 1 image, got {limit}")
        return Split(self.images[:limit], self.labels[:limit], self.mean, self.std)


def cache_dir() -> Path:
    return Path(os.environ.get("LANDSCAPE_CACHE", Path.home() / ".cache" / "landscape"))


def explicit_root(data: str | os.PathLike | None = None) -> tuple[Path, str] | None:
    """The place the user named, as (folder, how it was named): `data` (--data), else a non-empty
    $LANDSCAPE_DATA; None when neither is given and the default places are searched."""
    if data is not None:
        return Path(data).expanduser(), "--data"
    if os.environ.get("LANDSCAPE_DATA"):
        return Path(os.environ["LANDSCAPE_DATA"]).expanduser(), "$LANDSCAPE_DATA"
    return None


def data_roots(data: str | os.PathLike | None = None) -> list[Path]:
    """Where to look, in order: only the explicit place if one is named (`data`, else $LANDSCAPE_DATA);
    otherwise ../shared/data (beside the cwd and beside this checkout), then the cache directory."""
    named = explicit_root(data)
    if named is not None:
        return [named[0].resolve()]
    roots = [Path.cwd().parent / "shared" / "data", Path(__file__).resolve().parents[2] / "shared" / "data",
             cache_dir()]
    unique = []
    for r in roots:
        r = r.expanduser().resolve()
        if r not in unique:
            unique.append(r)
    return unique


def load_cifar10(data: str | os.PathLike | None = None, *, download: bool = False) -> tuple[Split, Split]:
    """(train, test) splits. `data` is the --data argument. An explicit place (`data`, else $LANDSCAPE_DATA) is the
    only one searched; without one, ../shared/data and the cache directory are. `download` lets torchvision
    fetch the original dataset into the explicit place (created if missing), else into the cache directory, when
    no local copy is found there."""
    named = explicit_root(data)
    roots = data_roots(data)
    if named is not None:
        folder, how = named
        where = f"{how}={folder}" if how.startswith("$") else f"{how} {folder}"
        if folder.exists() and not folder.is_dir():
            raise DataNotFound(f"{where} is a file, not a folder; {HOW_TO_GET}")
        if not folder.exists() and not download:
            raise DataNotFound(f"{where} does not exist; {HOW_TO_GET}")
    for root in roots:
        if (root / TORCHVISION_DIR).is_dir():
            return _load_torchvision(root, download=False)
        if (root / ARCHIVE_NAME).is_file():
            return _load_jpeg_archive(root / ARCHIVE_NAME)
    if download:
        return _load_torchvision(roots[0] if named is not None else cache_dir(), download=True)
    if named is not None:
        unset = "unset it" if how == "$LANDSCAPE_DATA" else "leave out --data"
        if how == "--data" and os.environ.get("LANDSCAPE_DATA"):
            unset += " and unset $LANDSCAPE_DATA"
        raise DataNotFound(
            f"CIFAR-10 not found in {where}: looked for {roots[0] / ARCHIVE_NAME} and "
            f"{roots[0] / TORCHVISION_DIR}/ and nowhere else (an explicit {how} replaces the default places "
            f"../shared/data and {cache_dir()}: {unset} to search them); point {how} at the folder holding one "
            "of the two, or add --download (online) to fetch CIFAR-10 into it"
        )
    looked = ", ".join(str(r) for r in roots)
    raise DataNotFound(f"CIFAR-10 not found (looked in: {looked}); {HOW_TO_GET}")


def _load_torchvision(root: Path, *, download: bool) -> tuple[Split, Split]:
    from torchvision.datasets import CIFAR10

    def split(train: bool) -> Split:
        try:
            ds = CIFAR10(str(root), train=train, download=download)
        except RuntimeError as e:  # torchvision reports a corrupt root as RuntimeError
            raise DataNotFound(f"{root / TORCHVISION_DIR}: {e}; {HOW_TO_GET}") from None
        images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
        return Split(images, torch.tensor(ds.targets, dtype=torch.int64))

    return split(True), split(False)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load_jpeg_archive(archive: Path) -> tuple[Split, Split]:
    digest = sha256_of(archive)
    if digest != ARCHIVE_SHA256:
        raise DataNotFound(
            f"{archive}: checksum mismatch (sha256 {digest[:12]}…, expected {ARCHIVE_SHA256[:12]}…): the archive is "
            f"corrupt or not the CIFAR-10 JPEG copy; {HOW_TO_GET}"
        )
    cache = cache_dir() / f"cifar10-jpeg-{digest[:12]}.npz"
    if cache.is_file():
        try:
            with np.load(cache) as z:
                arrays = {k: z[k] for k in z.files}
            return _splits_from_arrays(arrays)
        except (OSError, ValueError, KeyError):
            pass  # a torn or stale cache: decode again below and overwrite it
    arrays = _decode_archive(archive)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + f".tmp{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, cache)  # atomic: a crash never leaves a half-written cache behind
    return _splits_from_arrays(arrays)


def _splits_from_arrays(a: dict[str, np.ndarray]) -> tuple[Split, Split]:
    return tuple(
        Split(torch.from_numpy(a[f"{s}_images"]), torch.from_numpy(a[f"{s}_labels"]).long()) for s in ("train", "test")
    )


def _decode_archive(archive: Path) -> dict[str, np.ndarray]:
    from PIL import Image
    from tqdm import tqdm

    found: dict[str, dict[int, list[tuple[str, np.ndarray]]]] = {"train": {}, "test": {}}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tqdm(tar, desc=f"decoding {archive.name} (once)", unit="img", total=60_000 + 22, leave=False):
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 3 or parts[0] not in found or parts[1] not in CLASSES:
                continue
            with Image.open(io.BytesIO(tar.extractfile(member).read())) as im:
                pixels = np.asarray(im.convert("RGB"), dtype=np.uint8)
            if pixels.shape != (32, 32, 3):
                raise DataNotFound(f"{archive}:{member.name} is {pixels.shape}, expected 32×32 RGB; {HOW_TO_GET}")
            found[parts[0]].setdefault(CLASSES.index(parts[1]), []).append((parts[2], pixels))
    arrays = {}
    for split, per_class in found.items():
        if sorted(per_class) != list(range(10)) or len({len(v) for v in per_class.values()}) != 1:
            counts = {CLASSES[c]: len(v) for c, v in per_class.items()}
            raise DataNotFound(f"{archive}: {split}/ is incomplete (images per class: {counts}); {HOW_TO_GET}")
        per_class = [[px for _, px in sorted(per_class[c], key=lambda t: t[0])] for c in range(10)]
        # Round-robin over classes: position 10k + c holds image k of class c (module docstring).
        images = np.stack([img for group in zip(*per_class, strict=True) for img in group])
        arrays[f"{split}_images"] = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
        arrays[f"{split}_labels"] = np.tile(np.arange(10, dtype=np.int64), len(per_class[0]))
    return arrays


def normalize(images: Tensor, mean=MEAN, std=STD) -> Tensor:
    """uint8 [B, 3, H, W] → float32, scaled to [0, 1] and standardized with `mean`/`std` (default MEAN/STD: sequences
    of 3 numbers, or tensors of 3 already on the images' device, which saves a host-to-device copy per batch)."""
    mean = torch.as_tensor(mean, device=images.device).view(1, 3, 1, 1)
    std = torch.as_tensor(std, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def augment(images: Tensor, generator: torch.Generator, pad: int = 4) -> Tensor:
    """The standard CIFAR augmentation on a uint8 batch: random crop after `pad` pixels of zero padding
    (as torchvision's RandomCrop(32, padding=4) on the raw image), then a horizontal flip with probability 1/2."""
    b, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    flip = torch.rand(b, generator=generator) < 0.5
    # drawn on the CPU generator whatever the device (the same crops and flips on every device), then moved
    # without waiting for the copy
    rows = (dy[:, None] + torch.arange(h)).to(images.device, non_blocking=True)  # [B, H]
    cols = dx[:, None] + torch.arange(w)  # [B, W]
    cols = torch.where(flip[:, None], cols.flip(1), cols).to(images.device, non_blocking=True)
    batch = torch.arange(b, device=images.device)[:, None, None, None]
    chan = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


class Batches:
    """Iterates (normalized float images, labels) over a Split in memory (normalized with the split's own
    mean/std).

    Randomness is a pure function of (seed, epoch, batch): the order of epoch e comes from a generator seeded
    with (seed, e), the augmentation of batch k from one seeded with (seed, e, k). A run resumed at batch k of
    epoch e therefore sees exactly the batches an uninterrupted run would (`iterate(start=k)`). The draws are made
    on the CPU, so every device sees the same batches.

    On a GPU the split's uint8 images and labels are copied to the device once (up to RESIDENT_BYTES; a larger
    split is pinned and copied per batch without blocking), and each epoch's order follows them there: a batch
    costs no host-to-device copy that waits and no host sync.
    """

    RESIDENT_BYTES = 2**31  # splits up to 2 GiB of uint8 images live on the GPU (CIFAR-10's training split: 150 MB)

    def __init__(
        self,
        split: Split,
        batch_size: int,
        *,
        train: bool,
        seed: int = 0,
        device: str | torch.device = "cpu",
        drop_last: bool = False,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        if len(split) == 0:
            raise ValueError("the data subset is empty (limit 0?)")
        if drop_last and len(split) < batch_size:
            raise ValueError(f"{len(split)} training images are fewer than one batch of {batch_size}")
        self.split, self.batch_size, self.train = split, batch_size, train
        self.seed, self.device, self.drop_last = seed, torch.device(device), drop_last
        self.epoch = 0
        self.images, self.labels = split.images, split.labels
        if self.device.type == "cuda":
            if split.images.nbytes <= self.RESIDENT_BYTES:
                self.images, self.labels = split.images.to(self.device), split.labels.to(self.device)
            else:
                self.images, self.labels = split.images.pin_memory(), split.labels.pin_memory()
        self.mean = torch.as_tensor(split.mean, dtype=torch.float32).to(self.device)
        self.std = torch.as_tensor(split.std, dtype=torch.float32).to(self.device)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.split)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _generator(self, *key: int) -> torch.Generator:
        h = self.seed
        for k in key:
            h = (h * 1_000_003 + k + 1) % (2**63)
        return torch.Generator().manual_seed(h)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return self.iterate()

    def iterate(self, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """The batches of the current epoch from batch index `start` on."""
        n = len(self.split)
        order = torch.randperm(n, generator=self._generator(self.epoch)) if self.train else torch.arange(n)
        order = order.to(self.images.device, non_blocking=True)
        for k in range(start, len(self)):
            idx = order[k * self.batch_size : (k + 1) * self.batch_size]
            x = self.images[idx].to(self.device, non_blocking=True)
            if self.train:
                x = augment(x, self._generator(self.epoch, k))
            yield normalize(x, self.mean, self.std), self.labels[idx].to(self.device, non_blocking=True)
