"""The one interface every compression method implements, and the clamped model it hands back.

A compressor has four jobs, each one method:
  prepare(model)    record what it needs from the *pretrained* model (σ_l, centroids, …); return the module to
                    train (the same model, or a wrapper such as an input quantizer);
  penalty(model)    the differentiable compression loss L_C added to the task loss (paper eq. 1);
  codebooks(model)  *propose* a codebook (cluster values + assignment) for every compressed parameter; never
                    mutates (the parq split: a quantizer proposes, something else applies);
  clamp(model)      apply the codebooks to a *copy* of the model: the compressed model's hard-quantized twin.
Learnable state of its own (centroids, temperatures) is exposed through `param_groups()` so the trainer's one
optimizer steps it, named by `learnable()` (so that under torchrun the trainer averages its gradients over the
ranks, as DDP does for the model's, and the run file stores it at every checkpoint), and saved/restored through
`state_dict()`/`load_state_dict()` for resume.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn as nn
from torch import Tensor

from ..params import select_params, with_params
from ..quantize import Codebook


@dataclass(frozen=True)
class Clamped:
    """A hard-quantized copy of a model and the codebook of each quantized parameter."""

    model: nn.Module
    codebooks: dict[str, Codebook]

    @property
    def bits(self) -> dict[str, float]:
        """Effective bits per layer, b_l = log2 K_l."""
        return {name: cb.bits for name, cb in self.codebooks.items()}

    @property
    def storage_bits(self) -> dict[str, int]:
        """Bits to store one index per weight, ceil(log2 K_l)."""
        return {name: cb.storage_bits for name, cb in self.codebooks.items()}

    def mean_bits(self, storage: bool = False) -> float:
        """Parameter-weighted mean over layers of the effective (or storage) bits."""
        return mean_bits(self.codebooks, storage=storage)


def mean_bits(codebooks: dict[str, Codebook], *, storage: bool = False) -> float:
    total = sum(len(cb.index) for cb in codebooks.values())
    if total == 0:
        return math.nan
    return sum((cb.storage_bits if storage else cb.bits) * len(cb.index) for cb in codebooks.values()) / total


class Compressor(ABC):
    """Base class; see the module docstring for the contract."""

    name: ClassVar[str]  # the registry's (and --method's) name
    label: ClassVar[str | None] = None  # the name figures and tables give the method (None: `name`)
    quantizes: ClassVar[str] = "weights"  # what the codebooks are of: "weights" (selected parameters) or "inputs"
    params: str = "weights"  # which parameters are compressed: "weights" (conv/linear) or "all"

    @classmethod
    def display_name(cls) -> str:
        return cls.label or cls.name

    @classmethod
    def settings_for_bits(cls, bits: int) -> dict[str, Any] | None:
        """The method's settings for `bits` bits per weight (per input feature where `quantizes` is "inputs"), as a
        table or a sweep over bits sets them; None where the method has no bit setting (its bits follow from other
        settings, e.g. weight coupling's h and w)."""
        return None

    def selected(self, model: nn.Module) -> dict[str, nn.Parameter]:
        return select_params(model, self.params)

    def prepare(self, model: nn.Module) -> nn.Module:
        return model

    @abstractmethod
    def penalty(self, model: nn.Module) -> Tensor:
        """The compression loss L_C (a scalar tensor wired into autograd)."""

    @abstractmethod
    def codebooks(self, model: nn.Module) -> dict[str, Codebook]:
        """A codebook per compressed parameter (flattened order). Must not modify the model."""

    def clamp(self, model: nn.Module) -> Clamped:
        """Every compressed weight replaced by its cluster value, on a copy of the model."""
        params = self.selected(model)
        books = self.codebooks(model)
        new = {name: books[name].apply().view_as(params[name]).to(params[name].dtype) for name in books}
        return Clamped(with_params(model, new), books)

    def param_groups(self) -> list[dict[str, Any]]:
        """Extra optimizer parameter groups (e.g. centroids with their own learning rate)."""
        return []

    def learnable(self) -> dict[str, nn.Parameter]:
        """The compressor's own trained tensors by name (the parameters of `param_groups()`): their gradients are
        averaged over torchrun ranks (each rank's task loss sees only its slice of the batch), and the run file
        stores them at every checkpoint (/compressor/<step>/<name>). Tensors inside the trained module (e.g. an
        input quantizer's) are the model's: DDP averages them, the checkpoint's state dict holds them."""
        return {}

    def stats(self, model: nn.Module) -> dict[str, float]:
        """Numbers for the progress bar and the run file's scalars (called every few steps, not every step)."""
        books = self.codebooks(model)
        return {"mean_clusters": sum(cb.k for cb in books.values()) / max(len(books), 1),
                "mean_bits": mean_bits(books)}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 (stateless by default)
        pass

    def config_dict(self) -> dict[str, Any]:
        """The settings, for the run file (dataclass configs return their fields)."""
        cfg = getattr(self, "config", None)
        from dataclasses import asdict, is_dataclass

        return asdict(cfg) if is_dataclass(cfg) else {}


def check_finite(name: str, value: Tensor) -> None:
    if not torch.isfinite(value).all():
        raise ValueError(f"{name} holds NaN or inf values")
