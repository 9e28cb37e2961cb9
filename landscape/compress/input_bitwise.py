"""Bitwise soft quantization of the input features (Schrödter et al., "Trainable Bitwise Soft Quantization
for Input Feature Compression"): a layer placed before the network quantizes every input feature to a
user-chosen number of bits B, so a device sends B bits per feature instead of a 32-bit float.

The abstract fixes the idea (sums of sigmoids approximate step functions, trainable thresholds, trainable
quantized values); the details here are ours. Per input channel c (CIFAR-10: R, G, B) there are L = 2^B
levels v_c,0..v_c,L−1 and L − 1 thresholds t_c,1..t_c,L−1, all trainable, and

    training:    q(x) = v_c,0 + Σ_j (v_c,j − v_c,j−1) · σ((x − t_c,j) / (τ·Δ_c))    (soft staircase)
    evaluation:  q(x) = v_c,0 + Σ_j (v_c,j − v_c,j−1) · H(x − t_c,j)                 (hard: steps)

τ (`temperature`) is the sigmoid width in units of the channel's initial level spacing Δ_c; smaller is
closer to the hard staircase. The hard q is a function of the number k of thresholds below x (an integer
0..L−1: the B bits a device computes and sends); the receiver maps k to v_c,0 plus the steps of the k
lowest thresholds, so thresholds that cross during training are harmless. Initialisation: uniform B-bit
quantization of the channel's input range, levels evenly spaced over [lo_c, hi_c] and thresholds at their
midpoints, lo_c and hi_c being pixel values 0 and 255 after the toolkit's normalization
(`landscape.data.MEAN`, `STD`). The soft forward holds batch·C·H·W·(L − 1) sigmoids (for 8 bits and a
batch of 128 CIFAR images, ~0.4 GB per tensor); the hard one uses a sorted search.

Compression factor: 32/B against 32-bit float inputs (the issue's reference); CIFAR-10 pixels are 8-bit
integers, so against the raw pixels it is 8/B.

Interface: `prepare(model)` returns `InputQuantized(quantizer, model)`, the module that is trained; its
state dict has the quantizer's tensors (`quantizer.*`) and the network's (`net.*`). The run file records
that its states belong to that prepared module (its "pretrained" state is the network behind the initial
uniform quantizer), and `Run.model` rebuilds it as make_compressor(method, config).prepare(build_model(arch)).
No weight is compressed and the penalty is zero: thresholds, levels and network weights learn from the task
loss alone (one optimizer group, the trainer's lr). `clamp` is a copy of the trained module (in eval mode
it is already hard); its codebooks are the channels' decoder tables.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from ..checks import check_int
from ..data import MEAN, STD
from ..quantize import Codebook
from .base import Clamped, Compressor

FLOAT_BITS = 32  # the reference input: one float32 per feature


@dataclass(frozen=True)
class InputBitwiseConfig:
    """Input-bitwise quantization's settings (`--method input-bitwise`): units beside each field.

    Examples:
        >>> InputBitwiseConfig(input_bits=2).temperature
        0.1
        >>> InputBitwiseConfig(input_bits=9)
        Traceback (most recent call last):
        ...
        ValueError: input_bits must be an integer in 1..8, got 9
    """

    input_bits: int = 4  # bits B per input feature (pixel channel), 1..8: 2^B levels per channel
    temperature: float = 0.1  # τ: sigmoid width while training, in initial level spacings Δ_c of the channel

    def __post_init__(self):
        check_int("input_bits", self.input_bits, 1, 8)
        if not math.isfinite(self.temperature) or self.temperature <= 0:
            raise ValueError(f"temperature must be a finite number > 0 (sigmoid width in level spacings), "
                             f"got {self.temperature}")

    @property
    def compression_factor(self) -> float:
        """Bits of a 32-bit float input per bit sent.

        Examples:
            >>> InputBitwiseConfig(input_bits=4).compression_factor
            8.0
        """
        return FLOAT_BITS / self.input_bits


def per_channel(t: Tensor, x: Tensor) -> Tensor:
    """[C, ...] tensor viewed to broadcast against x [B, C, *spatial] (its own trailing dims kept last)."""
    return t.view(1, t.shape[0], *([1] * (x.dim() - 2)), *t.shape[1:])


class InputQuantizer(nn.Module):
    """Per-channel soft (training) / hard (evaluation) staircase quantizer of [B, C, ...] inputs."""

    def __init__(self, lo: Tensor, hi: Tensor, bits: int, temperature: float):
        super().__init__()
        grid = torch.arange(2**bits, dtype=lo.dtype) / (2**bits - 1)
        levels = lo[:, None] + (hi - lo)[:, None] * grid  # [C, L]
        self.levels = nn.Parameter(levels)
        self.thresholds = nn.Parameter((levels[:, 1:] + levels[:, :-1]) / 2)  # [C, L − 1]
        self.register_buffer("width", temperature * (hi - lo) / (2**bits - 1))  # [C] sigmoid width τ·Δ_c

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return self.decode(self.encode(x))
        z = (x.unsqueeze(-1) - per_channel(self.thresholds, x)) / per_channel(self.width, x).unsqueeze(-1)
        steps = per_channel(torch.diff(self.levels, dim=1), x)
        return per_channel(self.levels[:, 0], x) + (torch.sigmoid(z) * steps).sum(-1)

    def encode(self, x: Tensor) -> Tensor:
        """The integer code k ∈ 0..L−1 of every feature: how many of its channel's thresholds lie below it."""
        t = torch.sort(self.thresholds.detach(), dim=1).values  # [C, L − 1]
        per_c = x.detach().transpose(0, 1).reshape(len(t), -1).contiguous()  # [C, B·H·W]
        code = torch.searchsorted(t, per_c, right=False)  # thresholds strictly below x
        return code.view(x.shape[1], x.shape[0], *x.shape[2:]).transpose(0, 1)

    def table(self) -> Tensor:
        """[C, L] decoder: value of code k = v_0 + the steps of the k lowest thresholds."""
        steps = torch.diff(self.levels, dim=1).gather(1, torch.argsort(self.thresholds, dim=1))
        return torch.cat([self.levels[:, :1], self.levels[:, :1] + torch.cumsum(steps, 1)], 1)

    def decode(self, code: Tensor) -> Tensor:
        table = self.table()  # [C, L]
        c = torch.arange(table.shape[0], device=code.device).view(1, -1, *([1] * (code.dim() - 2)))
        return table[c.expand_as(code), code]


class InputQuantized(nn.Module):
    """The trained module: the input quantizer, then the network."""

    def __init__(self, quantizer: InputQuantizer, net: nn.Module):
        super().__init__()
        self.quantizer, self.net = quantizer, net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.quantizer(x))


class InputBitwise(Compressor):
    name = "input-bitwise"
    quantizes = "inputs"  # its codebooks are the input channels' decoders; no weight is compressed

    @classmethod
    def settings_for_bits(cls, bits: int) -> dict[str, Any]:
        return {"input_bits": bits}  # 2^bits levels per input channel

    def __init__(self, config: InputBitwiseConfig = InputBitwiseConfig(), *, seed: int = 0):
        self.config = config

    def prepare(self, model: nn.Module) -> InputQuantized:
        mean, std = torch.tensor(MEAN), torch.tensor(STD)
        cfg = self.config
        quantizer = InputQuantizer(-mean / std, (1 - mean) / std, cfg.input_bits, cfg.temperature)
        device = next(model.parameters()).device
        return InputQuantized(quantizer.to(device), model)

    @staticmethod
    def _quantizer(model: nn.Module) -> InputQuantizer:
        if not isinstance(model, InputQuantized):
            raise RuntimeError("input-bitwise works on the module InputBitwise.prepare(model) returns")
        return model.quantizer

    def penalty(self, model: nn.Module) -> Tensor:
        return torch.zeros((), device=self._quantizer(model).levels.device)

    def codebooks(self, model: nn.Module) -> dict[str, Codebook]:
        """Per channel: the decoder values (distinct, sorted) and, for each code k, its value's index."""
        with torch.no_grad():
            table = self._quantizer(model).table()
        books = {}
        for c, row in enumerate(table):
            values, index, counts = torch.unique(row, sorted=True, return_inverse=True, return_counts=True)
            books[f"input.channel{c}"] = Codebook(values, index, counts)
        return books

    def clamp(self, model: nn.Module) -> Clamped:
        """A copy of the trained module (hard in eval mode, as any evaluation uses it); no weight changes."""
        return Clamped(copy.deepcopy(model), self.codebooks(model))

    def stats(self, model: nn.Module) -> dict[str, float]:
        return {**super().stats(model), "compression_factor": self.config.compression_factor}
