"""Task loss and accuracy along a piecewise-linear path through parameter states (workshop paper §4.2:
pretrained → compressed → clamped), and the in-place state evaluator the perturbation baseline reuses.

Point convention. S states θ_0 … θ_{S-1} make S−1 segments. Each segment is evaluated at `points` = P
positions with both endpoints included, θ_k + (j/(P−1))·(θ_{k+1} − θ_k) for j = 0 … P−1; the interior knots
are shared, not repeated, so a path has (S−1)(P−1) + 1 points. A point's `alpha` is its position in units of
segments: state k sits at alpha = k exactly and segment k spans [k, k+1]. `segment` is the segment a point
belongs to (an interior knot counts as the end of the segment before it); alpha − segment is the local
position in [0, 1]. At the knots the states are copied, not interpolated, so the endpoints reproduce the
states' own loss.

What is interpolated: every floating-point entry of the state dict — weights, biases, BN affine parameters and
BN running statistics. Integer buffers (BN `num_batches_tracked`) are not interpolated; they take the value of
the nearer endpoint (they do not enter an eval-mode forward).

BN handling (`PathConfig.bn`):
  "keep" (default)  the running statistics are interpolated with everything else. The endpoints are exactly
                    the models as saved (so the path ends at the losses in the run file's /eval), it needs
                    no training data and costs one evaluation pass per point. Its midpoints can overstate a
                    barrier when the two states' statistics differ a lot (statistics of a mix ≠ mix of
                    statistics).
  "recalibrate"     at every point (endpoints included) the running statistics are reset and re-estimated on
                    the given training batches as a cumulative average (momentum=None), BN layers in train
                    mode and everything else in eval mode. The standard check that a barrier is not a BN
                    artefact; costs `bn_batches` extra forward passes per point, and the endpoints then differ
                    from the saved models.

Speed. One working copy of the model is made; every state is written into its tensors in place (no model is
rebuilt per point and the inputs are never modified). With `fast=True` (default) each eval-mode BatchNorm2d
that directly follows a Conv2d is folded into that conv's weight and bias (in float64, then cast), and the
forward runs in channels-last layout: the same values to ~1e-6 and about 1.5× faster on CPU. Models that
torch.fx cannot trace are evaluated as they are. `fast=False` is bit-identical to `metrics.evaluate`.

Stored results (`write_path` / `read_path`), in a run file or any HDF5 file, group /analysis/paths/<name>:
  alpha [T] float64, segment [T] int64, <split>/loss [T] (mean cross-entropy, nats), <split>/accuracy [T]
  (fraction) for each evaluated split ("test", "train"); attrs: states (JSON list of the state specs), points,
  bn, bn_batches, fast, limit, n_<split>, created.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .checks import check_int
from .distributed import World
from .errors import LandscapeError, RunFileError
from .store import fresh_group
from .sweep import Journal, run_sweep

BN_MODES = ("keep", "recalibrate")
GROUP = "analysis/paths"


@dataclass(frozen=True)
class PathConfig:
    points: int = 11  # evaluation points per segment, both endpoints included (≥ 2): steps of 1/(points−1)
    bn: str = "keep"  # BN running statistics: "keep" (interpolated) | "recalibrate" (re-estimated per point)
    bn_batches: int = 4  # recalibrate: training batches per point (4 × 500 images: channel means to ~2% of σ)
    fast: bool = True  # BN folded into convs + channels-last forward (values to ~1e-6); False: model as is

    def __post_init__(self):
        check_int("points per segment", self.points, 2, why=" (both endpoints included)")
        if self.bn not in BN_MODES:
            raise ValueError(f"bn must be one of {', '.join(BN_MODES)}, got {self.bn!r}")
        check_int("bn_batches", self.bn_batches, 1)


@dataclass(frozen=True)
class PathResult:
    alpha: np.ndarray  # [T] position in segments: state k at alpha = k
    segment: np.ndarray  # [T] int64 segment index of each point
    metrics: dict[str, dict[str, np.ndarray]]  # split → {"loss": [T] nats, "accuracy": [T] fraction}
    n: dict[str, int] = field(default_factory=dict)  # images evaluated per split

    def to_dict(self) -> dict:
        return {"alpha": self.alpha.tolist(), "segment": self.segment.tolist(), "n": dict(self.n),
                **{split: {k: v.tolist() for k, v in m.items()} for split, m in self.metrics.items()}}


# ----------------------------------------------------------------------------------------------- positions


def path_positions(n_states: int, points: int) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """(alpha [T], segment [T], (k, j) per point): point j of segment k is at alpha = k + j/(points−1)."""
    if n_states < 2:
        raise ValueError(f"a path needs at least 2 states, got {n_states}")
    PathConfig(points=points)  # validates points
    steps = [(k, j) for k in range(n_states - 1) for j in range(0 if k == 0 else 1, points)]
    alpha = np.array([k + j / (points - 1) for k, j in steps], dtype=np.float64)
    segment = np.array([k for k, _ in steps], dtype=np.int64)
    return alpha, segment, steps


# ------------------------------------------------------------------------------------------ state checking


def check_states(reference: Mapping[str, Tensor], states: Sequence[Mapping[str, Tensor]],
                 labels: Sequence[str] | None = None) -> None:
    """Every state must have the reference's keys and shapes; one message naming what differs."""
    labels = list(labels) if labels is not None else [f"state {i}" for i in range(len(states))]
    for label, state in zip(labels, states, strict=True):
        missing = [k for k in reference if k not in state]
        unexpected = [k for k in state if k not in reference]
        wrong = [f"{k} {tuple(state[k].shape)}≠{tuple(v.shape)}" for k, v in reference.items()
                 if k in state and tuple(state[k].shape) != tuple(v.shape)]
        if missing or unexpected or wrong:
            parts = []
            for what, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
                if names:
                    more = " …" if len(names) > 3 else ""
                    parts.append(f"{len(names)} {what}: " + ", ".join(names[:3]) + more)
            raise LandscapeError(f"{label} does not match the model's parameters ({'; '.join(parts)})")


# --------------------------------------------------------------------------------------------- evaluation


def _bn_modules(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


RECALIBRATION_BATCH = 128  # images per BN-recalibration batch where no training batch size decides it (ptq)


def recalibration_batches(train, n_batches: int, batch_size: int, device: torch.device | str = "cpu") -> list:
    """The first n_batches × batch_size images of `train` (a data.Split), unaugmented, as a list of (x, y) batches
    so that every recalibration sees exactly the same tensors: the data `recalibrate_bn_` re-estimates BN
    statistics on (unaugmented: the statistics of the kind of images the model is evaluated on)."""
    from .data import Batches

    return list(Batches(train.subset(n_batches * batch_size), batch_size, train=False, device=device))


@torch.no_grad()
def recalibrate_bn_(model: nn.Module, batches: Iterable) -> nn.Module:
    """In place: reset every BN layer's running statistics and re-estimate them on `batches` ((x, y) pairs) as
    a cumulative average (momentum=None), BN layers in train mode, all else in eval mode. Returns the model in
    eval mode with the BN momenta restored."""
    bns = _bn_modules(model)
    momenta = [bn.momentum for bn in bns]
    model.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    seen = 0
    for x, _ in batches:
        model(x)
        seen += 1
    for bn, m in zip(bns, momenta, strict=True):
        bn.momentum = m
    model.eval()
    if bns and seen == 0:
        raise ValueError("BN recalibration got no batches")
    return model


class _Folded:
    """An fx copy of a model in which every eval-mode Conv2d → BatchNorm2d pair is one conv with a bias; it
    shares all other modules with the model and is refreshed from the model's current tensors by
    `refresh()`."""

    def __init__(self, model: nn.Module, channels_last: bool):
        import torch.fx as fx

        gm = fx.symbolic_trace(model)
        modules = dict(gm.named_modules())
        self.pairs: list[tuple[nn.Conv2d, nn.BatchNorm2d, nn.Conv2d]] = []
        for node in list(gm.graph.nodes):
            if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
                continue
            prev = node.args[0] if len(node.args) == 1 and not node.kwargs else None
            if not (isinstance(prev, fx.Node) and prev.op == "call_module"
                    and isinstance(modules.get(prev.target), nn.Conv2d) and len(prev.users) == 1):
                continue
            conv, bn = modules[prev.target], modules[node.target]
            if not bn.track_running_stats:
                continue
            fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                              conv.padding,
                              conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,
                              device=conv.weight.device, dtype=conv.weight.dtype).requires_grad_(False)
            _set_submodule(gm, prev.target, fused)
            node.replace_all_uses_with(prev)
            gm.graph.erase_node(node)
            self.pairs.append((conv, bn, fused))
        _relu_in_place(gm)
        gm.graph.lint()
        gm.recompile()
        gm.delete_all_unused_submodules()
        if channels_last:
            for _, _, fused in self.pairs:
                fused.weight.data = fused.weight.data.contiguous(memory_format=torch.channels_last)
        self.module = gm.eval()

    @torch.no_grad()
    def refresh(self) -> None:
        for conv, bn, fused in self.pairs:
            acc = torch.float32 if conv.weight.device.type == "mps" else torch.float64  # MPS has no float64
            scale = bn.running_var.to(acc).add(bn.eps).rsqrt()
            if bn.weight is not None:
                scale = scale * bn.weight.to(acc)
            bias = conv.bias.to(acc) if conv.bias is not None else torch.zeros_like(scale)
            shift = (bias - bn.running_mean.to(acc)) * scale + (bn.bias.to(acc) if bn.bias is not None else 0)
            fused.weight.copy_(conv.weight.to(acc) * scale.view(-1, 1, 1, 1))
            fused.bias.copy_(shift)


def _relu_in_place(gm) -> None:
    """F.relu / torch.relu in place where the input is a fresh tensor (a conv/linear output or a sum) that
    nothing else reads: saves one allocation and one pass over the activations (~10% of a ResNet forward on
    CPU)."""
    import operator

    modules = dict(gm.named_modules())
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target not in (F.relu,
                                                             torch.relu) or node.kwargs.get("inplace"):
            continue
        src = node.args[0] if node.args else None
        fresh = src is not None and hasattr(src, "users") and len(src.users) == 1 and (
            (src.op == "call_module" and isinstance(modules.get(src.target), (nn.Conv2d, nn.Linear)))
            or (src.op == "call_function" and src.target in (operator.add, torch.add)))
        if fresh:
            node.target = F.relu
            node.kwargs = {**node.kwargs, "inplace": True}


def _set_submodule(root: nn.Module, target: str, module: nn.Module) -> None:
    *parents, leaf = target.split(".")
    owner = root
    for p in parents:
        owner = getattr(owner, p)
    setattr(owner, leaf, module)


class StateEvaluator:
    """Evaluates many states of one architecture in a single working copy of `model` (the caller's model is
    never touched): write a state with `load_`, `lerp_` or `add_`, then `evaluate(batches)`.

    bn="recalibrate" re-estimates the BN statistics on `bn_data` before every evaluation; fast=True evaluates
    through a BN-folded, channels-last copy (module docstring)."""

    def __init__(self, model: nn.Module, *, bn: str = "keep", bn_data: Iterable | None = None,
                 fast: bool = True):
        if bn not in BN_MODES:
            raise ValueError(f"bn must be one of {', '.join(BN_MODES)}, got {bn!r}")
        if bn == "recalibrate" and bn_data is None:
            raise ValueError("bn='recalibrate' needs training batches (bn_data)")
        self.work = copy.deepcopy(model).eval().requires_grad_(False)
        self.folded: _Folded | None = None
        if fast:
            try:
                self.folded = _Folded(self.work, channels_last=True)
            except Exception:  # not traceable by torch.fx (data-dependent control flow, …): evaluate as is
                self.folded = None
        self.channels_last = self.folded is not None
        if self.channels_last:  # the BN-recalibration forward runs in the working model: same layout
            self.work.to(memory_format=torch.channels_last)
        self.live = self.work.state_dict()  # name → tensor sharing storage with the working model
        self.bn = bn
        self.bn_data = None if bn_data is None else [(self._layout(x), y) for x, y in bn_data]
        self._stale = True

    def _layout(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    @property
    def device(self) -> torch.device:
        return next(iter(self.live.values())).device

    @torch.no_grad()
    def load_(self, state: Mapping[str, Tensor]) -> None:
        """Write every entry of `state` (a full state dict, or a subset of it) into the working model."""
        for name, value in state.items():
            self.live[name].copy_(value)
        self._stale = True

    @torch.no_grad()
    def lerp_(self, start: Mapping[str, Tensor], end: Mapping[str, Tensor], weight: float) -> None:
        """Write start + weight·(end − start) for every floating entry; integer entries from the nearer end.
        weight 0 and 1 copy the endpoints exactly."""
        if weight == 0.0 or weight == 1.0:
            self.load_(start if weight == 0.0 else end)
            return
        for name, target in self.live.items():
            a, b = start[name], end[name]
            if target.is_floating_point():
                torch.lerp(a, b, weight, out=target)
            else:
                target.copy_(a if weight < 0.5 else b)
        self._stale = True

    @torch.no_grad()
    def add_(self, base: Mapping[str, Tensor], delta: Mapping[str, Tensor], scale: float = 1.0) -> None:
        """Write base[name] + scale·delta[name] for the names in `delta` (the rest of the model is
        untouched)."""
        for name, d in delta.items():
            torch.add(base[name], d, alpha=scale, out=self.live[name])
        self._stale = True

    def _prepare(self) -> nn.Module:
        if self._stale:
            if self.bn == "recalibrate":
                recalibrate_bn_(self.work, self.bn_data)
            if self.folded is not None:
                self.folded.refresh()
            self._stale = False
        return self.folded.module if self.folded is not None else self.work

    @torch.no_grad()
    def evaluate(self, batches: Iterable) -> dict:
        """{"accuracy": fraction, "loss": mean cross-entropy in nats, "n": images} of the current state."""
        model = self._prepare()
        correct, loss_sum, n = 0, 0.0, 0
        for x, y in batches:
            logits = model(self._layout(x))
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            n += len(y)
        if n == 0:
            raise ValueError("no data to evaluate on (empty batches)")
        return {"accuracy": correct / n, "loss": loss_sum / n, "n": n}


def evaluate_path(model: nn.Module, states: Sequence[Mapping[str, Tensor]], data: Mapping[str, Iterable],
                  config: PathConfig = PathConfig(), *, bn_data: Iterable | None = None,
                  labels: Sequence[str] | None = None, progress: bool = False, world: World = World(),
                  journal: Journal | None = None) -> PathResult | None:
    """Loss and accuracy on every split of `data` (name → re-iterable (x, y) batches) along the path through
    `states` (module docstring for the point convention and BN modes). `model` supplies the architecture (its
    own weights are not used) and is not modified; nor are the states.

    Under torchrun (`world`) the points are shared out over the ranks and the result is returned on rank 0 only
    (None elsewhere); points already in `journal` are not evaluated again and new ones are added to it
    (landscape/sweep.py). Point i is the key str(i)."""
    if len(states) < 2:
        raise ValueError(f"a path needs at least 2 states, got {len(states)}")
    if not data:
        raise ValueError("no split to evaluate on")
    evaluator = StateEvaluator(model, bn=config.bn, bn_data=bn_data, fast=config.fast)
    check_states(evaluator.live, states, labels)
    dev = evaluator.device
    # .to() copies only when it must; the dtype is the model's, so lerp can write straight into its tensors
    on_device = [{k: v.to(dev, evaluator.live[k].dtype) for k, v in s.items()} for s in states]
    alpha, segment, steps = path_positions(len(states), config.points)

    def point(key: str) -> dict:  # lerp_ writes every entry of the model: a point depends on nothing before it
        k, j = steps[int(key)]
        evaluator.lerp_(on_device[k], on_device[k + 1], j / (config.points - 1))
        return {split: evaluator.evaluate(batches) for split, batches in data.items()}

    values = run_sweep([str(i) for i in range(len(steps))], point, world=world, journal=journal,
                       progress=progress, desc="path", unit="point")
    if values is None:
        return None
    rows = [values[str(i)] for i in range(len(steps))]
    metrics = {split: {m: np.array([row[split][m] for row in rows], dtype=np.float64) for m in ("loss", "accuracy")}
               for split in data}
    return PathResult(alpha=alpha, segment=segment, metrics=metrics, n={split: rows[0][split]["n"] for split in data})


# ------------------------------------------------------------------------------------------------- storage


def write_path(path: str | os.PathLike, name: str, result: PathResult, attrs: Mapping, *,
               force: bool = False) -> str:
    """Store `result` under /analysis/paths/<name> of the HDF5 file `path` (created if missing), all at once
    or not at all (`open_for_update`). Returns the group key."""
    check_name(name)
    key = f"{GROUP}/{name}"
    with open_for_update(path) as f:
        g = fresh_group(f, key, force=force, where=path)
        g.create_dataset("alpha", data=result.alpha)
        g.create_dataset("segment", data=result.segment)
        for split, m in result.metrics.items():
            for metric, values in m.items():
                g.create_dataset(f"{split}/{metric}", data=values)
        g.attrs.update({k: (json.dumps(v) if isinstance(v, (list, tuple, dict)) else v)
                        for k, v in attrs.items() if v is not None})
        g.attrs.update({f"n_{split}": n for split, n in result.n.items()})
        g.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return key


@contextlib.contextmanager
def open_for_update(path: str | os.PathLike) -> Iterator[h5py.File]:
    """An HDF5 file opened for changes that land all at once or not at all: an existing run file through
    `store.update` (copy, change, atomic rename); a new file written under a temporary name and renamed."""
    from .store import update

    path = Path(path)
    if path.exists():
        with update(path) as f:
            yield f
        return
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            yield f
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_path(path: str | os.PathLike, name: str) -> tuple[PathResult, dict]:
    """(result, attrs) of /analysis/paths/<name>."""
    key = f"{GROUP}/{name}"
    with h5py.File(path, "r") as f:
        if key not in f:
            have = sorted(k for k in f[GROUP]) if GROUP in f else []
            raise RunFileError(f"{path} has no /{key} (stored paths: {', '.join(have) or 'none'})")
        g = f[key]
        metrics = {split: {m: np.array(g[split][m]) for m in g[split]} for split in g
                   if isinstance(g[split], h5py.Group)}
        attrs = dict(g.attrs)
        n = {k[2:]: int(v) for k, v in attrs.items() if k.startswith("n_")}
        return PathResult(np.array(g["alpha"]), np.array(g["segment"]), metrics, n), attrs


def stored_paths(path: str | os.PathLike) -> list[str]:
    with h5py.File(path, "r") as f:
        return sorted(k for k in f[GROUP] if not k.startswith(".")) if GROUP in f else []


def check_name(name: str) -> str:
    if not name or "/" in name or name.startswith(".") or name != name.strip():
        raise ValueError(f"result name {name!r} must be non-empty, without '/', not starting with '.'")
    return name


# --------------------------------------------------------------------------------------------- state specs

STATE_SPECS = "pretrained, compressed, clamped, step:N, ptq:METHOD:BITS, or a checkpoint file"


def load_state_spec(run, spec: str) -> dict[str, Tensor]:
    """A full state dict for the model of `run` (a store.Run) named by `spec`:
    "pretrained" | "compressed" | "clamped"   the run file's states;
    "step:N" (or "N")                         the run's complete checkpoint at SGD step N;
    "ptq:METHOD:BITS"                         post-training quantization (uniform | heq | kmeans, per layer,
                                              conv and linear weights) of the run's pretrained state;
    anything else                             a checkpoint file (.th/.pt), checked against the run's arch."""
    from .models import build_model, load_state, read_checkpoint
    from .store import STATES

    spec = str(spec)
    if spec in STATES:
        return run.state(spec)
    step = spec.removeprefix("step:")
    if step.isdigit():
        return run.state(int(step))
    if spec.startswith("ptq:"):
        from .compress.ptq import quantize_model

        parts = spec.split(":")
        if len(parts) != 3 or not parts[2].isdigit():
            raise ValueError(f"state {spec!r}: write PTQ states as ptq:METHOD:BITS, e.g. ptq:heq:4")
        return quantize_model(run.model("pretrained"), parts[1], int(parts[2])).model.state_dict()
    path = Path(spec)
    if not path.is_file():
        raise LandscapeError(f"state {spec!r} is not one of {STATE_SPECS} (no such file)")
    ckpt = read_checkpoint(path)
    if ckpt.get("arch") not in (None, run.arch):
        raise LandscapeError(f"checkpoint {path} is a {ckpt['arch']}, the run's model is a {run.arch}")
    model = load_state(build_model(run.arch), ckpt["state_dict"], source=f"checkpoint {path}")
    return model.state_dict()


def spec_label(spec: str) -> str:
    """A short name for a state spec (file specs by their stem)."""
    from .store import STATES

    spec = str(spec)
    if spec in STATES or spec.startswith(("ptq:", "step:")) or spec.isdigit():
        return spec
    return Path(spec).stem


def png_path(file: str | os.PathLike, kind: str, name: str) -> Path:
    """Where a CLI puts the PNG of a stored result: beside the file, <stem>.<kind>-<name>.png."""
    file = Path(file)
    return file.with_name(f"{file.stem}.{kind}-{name}.png")
