"""Task loss and accuracy along a piecewise-linear path through parameter states (workshop paper §4.2:
pretrained → compressed → clamped).

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

Speed: every point is written into one working copy of the model (analysis/evaluator.py; `fast` folds BN into
the convs).

Stored results (`write_path` / `read_path`), in a run file or any HDF5 file, group /analysis/paths/<name>:
  alpha [T] float64, segment [T] int64, <split>/loss [T] (mean cross-entropy, nats), <split>/accuracy [T]
  (fraction) for each evaluated split ("test", "train"); attrs: states (JSON list of the state specs), points,
  bn, bn_batches, fast, limit, n_<split>, created.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import h5py
import numpy as np
import torch.nn as nn
from torch import Tensor

from ..bn import check_bn_mode
from ..checks import check_int
from ..distributed import World
from ..metrics import LossFn
from ..specs import PathSpec
from .engine import Analysis, register
from .evaluator import StateEvaluator, check_states
from .storage import new_result, open_result, set_attrs, stored
from .sweep import Journal, run_sweep

GROUP = "analysis/paths"


@dataclass(frozen=True)
class PathConfig:
    """How a path through states is evaluated (`evaluate_path`, `specs.PathSpec.config`): units beside each field.

    Examples:
        >>> PathConfig(points=5, bn="recalibrate").bn_batches
        4
        >>> PathConfig(points=1)
        Traceback (most recent call last):
        ...
        ValueError: points per segment must be an integer ≥ 2 (both endpoints included), got 1
    """

    points: int = 11  # evaluation points per segment, both endpoints included (≥ 2): steps of 1/(points−1)
    bn: str = "keep"  # BN running statistics: "keep" (interpolated) | "recalibrate" (re-estimated per point)
    bn_batches: int = 4  # recalibrate: training batches per point (4 × 500 images: channel means to ~2% of σ)
    fast: bool = True  # BN folded into convs + channels-last forward (values to ~1e-6); False: model as is

    def __post_init__(self):
        check_int("points per segment", self.points, 2, why=" (both endpoints included)")
        check_bn_mode(self.bn)
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


def evaluate_path(model: nn.Module, states: Sequence[Mapping[str, Tensor]], data: Mapping[str, Iterable],
                  config: PathConfig = PathConfig(), *, bn_data: Iterable | None = None,
                  labels: Sequence[str] | None = None, progress: bool = False, world: World = World(),
                  journal: Journal | None = None, loss_fn: LossFn | None = None) -> PathResult | None:
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
    evaluator = StateEvaluator(model, bn=config.bn, bn_data=bn_data, fast=config.fast, loss_fn=loss_fn)
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
    with new_result(path, GROUP, name, force=force) as (g, key):
        g.create_dataset("alpha", data=result.alpha)
        g.create_dataset("segment", data=result.segment)
        for split, m in result.metrics.items():
            for metric, values in m.items():
                g.create_dataset(f"{split}/{metric}", data=values)
        set_attrs(g, {**attrs, **{f"n_{split}": n for split, n in result.n.items()}})
    return key


def read_path(path: str | os.PathLike, name: str) -> tuple[PathResult, dict]:
    """(result, attrs) of /analysis/paths/<name>."""
    with h5py.File(path, "r") as f:
        g = open_result(f, GROUP, name, path)
        metrics = {split: {m: np.array(g[split][m]) for m in g[split]} for split in g
                   if isinstance(g[split], h5py.Group)}
        attrs = dict(g.attrs)
        n = {k[2:]: int(v) for k, v in attrs.items() if k.startswith("n_")}
        return PathResult(np.array(g["alpha"]), np.array(g["segment"]), metrics, n), attrs


def stored_paths(path: str | os.PathLike) -> list[str]:
    return stored(path, GROUP)


def default_name(states: Sequence[str], bn: str) -> str:
    """The states' labels joined by '-', then the BN mode: pretrained-compressed-clamped_bn-keep."""
    from .states import spec_label

    return "-".join(spec_label(s).replace(":", "") for s in states) + f"_bn-{bn}"


def draw_path(result: PathResult, knots: list[str], title: str):
    """Loss and accuracy along the path, one curve per split, the states marked at their knots."""
    from .. import plots

    splits = list(result.metrics)
    lm = all(np.isnan(result.metrics[s]["accuracy"]).all() for s in splits)  # a language model: no accuracy panel
    fig, axes = plots.figure(1, 1 if lm else 2, width=5.5, height=3.8)
    which = "/".join(splits)
    plots.path_curves(axes[0, 0], result.alpha, {s: result.metrics[s]["loss"] for s in splits}, knots=knots,
                      ylabel=f"{which} loss ({'nats/token' if lm else 'cross-entropy, nats'})", title="task loss")
    if not lm:
        plots.path_curves(axes[0, 1], result.alpha, {s: result.metrics[s]["accuracy"] for s in splits},
                          knots=knots, ylabel=f"{which} accuracy (%)", title="accuracy", percent=True)
    fig.suptitle(f"{title}  (n = {', '.join(f'{s} {n}' for s, n in result.n.items())})", fontsize="medium")
    return fig


# -------------------------------------------------------------------------------------- the engine's analysis


@register(PathSpec)
class PathAnalysis(Analysis):
    """`landscape interpolate`: the path through a run's states (specs.PathSpec; analysis/engine.py)."""

    kind, group, figure, unit = "paths", GROUP, "path", "points"

    def default_name(self) -> str:
        return default_name(self.spec.states, self.spec.config.bn)

    def prepare(self, model: nn.Module) -> list:
        from .states import load_state_spec

        self.states = [load_state_spec(self.run, s) for s in self.spec.states]
        return self.states

    def settings(self) -> dict:
        s, c = self.spec, self.spec.config
        return {"states": list(s.states), "points": c.points, "bn": c.bn, "bn_batches": c.bn_batches,
                "fast": c.fast, "split": s.split, "limit": s.limit, "batch_size": s.batch_size}

    def compute(self, ctx) -> PathResult | None:
        splits = ["test", "train"] if self.spec.split == "both" else [self.spec.split]
        return evaluate_path(ctx.model, self.states, {s: ctx.batches(s) for s in splits}, self.spec.config,
                             bn_data=ctx.bn_data(self.spec.config), labels=list(self.spec.states),
                             progress=ctx.progress, world=ctx.world, journal=ctx.journal, loss_fn=ctx.loss_fn)

    def write(self, file, name: str, result: PathResult, attrs: Mapping) -> str:
        return write_path(file, name, result, attrs, force=self.spec.force)

    def draw(self, result: PathResult, name: str):
        from .states import spec_label

        return draw_path(result, [spec_label(s) for s in self.spec.states], f"{self.run.path.name}: {name}")
