"""Post-training quantization baselines as compressors with no penalty: naive uniform, histogram-equalized (HEQ)
and k-means, each per layer with 2^b levels (definitions and choices in `landscape.quantize`). Being compressors,
they sit in the same tables as the fine-tuning methods, with zero fine-tuning epochs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torch import Tensor

from ..checks import check_int
from ..quantize import QUANTIZERS, Codebook
from .base import Clamped, Compressor


@dataclass(frozen=True)
class PTQConfig:
    quantizer: str = "heq"  # PTQ method: "uniform" | "heq" | "kmeans"
    bits: int = 4  # bits per weight b: 2^b levels per layer, 1..16
    params: str = "weights"  # "weights": conv/linear weights, BN and biases untouched; "all"

    def __post_init__(self):
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"unknown PTQ method {self.quantizer!r}; choose one of {', '.join(QUANTIZERS)}")
        check_int("bits", self.bits, 1, 16)


class PTQ(Compressor):
    name = "ptq"

    def __init__(self, config: PTQConfig = PTQConfig(), *, seed: int = 0):
        self.config, self.params, self.seed = config, config.params, seed  # seed: k-means initialisation

    def penalty(self, model: nn.Module) -> Tensor:
        return torch.zeros(())

    def codebooks(self, model: nn.Module) -> dict[str, Codebook]:
        method, bits = self.config.quantizer, self.config.bits
        seeded = {"seed": self.seed} if method == "kmeans" else {}
        return {name: QUANTIZERS[method](p.detach().flatten(), bits, **seeded)
                for name, p in self.selected(model).items()}


def quantize_model(model: nn.Module, method: str, bits: int, *, which: str = "weights") -> Clamped:
    """Quantize the parameters chosen by `which` of a *copy* of `model`, each layer separately."""
    return PTQ(PTQConfig(method, bits, which)).clamp(model)
