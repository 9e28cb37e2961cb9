"""LSQ (Esser et al., "Learned Step Size Quantization", ICLR 2020) for the weights, with optional PACT (Choi et al.,
"PACT: Parameterized Clipping Activation for Quantized Neural Networks", 2018) clipping and quantization of the
quantized layers' input activations.

LSQ. Every quantized layer l has one learnable step size s_l and b-bit signed levels, Q_n = 2^(b−1) and
Q_p = 2^(b−1) − 1:

    ŵ = round(clip(w/s, −Q_n, Q_p)) · s                                  (paper eq. 1–2)
    ∂ŵ/∂w = 1 inside the range, 0 outside (the straight-through estimator for round)
    ∂ŵ/∂s = −w/s + round(w/s) inside, −Q_n below, Q_p above               (paper eq. 3)
    the step's gradient scaled by g = 1/√(N_l·Q_p), N_l the weights of the layer          (paper section 2.2)
    s_l initialised to 2⟨|w|⟩/√Q_p from the pretrained weights                           (paper section 2.1)

It is written as the paper's appendix code does: `grad_scale` (value s, gradient ×g) and `round_pass` (value
round(v), gradient 1), both custom autograd Functions here so that the forward values are exactly round(·)·s (no
(a − b) + b round-off of the detach trick): the clamp then reproduces the training forward bit for bit. Autograd
composes eq. 3 from them (tests/compress/test_lsq.py checks it against the formula).

Choices the paper leaves to the reader, or that differ here:
  * one step size per layer (the paper's; not per output channel), signed levels for the weights;
  * first and last layer: the paper keeps them at 8 bits; here every quantized layer gets `bits` by default, so
    that the mean bits per weight are comparable with the other methods of the methods table (which quantize
    every layer alike); `edge_bits` sets the first and last quantized layer (in parameter order) apart, e.g. 8;
  * the step sizes have no weight decay and their own optimizer group (lr `step_lr`, default the trainer's);
    the step is not clamped to stay positive (nor is it in the paper): a non-positive step raises on the next
    `codebooks`/`stats` call (lower `step_lr`);
  * no penalty (L_C = 0): LSQ is quantization-aware training through the forward, so it composes with a
    regulariser (e.g. DSMM) only by summing penalties, which is left to a later step.

Training forward, as in VQ-QAT (vq.py): `prepare(model)` replaces the forward of every quantized conv/linear
module of the trainer's own copy; in training mode it uses ŵ, in eval mode the plain module with its latent
weights (so the parameters and state dict stay the plain network's, and the run file needs no special case).
`clamp(model)` hard-quantizes a copy, which gets the plain forward back; `codebooks` gives the grid
s·{−Q_n..Q_p} restricted to the used levels, with each weight's index.

PACT (`act_bits`, None = off): the input x of every quantized conv/linear module except the model's first
conv/linear module (its input is the image, not a ReLU output) is clipped with a learnable α per layer and
quantized to act_bits bits on [0, α]:

    y = clip(x, 0, α),  y_q = round(y·(2^k − 1)/α) · α/(2^k − 1)            (PACT eq. 1–2)
    ∂y_q/∂α = 1 where x ≥ α, 0 elsewhere;  ∂y_q/∂x = 1 on (0, α), 0 elsewhere  (PACT eq. 3, STE)

α starts at `pact_alpha_init` (6, as ReLU6; PACT starts every α at one constant) and has its own optimizer group
(lr `pact_lr`, weight decay `pact_decay`: PACT's L2 regulariser λ_α·α²/2 on α). PACT assumes non-negative
(post-ReLU) inputs, true of the ResNets here; a layer fed signed activations would lose their negative part. α
gets no gradient while it lies above every input (∂/∂α is 0 below α), e.g. the default 6 on a network with small
activations: lower `pact_alpha_init` there. Limitation: the activation quantization lives in the patched
training forward only: the eval-mode module, the clamped copy and the models the run file rebuilds use
full-precision activations (their accuracy is that of the quantized weights alone).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from ..checks import check_int
from ..quantize import Codebook
from .base import Clamped, Compressor, check_finite, mean_bits
from .forward import is_layer, layer_forward, patch, quantized_modules, unpatch

MIN_BITS, MAX_BITS = 2, 8  # weights: signed b-bit levels; b = 1 leaves Q_p = 0 (no positive level)
MAX_ACT_BITS = 8


def _check_lr(name: str, value: float | None) -> None:
    if value is not None and (not math.isfinite(value) or value < 0):
        raise ValueError(f"{name} must be a finite number ≥ 0 or None, got {value}")


@dataclass(frozen=True)
class LSQConfig:
    bits: int = 4  # bits per weight b, 2..8: signed levels s·{−2^(b−1)..2^(b−1)−1}, one step s per layer
    edge_bits: int | None = None  # bits of the first and last quantized layer, 2..8 (None: `bits`; LSQ paper: 8)
    step_lr: float | None = None  # SGD step size of the step sizes s_l (None: the trainer's lr); gradient ×g
    act_bits: int | None = None  # PACT: bits of every quantized layer's input but the first's, 1..8 (None: off)
    pact_alpha_init: float = 6.0  # PACT: initial clipping level α_l, in activation units (> 0)
    pact_lr: float | None = None  # PACT: SGD step size of the clipping levels α_l (None: the trainer's lr)
    pact_decay: float = 0.0  # PACT: L2 coefficient λ_α on α_l (SGD weight decay of their group), ≥ 0
    params: str = "weights"  # which weights are quantized: conv/linear weights (a selection: landscape/params.py)

    def __post_init__(self):
        check_int("bits", self.bits, MIN_BITS, MAX_BITS)
        if self.edge_bits is not None:
            check_int("edge_bits", self.edge_bits, MIN_BITS, MAX_BITS, why=" or None")
        _check_lr("step_lr", self.step_lr)
        if self.act_bits is not None:
            check_int("act_bits", self.act_bits, 1, MAX_ACT_BITS, why=" or None")
        if not math.isfinite(self.pact_alpha_init) or self.pact_alpha_init <= 0:
            raise ValueError(f"pact_alpha_init must be a finite number > 0, got {self.pact_alpha_init}")
        _check_lr("pact_lr", self.pact_lr)
        if not math.isfinite(self.pact_decay) or self.pact_decay < 0:
            raise ValueError(f"pact_decay must be a finite number ≥ 0, got {self.pact_decay}")


class _GradScale(torch.autograd.Function):
    """Value x, gradient × scale (the paper's grad_scale)."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad * ctx.scale, None


class _StraightThrough(torch.autograd.Function):
    """Value `value`, gradient identity to x (the STE; `value` a function of x computed without autograd)."""

    @staticmethod
    def forward(ctx, x: Tensor, value: Tensor) -> Tensor:
        return value

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad, None


def grad_scale(x: Tensor, scale: float) -> Tensor:
    return _GradScale.apply(x, scale)


def round_pass(v: Tensor) -> Tensor:
    """round(v) forward, gradient 1 (the paper's round_pass)."""
    return _StraightThrough.apply(v, v.detach().round())


def levels(bits: int) -> tuple[int, int]:
    """(Q_n, Q_p) of signed b-bit LSQ: the integer levels are −Q_n..Q_p."""
    return 2 ** (bits - 1), 2 ** (bits - 1) - 1


def lsq_quantize(w: Tensor, step: Tensor, bits: int, g: float) -> Tensor:
    """ŵ = round(clip(w/s, −Q_n, Q_p))·s with the STE for round and the step's gradient scaled by g (eq. 1–3)."""
    qn, qp = levels(bits)
    s = grad_scale(step, g)
    return round_pass(torch.clamp(w / s, -qn, qp)) * s


def init_step(w: Tensor, bits: int) -> Tensor:
    """The paper's initial step 2⟨|w|⟩/√Q_p."""
    return 2 * w.detach().abs().mean() / math.sqrt(levels(bits)[1])


def pact(x: Tensor, alpha: Tensor, bits: int) -> Tensor:
    """clip(x, 0, α) quantized to 2^bits levels on [0, α]; ∂/∂α = 1 where x ≥ α, ∂/∂x = 1 on (0, α) (PACT)."""
    y = torch.where(x >= alpha, alpha, x.clamp(min=0))
    n = 2**bits - 1
    a = alpha.detach()
    q = torch.minimum(torch.round(y.detach() * (n / a)) * a / n, a)
    return _StraightThrough.apply(y, q)


@dataclass(eq=False)
class LayerLSQ:
    """One layer's step size (and PACT clipping level). A plain object, not a Module: its tensors stay out of
    the model's state dict (they live in the compressor and its optimizer groups)."""

    step: nn.Parameter  # s_l, a scalar
    bits: int
    g: float  # 1/√(N_l·Q_p)
    alpha: nn.Parameter | None = None  # PACT α_l (None: the input is not quantized)
    act_bits: int | None = None

    def quantize(self, w: Tensor) -> Tensor:
        return lsq_quantize(w, self.step, self.bits, self.g)


def _lsq_forward(module: nn.Module, x: Tensor) -> Tensor:
    """The forward `LSQ.prepare` installs: PACT inputs and LSQ weights while training, the plain module in eval."""
    layer: LayerLSQ = module._lsq
    if module.training:
        if layer.alpha is not None:
            x = pact(x, layer.alpha, layer.act_bits)
        w = layer.quantize(module.weight)
    else:
        w = module.weight
    return layer_forward(module, x, w)


class LSQ(Compressor):
    name = "lsq"
    label = "LSQ"

    @classmethod
    def settings_for_bits(cls, bits: int) -> dict[str, Any]:
        return {"bits": bits}

    def __init__(self, config: LSQConfig = LSQConfig(), *, seed: int = 0):
        self.config, self.seed, self.params = config, seed, config.params  # seed: unused (nothing is drawn)
        self.layers: dict[str, LayerLSQ] = {}
        self.initial_steps: dict[str, float] = {}

    def prepare(self, model: nn.Module) -> nn.Module:
        """Initial step sizes from the pretrained weights, and the quantizing forward on each selected module."""
        cfg = self.config
        modules = dict(model.named_modules())
        selected = self.selected(model)
        owners = quantized_modules(model, selected, "lsq")  # the quantizer lives in the module's forward
        first_module = next((n for n, m in modules.items() if is_layer(m)), None)
        names = list(selected)
        self.layers, self.initial_steps = {}, {}
        for i, (name, p) in enumerate(selected.items()):
            check_finite(f"pretrained parameter {name}", p.detach())
            edge = i in (0, len(names) - 1)
            bits = cfg.edge_bits if edge and cfg.edge_bits is not None else cfg.bits
            step = init_step(p, bits)
            if p.numel() > 1 and bool(p.detach().min() == p.detach().max()):
                # all zeros give no step 2⟨|w|⟩/√Q_p > 0; all equal c ≠ 0 give w/s = √Q_p/2, which rounds to a level
                # other than c (0 at 2 bits): either way LSQ has nothing to fit a grid to
                raise ValueError(f"lsq: every weight of {name} is {p.detach().flatten()[0].item():g}, no step size to "
                                 f"fit a grid to; leave it out with --params weights,-{name}")
            alpha = None
            if cfg.act_bits is not None and owners[name] is not modules.get(first_module):
                alpha = nn.Parameter(torch.tensor(cfg.pact_alpha_init, dtype=p.dtype, device=p.device))
            layer = LayerLSQ(nn.Parameter(step.clone()), bits, 1 / math.sqrt(p.numel() * levels(bits)[1]),
                             alpha, cfg.act_bits if alpha is not None else None)
            self.layers[name], self.initial_steps[name] = layer, step.item()
            patch(owners[name], "_lsq", layer, _lsq_forward)
        return model

    def _check_prepared(self, model: nn.Module) -> dict[str, nn.Parameter]:
        params = self.selected(model)
        if set(params) != set(self.layers):
            raise RuntimeError("LSQ.prepare(model) must be called first")
        return params

    def penalty(self, model: nn.Module) -> Tensor:
        """0: LSQ trains through its forward alone."""
        params = self._check_prepared(model)
        device = next(iter(params.values())).device if params else None
        return torch.zeros((), device=device)

    def codebooks(self, model: nn.Module) -> dict[str, Codebook]:
        books = {}
        with torch.no_grad():
            for name, p in self._check_prepared(model).items():
                layer = self.layers[name]
                step = layer.step.detach()
                if not (torch.isfinite(step) and step > 0):
                    raise RuntimeError(f"lsq: the step size of {name} is {step.item()}, not a finite number > 0 "
                                       f"(training diverged; lower --step-lr)")
                qn, qp = levels(layer.bits)
                index = torch.round(torch.clamp(p.detach().flatten() / step, -qn, qp)).long() + qn
                grid = torch.arange(-qn, qp + 1, device=p.device).to(p.dtype) * step  # the forward's round(·)·s
                counts = torch.bincount(index, minlength=qn + qp + 1)
                used = counts > 0
                index = (torch.cumsum(used, 0) - 1)[index]
                books[name] = Codebook(values=grid[used], index=index, counts=counts[used])
        return books

    def clamp(self, model: nn.Module) -> Clamped:
        """Hard quantization on a copy, which gets the plain forward back."""
        clamped = super().clamp(model)
        return Clamped(unpatch(clamped.model, "_lsq"), clamped.codebooks)

    def param_groups(self) -> list[dict[str, Any]]:
        cfg, groups = self.config, []
        if self.layers:
            group = {"params": [layer.step for layer in self.layers.values()], "weight_decay": 0.0}
            groups.append(group if cfg.step_lr is None else {**group, "lr": cfg.step_lr})
        alphas = [layer.alpha for layer in self.layers.values() if layer.alpha is not None]
        if alphas:
            group = {"params": alphas, "weight_decay": cfg.pact_decay}
            groups.append(group if cfg.pact_lr is None else {**group, "lr": cfg.pact_lr})
        return groups

    def learnable(self) -> dict[str, nn.Parameter]:
        out = {f"{name}.step": layer.step for name, layer in self.layers.items()}
        out.update({f"{name}.alpha": layer.alpha for name, layer in self.layers.items() if layer.alpha is not None})
        return out

    def stats(self, model: nn.Module) -> dict[str, float]:
        """mean_clusters, mean_bits; step_ratio: mean over layers of s_l / its initial value; mean_alpha (PACT)."""
        books = self.codebooks(model)
        out = {"mean_clusters": sum(b.k for b in books.values()) / max(len(books), 1), "mean_bits": mean_bits(books),
               "step_ratio": sum(layer.step.item() / self.initial_steps[name] for name, layer in self.layers.items())
               / max(len(self.layers), 1)}
        alphas = [layer.alpha.item() for layer in self.layers.values() if layer.alpha is not None]
        if alphas:
            out["mean_alpha"] = sum(alphas) / len(alphas)
        return out

    def state_dict(self) -> dict:
        return {"steps": {k: v.step.detach().clone() for k, v in self.layers.items()},
                "alphas": {k: v.alpha.detach().clone() for k, v in self.layers.items() if v.alpha is not None}}

    def load_state_dict(self, state: dict) -> None:
        """Restores the step sizes and clipping levels in place (the optimizer holds those tensors); `prepare`
        must have run."""
        for key, attr in (("steps", "step"), ("alphas", "alpha")):
            for name, value in state[key].items():
                check_finite(f"LSQ {attr} of {name}", value)
                target = getattr(self.layers[name], attr) if name in self.layers else None
                if target is None or target.shape != value.shape:
                    raise ValueError(f"LSQ state has a {attr} for {name} {tuple(value.shape)} that does not fit")
                with torch.no_grad():
                    target.copy_(value)
