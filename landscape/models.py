"""CIFAR ResNets (He et al. 2016, §4.2) with option-A shortcuts, and checkpoint loading with clear errors.

The layer names match the public checkpoints in ../shared/models (`conv1`, `bn1`, `layer{1,2,3}.{i}.conv{1,2}`,
`layer{1,2,3}.{i}.bn{1,2}`, `linear`), so their state dicts load after the `module.` prefix is stripped.
Option A: where a block halves the resolution and doubles the channels, the shortcut subsamples x[:, :, ::2, ::2]
and zero-pads the new channels; it has no parameters.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import CheckpointError

# name → (blocks per stage, channels of stage 1). ResNet-6n+2: n blocks per stage, widths w, 2w, 4w.
ARCHS: dict[str, tuple[int, int]] = {
    "resnet20": (3, 16),
    "resnet32": (5, 16),
    "resnet44": (7, 16),
    "resnet56": (9, 16),
    "tiny": (1, 4),  # 3 blocks of 4/8/16 channels, ~5k parameters: for tests only
}
# Language architectures (they take --dataset text), each built from GPTConfig's fields: our GPT (landscape/gpt.py),
# and Hugging Face's GPT-2 and Llama built from a config (landscape/hf.py, the [lm] extra).
LANGUAGE_FACTORIES = {"gpt": "landscape.gpt:GPT", "hf-gpt2": "landscape.hf:gpt2", "hf-llama": "landscape.hf:llama"}
LANGUAGE_ARCHS = tuple(LANGUAGE_FACTORIES)

# Public checkpoints (akamaster/pytorch_resnet_cifar10) for online users; offline, the same files are looked up
# by name in ../shared/models and the cache directory first (see `resolve_checkpoint`).
PRETRAINED_URLS = {
    "resnet20": "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/resnet20-12fca82f.th",
    "resnet32": "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/resnet32-d509ac18.th",
    "resnet44": "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/resnet44-014dd654.th",
    "resnet56": "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/resnet56-4bfd9763.th",
}


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = stride != 1 or in_planes != planes
        self.pad = planes - in_planes

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if not self.downsample:
            return x
        half = self.pad // 2
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, half, self.pad - half))  # option A

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, blocks: int, width: int = 16, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        planes = [width, 2 * width, 4 * width]
        self.layer1 = self._stage(width, planes[0], blocks, stride=1)
        self.layer2 = self._stage(planes[0], planes[1], blocks, stride=2)
        self.layer3 = self._stage(planes[1], planes[2], blocks, stride=2)
        self.linear = nn.Linear(planes[2], num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    @staticmethod
    def _stage(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [BasicBlock(in_planes, planes, stride)]
        layers += [BasicBlock(planes, planes, 1) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        # the global average pool as a mean: bit-identical to adaptive_avg_pool2d(out, 1) on CPU (checked on
        # 20,000 random maps), and its CUDA backward is deterministic, which adaptive pooling's is not
        out = out.mean((2, 3))
        return self.linear(out)


def build_model(arch: str, kwargs: dict | None = None) -> nn.Module:
    """A freshly initialised model: a CIFAR ResNet named in ARCHS (kwargs: e.g. num_classes), or any importable
    factory written `package.module:factory` (e.g. `torchvision.models:mobilenet_v3_small` with
    kwargs {"num_classes": 10}), called with `kwargs`."""
    kwargs = dict(kwargs or {})
    if arch in ARCHS:
        blocks, width = ARCHS[arch]
        return _call(CifarResNet, arch, blocks, width, **kwargs)
    if arch in LANGUAGE_FACTORIES:
        module_name, _, attr = LANGUAGE_FACTORIES[arch].partition(":")
        try:
            return getattr(importlib.import_module(module_name), attr)(**kwargs)
        except (TypeError, ValueError) as e:  # unknown or bad --arch-kwargs
            raise CheckpointError(f"arch {arch!r} with kwargs {kwargs}: {e}") from None
    if arch.startswith("<"):  # a model given as a Python object (landscape.compress without arch=)
        raise CheckpointError(f"the run's model {arch} was given as a Python object: build it again and pass it "
                              "(Run.model(state, template=model), or the API functions' model argument)")
    if ":" not in arch:
        raise CheckpointError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)} or write "
                              "package.module:factory (e.g. torchvision.models:mobilenet_v3_small)")
    module_name, _, attr = arch.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # ImportError, or an error raised while importing the user's module
        raise CheckpointError(f"arch {arch!r}: cannot import {module_name} ({type(e).__name__}: {e})") from None
    factory = module
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise CheckpointError(f"arch {arch!r}: {module_name} has no {attr}")
    if not callable(factory):
        raise CheckpointError(f"arch {arch!r}: {attr} is not callable")
    model = _call(factory, arch, **kwargs)
    if not isinstance(model, nn.Module):
        raise CheckpointError(f"arch {arch!r} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def _call(factory, arch: str, *args, **kwargs):
    try:
        return factory(*args, **kwargs)
    except TypeError as e:  # wrong keyword arguments: the user's --arch-kwargs
        raise CheckpointError(f"arch {arch!r} with kwargs {kwargs}: {e}") from None


def arch_label(arch: str, kwargs: dict | None = None) -> str:
    """How an arch spec is shown and compared: the name, with its kwargs as JSON when there are any."""
    import json

    return f"{arch} {json.dumps(kwargs, sort_keys=True)}" if kwargs else arch

def _strip_prefix(state: dict) -> dict:
    return {k.removeprefix("module."): v for k, v in state.items()}


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint's dict: {'state_dict': {...}, ...extra}; a bare state dict is wrapped. Checks the sha256
    prefix that public checkpoint names carry (`resnet20-12fca82f.th`)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    m = re.search(r"-([0-9a-f]{8,64})\.(th|pt|pth)$", path.name)
    if m:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if not digest.startswith(m.group(1)):
            raise CheckpointError(
                f"checkpoint {path}: sha256 starts {digest[:8]}, but its name promises {m.group(1)}: corrupt or renamed"
            )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated zip, pickle garbage, …: one message, no traceback
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, expected a dict")
    if "state_dict" not in obj:
        obj = {"state_dict": obj}
    if not isinstance(obj["state_dict"], dict) or not all(torch.is_tensor(v) for v in obj["state_dict"].values()):
        raise CheckpointError(f"checkpoint {path} has no state dict of tensors")
    obj["state_dict"] = _strip_prefix(obj["state_dict"])
    return obj


def load_state(model: nn.Module, state: dict, *, source: str = "state dict") -> nn.Module:
    """Load `state` into `model` strictly; mismatches are reported by name."""
    own = model.state_dict()
    # Checkpoints from before PyTorch 0.4.1 have no BN `num_batches_tracked` counters; they only matter for
    # momentum=None BN, so the model's own (zero) counters are kept.
    state = {**{k: v for k, v in own.items() if k.endswith("num_batches_tracked")}, **state}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)}≠{tuple(v.shape)}" for k, v in own.items()
             if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = []
        for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if names:
                shown = ", ".join(names[:4]) + (f" (+{len(names) - 4} more)" if len(names) > 4 else "")
                parts.append(f"{len(names)} {label}: {shown}")
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: " + "; ".join(parts))
    model.load_state_dict(state)
    return model


def resolve_checkpoint(spec: str | os.PathLike) -> Path:
    """A path, or an arch name with a public checkpoint: looked up in ../shared/models and the cache, else
    downloaded (online) into the cache."""
    path = Path(spec)
    if path.exists() or str(spec) not in PRETRAINED_URLS:
        return path
    from .data import cache_dir

    name = PRETRAINED_URLS[str(spec)].rsplit("/", 1)[1]
    for folder in (Path.cwd().parent / "shared" / "models", Path(__file__).resolve().parents[2] / "shared" / "models",
                   cache_dir()):
        if (folder / name).is_file():
            return folder / name
    target = cache_dir() / name
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(PRETRAINED_URLS[str(spec)], str(target), hash_prefix=name.split("-")[1][:8])
    except Exception as e:
        raise CheckpointError(f"no local {name} and the download failed ({e})") from None
    return target


def load_model(arch: str, checkpoint: str | os.PathLike | None = None, kwargs: dict | None = None) -> nn.Module:
    """A model of `arch` (`build_model`) with the checkpoint's weights (its own init when checkpoint is None), in
    eval mode."""
    model = build_model(arch, kwargs)
    if checkpoint is not None:
        path = resolve_checkpoint(checkpoint)
        ckpt = read_checkpoint(path)
        saved_arch = ckpt.get("arch")
        if saved_arch is not None and saved_arch != arch:
            raise CheckpointError(f"checkpoint {path} is a {saved_arch}, not a {arch}")
        load_state(model, ckpt["state_dict"], source=f"checkpoint {path}")
    return model.eval()

def save_checkpoint(model: nn.Module, path: str | os.PathLike, *, arch: str, **extra) -> None:
    """Write {'state_dict', 'arch', **extra} (e.g. arch_kwargs) atomically (temp file + rename: a crash leaves no
    torn file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"state_dict": model.state_dict(), "arch": arch, **extra}, tmp)
    os.replace(tmp, path)
