"""2-D loss surfaces (and 1-D scans) on a plane through parameter space.

Two planes (`SurfaceConfig.plane`):
  "states"  the plane through three states θ_0, θ_1, θ_2 (default pretrained, compressed, clamped). Over the
            model's parameters (weights, biases, BN affine; not BN buffers) the basis is orthonormal, by
            Gram–Schmidt in float64: u_1 = d_1/‖d_1‖, u_2 = (d_2 − ⟨d_2,u_1⟩u_1)/‖…‖ with d_k = θ_k − θ_0, so the
            axes are in units of parameter distance (‖·‖₂ over all parameters) and the figure is drawn at
            true aspect. The states sit at (0, 0), (‖d_1‖, 0) and (⟨d_2,u_1⟩, ‖d_2 − ⟨d_2,u_1⟩u_1‖). Every
            point of the plane is an affine combination θ_0 + λ_1 d_1 + λ_2 d_2 (λ linear in the coordinates),
            and the floating BN buffers follow the parameters with the same λ (so with --bn keep the three
            states are exactly the saved models; outside their triangle a running variance could go negative
            and is clamped at 0). The three states themselves are evaluated by loading them, not by
            combination: their losses reproduce the states' own losses exactly. The piecewise-linear path
            θ_0 → θ_1 → θ_2 (landscape.interpolate's) is the pair of straight segments between them.
  "random"  the plane around one state θ_c (default clamped) spanned by two Gaussian directions,
            filter-normalized to θ_c (analysis/directions.py: each output-channel slice scaled to the norm of
            the same slice of θ_c; 1-D tensors zeroed by default) and orthogonalized *after* normalization
            (the cosine before is stored; ~1e-3 for ResNet-20, so the second direction's slice norms change by
            ~1e-6 relative). Coordinates are multiples of the directions (Li et al. 2018's convention: 1 = a
            step the size of every filter). BN buffers are θ_c's (--bn keep) or re-estimated per point.
            `dims=1` uses the first direction only: the 1-D filter-normalized scan.

Grid: `resolution` points per axis, odd and ≥ 3, so the centre of each range and both its endpoints are grid
points: x_i = c + (i − R//2)·(B − A)/(R − 1), endpoints set to A and B exactly. Values are stored [x, y] with
indexing='ij' (loss[i, j] is the point (x_i, y_j)), also for non-square grids. A value that was not computed
is NaN (never a sentinel such as −1); a diverged point keeps its non-finite loss.

Every grid point and every anchor state is one evaluation of the sweep engine (analysis/sweep.py): keys
"grid/i/j" and "state/k", journaled (a killed job resumes) and shared out over torchrun ranks; a point writes
the whole state before it is evaluated, so 1 and 2 processes give the same numbers.

Stored (`write_surface` / `read_surface`), group /analysis/surfaces/<name> of a run file:
  x [Rx], y [Ry] (coordinates; a 1-D scan has no y), loss [Rx, Ry] (mean loss, nats), accuracy [Rx, Ry]
  (fraction), anchor_coords [K, 2], anchor_loss [K], anchor_accuracy [K] (the states, or the centre);
  attrs: plane, states (JSON specs), anchor_labels (JSON), units, axis_norms (JSON, ‖axis‖ over the parameters),
  cosine (random plane: cos of the two directions before orthogonalization), norm, ignore, bn, bn_batches, seed,
  resolution, range (JSON), dims, split, limit, n, fast, run, world_size, git_commit, created.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import h5py
import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from ..bn import check_bn_mode
from ..distributed import World
from ..errors import LandscapeError
from ..metrics import LossFn
from ..specs import SurfaceSpec
from ..text import example_unit
from . import directions as dirs
from .engine import Analysis, register
from .evaluator import StateEvaluator, check_states
from .storage import new_result, open_result, set_attrs, stored
from .sweep import Journal, run_sweep

GROUP = "analysis/surfaces"
PLANES = ("states", "random")


@dataclass(frozen=True)
class SurfaceConfig:
    """How a loss surface is evaluated (`evaluate_surface`, `specs.SurfaceSpec.config`): units beside each field.
    `resolution` and `range` become one entry per axis.

    Examples:
        >>> SurfaceConfig(resolution=11).resolution, SurfaceConfig(plane="states", resolution=(5, 7)).resolution
        ((11, 11), (5, 7))
        >>> SurfaceConfig(resolution=4)
        Traceback (most recent call last):
        ...
        ValueError: resolution must be odd and ≥ 3 (centre and endpoints on the grid), got 4
    """

    plane: str = "random"  # "states": through three states | "random": two filter-normalized directions
    resolution: int | tuple[int, ...] = 21  # grid points per axis (one for all, or one per axis), odd, ≥ 3
    range: tuple[tuple[float, float], ...] | None = None  # (A, B) per axis; None: random ±1, states see below
    dims: int = 2  # random plane: 2 directions, or 1 (the 1-D filter-normalized scan)
    margin: float = 0.25  # states plane default range: the states' box grown by this × its larger side
    norm: str = "filter"  # random directions: "filter" | "layer" | "none" (analysis/directions.py)
    ignore: str = "biasbn"  # random directions: 1-D tensors zeroed ("biasbn") or normalized as one slice
    seed: int = 0  # CPU generator of the random directions
    bn: str = "keep"  # BN statistics: "keep" (module docstring) | "recalibrate" (re-estimated at every point)
    bn_batches: int = 4  # recalibrate: training batches per point the caller draws bn_data from (4 × 500 images)
    fast: bool = True  # BN-folded channels-last forward (analysis/evaluator.py)

    def __post_init__(self):
        if self.plane not in PLANES:
            raise ValueError(f"plane must be one of {', '.join(PLANES)}, got {self.plane!r}")
        if self.dims not in (1, 2) or (self.plane == "states" and self.dims != 2):
            raise ValueError(f"dims must be 2 (or 1 for a random plane), got {self.dims!r}")
        object.__setattr__(self, "resolution", _per_axis(self.resolution, self.dims, "resolution"))
        for r in self.resolution:
            if not isinstance(r, int) or r < 3 or r % 2 == 0:
                raise ValueError(f"resolution must be odd and ≥ 3 (centre and endpoints on the grid), got {r!r}")
        if self.range is not None:
            ranges = _per_axis(self.range, self.dims, "range")
            for a, b in ranges:
                if not (math.isfinite(a) and math.isfinite(b) and a < b):
                    raise ValueError(f"range {a}:{b} is empty (need A < B, both finite)")
            object.__setattr__(self, "range", ranges)
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise ValueError(f"margin must be ≥ 0, got {self.margin!r}")
        if self.norm not in dirs.FILTER_NORMS:
            raise ValueError(f"norm must be one of {', '.join(dirs.FILTER_NORMS)}, got {self.norm!r}")
        if self.ignore not in dirs.IGNORES:
            raise ValueError(f"ignore must be one of {', '.join(dirs.IGNORES)}, got {self.ignore!r}")
        check_bn_mode(self.bn)
        if not isinstance(self.bn_batches, int) or self.bn_batches < 1:
            raise ValueError(f"bn_batches must be an integer ≥ 1, got {self.bn_batches!r}")


def _per_axis(value, dims: int, what: str) -> tuple:
    """A setting given once for every axis or once per axis, as a tuple of `dims` entries."""
    value = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if what == "range" and value and not isinstance(value[0], (tuple, list)):
        value = (tuple(value),)
    if len(value) == 1:
        value = value * dims
    if len(value) != dims:
        raise ValueError(f"{what} needs 1 or {dims} values, got {len(value)}")
    return tuple(tuple(float(x) for x in v) if what == "range" else v for v in value)


def grid_axis(a: float, b: float, points: int) -> np.ndarray:
    """`points` (odd) coordinates from a to b: the centre (a+b)/2 and both ends exactly on the grid."""
    centre, step = (a + b) / 2, (b - a) / (points - 1)
    x = centre + step * (np.arange(points) - points // 2)
    x[0], x[points // 2], x[-1] = a, centre, b
    return x


# ------------------------------------------------------------------------------------------------- planes


@dataclass
class Plane:
    """A plane (or line) of states: state(x, y) = origin + Σ_k coord_k · axes[k] over the entries of the axes;
    every other entry is the origin's. `anchors` are states evaluated at exact coordinates (loaded as saved)."""

    kind: str
    origin: dict[str, Tensor]  # a full state dict
    axes: list[dict[str, Tensor]]  # float64 CPU tensors over parameter (and, for "states", buffer) names
    anchors: list[tuple[str, tuple[float, ...], dict[str, Tensor]]]  # (label, coordinates, full state)
    units: str
    params: list[str]  # the parameter names the plane moves
    info: dict = field(default_factory=dict)  # axis_norms, cosine, …

    def default_range(self, margin: float) -> tuple[tuple[float, float], ...]:
        if self.kind == "random":
            return ((-1.0, 1.0),) * len(self.axes)
        coords = np.array([c for _, c, _ in self.anchors])
        lo, hi = coords.min(0), coords.max(0)
        pad = margin * float((hi - lo).max())
        return tuple((float(a - pad), float(b + pad)) for a, b in zip(lo, hi, strict=True))


def _param_names(model: nn.Module) -> list[str]:
    return [name for name, p in model.named_parameters() if p.is_floating_point()]


def _f64(state: Mapping[str, Tensor], names: Iterable[str]) -> dict[str, Tensor]:
    return {k: state[k].detach().to("cpu", torch.float64) for k in names}


def states_plane(model: nn.Module, states: Sequence[Mapping[str, Tensor]], labels: Sequence[str]) -> Plane:
    """The plane through three full states (module docstring); `model` names the parameters."""
    if len(states) != 3:
        raise LandscapeError(f"a states plane needs exactly 3 states, got {len(states)}")
    reference = model.state_dict()
    check_states(reference, states, labels)
    params = _param_names(model)
    floating = [k for k, v in reference.items() if v.is_floating_point()]
    buffers = [k for k in floating if k not in params]
    t0, t1, t2 = (_f64(s, floating) for s in states)
    d1 = {k: t1[k] - t0[k] for k in floating}
    d2 = {k: t2[k] - t0[k] for k in floating}
    p1, p2 = ({k: d[k] for k in params} for d in (d1, d2))
    n1 = math.sqrt(dirs.dot(p1, p1))
    if n1 == 0:
        raise LandscapeError(f"{labels[0]} and {labels[1]} have the same parameters: they span no plane")
    u1 = {k: v / n1 for k, v in p1.items()}
    along = dirs.dot(p2, u1)
    rest = {k: p2[k] - along * u1[k] for k in params}
    height = math.sqrt(dirs.dot(rest, rest))
    if height <= 1e-6 * max(n1, math.sqrt(dirs.dot(p2, p2))):  # float32 round-off of a point on the line
        raise LandscapeError(f"the three states are collinear in parameter space ({labels[2]} lies on the line "
                             f"through {labels[0]} and {labels[1]}): they span no plane")
    u2 = {k: v / height for k, v in rest.items()}
    # λ from coordinates: [x, y] = λ1·(n1, 0) + λ2·(along, height)  →  λ = M⁻¹ [x, y]
    inv = np.linalg.inv(np.array([[n1, along], [0.0, height]]))
    axes = []
    for k, u in enumerate((u1, u2)):  # buffers move with the parameters: Δb per unit of coordinate k
        axis = dict(u)
        for name in buffers:
            axis[name] = float(inv[0, k]) * d1[name] + float(inv[1, k]) * d2[name]
        axes.append(axis)
    coords = [(0.0, 0.0), (n1, 0.0), (along, height)]
    anchors = [(label, c, dict(s)) for label, c, s in zip(labels, coords, states, strict=True)]
    return Plane("states", dict(states[0]), axes, anchors, "parameter distance", params,
                 {"axis_norms": [1.0, 1.0]})


def random_plane(model: nn.Module, centre: Mapping[str, Tensor], label: str, *, dims: int = 2, seed: int = 0,
                 norm: str = "filter", ignore: str = "biasbn") -> Plane:
    """`dims` filter-normalized Gaussian directions around `centre` (module docstring)."""
    check_states(model.state_dict(), [centre], [label])
    params = _param_names(model)
    theta = _f64(centre, params)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    axes = [dirs.filter_normalized(theta, generator, norm, ignore) for _ in range(dims)]
    info: dict = {}
    if any(dirs.dot(a, a) == 0 for a in axes):
        raise LandscapeError("the random directions are zero on every parameter (every parameter ignored?)")
    if dims == 2:
        axes[1], info["cosine"] = dirs.orthogonalize(axes[1], axes[0])
    info["axis_norms"] = [math.sqrt(dirs.dot(a, a)) for a in axes]
    return Plane("random", dict(centre), axes, [(label, (0.0,) * dims, dict(centre))],
                 "filter-normalized direction" if norm == "filter" else f"{norm}-normalized direction", params, info)


# ---------------------------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class SurfaceResult:
    coords: list[np.ndarray]  # one coordinate array per axis
    loss: np.ndarray  # [Rx] or [Rx, Ry], nats; NaN where not computed
    accuracy: np.ndarray  # same shape, fraction
    anchors: list[tuple[str, tuple[float, ...], float, float]]  # (label, coords, loss, accuracy)
    n: int  # images per evaluation

    def to_dict(self) -> dict:
        return {"x": self.coords[0].tolist(), **({"y": self.coords[1].tolist()} if len(self.coords) > 1 else {}),
                "loss": self.loss.tolist(), "accuracy": self.accuracy.tolist(), "n": self.n,
                "anchors": [{"label": a, "coords": list(c), "loss": lo, "accuracy": ac}
                            for a, c, lo, ac in self.anchors]}


def surface_keys(shape: Sequence[int], n_anchors: int) -> list[str]:
    """The sweep keys: every anchor state, then every grid point in ij order."""
    return [f"state/{k}" for k in range(n_anchors)] + ["grid/" + "/".join(map(str, idx)) for idx in np.ndindex(*shape)]


def evaluate_surface(model: nn.Module, plane: Plane, batches: Iterable, config: SurfaceConfig = SurfaceConfig(), *,
                     bn_data: Iterable | None = None, progress: bool = False, world: World = World(),
                     journal: Journal | None = None, loss_fn: LossFn | None = None) -> SurfaceResult | None:
    """Loss and accuracy on `batches` at every grid point of `plane` and at its anchors. `model` supplies the
    architecture (not modified). Under torchrun the points are shared out and the result is returned on rank 0
    (None elsewhere); points in `journal` are not evaluated again. `loss_fn` (outputs, targets) → batch mean
    replaces cross-entropy."""
    ranges = config.range or plane.default_range(config.margin)
    if len(ranges) != len(plane.axes) or len(config.resolution) != len(plane.axes):
        raise ValueError(f"the plane has {len(plane.axes)} axes; range and resolution must have as many")
    coords = [grid_axis(a, b, r) for (a, b), r in zip(ranges, config.resolution, strict=True)]
    evaluator = StateEvaluator(model, bn=config.bn, bn_data=bn_data, fast=config.fast, loss_fn=loss_fn)
    dev = evaluator.device
    live = evaluator.live
    origin = {k: v.to(dev, live[k].dtype) for k, v in plane.origin.items()}
    axes = [{k: v.to(dev, live[k].dtype) for k, v in axis.items()} for axis in plane.axes]
    variances = [k for k in axes[0] if k.endswith("running_var")]

    def point(key: str) -> dict:
        kind, _, rest = key.partition("/")
        if kind == "state":
            evaluator.load_({k: v.to(dev, live[k].dtype) for k, v in plane.anchors[int(rest)][2].items()})
        else:
            idx = tuple(int(i) for i in rest.split("/"))
            evaluator.load_(origin)
            evaluator.combine_(origin, [(float(c[i]), axis) for c, i, axis in zip(coords, idx, axes, strict=True)])
            for k in variances:  # outside the states' triangle an extrapolated variance can go negative
                live[k].clamp_(min=0)
        out = evaluator.evaluate(batches)
        return {"loss": float(out["loss"]), "accuracy": float(out["accuracy"]), "n": int(out["n"])}

    shape = tuple(len(c) for c in coords)
    values = run_sweep(surface_keys(shape, len(plane.anchors)), point, world=world, journal=journal,
                       progress=progress, desc="surface", unit="point")
    if values is None:
        return None
    loss, accuracy = np.full(shape, np.nan), np.full(shape, np.nan)
    for idx in np.ndindex(*shape):
        v = values["grid/" + "/".join(map(str, idx))]
        loss[idx], accuracy[idx] = v["loss"], v["accuracy"]
    anchors = [(label, tuple(c), values[f"state/{k}"]["loss"], values[f"state/{k}"]["accuracy"])
               for k, (label, c, _) in enumerate(plane.anchors)]
    return SurfaceResult(coords, loss, accuracy, anchors, values["state/0"]["n"])


# ------------------------------------------------------------------------------------------------- storage


def write_surface(path: str | os.PathLike, name: str, result: SurfaceResult, attrs: Mapping, *,
                  force: bool = False) -> str:
    """Store under /analysis/surfaces/<name> (module docstring), all at once or not at all. Returns the key."""
    with new_result(path, GROUP, name, force=force) as (g, key):
        for axis, c in zip("xy", result.coords, strict=False):
            g.create_dataset(axis, data=c)
        g.create_dataset("loss", data=result.loss)
        g.create_dataset("accuracy", data=result.accuracy)
        dims = len(result.coords)
        g.create_dataset("anchor_coords", data=np.array([c for _, c, _, _ in result.anchors]).reshape(-1, dims))
        g.create_dataset("anchor_loss", data=np.array([lo for *_, lo, _ in result.anchors]))
        g.create_dataset("anchor_accuracy", data=np.array([ac for *_, ac in result.anchors]))
        set_attrs(g, {**attrs, "anchor_labels": [a for a, *_ in result.anchors], "n": result.n, "dims": dims})
    return key


def read_surface(path: str | os.PathLike, name: str) -> tuple[SurfaceResult, dict]:
    """(result, attrs) of /analysis/surfaces/<name>."""
    import json

    with h5py.File(path, "r") as f:
        g = open_result(f, GROUP, name, path)
        coords = [np.array(g[a]) for a in "xy" if a in g]
        attrs = dict(g.attrs)
        labels = json.loads(attrs["anchor_labels"])
        anchors = [(label, tuple(map(float, c)), float(lo), float(ac)) for label, c, lo, ac in
                   zip(labels, np.array(g["anchor_coords"]), np.array(g["anchor_loss"]),
                       np.array(g["anchor_accuracy"]), strict=True)]
        return SurfaceResult(coords, np.array(g["loss"]), np.array(g["accuracy"]), anchors, int(attrs["n"])), attrs


def stored_surfaces(path: str | os.PathLike) -> list[str]:
    return stored(path, GROUP)


def draw_surface(result: SurfaceResult, kind: str, units: str, title: str):
    """The figure of a stored surface: filled contours + 3-D view (a line for a 1-D scan)."""
    from .. import plots

    if len(result.coords) == 1:
        fig, axes = plots.figure(1, 1, width=6, height=4)
        plots.line_scan(axes[0, 0], result.coords[0], result.loss,
                        anchors=[(a, c[0], lo) for a, c, lo, _ in result.anchors], xlabel=units, title=title)
        return fig
    x, y = result.coords
    fig, axes = plots.figure(1, 2, width=6.5, height=5.2)
    anchors = [(a, c) for a, c, _, _ in result.anchors]
    plots.surface_contour(axes[0, 0], x, y, result.loss, anchors=anchors, path=kind == "states",
                          equal_aspect=kind == "states", xlabel=f"x ({units})", ylabel=f"y ({units})",
                          title="loss (filled contours)")
    axes[0, 1].remove()
    ax3d = fig.add_subplot(1, 2, 2, projection="3d")
    plots.surface_3d(ax3d, x, y, result.loss, xlabel="x", ylabel="y", title="loss surface")
    fig.suptitle(title, fontsize="medium")
    return fig


# -------------------------------------------------------------------------------------- the engine's analysis


@register(SurfaceSpec)
class SurfaceAnalysis(Analysis):
    """`landscape surface`: the loss on the states plane or a random plane (specs.SurfaceSpec;
    analysis/engine.py)."""

    kind, group, figure, unit = "surface", GROUP, "surface", "points"

    @property
    def specs(self) -> list[str]:
        return list(self.spec.states) if self.spec.config.plane == "states" else [self.spec.around]

    def default_name(self) -> str:
        from .states import spec_label

        if self.spec.config.plane == "states":
            return "states_" + "-".join(spec_label(s).replace(":", "") for s in self.spec.states)
        return f"random{'1d' if self.spec.config.dims == 1 else ''}_{spec_label(self.spec.around).replace(':', '')}"

    def prepare(self, model: nn.Module) -> list:
        from .states import load_state_spec, spec_label

        c = self.spec.config
        states = [load_state_spec(self.run, s) for s in self.specs]
        labels = [spec_label(s) for s in self.specs]
        if c.plane == "states":
            self.plane = states_plane(model, states, labels)
        else:
            self.plane = random_plane(model, states[0], labels[0], dims=c.dims, seed=c.seed, norm=c.norm,
                                      ignore=c.ignore)
        return states

    def settings(self) -> dict:
        s, c = self.spec, self.spec.config
        attrs = {"plane": c.plane, "states": self.specs, "resolution": list(c.resolution),
                 "range": [list(r) for r in (c.range or self.plane.default_range(c.margin))], "norm": c.norm,
                 "ignore": c.ignore, "seed": c.seed, "bn": c.bn, "bn_batches": c.bn_batches, "fast": c.fast,
                 "split": s.split, "limit": s.limit, "batch_size": s.batch_size}
        if c.plane == "states":  # settings that only shape random directions do not apply
            attrs = {k: v for k, v in attrs.items() if k not in ("norm", "ignore", "seed")}
        return attrs

    def compute(self, ctx) -> SurfaceResult | None:
        return evaluate_surface(ctx.model, self.plane, ctx.batches(), self.spec.config,
                                bn_data=ctx.bn_data(self.spec.config), progress=ctx.progress, world=ctx.world,
                                journal=ctx.journal, loss_fn=ctx.loss_fn)

    def result_attrs(self, result: SurfaceResult) -> dict:
        from ..store import git_commit

        return {"units": self.plane.units, "axis_norms": self.plane.info.get("axis_norms"),
                "cosine": self.plane.info.get("cosine"), "git_commit": git_commit()}

    def write(self, file, name: str, result: SurfaceResult, attrs: Mapping) -> str:
        return write_surface(file, name, result, attrs, force=self.spec.force)

    def draw(self, result: SurfaceResult, name: str):
        return draw_surface(result, self.plane.kind, self.plane.units,
                            f"{self.run.path.name}: {name}  (n = {result.n} {self.spec.split} "
                            f"{example_unit(self.run.config.get('data'))})")
