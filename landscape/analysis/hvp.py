"""The Hessian-vector product of a model's loss (the operator under analysis/hessian.py): H·v of
L(θ) = Σ_b (n_b/N)·loss_fn(f(x_b; θ), y_b), the batch-size-weighted mean of per-batch mean losses over a fixed list
of batches, model in eval mode, with respect to some of its parameters, at any full state.

Hessian-vector products by reverse-over-reverse differentiation in torch.func, `vjp(grad(L_b), θ)` applied to
v (H is symmetric), through `functional_call` on a deep copy of the model (never the caller's, which is never
touched): no `backward(create_graph=True)` on the model's parameters, so no graph outlives a product (unless
`keep_graph` asks to keep it, inside the operator) and nothing accumulates in `.grad`; the primal output is the
gradient, so g and H·δ come from one pass (the clamp-cost prediction). Measured on ResNet-20 (200 test images,
medians of 3 interleaved rounds on the 2 shared cores at load ≈ 9, so only a rough guide): one product costs
4.2 gradients this way, 4.2 by forward-over-reverse (`jvp(grad)`), 2.9 with the gradient graph kept, 6.2
through curvlinops' HessianLinearOperator (forward-over-reverse under vmap; the same products to 1e-6 in
float32, 3e-16 in float64 on the test net); on tiny models forward-over-reverse was 5× slower. So curvlinops is
not a dependency (it would add six packages for ~30 lines), and our operator also moves to another state (`at`)
or block (`block`) without copying the model. Products run in the model's dtype; vectors enter and leave as
float64.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, grad, grad_and_value, vjp
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..errors import LandscapeError
from ..metrics import LossFn
from ..params import canonical_names, select_params
from .evaluator import check_states, lerp_entry


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
                 loss_fn: LossFn | None = None, keep_graph: bool = False):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.batches = [(x, y) for x, y in batches]
        if not self.batches:
            raise ValueError("no data for the Hessian (empty batches)")
        self.n_data = sum(len(y) for _, y in self.batches)
        self.loss_fn, self.keep_graph = loss_fn or F.cross_entropy, keep_graph
        self.state = {k: v.detach() for k, v in self.model.state_dict(keep_vars=True).items()}
        # a tied weight's other names (a head that is the token embedding): functional_call takes it once
        self.aliases = {a for a, c in canonical_names(self.model).items() if a != c}
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
        def loss(active: dict) -> Tensor:
            # attention through the math kernel: the fused scaled-dot-product kernels have no second derivative
            with sdpa_kernel(SDPBackend.MATH):
                state = {k: v for k, v in self.state.items() if k not in self.aliases}
                return self.loss_fn(functional_call(self.model, {**state, **active}, (x,)), y)

        return loss

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

    def release(self) -> None:
        """Drop the kept gradient graphs (keep_graph): the next product rebuilds them."""
        self._graphs = None

    def __call__(self, v: Tensor) -> Tensor:
        return self.gradient_and_product(v)[1]


def lerp_state(start: Mapping[str, Tensor], end: Mapping[str, Tensor], weight: float) -> dict[str, Tensor]:
    """start + weight·(end − start) for every floating entry, integer entries from the nearer end; weight 0 and 1
    are the endpoints exactly (as `StateEvaluator.lerp_`)."""
    if weight in (0.0, 1.0):
        return dict(start if weight == 0.0 else end)
    return {k: lerp_entry(a, end[k], weight) for k, a in start.items()}
