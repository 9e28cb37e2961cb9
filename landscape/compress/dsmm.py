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

DSMM with quantization-aware training (the paper's §4 claim that DSMM also helps QAT and weight clustering):
`then` = "lsq" or "dkm" trains the regulariser *together with* that method instead of before a PTQ step. The
inner compressor (compress/lsq.py, compress/dkm.py, built with `bits`, `params` and `then_settings`) prepares the
model (its quantizing forward), adds its own penalty (0 for both), its learnable state (step sizes, PACT levels)
and clamps; DSMM adds L_C = λ·Σ_l L_DSMM on the latent full-precision weights. The paper does not say whether the
range term acts on the latent or on the quantized weights; the latent ones are what the optimizer moves and what
LSQ's step and DKM's centroids are fitted to, so the range term acts there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from ..quantize import Codebook
from .base import Clamped, Compressor, check_finite
from .ptq import PTQ, PTQConfig

TRAINED = ("lsq", "dkm")  # `then` methods trained together with the regulariser (the rest: PTQ after it)


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
        ValueError: then must be a PTQ method (uniform, heq, kmeans) or a trained one (lsq, dkm), got 'lloyd'
        >>> DSMMConfig(then="lsq", bits=3, then_settings={"step_lr": 1e-4}).then_settings
        {'step_lr': 0.0001}
    """

    strength: float = 0.01  # λ multiplying Σ_l L_DSMM (paper A.1: 0.01). Units: loss per unit of range
    alpha_init: float = 0.1  # initial temperature α_l of each layer (paper A.1: 0.1), in 1/(weight unit)
    alpha_lr: float | None = None  # SGD step size of the temperatures α_l (None: the trainer's lr)
    then: str = "heq"  # PTQ after the regulariser ("uniform" | "heq" | "kmeans"), or QAT with it ("lsq" | "dkm")
    bits: int = 4  # bits per weight b: 2^b levels per layer (PTQ 1..16; lsq, dkm: their own ranges)
    params: str = "weights"  # which parameters are regularised: conv/linear weights (BN and biases never)
    then_settings: Mapping[str, Any] = field(default_factory=dict)  # JSON: other settings of then=lsq|dkm

    def __post_init__(self):
        if not math.isfinite(self.strength) or self.strength < 0:
            raise ValueError(f"strength must be a finite number ≥ 0, got {self.strength}")
        if not math.isfinite(self.alpha_init):
            raise ValueError(f"alpha_init (the initial DSMM temperature α) must be a finite number, "
                             f"got {self.alpha_init}")
        if self.alpha_lr is not None and (not math.isfinite(self.alpha_lr) or self.alpha_lr < 0):
            raise ValueError(f"alpha_lr must be a finite number ≥ 0 or None, got {self.alpha_lr}")
        object.__setattr__(self, "then_settings", dict(self.then_settings or {}))
        if self.then in TRAINED:
            self.inner_config()  # the inner method's own checks and messages
        else:
            from ..quantize import QUANTIZERS

            if self.then not in QUANTIZERS:
                raise ValueError(f"then must be a PTQ method ({', '.join(QUANTIZERS)}) or a trained one "
                                 f"({', '.join(TRAINED)}), got {self.then!r}")
            if self.then_settings:
                raise ValueError(f"then_settings apply to then={' or '.join(TRAINED)} only, not then={self.then}")
            PTQConfig(self.then, self.bits, self.params)  # same checks and messages as the PTQ method itself

    def inner_config(self) -> Any:
        """The config of the method trained with the regulariser (then = lsq | dkm), checked by its dataclass.

        Returns:
            An `LSQConfig` or `DKMConfig` with `bits`, `params` and `then_settings`.

        Examples:
            >>> DSMMConfig(then="dkm", bits=2, then_settings={"tau": 0.02}).inner_config().tau
            0.02
        """
        import dataclasses

        from . import METHODS

        cls = METHODS[self.then][1]
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(self.then_settings) - fields)
        if unknown or {"bits", "params"} & set(self.then_settings):
            bad = unknown or sorted({"bits", "params"} & set(self.then_settings))
            raise ValueError(f"then_settings: {self.then} has no setting {', '.join(bad)} here (bits and params "
                             f"are DSMM's own; it takes: {', '.join(sorted(fields - {'bits', 'params'}))})")
        return cls(**{**self.then_settings, "bits": self.bits, "params": self.params})


def soft_range(w: Tensor, alpha: Tensor) -> Tensor:
    """s_max − s_min of eq. 1 for a 1-D weight tensor."""
    return (w * torch.softmax(alpha * w, 0)).sum() - (w * torch.softmax(-alpha * w, 0)).sum()


class DSMM(Compressor):
    name = "dsmm"

    @classmethod
    def settings_for_bits(cls, bits: int) -> dict[str, Any]:
        return {"bits": bits}  # the PTQ clamp after the regulariser: 2^bits levels per layer

    @classmethod
    def label_for(cls, settings: Mapping[str, Any]) -> str:
        from . import METHODS

        then = settings.get("then", DSMMConfig.then)
        return f"DSMM + {METHODS[then][0].display_name()}" if then in TRAINED else f"DSMM → {then}"

    def __init__(self, config: DSMMConfig = DSMMConfig(), *, seed: int = 0):
        from . import METHODS

        self.config, self.params = config, config.params
        if config.then in TRAINED:  # trained together with the regulariser, and the clamp (module docstring)
            self.inner: Compressor = METHODS[config.then][0](config.inner_config(), seed=seed)
        else:
            self.inner = PTQ(PTQConfig(config.then, config.bits, config.params), seed=seed)
        self.alphas: dict[str, nn.Parameter] = {}

    def prepare(self, model: nn.Module) -> nn.Module:
        self.alphas = {}
        for name, p in self.selected(model).items():
            check_finite(f"pretrained parameter {name}", p.detach())
            alpha = torch.tensor(self.config.alpha_init, dtype=p.dtype, device=p.device)
            self.alphas[name] = nn.Parameter(alpha)
        return self.inner.prepare(model)

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
        return self.config.strength * total + self.inner.penalty(model)

    def codebooks(self, model: nn.Module) -> dict[str, Codebook]:
        """The `then` method's codebooks at `bits` bits (PTQ of the current weights, or LSQ's / DKM's)."""
        return self.inner.codebooks(model)

    def clamp(self, model: nn.Module) -> Clamped:
        """The `then` method's clamp (LSQ and DKM give the copy its plain forward back)."""
        return self.inner.clamp(model)

    def param_groups(self) -> list[dict[str, Any]]:
        if not self.alphas:
            return []
        group = {"params": list(self.alphas.values()), "weight_decay": 0.0}
        return [group if self.config.alpha_lr is None else {**group, "lr": self.config.alpha_lr},
                *self.inner.param_groups()]

    def learnable(self) -> dict[str, nn.Parameter]:
        # DSMM's temperatures are `<param>.dsmm_alpha` beside a trained method's own (LSQ's PACT levels are
        # `<param>.alpha`); without one they keep the name run files have always stored
        key = "dsmm_alpha" if self.config.then in TRAINED else "alpha"
        return {**{f"{name}.{key}": a for name, a in self.alphas.items()}, **self.inner.learnable()}

    def stats(self, model: nn.Module) -> dict[str, float]:
        params = self._check_prepared(model)
        ranges = [(p.max() - p.min()).item() for p in params.values()]
        inner = self.inner.stats(model) if self.config.then in TRAINED else super().stats(model)
        return {**inner, "mean_range": sum(ranges) / max(len(ranges), 1),
                "mean_alpha": sum(a.item() for a in self.alphas.values()) / max(len(self.alphas), 1)}

    def state_dict(self) -> dict:
        state: dict[str, Any] = {"alphas": {k: v.detach().clone() for k, v in self.alphas.items()}}
        if self.config.then in TRAINED:
            state["then"] = self.inner.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        if "then" in state:
            self.inner.load_state_dict(state["then"])
        for name, value in state["alphas"].items():
            check_finite(f"DSMM temperature α of {name}", value)
            if name in self.alphas:
                with torch.no_grad():
                    self.alphas[name].copy_(value)
            else:
                self.alphas[name] = nn.Parameter(value.clone())

