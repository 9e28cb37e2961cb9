"""Every dataset the CLIs take (`--dataset`), as in-memory uint8 `data.Split`s: the same batches, augmentation,
class-balanced prefixes (`--limit`) and caches whatever the source.

  cifar10      the offline JPEG copy or a torchvision root (data.py; the default)
  cifar100     a torchvision root holding `cifar-100-python/` (`--download` fetches it online)
  imagefolder  any tree DIR/train/<class>/<image> and DIR/test/<class>/<image> (`val/` is accepted for test):
               decoded once with PIL (RGB; the shorter side resized to --image-size, then centre-cropped to a
               square) and cached as uint8 in the cache directory, keyed by the sha256 of every file's path, size
               and modification time and the image size, so an edited tree is decoded again. Classes are the
               sorted folder names of train/; test/ must have the same.

Order. As with the CIFAR-10 JPEG copy, images are interleaved round-robin over classes (within a class in file
name order; a class with fewer images drops out when it runs out), so every prefix `--limit N` is as
class-balanced as the data allows.

Normalization (`normalization`): "imagenet" (the ImageNet channel statistics the public CIFAR ResNets were
trained with: CIFAR-10's default, so their checkpoints evaluate as published), "measured" (per-channel mean and
std of the training split's pixels in [0, 1]: the default for CIFAR-100 and image folders, whose models this
project trains itself), or six numbers "m1,m2,m3,s1,s2,s3". The values used are stored with a run's settings.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from .data import HOW_TO_GET, MEAN, STD, Split, cache_dir, data_roots, explicit_root, load_cifar10
from .errors import DataNotFound

DATASETS = ("cifar10", "cifar100", "imagefolder")
NORMALIZATIONS = ("auto", "imagenet", "measured")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".gif", ".tif", ".tiff")


def load_data(dataset: str = "cifar10", data: str | os.PathLike | None = None, *, download: bool = False,
              image_size: int = 32, normalization: str = "auto") -> tuple[Split, Split]:
    """(train, test) splits of `dataset` (module docstring); `data` is --data (the root or the image tree)."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if dataset == "cifar10":
        train, test = load_cifar10(data, download=download)
    elif dataset == "cifar100":
        train, test = _load_cifar100(data, download=download)
    else:
        train, test = _load_image_folder(data, image_size)
    mean, std = _normalization(normalization, dataset, train)
    return (Split(train.images, train.labels, mean, std), Split(test.images, test.labels, mean, std))


def load_recorded(spec: dict | None, data=None, *, download: bool = False) -> tuple[Split, Split, dict]:
    """(train, test, spec with the normalization's numbers) for a data spec {"name", "image_size",
    "normalization" or "mean"/"std"} as the CLIs build it and a run file records it; None is CIFAR-10."""
    spec = dict(spec or {})
    name, size = spec.get("name", "cifar10"), int(spec.get("image_size", 32))
    norm = spec.get("normalization", "auto")
    if "mean" in spec and "std" in spec:  # recorded numbers: exactly what the run trained with
        norm = ",".join(repr(float(v)) for v in [*spec["mean"], *spec["std"]])
    train, test = load_data(name, data, download=download, image_size=size, normalization=norm)
    return train, test, {"name": name, "image_size": size, "classes": int(train.labels.max()) + 1,
                         "mean": list(train.mean), "std": list(train.std)}


def _normalization(how: str, dataset: str, train: Split) -> tuple[tuple, tuple]:
    if how == "auto":
        how = "imagenet" if dataset == "cifar10" else "measured"
    if how == "imagenet":
        return MEAN, STD
    if how == "measured":
        pixels = train.images.to(torch.float64) / 255.0  # [N, 3, H, W]
        mean = pixels.mean(dim=(0, 2, 3))
        std = pixels.std(dim=(0, 2, 3))
        return tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)
    try:
        values = [float(v) for v in how.split(",")]
    except ValueError:
        values = []
    if len(values) != 6 or any(v <= 0 for v in values[3:]):
        raise ValueError(f"normalization must be auto, imagenet, measured or six numbers m1,m2,m3,s1,s2,s3 (std > 0), "
                         f"got {how!r}")
    return tuple(values[:3]), tuple(values[3:])


# --------------------------------------------------------------------------------------------------- CIFAR-100


def _load_cifar100(data, *, download: bool) -> tuple[Split, Split]:
    from torchvision.datasets import CIFAR100

    named = explicit_root(data)
    roots = data_roots(data)
    root = next((r for r in roots if (r / "cifar-100-python").is_dir()), None)
    if root is None and not download:
        where = f"{named[1]} {named[0]}" if named else ", ".join(str(r) for r in roots)
        raise DataNotFound(f"CIFAR-100 not found: looked for cifar-100-python/ in {where}; add --download (online) "
                           "or point --data at a torchvision root holding it")
    root = root or (roots[0] if named is not None else cache_dir())

    def split(train: bool) -> Split:
        try:
            ds = CIFAR100(str(root), train=train, download=download)
        except RuntimeError as e:
            raise DataNotFound(f"{root / 'cifar-100-python'}: {e}") from None
        images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
        labels = torch.tensor(ds.targets, dtype=torch.int64)
        return _balanced(images, labels)

    return split(True), split(False)


# ------------------------------------------------------------------------------------------------ image folder


def _load_image_folder(data, image_size: int) -> tuple[Split, Split]:
    if data is None and explicit_root(None) is None:
        raise DataNotFound("--dataset imagefolder needs --data DIR (a tree DIR/train/<class>/…, DIR/test/<class>/…)")
    root = explicit_root(data)[0]
    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image size must be an integer ≥ 8 pixels, got {image_size!r}")
    test_dir = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
    if not (root / "train").is_dir() or test_dir is None:
        raise DataNotFound(f"{root} is not an image tree: expected {root}/train/<class>/ and {root}/test/<class>/ "
                           "(or val/)")
    files = {s: _list_images(d) for s, d in (("train", root / "train"), ("test", test_dir))}
    classes = sorted(files["train"])
    if sorted(files["test"]) != classes:
        raise DataNotFound(f"{root}: test classes {sorted(files['test'])} differ from train classes {classes}")
    key = hashlib.sha256(str(image_size).encode())
    for s in ("train", "test"):
        for c in classes:
            for f in files[s][c]:
                st = f.stat()
                key.update(f"{f}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    cache = cache_dir() / f"imagefolder-{key.hexdigest()[:16]}.npz"
    if cache.is_file():
        try:
            with np.load(cache) as z:
                return tuple(Split(torch.from_numpy(z[f"{s}_images"]), torch.from_numpy(z[f"{s}_labels"]).long())
                             for s in ("train", "test"))
        except (OSError, ValueError, KeyError):
            pass  # torn or stale: decode again
    arrays = {}
    for s in ("train", "test"):
        images, labels = [], []
        for c, name in enumerate(classes):
            for f in files[s][name]:
                images.append(_decode(f, image_size))
                labels.append(c)
        split = _balanced(torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64))
        arrays[f"{s}_images"], arrays[f"{s}_labels"] = split.images.numpy(), split.labels.numpy()
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + f".tmp{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, cache)
    return tuple(Split(torch.from_numpy(arrays[f"{s}_images"]), torch.from_numpy(arrays[f"{s}_labels"]))
                 for s in ("train", "test"))


def _list_images(folder: Path) -> dict[str, list[Path]]:
    out = {d.name: sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
           for d in sorted(folder.iterdir()) if d.is_dir()}
    out = {c: fs for c, fs in out.items() if fs}
    if not out:
        raise DataNotFound(f"{folder} has no class folders with images ({', '.join(IMAGE_SUFFIXES)})")
    return out


def _decode(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            scale = size / min(w, h)
            im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
            w, h = im.size
            left, top = (w - size) // 2, (h - size) // 2
            pixels = np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)
    except OSError as e:
        raise DataNotFound(f"{path} is not a readable image ({e})") from None
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def _balanced(images: torch.Tensor, labels: torch.Tensor) -> Split:
    """Round-robin over classes (module docstring): a stable sort by (rank within class, class)."""
    rank = torch.zeros_like(labels)
    for c in labels.unique():
        where = labels == c
        rank[where] = torch.arange(int(where.sum()))
    order = torch.from_numpy(np.lexsort((labels.numpy(), rank.numpy())))
    return Split(images[order].contiguous(), labels[order].contiguous())


__all__ = ["DATASETS", "HOW_TO_GET", "NORMALIZATIONS", "load_data", "load_recorded"]
