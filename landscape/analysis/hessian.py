"""Hessian spectra of the task loss (python -m landscape.hessian): the largest (and smallest) eigenvalues, the trace,
the spectral density, per compressed layer and for the whole model; λ_max and trace along the path pretrained →
compressed → clamped; and the second-order prediction of what clamping costs.

The loss. L(θ) = Σ_b (n_b/N)·loss_fn(f(x_b; θ), y_b), the batch-size-weighted mean of the per-batch mean losses
(cross-entropy by default) over a fixed list of unaugmented batches, with the model in **eval mode**: BN uses its
running statistics, so L and its Hessian are properties of the state and the data, not of how the data is split
into batches (in train mode each batch's own statistics would enter and the Hessian would depend on the split).
H·v = Σ_b (n_b/N)·H_b·v accordingly.

Choices (and why):
- Hessian-vector products by reverse-over-reverse differentiation in torch.func on a deep copy of the model
  (analysis/hvp.py says why, with the alternatives measured).
- Which parameters: by default the compressed weights (`params.select_params(model, "weights")`, conv/linear
  weights: what compression moves and clamping changes); params="all" for every parameter. A layer's Hessian is
  the diagonal block of one parameter tensor: derivatives with respect to that tensor alone, all else held fixed.
- Eigenvalues by scipy's ARPACK Lanczos on a float64 LinearOperator (`lanczos.top_eigenvalues`): largest
  algebraic ("LA") by default, smallest algebraic ("SA") on request; relative tolerance 1e-3 (default `tol`); a
  seeded start vector, so repeated runs agree; the number of products is reported. Trace by Hutchinson with
  seeded Rademacher vectors (mean ± standard error); density by our own SLQ with full reorthogonalization
  (`lanczos.py` says why each is done the way it is). A layer's trace is by default Hutchinson on its own block
  (its own products); layer_trace="split" takes it from the whole model's vectors instead, z_lᵀ(Hz)_l, unbiased
  for tr H_ll (cross terms have mean 0) with more variance and no extra products: ~20× fewer products for the
  traces of ResNet-20's 20 layers, at much larger standard errors for small layers.
- The path (`path_positions` of analysis/paths.py for the point convention): at each point every floating entry of
  the state dict is interpolated as `StateEvaluator.lerp_` does (BN running statistics included), integer buffers
  come from the nearer end, and λ_max and the trace are taken there.
- Clamp cost. At the compressed state θc with g = ∇L(θc) and δ = clamped − compressed over the selected
  parameters, ΔL ≈ gᵀδ + ½ δᵀHδ (both terms reported) against the measured ΔL = L(θc + δ) − L(θc). Clamping
  changes only the compressed weights in this code base's runs; entries outside the selection that do differ are
  listed in `other_changed`, left out of δ, and the full clamped state's loss is reported beside (`loss_clamped`).
  Per layer l: g_lᵀδ_l + ½ δ_lᵀH_ll δ_l against L(θc with only layer l clamped) − L(θc).
- Every quantity is one key of the journaled, torchrun-sharded sweep (analysis/sweep.py): "<state>/model/top",
  "<state>/layer/<param>/trace", "path/3", "clamp_cost/layer/<param>", …; a killed job resumes, and torchrun
  shares the keys out.

Stored results (`write_hessian` / `read_hessian`), group /analysis/hessian/<name>; losses in nats, eigenvalues
and traces in nats per (unit of weight)², products = Hessian-vector products used:
  states/<label>/         attrs loss, grad_norm (‖∇L‖ over the selection), dim, top_products, bottom_products,
                          trace, trace_se, trace_exact, density_sigma; datasets top [k] (descending), bottom [k]
                          (ascending), trace_samples [m] (zᵀHz), density_nodes [V, M], density_weights [V, M] (SLQ:
                          V start vectors, M Lanczos steps), density_grid [G], density [G] (per unit eigenvalue)
  states/<label>/layers/<param>/   the same for that parameter's diagonal block (no loss, grad_norm)
  path/                   alpha [T] (state k at alpha = k), segment [T], lambda_max [T], products [T], trace [T],
                          trace_se [T], loss [T]; attrs states (JSON)
  clamp_cost/             attrs loss_compressed, loss_clamped_weights (= L(θc + δ)), loss_clamped (full clamped
                          state), measured, linear (gᵀδ), quadratic (½ δᵀHδ), predicted, delta_norm, other_changed
                          (JSON); clamp_cost/layers/<param>/ the same per layer (attrs)
  attrs                   states, labels, layers (JSON), params, top_k, smallest, tol, samples, steps, vectors,
                          points, sigma, seed, split, limit, batch_size, n (images), created, …
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import h5py
import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from ..checks import check_int
from ..distributed import World
from ..errors import LandscapeError
from ..metrics import LossFn
from ..params import check_selection, select_params
from ..specs import PATH_STATES, HessianSpec
from ..text import example_unit
from . import lanczos
from .engine import Analysis, register
from .evaluator import check_states
from .hvp import HessianOperator, lerp_state
from .paths import path_positions
from .storage import new_result, open_result, set_attrs, stored
from .sweep import Journal, run_sweep

GROUP = "analysis/hessian"
LAYER_TRACES = ("block", "split")
RESERVED = ("path", "clamp_cost")  # sweep-key prefixes that are not state labels
JSON_ATTRS = ("other_changed", "states", "layers")  # lists stored as JSON attributes, not datasets


# ------------------------------------------------------------------------------------------------- analysis


@dataclass(frozen=True)
class HessianConfig:
    """What Hessian spectra are computed and how (`analyze`, `specs.HessianSpec.config`): units beside each field.

    Examples:
        >>> config = HessianConfig(top_k=3, trace=True, density=True)
        >>> config.samples, config.quantities()
        (32, ['top', 'trace', 'density'])
        >>> HessianConfig(tol=2)
        Traceback (most recent call last):
        ...
        ValueError: --tol must be in (0, 1), got 2
    """

    top_k: int = 1  # largest algebraic eigenvalues per state and block (≥ 1)
    smallest: bool = False  # also the top_k smallest algebraic eigenvalues
    tol: float = 1e-3  # ARPACK's relative tolerance on each eigenvalue
    trace: bool = False  # Hutchinson trace
    samples: int = 32  # Rademacher vectors of the trace estimate (also along the path)
    density: bool = False  # SLQ spectral density
    steps: int = 40  # Lanczos steps per SLQ start vector
    vectors: int = 4  # SLQ start vectors
    sigma: float | None = None  # Gaussian broadening of the density (None: 1% of the span of the nodes)
    per_layer: bool = False  # the same for the diagonal block of every layer
    layers: tuple[str, ...] = ()  # only these layers (parameter names); () = every selected parameter
    points: int = 3  # path: points per segment, both ends included
    params: str = "weights"  # the parameters differentiated: "weights" (conv/linear) | "all" | ±patterns (params.py)
    seed: int = 0  # start vector of ARPACK, Rademacher vectors of Hutchinson and SLQ
    layer_trace: str = "block"  # per-layer traces: "block" (Hutchinson on each block, its own products) | "split"
    #                             (the whole model's vectors split by layer, z_lᵀ(Hz)_l: no extra products, more noise)

    def __post_init__(self):
        check_int("--top-k", self.top_k, 1)
        check_int("--samples (trace vectors)", self.samples, 2)
        check_int("--steps (Lanczos steps)", self.steps, 1)
        check_int("--vectors (SLQ start vectors)", self.vectors, 1)
        check_int("--points (per path segment)", self.points, 2)
        if not 0 < self.tol < 1:
            raise ValueError(f"--tol must be in (0, 1), got {self.tol}")
        if self.sigma is not None and not self.sigma > 0:
            raise ValueError(f"--sigma must be > 0, got {self.sigma}")
        check_selection(self.params)
        if self.layer_trace not in LAYER_TRACES:
            raise ValueError(f"--layer-trace must be one of {', '.join(LAYER_TRACES)}, got {self.layer_trace!r}")

    def quantities(self, layer: bool = False) -> list[str]:
        """What is computed per state (layer=False) or per layer block (True).

        Args:
            layer: the quantities of a layer block (True) or of the whole model (False).

        Returns:
            A list of "top", "bottom", "trace", "density", in that order.

        Examples:
            >>> config = HessianConfig(smallest=True, trace=True, per_layer=True, layer_trace="split")
            >>> config.quantities(), config.quantities(layer=True)
            (['top', 'bottom', 'trace'], ['top', 'bottom'])
        """
        trace = self.trace and not (layer and self.layer_trace == "split")
        return ["top"] + ["bottom"] * self.smallest + ["trace"] * trace + ["density"] * self.density

    @property
    def split_trace(self) -> bool:
        """The whole model's trace products also give the per-layer traces.

        Examples:
            >>> HessianConfig(trace=True, per_layer=True, layer_trace="split").split_trace
            True
            >>> HessianConfig(trace=True, per_layer=True).split_trace
            False
        """
        return self.trace and self.per_layer and self.layer_trace == "split"


def check_layers(model: nn.Module, config: HessianConfig) -> list[str]:
    """The layers (parameter names) the per-layer blocks are taken of; an unknown name is an error naming it."""
    selected = list(select_params(model, config.params))
    for name in config.layers:
        if name not in selected:
            raise LandscapeError(f"layer {name!r} is not a parameter of the selection {config.params!r} (e.g. "
                                 f"{', '.join(selected[:3])}, …)")
    return list(config.layers) or selected


def sweep_keys(labels: Sequence[str], layers: Sequence[str], config: HessianConfig, *, path: int = 0,
               clamp: bool = False) -> list[str]:
    """Every evaluation, as a sweep key: per state "<label>/model/loss" and "<label>/model/<q>" (q in top,
    bottom, trace, density as configured), per layer "<label>/layer/<param>/<q>", "path/<i>" for `path` points,
    "clamp_cost/model" and (per layer) "clamp_cost/layer/<param>"."""
    keys = []
    for label in labels:
        keys += [f"{label}/model/{q}" for q in ["loss", *config.quantities()]]
        if config.per_layer:
            keys += [f"{label}/layer/{name}/{q}" for name in layers for q in config.quantities(layer=True)]
    keys += [f"path/{i}" for i in range(path)]
    if clamp:
        keys += ["clamp_cost/model"] + ([f"clamp_cost/layer/{name}" for name in layers] if config.per_layer else [])
    return keys


def _trace(t: lanczos.Trace) -> dict:
    return {"trace": t.mean, "trace_se": t.se, "trace_samples": t.samples, "trace_exact": t.exact}


def spectrum(op: HessianOperator, quantity: str, config: HessianConfig, layers: Sequence[str] = ()) -> dict:
    """One quantity of one operator as JSON-ready values (the sweep's unit of work); a trace with `layers` also
    gives those parameters' block traces from the same products ("layer_traces": {param: {…}})."""
    dev, n = op.device, op.dim
    if quantity == "loss":
        loss, g = op.loss_and_gradient()
        return {"loss": loss, "grad_norm": float(torch.linalg.vector_norm(g)), "dim": n}
    if quantity in ("top", "bottom"):
        e = lanczos.top_eigenvalues(op, n, config.top_k, which="LA" if quantity == "top" else "SA", tol=config.tol,
                                    seed=config.seed, device=dev)
        return {quantity: e.values, f"{quantity}_products": e.products, "dim": n}
    if quantity == "trace":
        t = lanczos.hutchinson(op, n, config.samples, seed=config.seed, device=dev, split=op.sizes if layers else None)
        out = {**_trace(t), "dim": n}
        if layers:
            out["layer_traces"] = {name: _trace(part) for name, part in zip(op.names, t.parts, strict=True)
                                   if name in layers}
        return out
    if quantity == "density":
        nodes, weights = lanczos.slq(op, n, config.steps, config.vectors, seed=config.seed, device=dev)
        return {"density_nodes": nodes, "density_weights": weights, "dim": n}
    raise ValueError(f"unknown quantity {quantity!r}")


def clamp_cost(op: HessianOperator, clamped: Mapping[str, Tensor], names: Sequence[str] | None = None,
               loss_compressed: float | None = None) -> dict:
    """Predicted (gᵀδ + ½ δᵀHδ) and measured ΔL of clamping `names` (default: all of op.names) at op's state
    (the compressed one), δ = clamped − compressed there; H is the block of `names`."""
    block = op if names is None else op.block(names)
    target = {n: clamped[n].to(op.state[n].device, op.state[n].dtype) for n in block.names}
    delta = block.flat(target) - block.flat(op.state)
    g, hd = block.gradient_and_product(delta)
    linear, quadratic = float(g @ delta), 0.5 * float(delta @ hd)
    base = op.loss() if loss_compressed is None else loss_compressed
    after = op.at({**op.state, **target}).loss()
    return {"loss_compressed": base, "loss_clamped_weights": after, "measured": after - base, "linear": linear,
            "quadratic": quadratic, "predicted": linear + quadratic,
            "delta_norm": float(torch.linalg.vector_norm(delta))}


@dataclass
class HessianResult:
    states: dict[str, dict]  # label → {loss, grad_norm, dim, top, top_products, …, layers: {param: {…}}}
    layers: list[str]  # the per-layer blocks analysed (parameter names; [] without per_layer)
    n: int  # images
    path: dict | None = None  # alpha, segment, lambda_max, products, trace, trace_se, loss: lists [T]; states
    clamp_cost: dict | None = None  # {…whole model…, other_changed, layers: {param: {…}}}
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"n": self.n, "layers": self.layers, "states": self.states, "path": self.path,
                "clamp_cost": self.clamp_cost}


def analyze(model: nn.Module, batches: Iterable, states: Mapping[str, Mapping[str, Tensor]],
            config: HessianConfig = HessianConfig(), *, path: Sequence[Mapping[str, Tensor]] | None = None,
            path_labels: Sequence[str] = ("pretrained", "compressed", "clamped"),
            clamp: tuple[Mapping[str, Tensor], Mapping[str, Tensor]] | None = None,
            loss_fn: LossFn | None = None, keep_graph: bool = False, progress: bool = False,
            world: World = World(), journal: Journal | None = None) -> HessianResult | None:
    """The Hessian spectra of `model`'s architecture at each of `states` (label → full state dict) on `batches`
    (a list of unaugmented (x, y) on the model's device), per `config`; with `path` (≥ 2 full states) λ_max and
    trace along it, with `clamp` = (compressed, clamped) the clamp-cost prediction. `model` is never modified.
    Every quantity is a sweep key (`sweep_keys`): shared over torchrun ranks and journaled; returned on rank 0 only.
    keep_graph: the operators keep their gradient graphs between the products of one key (hvp.HessianOperator;
    faster, memory ∝ images), released after every key."""
    for label in states:
        if "/" in label or label in RESERVED or not label:
            raise LandscapeError(f"state label {label!r} is not usable (no '/', not {' or '.join(RESERVED)})")
    base = HessianOperator(model, batches, params=config.params, loss_fn=loss_fn, keep_graph=keep_graph)
    layers = check_layers(base.model, config)
    ops = {label: base.at(state) for label, state in states.items()}
    on_device = [{k: v.to(base.state[k].device, base.state[k].dtype) for k, v in s.items()} for s in path or ()]
    for i, s in enumerate(on_device):
        check_states(base.state, [s], [f"path state {i}"])
    alpha, segment, steps = path_positions(len(on_device), config.points) if path else ([], [], [])
    if clamp is not None:
        compressed = base.at(clamp[0])
        clamped = compressed.at(clamp[1]).state
        other_changed = [k for k in base.state if k not in base.names and k not in base.aliases
                         and not torch.equal(compressed.state[k], clamped[k])]
    cache = {}

    def evaluate(key: str):
        try:
            return evaluate_key(key)
        finally:  # kept graphs live for one key at most
            for op in [*ops.values(), *([compressed] if clamp is not None else [])]:
                op.release()

    def evaluate_key(key: str):
        parts = key.split("/")
        if parts[0] == "path":
            k, j = steps[int(parts[1])]
            op = base.at(lerp_state(on_device[k], on_device[k + 1], j / (config.points - 1)))
            top = spectrum(op, "top", dataclasses.replace(config, top_k=1))
            trace = lanczos.hutchinson(op, op.dim, config.samples, seed=config.seed, device=op.device)
            return {"lambda_max": top["top"][0], "products": top["top_products"], "trace": trace.mean,
                    "trace_se": trace.se, "loss": op.loss()}
        if parts[0] == "clamp_cost":
            if "loss" not in cache:
                cache["loss"] = compressed.loss()
            out = clamp_cost(compressed, clamped, None if parts[1] == "model" else [parts[2]], cache["loss"])
            if parts[1] == "model":
                out["loss_clamped"] = compressed.at(clamped).loss()
            return out
        if parts[1] == "model":
            return spectrum(ops[parts[0]], parts[-1], config, layers if config.split_trace else ())
        return spectrum(ops[parts[0]].block([parts[2]]), parts[-1], config)

    keys = sweep_keys(list(states), layers, config, path=len(steps), clamp=clamp is not None)
    values = run_sweep(keys, evaluate, world=world, journal=journal, progress=progress, desc="hessian", unit="key")
    if values is None:
        return None
    out = {label: {"layers": {}} for label in states}
    for key, value in values.items():
        parts = key.split("/")
        if parts[0] in RESERVED:
            continue
        entry = out[parts[0]] if parts[1] == "model" else out[parts[0]]["layers"].setdefault(parts[2], {})
        value = dict(value)
        for name, trace in value.pop("layer_traces", {}).items():
            out[parts[0]]["layers"].setdefault(name, {}).update(trace)
        entry.update(_with_density(value, config))
    for entry in out.values():
        if not entry["layers"]:
            del entry["layers"]
    result = HessianResult(out, layers if config.per_layer else [], base.n_data)
    if path:
        rows = [values[f"path/{i}"] for i in range(len(steps))]
        result.path = {"alpha": [float(a) for a in alpha], "segment": [int(s) for s in segment],
                       "states": list(path_labels), **{q: [r[q] for r in rows] for q in rows[0]}}
    if clamp is not None:
        result.clamp_cost = {**values["clamp_cost/model"], "other_changed": other_changed}
        if config.per_layer:
            result.clamp_cost["layers"] = {name: values[f"clamp_cost/layer/{name}"] for name in layers}
    return result


def _with_density(value: dict, config: HessianConfig) -> dict:
    if "density_nodes" not in value:
        return value
    grid, phi, sigma = lanczos.density(value["density_nodes"], value["density_weights"], sigma=config.sigma)
    return {**value, "density_grid": grid.tolist(), "density": phi.tolist(), "density_sigma": sigma}


# ------------------------------------------------------------------------------------------------- storage


def _write_tree(group: h5py.Group, tree: Mapping) -> None:
    """Dicts as subgroups, lists as datasets, scalars as attributes (None left out)."""
    for key, value in tree.items():
        if isinstance(value, Mapping):
            _write_tree(group.create_group(key), value)
        elif key in JSON_ATTRS:
            group.attrs[key] = json.dumps(list(value))
        elif isinstance(value, (list, tuple, np.ndarray)):
            group.create_dataset(key, data=np.asarray(value))
        elif value is not None:
            group.attrs[key] = value


def _read_tree(group: h5py.Group) -> dict:
    out = {k: (json.loads(v) if k in JSON_ATTRS else v.item() if hasattr(v, "item") else v)
           for k, v in group.attrs.items()}
    for key, item in group.items():
        out[key] = _read_tree(item) if isinstance(item, h5py.Group) else np.array(item).tolist()
    return out


def write_hessian(path: str | os.PathLike, name: str, result: HessianResult, attrs: Mapping, *,
                  force: bool = False) -> str:
    """Store under /analysis/hessian/<name>, all at once or not at all. Returns the group key."""
    with new_result(path, GROUP, name, force=force) as (g, key):
        _write_tree(g, {k: v for k, v in result.to_dict().items() if k not in ("n", "layers")})
        set_attrs(g, {**attrs, "n": result.n, "layers": result.layers})
    return key


def read_hessian(path: str | os.PathLike, name: str) -> tuple[HessianResult, dict]:
    """(result, attrs) of /analysis/hessian/<name>."""
    with h5py.File(path, "r") as f:
        g = open_result(f, GROUP, name, path)
        tree = _read_tree(g)
        attrs = dict(g.attrs)
    return HessianResult(tree.get("states", {}), json.loads(attrs["layers"]), int(attrs["n"]), tree.get("path"),
                         tree.get("clamp_cost")), attrs


def stored_hessians(path: str | os.PathLike) -> list[str]:
    return stored(path, GROUP)


def draw_hessian(result: HessianResult, title: str):
    """One panel per computed kind: eigenvalues per state, density, per-layer λ_max and trace, path, clamp cost."""
    from .. import plots

    states, panels = result.states, []
    if any("density" in e for e in states.values()):
        panels.append(lambda ax: plots.spectral_density(
            ax, {lb: (e["density_grid"], e["density"]) for lb, e in states.items() if "density" in e},
            title="spectral density (SLQ), whole model"))
    else:
        panels.append(lambda ax: plots.hessian_bars(
            ax, [f"λ{i + 1}" for i in range(len(next(iter(states.values()))["top"]))],
            {lb: e["top"] for lb, e in states.items()}, title="largest eigenvalues, whole model",
            ylabel="eigenvalue"))
    if result.layers and any("layers" in e for e in states.values()):
        layers = result.layers
        panels.append(lambda ax: plots.hessian_bars(
            ax, layers, {lb: [e["layers"][n]["top"][0] for n in layers] for lb, e in states.items()},
            title="λ_max of each layer's diagonal block", ylabel="λ_max (log scale)", log=True))
        if any("trace" in e["layers"][layers[0]] for e in states.values()):
            panels.append(lambda ax: plots.hessian_bars(
                ax, layers, {lb: [e["layers"][n]["trace"] for n in layers] for lb, e in states.items()},
                errors={lb: [e["layers"][n]["trace_se"] for n in layers] for lb, e in states.items()},
                title="trace of each layer's diagonal block (± SE)", ylabel="trace", log=False))
    if result.path is not None:
        p = result.path
        panels.append(lambda ax: plots.path_curves(ax, p["alpha"], {"λ_max": p["lambda_max"]}, knots=p["states"],
                                                   ylabel="λ_max", title="λ_max along the path"))
        panels.append(lambda ax: plots.path_curves(ax, p["alpha"], {"trace": p["trace"]}, knots=p["states"],
                                                   ylabel="trace (Hutchinson)", title="trace along the path"))
    if result.clamp_cost is not None:
        c = result.clamp_cost
        layers = list(c.get("layers", {}))
        panels.append(lambda ax: plots.clamp_cost(
            ax, {n: (c["layers"][n]["predicted"], c["layers"][n]["measured"]) for n in layers},
            whole=(c["predicted"], c["measured"]), title="clamp cost: second-order prediction vs measured"))
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plots.figure(rows, cols, width=5.2, height=3.8)
    for i, panel in enumerate(panels):
        panel(axes[i // cols, i % cols])
    for i in range(len(panels), rows * cols):
        axes[i // cols, i % cols].set_visible(False)
    fig.suptitle(title, fontsize="medium")
    return fig


# -------------------------------------------------------------------------------------- the engine's analysis


@register(HessianSpec)
class HessianAnalysis(Analysis):
    """`landscape hessian`: spectra, traces, densities, the path and the clamp cost (specs.HessianSpec;
    analysis/engine.py)."""

    kind, group, figure, unit = "hessian", GROUP, "hessian", "quantities"

    @property
    def labels(self) -> list[str]:
        from .states import spec_label

        return [spec_label(s) for s in self.spec.states]

    def default_name(self) -> str:
        return "-".join(label.replace(":", "") for label in self.labels)

    def prepare(self, model: nn.Module) -> list:
        from .states import load_state_spec

        check_layers(model, self.spec.config)
        self.states = {label: load_state_spec(self.run, s) for label, s in zip(self.labels, self.spec.states,
                                                                                strict=True)}
        self.path = [self.run.state(s) for s in PATH_STATES] if self.spec.path else None
        self.clamp = (self.run.state("compressed"), self.run.state("clamped")) if self.spec.clamp_cost else None
        return list(self.states.values()) + list(self.path or ()) + list(self.clamp or ())

    def settings(self) -> dict:
        s, c = self.spec, self.spec.config
        return {"states": list(s.states), "labels": self.labels, "params": c.params, "top_k": c.top_k,
                "smallest": c.smallest, "tol": c.tol, "trace": c.trace, "samples": c.samples, "density": c.density,
                "steps": c.steps, "vectors": c.vectors, "sigma": c.sigma, "per_layer": c.per_layer,
                "layer_trace": c.layer_trace, "path": s.path, "points": c.points, "clamp_cost": s.clamp_cost,
                "seed": c.seed, "split": s.split, "limit": s.limit, "batch_size": s.batch_size,
                "layers_asked": list(c.layers)}

    def compute(self, ctx) -> HessianResult | None:
        return analyze(ctx.model, list(ctx.batches()), self.states, self.spec.config, path=self.path,
                       clamp=self.clamp, keep_graph=self.spec.keep_graph, progress=ctx.progress, world=ctx.world,
                       journal=ctx.journal, loss_fn=ctx.loss_fn)

    def write(self, file, name: str, result: HessianResult, attrs: Mapping) -> str:
        return write_hessian(file, name, result, attrs, force=self.spec.force)

    def draw(self, result: HessianResult, name: str):
        return draw_hessian(result, f"{self.run.path.name}: hessian {name}  (n = {result.n} {self.spec.split} "
                                    f"{example_unit(self.run.config.get('data'))})")
