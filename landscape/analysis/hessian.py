"""Hessian spectra of the task loss (python -m landscape.hessian): the largest (and smallest) eigenvalues, the trace,
the spectral density, per compressed layer and for the whole model; λ_max and trace along the path pretrained →
compressed → clamped; and the second-order prediction of what clamping costs.

The loss. L(θ) = Σ_b (n_b/N)·loss_fn(f(x_b; θ), y_b), the batch-size-weighted mean of the per-batch mean losses
(cross-entropy by default) over a fixed list of unaugmented batches, with the model in **eval mode**: BN uses its
running statistics, so L and its Hessian are properties of the state and the data, not of how the data is split
into batches (in train mode each batch's own statistics would enter and the Hessian would depend on the split).
H·v = Σ_b (n_b/N)·H_b·v accordingly.

Choices (and why):
- Hessian-vector products by forward-over-reverse differentiation, `torch.func.jvp(torch.func.grad(L_b), θ, v)`
  through `functional_call` on a deep copy of the model (never the caller's, which is never touched): no
  `backward(create_graph=True)`, so no graph can outlive a product and nothing accumulates in `.grad`; the primal
  output of the jvp is the gradient, so g and H·δ come from one pass (the clamp-cost prediction). curvlinops'
  HessianLinearOperator computes exactly this (`jvp(jacrev(...))`; measured bit-identical on ResNet-20) at the
  same speed, so it is not a dependency: it would add six packages for ~20 lines, and our operator also moves to
  another state (`at`) or block (`block`) without copying the model. Products run in the model's dtype; vectors
  enter and leave as float64.
- Which parameters: by default the compressed weights (`params.select_params(model, "weights")`, conv/linear
  weights: what compression moves and clamping changes); params="all" for every parameter. A layer's Hessian is
  the diagonal block of one parameter tensor: derivatives with respect to that tensor alone, all else held fixed.
- Eigenvalues by scipy's ARPACK Lanczos on a float64 LinearOperator (`lanczos.top_eigenvalues`): largest
  algebraic ("LA") by default, smallest algebraic ("SA") on request; relative tolerance 1e-3 (default `tol`); a
  seeded start vector, so repeated runs agree; the number of products is reported. Trace by Hutchinson with
  seeded Rademacher vectors (mean ± standard error); density by our own SLQ with full reorthogonalization
  (`lanczos.py` says why each is done the way it is).
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

import copy
import dataclasses
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, grad, grad_and_value, vjp

from ..checks import check_int
from ..distributed import World
from ..errors import LandscapeError
from ..params import SELECTIONS, select_params
from ..store import fresh_group
from . import lanczos
from .evaluator import check_states
from .paths import path_positions
from .storage import check_name, open_for_update, open_result, set_attrs, stored
from .sweep import Journal, run_sweep

GROUP = "analysis/hessian"
RESERVED = ("path", "clamp_cost")  # sweep-key prefixes that are not state labels
JSON_ATTRS = ("other_changed", "states", "layers")  # lists stored as JSON attributes, not datasets


class HessianOperator:
    """H·v of the batch-weighted mean loss (module docstring) at `state` (default: the model's own), with respect to
    the parameters `names` (default: `params.select_params(model, params)`), flattened in that order. Call it on a
    flat vector [dim] (any float dtype); returns float64 on the model's device. `products` counts the calls.

    keep_graph=True keeps each batch's gradient graph (torch.func's vjp closure) between products instead of
    rebuilding it: each product then costs one backward pass over the backward graph (≈ 30% less), at the price of
    holding that graph for every batch at once (≈ 5 MB per image for ResNet-20 in float32). It is dropped with the
    operator; `at` and `block` start without it."""

    def __init__(self, model: nn.Module, batches: Iterable, names: Sequence[str] | None = None, *,
                 params: str = "weights", state: Mapping[str, Tensor] | None = None,
                 loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy, keep_graph: bool = False):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.batches = [(x, y) for x, y in batches]
        if not self.batches:
            raise ValueError("no data for the Hessian (empty batches)")
        self.n_data = sum(len(y) for _, y in self.batches)
        self.loss_fn, self.keep_graph = loss_fn, keep_graph
        self.state = {k: v.detach() for k, v in self.model.state_dict(keep_vars=True).items()}
        if state is not None:
            self.state = self._moved(state)
        parameters = dict(self.model.named_parameters())
        names = list(select_params(self.model, params)) if names is None else list(names)
        unknown = [n for n in names if n not in parameters]
        if unknown or not names:
            raise LandscapeError(f"no parameter {unknown[0]!r} in the model" if unknown else "no parameters selected")
        self._set_names(names)

    def _moved(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        check_states(self.state, [state], ["the state"])
        return {k: state[k].detach().to(v.device, v.dtype) for k, v in self.state.items()}

    def _set_names(self, names: list[str]) -> None:
        self.names = names
        self.shapes = [self.state[n].shape for n in names]
        self.sizes = [self.state[n].numel() for n in names]
        self.dim = sum(self.sizes)
        self.products = 0
        self._graphs: list | None = None  # keep_graph: (gradient, vjp closure) per batch

    def at(self, state: Mapping[str, Tensor]) -> HessianOperator:
        """The same operator at another full state (shares the model copy and the batches)."""
        other = copy.copy(self)
        other.state = self._moved(state)
        other._set_names(self.names)
        return other

    def block(self, names: Sequence[str]) -> HessianOperator:
        """The diagonal block of `names` (derivatives with respect to those alone, the rest held fixed)."""
        other = copy.copy(self)
        other._set_names([n for n in names])
        return other

    @property
    def device(self) -> torch.device:
        return self.state[self.names[0]].device

    def flat(self, tensors: Mapping[str, Tensor]) -> Tensor:
        return torch.cat([tensors[n].reshape(-1).to(self.device, torch.float64) for n in self.names])

    def unflat(self, v: Tensor) -> dict[str, Tensor]:
        dtype = self.state[self.names[0]].dtype
        parts = v.to(self.device, dtype).split(self.sizes)
        return {n: p.view(s) for n, p, s in zip(self.names, parts, self.shapes, strict=True)}

    def _batch_loss(self, x: Tensor, y: Tensor) -> Callable[[dict], Tensor]:
        return lambda active: self.loss_fn(functional_call(self.model, {**self.state, **active}, (x,)), y)

    def _active(self) -> dict[str, Tensor]:
        return {n: self.state[n] for n in self.names}

    def loss(self) -> float:
        with torch.no_grad():
            return sum(float(self._batch_loss(x, y)({})) * len(y) for x, y in self.batches) / self.n_data

    def loss_and_gradient(self) -> tuple[float, Tensor]:
        total, g = 0.0, torch.zeros(self.dim, dtype=torch.float64, device=self.device)
        for x, y in self.batches:
            gb, lb = grad_and_value(self._batch_loss(x, y))(self._active())
            total += float(lb) * len(y)
            g += self.flat(gb) * (len(y) / self.n_data)
        return total / self.n_data, g

    def gradient_and_product(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """(∇L, H·v), flat float64, from one reverse-over-reverse pass per batch (H is symmetric: vᵀH = (Hv)ᵀ)."""
        self.products += 1
        tangent = self.unflat(v)
        g = torch.zeros(self.dim, dtype=torch.float64, device=self.device)
        hv = torch.zeros_like(g)
        graphs = self._graphs or (vjp(grad(self._batch_loss(x, y)), self._active()) for x, y in self.batches)
        kept = []
        for (_, y), (gb, vjp_fn) in zip(self.batches, graphs, strict=True):
            hb = vjp_fn(tangent)[0]
            if self.keep_graph:
                kept.append((gb, vjp_fn))
            g += self.flat(gb) * (len(y) / self.n_data)
            hv += self.flat(hb) * (len(y) / self.n_data)
        if self.keep_graph:
            self._graphs = kept
        return g, hv

    def __call__(self, v: Tensor) -> Tensor:
        return self.gradient_and_product(v)[1]


def lerp_state(start: Mapping[str, Tensor], end: Mapping[str, Tensor], weight: float) -> dict[str, Tensor]:
    """start + weight·(end − start) for every floating entry, integer entries from the nearer end; weight 0 and 1
    are the endpoints exactly (as `StateEvaluator.lerp_`)."""
    if weight in (0.0, 1.0):
        return dict(start if weight == 0.0 else end)
    return {k: torch.lerp(a, end[k].to(a.dtype), weight) if a.is_floating_point() else (a if weight < 0.5
            else end[k]) for k, a in start.items()}


# ------------------------------------------------------------------------------------------------- analysis


@dataclass(frozen=True)
class HessianConfig:
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
    params: str = "weights"  # the parameters differentiated: "weights" (conv/linear) | "all"
    seed: int = 0  # start vector of ARPACK, Rademacher vectors of Hutchinson and SLQ

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
        if self.params not in SELECTIONS:
            raise ValueError(f"params must be one of {', '.join(SELECTIONS)}, got {self.params!r}")

    def quantities(self) -> list[str]:
        return ["top"] + ["bottom"] * self.smallest + ["trace"] * self.trace + ["density"] * self.density


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
            keys += [f"{label}/layer/{name}/{q}" for name in layers for q in config.quantities()]
    keys += [f"path/{i}" for i in range(path)]
    if clamp:
        keys += ["clamp_cost/model"] + ([f"clamp_cost/layer/{name}" for name in layers] if config.per_layer else [])
    return keys


def spectrum(op: HessianOperator, quantity: str, config: HessianConfig) -> dict:
    """One quantity of one operator as JSON-ready values (the sweep's unit of work)."""
    dev, n = op.device, op.dim
    if quantity == "loss":
        loss, g = op.loss_and_gradient()
        return {"loss": loss, "grad_norm": float(torch.linalg.vector_norm(g)), "dim": n}
    if quantity in ("top", "bottom"):
        e = lanczos.top_eigenvalues(op, n, config.top_k, which="LA" if quantity == "top" else "SA", tol=config.tol,
                                    seed=config.seed, device=dev)
        return {quantity: e.values, f"{quantity}_products": e.products, "dim": n}
    if quantity == "trace":
        t = lanczos.hutchinson(op, n, config.samples, seed=config.seed, device=dev)
        return {"trace": t.mean, "trace_se": t.se, "trace_samples": t.samples, "trace_exact": t.exact, "dim": n}
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
    layers: list[str]
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
            loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy, progress: bool = False,
            world: World = World(), journal: Journal | None = None) -> HessianResult | None:
    """The Hessian spectra of `model`'s architecture at each of `states` (label → full state dict) on `batches`
    (a list of unaugmented (x, y) on the model's device), per `config`; with `path` (≥ 2 full states) λ_max and
    trace along it, with `clamp` = (compressed, clamped) the clamp-cost prediction. `model` is never modified.
    Every quantity is a sweep key (`sweep_keys`): shared over torchrun ranks and journaled; returned on rank 0 only."""
    for label in states:
        if "/" in label or label in RESERVED or not label:
            raise LandscapeError(f"state label {label!r} is not usable (no '/', not {' or '.join(RESERVED)})")
    base = HessianOperator(model, batches, params=config.params, loss_fn=loss_fn)
    layers = check_layers(base.model, config)
    ops = {label: base.at(state) for label, state in states.items()}
    on_device = [{k: v.to(base.state[k].device, base.state[k].dtype) for k, v in s.items()} for s in path or ()]
    for i, s in enumerate(on_device):
        check_states(base.state, [s], [f"path state {i}"])
    alpha, segment, steps = path_positions(len(on_device), config.points) if path else ([], [], [])
    if clamp is not None:
        compressed = base.at(clamp[0])
        clamped = compressed.at(clamp[1]).state
        other_changed = [k for k in base.state if k not in base.names
                         and not torch.equal(compressed.state[k], clamped[k])]
    cache = {}

    def evaluate(key: str):
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
        op = ops[parts[0]] if parts[1] == "model" else ops[parts[0]].block([parts[2]])
        return spectrum(op, parts[-1], config)

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
        entry.update(_with_density(value, config))
    for entry in out.values():
        if not entry["layers"]:
            del entry["layers"]
    result = HessianResult(out, layers, base.n_data)
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
    check_name(name)
    key = f"{GROUP}/{name}"
    with open_for_update(path) as f:
        g = fresh_group(f, key, force=force, where=path)
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
