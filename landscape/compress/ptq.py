"""Post-training quantization baselines as compressors with no penalty: naive uniform, histogram-equalized (HEQ)
and k-means, each per layer with 2^b levels (definitions and choices in `landscape.quantize`). Being compressors,
they sit in the same tables as the fine-tuning methods, with zero fine-tuning epochs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from ..checks import check_int
from ..quantize import QUANTIZERS, Codebook
from .base import Clamped, Compressor


@dataclass(frozen=True)
class PTQConfig:
    """Post-training quantization's settings (`--method ptq`): a quantizer of landscape/quantize.py at `bits`.

    Examples:
        >>> PTQConfig(bits=2).quantizer
        'heq'
        >>> PTQConfig(quantizer="lloyd")
        Traceback (most recent call last):
        ...
        ValueError: unknown PTQ method 'lloyd'; choose one of uniform, heq, kmeans
    """

    quantizer: str = "heq"  # PTQ method: "uniform" | "heq" | "kmeans"
    bits: int = 4  # bits per weight b: 2^b levels per layer, 1..16
    params: str = "weights"  # "weights": conv/linear weights, BN and biases untouched; "all"

    def __post_init__(self):
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"unknown PTQ method {self.quantizer!r}; choose one of {', '.join(QUANTIZERS)}")
        check_int("bits", self.bits, 1, 16)


class PTQ(Compressor):
    name = "ptq"

    @classmethod
    def settings_for_bits(cls, bits: int) -> dict[str, Any]:
        return {"bits": bits}

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


def run_ptq(spec, *, progress: bool = False) -> dict:
    """The PTQ baseline `spec` (a specs.PTQSpec) describes: quantize a copy of the checkpoint's model, evaluate it on
    the test split (before and after BN recalibration, if asked), save it to `spec.out` with the numbers in the
    checkpoint's `ptq` entry; returns those numbers (accuracy, loss, bits per layer, ...). The output is checked
    before any work."""
    from ..bn import RECALIBRATION_BATCH, recalibrate_bn_, recalibration_batches
    from ..data import Batches
    from ..metrics import evaluate
    from ..models import load_model, save_checkpoint
    from ..outputs import check_out

    out = check_out(spec.out, spec.force)
    dev = torch.device(spec.device)
    model = load_model(spec.arch, spec.checkpoint, spec.arch_kwargs or None)
    train, test = spec.data.load()
    q = quantize_model(model, spec.method, spec.bits, which=spec.params)
    test_batches = Batches(test.subset(spec.limit), spec.batch_size, train=False, device=dev)
    result = evaluate(q.model.to(dev), test_batches, progress=progress)
    summary = {"method": spec.method, "bits": spec.bits, **result, "mean_effective_bits": q.mean_bits(),
               "bits_per_layer": q.bits, "out": str(out)}
    if spec.recalibrate_bn:  # the saved model is the recalibrated one; the un-recalibrated numbers stay reported
        recalibrate_bn_(q.model, recalibration_batches(train, spec.recalibrate_bn, RECALIBRATION_BATCH, dev))
        after = evaluate(q.model, test_batches, progress=progress)
        summary.update({"accuracy_before_recalibration": result["accuracy"], "loss_before_recalibration":
                        result["loss"], **after, "recalibrate_bn": spec.recalibrate_bn})
    save_checkpoint(q.model.cpu(), out, arch=spec.arch, arch_kwargs=spec.arch_kwargs, ptq={k: v for k, v in
                    summary.items() if k != "out"}, source=spec.checkpoint)
    return summary
