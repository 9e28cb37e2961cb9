"""Centroid–weight coupling (workshop paper "Quantization and the Bottom of the Loss Landscape", §3.2):
K learnable centroids per layer attract the layer's weights, each weight pulled by its nearest centroid only.

    L_C = λ · Σ_l Σ_i min_α |C_α^(l) − θ_i^(l)|^ρ                                 (eq. 3, times λ)

The paper's dynamics (eq. 4) are δC = −η2 ∇_C L_C and δθ = −η1 ∇_θ L_C − ∇_θ L_task. Here one SGD
optimizer does both, with the loss L_task + λ·(eq. 3): the weights step with the trainer's lr, so
η1 = lr·λ (and the task gradient gets lr, the paper's implicit step); the centroids are a separate
parameter group with lr `centroid_lr`, so η2 = centroid_lr·λ. The ratio η2/η1 = centroid_lr/lr sets the
centroids' timescale relative to the weights'. Momentum and the lr schedule apply to both groups; weight
decay never applies to the centroids.

A centroid's gradient sums over its ≈N_l/K members (10^2–10^4 weights in ResNet-20), so a centroid_lr of
about lr·K/N_l moves it as fast as one weight. Measured on the adapted ResNet-20 (2 bits, λ = 0.2, 40
steps at lr 1e-3): with centroid_lr 1e-5 the mean weight–centroid distance only fell from 0.026 to
0.012; with 1e-7 (the default; the centroids drifted by ≤ 0.0014) or frozen centroids, to 0.0023.

Centroids start at the 1-D k-means centroids of the pretrained weights (`landscape.quantize.kmeans`,
K = 2^bits, fewer for a layer with fewer distinct values). Clamping replaces each weight by its nearest
centroid (`landscape.quantize.nearest`), so a clamped layer has at most K distinct values: bits = log2 K.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from ..checks import check_int
from ..quantize import MAX_BITS, Codebook, kmeans, nearest
from .base import Compressor, check_finite


@dataclass(frozen=True)
class CentroidConfig:
    """Centroid–weight coupling's settings (`--method centroid`): units beside each field.

    Examples:
        >>> config = CentroidConfig(bits=3)
        >>> config.rho, config.strength
        (1.0, 0.1)
        >>> CentroidConfig(bits=0)
        Traceback (most recent call last):
        ...
        ValueError: bits must be an integer in 1..16 (K = 2^bits centroids, K ≥ 2), got 0
    """

    bits: int = 4  # bits per weight b: K = 2^b learnable centroids per layer (K ≥ 2), k-means initialised
    rho: float = 1.0  # shape ρ > 0 of the potential |C − θ|^ρ (eq. 3): 1 constant pull (as U_w), 2 harmonic
    strength: float = 0.1  # λ multiplying eq. 3; η1 = lr·λ. Units: loss per (weight unit)^ρ per weight
    centroid_lr: float = 1e-7  # SGD step size of the centroids, η2 = centroid_lr·λ (module docstring)
    params: str = "weights"  # which parameters are coupled: conv/linear weights (BN and biases never)

    def __post_init__(self):
        check_int("bits", self.bits, 1, MAX_BITS, why=" (K = 2^bits centroids, K ≥ 2)")
        if not math.isfinite(self.rho) or self.rho <= 0:
            raise ValueError(f"rho must be a finite number > 0 (potential |C − θ|^rho), got {self.rho}")
        if not math.isfinite(self.strength) or self.strength < 0:
            raise ValueError(f"strength must be a finite number ≥ 0, got {self.strength}")
        if not math.isfinite(self.centroid_lr) or self.centroid_lr < 0:
            raise ValueError(f"centroid_lr must be a finite number ≥ 0, got {self.centroid_lr}")


def nearest_distance(theta: Tensor, centroids: Tensor) -> Tensor:
    """|C_a(i) − θ_i| for every weight, a(i) its nearest centroid (ties: the lower one, as
    `quantize.nearest`). Differentiable in θ and C; the assignment (piecewise constant) is not."""
    order = torch.argsort(centroids.detach())
    c = centroids[order]
    with torch.no_grad():
        index = torch.bucketize(theta.detach(), (c[1:] + c[:-1]) / 2, right=False)  # x <= midpoint -> lower
    return (c[index] - theta).abs()


def safe_pow(d: Tensor, rho: float) -> Tensor:
    """d^ρ for d ≥ 0 with subgradient 0 at d = 0: a weight on its centroid gives no NaN for ρ < 1."""
    positive = d > 0
    return torch.where(positive, torch.where(positive, d, torch.ones_like(d)) ** rho, torch.zeros_like(d))


class Centroid(Compressor):
    name = "centroid"
    label = "CWC"  # the workshop paper's name: centroid–weight coupling

    @classmethod
    def settings_for_bits(cls, bits: int) -> dict[str, Any]:
        return {"bits": bits}  # K = 2^bits centroids per layer

    def __init__(self, config: CentroidConfig = CentroidConfig(), *, seed: int = 0):
        self.config, self.params, self.seed = config, config.params, seed  # seed: k-means init (unused)
        self.centroids: dict[str, nn.Parameter] = {}

    def prepare(self, model: nn.Module) -> nn.Module:
        """K-means centroids of each layer's pretrained weights, on the weights' device."""
        self.centroids = {}
        for name, p in self.selected(model).items():
            check_finite(f"pretrained parameter {name}", p.detach())
            values = kmeans(p.detach().flatten(), self.config.bits, seed=self.seed).values
            self.centroids[name] = nn.Parameter(values.clone())
        return model

    def _check_prepared(self, model: nn.Module) -> dict[str, nn.Parameter]:
        params = self.selected(model)
        if set(params) != set(self.centroids):
            raise RuntimeError("Centroid.prepare(model) must be called first (no centroids for "
                               f"{sorted(set(params) - set(self.centroids))[:3]})")
        return params

    def penalty(self, model: nn.Module) -> Tensor:
        params = self._check_prepared(model)
        total = torch.zeros((), device=next(iter(params.values())).device) if params else torch.zeros(())
        for name, p in params.items():
            d = nearest_distance(p.flatten(), self.centroids[name])
            total = total + safe_pow(d, self.config.rho).sum()
        return self.config.strength * total

    def codebooks(self, model: nn.Module) -> dict[str, Codebook]:
        params = self._check_prepared(model)
        return {name: nearest(p.detach().flatten(), self.centroids[name].detach())
                for name, p in params.items()}

    def param_groups(self) -> list[dict[str, Any]]:
        if not self.centroids:
            return []
        return [{"params": list(self.centroids.values()), "lr": self.config.centroid_lr, "weight_decay": 0.0}]

    def learnable(self) -> dict[str, nn.Parameter]:
        return {f"{name}.centroids": c for name, c in self.centroids.items()}

    def stats(self, model: nn.Module) -> dict[str, float]:
        params = self._check_prepared(model)
        with torch.no_grad():
            d = [nearest_distance(p.flatten(), self.centroids[n]) for n, p in params.items()]
        mean = torch.cat(d).mean().item() if d else math.nan
        return {**super().stats(model), "mean_centroid_distance": mean}

    def state_dict(self) -> dict:
        return {"centroids": {k: v.detach().clone() for k, v in self.centroids.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Restores the centroids in place where they exist (the optimizer holds them), else creates them."""
        for name, value in state["centroids"].items():
            check_finite(f"centroids of {name}", value)
            if name in self.centroids and self.centroids[name].shape == value.shape:
                with torch.no_grad():
                    self.centroids[name].copy_(value)
            else:
                self.centroids[name] = nn.Parameter(value.clone())
