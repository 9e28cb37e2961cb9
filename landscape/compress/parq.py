"""PARQ and BinaryRelax (torchao.prototype.parq): quantization-aware training by a proximal step after every SGD
step, not by a loss. The library's `QuantOptimizer` wraps the trainer's SGD: each step it restores the latent
(full-precision) weights, lets SGD update them, refreshes every quantized layer's grid Q (the quantizer's 2^b
values, every `quant_period` steps) and writes a proximal map of the latent weights onto the model:
  "hard"         the nearest point of Q (straight-through QAT: the forward always sees the quantized network);
  "parq"         PARQ's piecewise-affine prox map, whose inverse slope anneals from 1 (identity) to 0 (hard) over
                 [anneal_start, anneal_end) along a sigmoid of steepness `steepness`;
  "binaryrelax"  BinaryRelax's convex combination (1 − t)·latent + t·nearest, t linear from 0 to 1 over the same.
Once `anneal_end` SGD steps are done (from the first step for "hard") every step leaves the model's selected
weights on their layer's grid; the first `warmup_steps` steps are plain SGD. Steps count SGD steps from the start
of the run (a resumed run goes on counting: the count and the latent weights are in the optimizer's state, which
checkpoints save).

Quantizers: "unif", torchao's UnifQuantizer (symmetric, 2^b evenly spaced values ±(k + ½)·s, scale from
min(b·mean|w|, max|w|)), or "lsb", its LSBQuantizer (greedy least-squares binary bases: Σ_i ±v_i). One grid per
layer (no per-channel grids), the same `bits` for every layer. The model is never touched beyond its weights'
values: the run file's "compressed" state is the network the optimizer leaves (the prox-mapped weights).

The trainer's part (the only hook, `Compressor.wrap_optimizer`): the trainer builds one SGD over the model's
parameters; `wrap_optimizer` rebuilds that SGD with the same settings but the selected weights in a group of their
own carrying torchao's `quant_bits` (BN parameters and biases stay in an unquantized group), wraps it in the
`QuantOptimizer`, and the trainer's scheduler and checkpoints act on that (its param_groups and state_dict are the
SGD's). The penalty is 0.

Codebooks: a layer whose weights already take at most 2^b distinct values (the library's hard projection left them
on its grid) is its own codebook: those values and each weight's index, so `clamp` of the trained model equals it
exactly. Otherwise (warm-up, mid-annealing, a pretrained model) the weights are projected by the library's
`ProxHardQuant` onto the grid the quantizer computes from them now (what the optimizer's next grid update would
give), and the codebook is that projection's distinct values.

torchao is imported only when a PARQ compressor is used: `pip install -e '.[qat]'`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from ..checks import check_int
from ..errors import LandscapeError
from ..quantize import Codebook
from .base import Compressor

PROXES = ("parq", "hard", "binaryrelax")
QUANTIZERS = ("unif", "lsb")
MAX_BITS = 15  # torchao quantizes the groups with quant_bits < 16


@dataclass(frozen=True)
class PARQConfig:
    bits: int = 4  # bits per weight b: a grid of 2^b values per layer (the quantizer's), the same for every layer
    prox: str = "parq"  # proximal map after each SGD step: "parq" (annealed) | "hard" (nearest) | "binaryrelax"
    quantizer: str = "unif"  # the grid: "unif" (uniform, symmetric) | "lsb" (least-squares binary, greedy)
    warmup_steps: int = 0  # SGD steps of plain SGD (no quantization) at the start of the run
    anneal_start: int = 0  # SGD steps (from the run's start) before parq/binaryrelax annealing begins (hard: unused)
    anneal_end: int = 1000  # SGD steps after which every prox map is the hard projection (> anneal_start); default
    #                         below a 3-epoch CIFAR-10 run (1170 steps at batch 128), so that it ends quantized
    steepness: float = 10.0  # parq: steepness of the sigmoid annealing the inverse slope from 1 to 0 (> 0)
    quant_period: int = 10  # SGD steps between updates of each layer's grid (the quantizer's scale)
    params: str = "weights"  # which weights are quantized: conv/linear weights (a selection: landscape/params.py)

    def __post_init__(self):
        check_int("bits", self.bits, 1, MAX_BITS)
        if self.prox not in PROXES:
            raise ValueError(f"prox must be one of {', '.join(PROXES)}, got {self.prox!r}")
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"quantizer must be one of {', '.join(QUANTIZERS)}, got {self.quantizer!r}")
        check_int("warmup_steps", self.warmup_steps, 0)
        check_int("anneal_start", self.anneal_start, 0)
        check_int("anneal_end", self.anneal_end, 1)
        if self.anneal_end <= self.anneal_start:
            raise ValueError(f"anneal_end must be > anneal_start, got {self.anneal_end} ≤ {self.anneal_start}")
        if not math.isfinite(self.steepness) or self.steepness <= 0:
            raise ValueError(f"steepness must be a finite number > 0, got {self.steepness}")
        check_int("quant_period", self.quant_period, 1)


@dataclass(frozen=True)
class BinaryRelaxConfig(PARQConfig):
    prox: str = "binaryrelax"  # BinaryRelax's proximal map (this method's only one)

    def __post_init__(self):
        super().__post_init__()
        if self.prox != "binaryrelax":
            raise ValueError(f"method binaryrelax takes prox=binaryrelax only, got {self.prox!r} (use method parq)")


def torchao_parq():
    """torchao.prototype.parq, imported on first use (quietly: torchao's import logs a torch deprecation notice)."""
    import logging

    log = logging.getLogger("torch.utils._pytree")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        import torchao.prototype.parq as parq
    except ImportError as e:
        raise LandscapeError(f"methods parq and binaryrelax need torchao ≥ 0.18 ({e}): pip install -e '.[qat]'") \
            from None
    finally:
        log.setLevel(level)
    return parq


class PARQ(Compressor):
    """PARQ / hard QAT / BinaryRelax through torchao's QuantOptimizer (module docstring)."""

    name = "parq"
    label = "PARQ"

    def __init__(self, config: PARQConfig = PARQConfig(), seed: int = 0):
        self.config, self.params = config, config.params  # deterministic: the seed is not used

    @classmethod
    def settings_for_bits(cls, bits: int) -> dict[str, Any]:
        return {"bits": bits}

    def quantizer(self):
        parq = torchao_parq()
        return parq.UnifQuantizer() if self.config.quantizer == "unif" else parq.LSBQuantizer()

    def prox_map(self):
        parq, cfg = torchao_parq(), self.config
        if cfg.prox == "hard":
            return parq.ProxHardQuant()
        if cfg.prox == "parq":
            return parq.ProxPARQ(cfg.anneal_start, cfg.anneal_end, steepness=cfg.steepness)
        return parq.ProxBinaryRelax(cfg.anneal_start, cfg.anneal_end)

    def wrap_optimizer(self, optimizer: torch.optim.Optimizer, model: nn.Module) -> torch.optim.Optimizer:
        """The same optimizer rebuilt with the selected weights in their own group (`quant_bits` = bits), inside
        torchao's QuantOptimizer."""
        parq = torchao_parq()
        if optimizer.state:
            raise ValueError("wrap_optimizer needs a fresh optimizer (it has state already)")
        chosen = {id(p) for p in self.selected(model).values()}
        groups = []
        for group in optimizer.param_groups:
            options = {k: v for k, v in group.items() if k != "params"}
            rest = [p for p in group["params"] if id(p) not in chosen]
            quantized = [p for p in group["params"] if id(p) in chosen]
            groups += [{**options, "params": rest}] if rest else []
            groups += [{**options, "params": quantized, "quant_bits": self.config.bits}] if quantized else []
        base = type(optimizer)(groups, **optimizer.defaults)
        return parq.QuantOptimizer(base, self.quantizer(), self.prox_map(), warmup_steps=self.config.warmup_steps,
                                   quant_period=self.config.quant_period)

    def penalty(self, model: nn.Module) -> Tensor:
        return next(model.parameters()).new_zeros(())

    @torch.no_grad()
    def codebooks(self, model: nn.Module) -> dict[str, Codebook]:
        parq, quantizer, bits = torchao_parq(), self.quantizer(), self.config.bits
        size = quantizer.get_quant_size(bits)
        books = {}
        for name, p in self.selected(model).items():
            w = p.detach().flatten()
            values, index, counts = torch.unique(w, sorted=True, return_inverse=True, return_counts=True)
            if len(values) > size:  # not on a b-bit grid yet: the library's hard projection onto the current grid
                grid = quantizer.quantize(w, bits)[1]
                q = w.clone()
                parq.ProxHardQuant().apply_(q, None, grid, 0)
                values, index, counts = torch.unique(q, sorted=True, return_inverse=True, return_counts=True)
            books[name] = Codebook(values, index, counts)
        return books


class BinaryRelax(PARQ):
    """PARQ's machinery with BinaryRelax's proximal map (its own registry name and label)."""

    name = "binaryrelax"
    label = "BinaryRelax"

    def __init__(self, config: BinaryRelaxConfig = BinaryRelaxConfig(), seed: int = 0):
        super().__init__(config, seed)
