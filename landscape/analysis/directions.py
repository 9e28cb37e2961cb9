"""Directions in parameter space: the one place that draws them, for the perturbation baseline and the surfaces.

Every direction is a dict name → tensor over some named parameters. Draws are Gaussian (never uniform), in
float64 on the CPU from a seeded `torch.Generator`, one `randn` per tensor in the given name order, so the same
seed gives the same direction on every device; a direction is returned on each parameter's device and dtype.

Scalings:
  equal norm (`random_direction`, the perturbation baseline, soft-quantization paper Fig. 3): scaled to a
      displacement's norm, globally (‖δ‖ = ‖Δθ‖) or per layer (‖δ_l‖ = ‖Δθ_l‖; a layer Δθ leaves unchanged
      gets δ_l = 0).
  filter normalization (`normalize`, Li et al. 2018 "Visualizing the Loss Landscape of Neural Nets"): every
      output-channel slice d_l[i] of a tensor with ≥ 2 dimensions is scaled to the norm of the same slice of
      the state, d_l[i] ← d_l[i]·‖θ_l[i]‖/(‖d_l[i]‖ + ε). "layer" scales whole tensors, "none" leaves the
      Gaussian as drawn. 1-D tensors (biases, BN affine parameters) are zeroed by default (ignore="biasbn", Li
      et al.'s choice: their scale is set by BN, not by the weights); with ignore="none" a 1-D tensor is one
      slice, scaled to its own norm ‖θ_l‖ (never copied from the weights, a pitfall of a public implementation).
  Two directions of a plane are orthogonalized *after* normalization (`orthogonalize`; normalizing after
      orthogonalizing would break orthogonality); the cosine they had before is reported.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor

from ..errors import LandscapeError

NORMS = ("global", "per-layer")  # equal-norm scalings
FILTER_NORMS = ("filter", "layer", "none")  # normalizations of a surface's directions
IGNORES = ("biasbn", "none")
EPS = 1e-10  # added to a slice's direction norm (a zero slice stays zero)


def tensor_norm(t: Tensor) -> float:
    """‖t‖₂ in float64, on the CPU (MPS has no float64)."""
    return float(torch.linalg.vector_norm(t.detach().to("cpu", torch.float64)))


def global_norm(tensors: Mapping[str, Tensor]) -> float:
    return math.sqrt(sum(tensor_norm(t) ** 2 for t in tensors.values()))


def dot(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> float:
    """Σ_l ⟨a_l, b_l⟩ in float64 over the names of `a`."""
    return float(sum(torch.sum(a[k].detach().to("cpu", torch.float64) * b[k].detach().to("cpu", torch.float64))
                     for k in a))


def displacement(pre: Mapping[str, Tensor], target: Mapping[str, Tensor], names: Sequence[str]) -> dict[str, Tensor]:
    """Δθ_l = target_l − pre_l for each name (new tensors, on pre's device and dtype)."""
    out = {}
    for name in names:
        if name not in target:
            raise LandscapeError(f"the target state has no {name}")
        if tuple(target[name].shape) != tuple(pre[name].shape):
            raise LandscapeError(f"{name}: target has shape {tuple(target[name].shape)}, pretrained "
                                 f"{tuple(pre[name].shape)}")
        out[name] = target[name].to(pre[name].device, pre[name].dtype) - pre[name]
    return out


def gaussian(like: Mapping[str, Tensor], generator: torch.Generator) -> dict[str, Tensor]:
    """One standard Gaussian tensor per name of `like`, float64 on the CPU, drawn in name order."""
    return {name: torch.randn(t.shape, generator=generator, dtype=torch.float64) for name, t in like.items()}


def _placed(raw: Mapping[str, Tensor], like: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {name: r.to(like[name].device, like[name].dtype) for name, r in raw.items()}


# ------------------------------------------------------------------------------------------ equal norm


def random_direction(delta: Mapping[str, Tensor], generator: torch.Generator, norm: str = "global", *,
                     delta_norms: Mapping[str, float] | None = None) -> dict[str, Tensor]:
    """One Gaussian direction over the parameters of `delta`, scaled to its norm (module docstring).
    `delta_norms` (‖Δθ_l‖ per layer) saves recomputing them for every direction."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    if delta_norms is None:
        delta_norms = {name: tensor_norm(d) for name, d in delta.items()}
    raw = gaussian(delta, generator)
    raw_norms = {name: float(torch.linalg.vector_norm(r)) for name, r in raw.items()}
    if norm == "global":
        g = math.sqrt(sum(v * v for v in raw_norms.values()))
        target = math.sqrt(sum(v * v for v in delta_norms.values()))
        factors = {name: target / g if g > 0 else 0.0 for name in raw}
    else:
        factors = {name: delta_norms[name] / raw_norms[name] if raw_norms[name] > 0 else 0.0 for name in raw}
    return _placed({name: r * factors[name] for name, r in raw.items()}, delta)


def random_directions(delta: Mapping[str, Tensor], m: int, *, seed: int,
                      norm: str = "global") -> Iterator[dict]:
    """M directions, one at a time (never all in memory); direction i is the same for any M ≥ i + 1."""
    direction = Directions(delta, seed, norm)
    for i in range(m):
        yield direction(i)


class Directions:
    """Direction i of `random_directions(delta, ·, seed, norm)` on demand. The directions come from one generator
    in sequence, so direction i costs drawing 0 … i−1 first; asking in increasing order (what each rank of a sweep
    does) draws every direction at most once (a Gaussian draw is ~1% of an evaluation for ResNet-20)."""

    def __init__(self, delta: Mapping[str, Tensor], seed: int, norm: str):
        self.delta, self.seed, self.norm = delta, seed, norm
        self.delta_norms = {name: tensor_norm(d) for name, d in delta.items()}
        self._restart()

    def _restart(self) -> None:
        self.generator = torch.Generator(device="cpu").manual_seed(self.seed)
        self.next, self.last = 0, None

    def __call__(self, i: int) -> dict[str, Tensor]:
        if i < self.next - 1:
            self._restart()
        while self.next <= i:
            self.last = random_direction(self.delta, self.generator, self.norm, delta_norms=self.delta_norms)
            self.next += 1
        return self.last


# ---------------------------------------------------------------------------------- filter normalization


def normalize(raw: Mapping[str, Tensor], state: Mapping[str, Tensor], norm: str = "filter",
              ignore: str = "biasbn", eps: float = EPS) -> dict[str, Tensor]:
    """`raw` (float64 CPU, e.g. from `gaussian`) scaled to `state` (module docstring), float64 on the CPU."""
    if norm not in FILTER_NORMS:
        raise ValueError(f"norm must be one of {', '.join(FILTER_NORMS)}, got {norm!r}")
    if ignore not in IGNORES:
        raise ValueError(f"ignore must be one of {', '.join(IGNORES)}, got {ignore!r}")
    out = {}
    for name, d in raw.items():
        theta = state[name].detach().to("cpu", torch.float64)
        if theta.dim() <= 1 and ignore == "biasbn":
            out[name] = torch.zeros_like(d)
        elif norm == "none":
            out[name] = d.clone()
        elif norm == "layer" or theta.dim() <= 1:
            out[name] = d * (torch.linalg.vector_norm(theta) / (torch.linalg.vector_norm(d) + eps))
        else:  # one slice per output channel (dim 0)
            t2, d2 = theta.reshape(len(theta), -1), d.reshape(len(d), -1)
            scale = torch.linalg.vector_norm(t2, dim=1) / (torch.linalg.vector_norm(d2, dim=1) + eps)
            out[name] = (d2 * scale[:, None]).reshape(d.shape)
    return out


def orthogonalize(d2: Mapping[str, Tensor], d1: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], float]:
    """(d2 − (⟨d1,d2⟩/⟨d1,d1⟩)·d1, cos(d1, d2) before): one Gram–Schmidt step, in float64."""
    n11, n12, n22 = dot(d1, d1), dot(d1, d2), dot(d2, d2)
    if n11 == 0 or n22 == 0:
        raise LandscapeError("a direction is zero over every parameter (all of them ignored?)")
    c = n12 / n11
    return {k: d2[k] - c * d1[k] for k in d2}, n12 / math.sqrt(n11 * n22)


def filter_normalized(state: Mapping[str, Tensor], generator: torch.Generator, norm: str = "filter",
                      ignore: str = "biasbn") -> dict[str, Tensor]:
    """One Gaussian direction over the names of `state`, normalized to it (float64, CPU)."""
    return normalize(gaussian(state, generator), state, norm, ignore)
