"""Differentiable soft min-max loss (DSMM; Kundu et al., "Differentiable Soft Min-Max Loss to Restrict
Weight Range for Model Quantization", eq. 1): a range regulariser that trims each layer's outliers before
post-training quantization. It is not a quantizer itself, so its clamp step is "apply PTQ method `then` at
`bits` bits".

For a layer with weights W and its own learnable temperature α (paper A.1: α initialised to 0.1, strength
0.01):

    s_max = Σ W·e^{α(W − W_max)} / Σ e^{α(W − W_max)}     (a softmax-weighted mean: → max W as α → ∞)
    s_min = Σ W·e^{−α(W − W_min)} / Σ e^{−α(W − W_min)}   (→ min W as α → ∞)
    L_DSMM = (s_max − s_min) + e^{−α}                                                        (eq. 1)
    L_C = λ · Σ_l L_DSMM(W_l, α_l)

The shifts by W_max / W_min cancel in the ratios; `torch.softmax(±α·W)` computes the same quantities with
that shift built in (numerically stable). The e^{−α} term pushes α up (towards the hard range);
∂(s_max − s_min)/∂α, the sum of the two softmax-weighted variances (≥ 0), pushes it down. α multiplies
weights, so its unit is 1/(weight unit): with α·(max W − min W) ≪ 1 both soft extremes sit near the mean,
the range term is only ≈ α·(Var_max + Var_min), a weak pull of every weight towards the layer mean, and
α·range ≫ 1 is where the loss acts on the outliers. At the paper's α = 0.1 and the trainer's lr 1e-3, α
moves by ~λ·lr = 1e-5 per step, so a short fine-tune of ResNet-20 (weight ranges ~1) stays in the weak
regime: the paper trains α at its training lr (0.4–1.0). `alpha_lr` gives the temperatures their own step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from ..quantize import Codebook
from .base import Compressor, check_finite
from .ptq import PTQ, PTQConfig


@dataclass(frozen=True)
class DSMMConfig:
    """DSMM's settings (`--method dsmm`): the regulariser while training, then PTQ at `bits`; units beside each field.

    Examples:
        >>> config = DSMMConfig(bits=3, then="kmeans")
        >>> config.strength, config.alpha_init
        (0.01, 0.1)
        >>> DSMMConfig(then="lloyd")
        Traceback (most recent call last):
        ...
        ValueError: unknown PTQ method 'lloyd'; choose one of uniform, heq, kmeans
    """

    strength: float = 0.01  # λ multiplying Σ_l L_DSMM (paper A.1: 0.01). Units: loss per unit of range
    alpha_init: float = 0.1  # initial temperature α_l of each layer (paper A.1: 0.1), in 1/(weight unit)
    alpha_lr: float | None = None  # SGD step size of the temperatures α_l (None: the trainer's lr)
    then: str = "heq"  # clamp: PTQ method applied after the regulariser: "uniform" | "heq" | "kmeans"
    bits: int = 4  # bits per weight b: 2^b levels per layer, 1..16
    params: str = "weights"  # which parameters are regularised: conv/linear weights (BN and biases never)

    def __post_init__(self):
        if not math.isfinite(self.strength) or self.strength < 0:
            raise ValueError(f"strength must be a finite number ≥ 0, got {self.strength}")
        if not math.isfinite(self.alpha_init):
            raise ValueError(f"alpha_init (the initial DSMM temperature α) must be a finite number, "
                             f"got {self.alpha_init}")
        if self.alpha_lr is not None and (not math.isfinite(self.alpha_lr) or self.alpha_lr < 0):
            raise ValueError(f"alpha_lr must be a finite number ≥ 0 or None, got {self.alpha_lr}")
        PTQConfig(self.then, self.bits, self.params)  # same checks and messages as the PTQ method itself


def soft_range(w: Tensor, alpha: Tensor) -> Tensor:
    """s_max − s_min of eq. 1 for a 1-D weight tensor."""
    return (w * torch.softmax(alpha * w, 0)).sum() - (w * torch.softmax(-alpha * w, 0)).sum()


class DSMM(Compressor):
    name = "dsmm"

    @classmethod
    def settings_for_bits(cls, bits: int) -> dict[str, Any]:
        return {"bits": bits}  # the PTQ clamp after the regulariser: 2^bits levels per layer

    def __init__(self, config: DSMMConfig = DSMMConfig(), *, seed: int = 0):
        self.config, self.params = config, config.params
        self.ptq = PTQ(PTQConfig(config.then, config.bits, config.params), seed=seed)
        self.alphas: dict[str, nn.Parameter] = {}

    def prepare(self, model: nn.Module) -> nn.Module:
        self.alphas = {}
        for name, p in self.selected(model).items():
            check_finite(f"pretrained parameter {name}", p.detach())
            alpha = torch.tensor(self.config.alpha_init, dtype=p.dtype, device=p.device)
            self.alphas[name] = nn.Parameter(alpha)
        return model

    def _check_prepared(self, model: nn.Module) -> dict[str, nn.Parameter]:
        params = self.selected(model)
        if set(params) != set(self.alphas):
            raise RuntimeError("DSMM.prepare(model) must be called first")
        for name, alpha in self.alphas.items():
            # a check that reads α on the host: per step on CPU only (free there); on a GPU a diverged α shows
            # as the trainer's non-finite loss, without a host sync per layer and step
            if alpha.device.type == "cpu" and not torch.isfinite(alpha):
                raise ValueError(f"DSMM temperature α of {name} is {alpha.item()} (diverged): "
                                 "lower alpha_lr or lr")
        return params

    def penalty(self, model: nn.Module) -> Tensor:
        params = self._check_prepared(model)
        total = torch.zeros((), device=next(iter(params.values())).device) if params else torch.zeros(())
        for name, p in params.items():
            alpha = self.alphas[name]
            total = total + soft_range(p.flatten(), alpha) + torch.exp(-alpha)
        return self.config.strength * total

    def codebooks(self, model: nn.Module) -> dict[str, Codebook]:
        """The PTQ method `then` at `bits` bits, applied to the current weights."""
        return self.ptq.codebooks(model)

    def param_groups(self) -> list[dict[str, Any]]:
        if not self.alphas:
            return []
        group = {"params": list(self.alphas.values()), "weight_decay": 0.0}
        return [group if self.config.alpha_lr is None else {**group, "lr": self.config.alpha_lr}]

    def learnable(self) -> dict[str, nn.Parameter]:
        return {f"{name}.alpha": a for name, a in self.alphas.items()}

    def stats(self, model: nn.Module) -> dict[str, float]:
        params = self._check_prepared(model)
        ranges = [(p.max() - p.min()).item() for p in params.values()]
        return {**super().stats(model), "mean_range": sum(ranges) / max(len(ranges), 1),
                "mean_alpha": sum(a.item() for a in self.alphas.values()) / max(len(self.alphas), 1)}

    def state_dict(self) -> dict:
        return {"alphas": {k: v.detach().clone() for k, v in self.alphas.items()}}

    def load_state_dict(self, state: dict) -> None:
        for name, value in state["alphas"].items():
            check_finite(f"DSMM temperature α of {name}", value)
            if name in self.alphas:
                with torch.no_grad():
                    self.alphas[name].copy_(value)
            else:
                self.alphas[name] = nn.Parameter(value.clone())

