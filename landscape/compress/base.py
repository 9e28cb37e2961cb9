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
A method that *is* an optimizer rather than a loss (PARQ, BinaryRelax: a proximal step after each SGD step) wraps
the trainer's optimizer through `wrap_optimizer(optimizer, model)`, called once before the first step and before
the learning-rate scheduler is built: it returns what the trainer steps (the given optimizer by default); its
`param_groups` are what the scheduler sets the learning rate of, and its `state_dict()`/`load_state_dict()` are
what a checkpoint saves and a resume restores.
A method that needs data at the clamp (GPTQ: the Hessian of each layer's inputs) says how many images through
`calibration()` (0, the default: none); the trainer then calls `calibrate(model, batches)` once, on the main rank,
right before `clamp`, with that many unaugmented training images (landscape/training.py), and `codebooks`/`clamp`
give what it computed. The default `calibrate` does nothing.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
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
    """Base class; see the module docstring for the contract.

    Examples:
        >>> import torch.nn as nn
        >>> from landscape.compress import make_compressor
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> compressor = make_compressor("weight-coupling", {"h": 0.05, "w": 0.3})
        >>> trained = compressor.prepare(model)  # records σ_l of the pretrained weights
        >>> loss = compressor.penalty(trained)  # added to the task loss while fine-tuning
        >>> loss.requires_grad, sorted(compressor.clamp(trained).codebooks)
        (True, ['0.weight', '2.weight'])
    """

    name: ClassVar[str]  # the registry's (and --method's) name
    label: ClassVar[str | None] = None  # the name figures and tables give the method (None: `name`)
    quantizes: ClassVar[str] = "weights"  # what the codebooks are of: "weights" (selected parameters) or "inputs"
    params: str = "weights"  # which parameters are compressed: "weights" (conv/linear) or "all"

    @classmethod
    def display_name(cls) -> str:
        """The name figures and tables give the method (`label`, else `name`).

        Returns:
            The display name.

        Examples:
            >>> from landscape.compress import METHODS
            >>> METHODS["weight-coupling"][0].display_name(), METHODS["ptq"][0].display_name()
            ('soft quantization', 'ptq')
        """
        return cls.label or cls.name

    @classmethod
    def label_for(cls, settings: Mapping[str, Any]) -> str:
        """The name a table gives the method at these settings: `display_name()`, unless a setting changes what
        the method is (DSMM's `then`, VQ-QAT's forward and assignment).

        Args:
            settings: the method's config fields (a run's or study's compressor settings).

        Returns:
            The row label.

        Examples:
            >>> from landscape.compress import METHODS
            >>> METHODS["lsq"][0].label_for({"bits": 2}), METHODS["dsmm"][0].label_for({"then": "lsq"})
            ('LSQ', 'DSMM + LSQ')
        """
        return cls.display_name()

    @classmethod
    def vector_dims(cls, run: Any) -> int | dict[str, int] | None:
        """The sub-vector length(s) of a finished run's clamped layers, for export to try a vector code
        (`landscape.codec`): one for every layer, one per layer, or None (scalar codes only, the default).

        Args:
            run: the run file (`landscape.store.Run`).

        Returns:
            An int, {parameter: int}, or None.

        Examples:
            >>> from landscape.compress import METHODS
            >>> METHODS["ptq"][0].vector_dims(None) is None
            True
        """
        return None

    @classmethod
    def settings_for_bits(cls, bits: int) -> dict[str, Any] | None:
        """The method's settings for `bits` bits per weight (per input feature where `quantizes` is "inputs"), as a
        table or a sweep over bits sets them; None where the method has no bit setting (its bits follow from other
        settings, e.g. weight coupling's h and w).

        Args:
            bits: bits per weight (or per input feature).

        Returns:
            Config fields (e.g. {"bits": 3}), or None.

        Examples:
            >>> from landscape.compress import METHODS
            >>> METHODS["ptq"][0].settings_for_bits(3), METHODS["weight-coupling"][0].settings_for_bits(3)
            ({'bits': 3}, None)
        """
        return None

    def selected(self, model: nn.Module) -> dict[str, nn.Parameter]:
        """The parameters this compressor compresses (its `params` selection, landscape/params.py).

        Args:
            model: the model (or the module `prepare` returned).

        Returns:
            Parameter name → parameter, in the model's order.

        Examples:
            >>> import torch.nn as nn
            >>> from landscape.compress import make_compressor
            >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
            >>> list(make_compressor("ptq").selected(model))
            ['0.weight', '2.weight']
        """
        return select_params(model, self.params)

    def prepare(self, model: nn.Module) -> nn.Module:
        """Record what the compressor needs from the *pretrained* model; return the module to train.

        Args:
            model: the pretrained model.

        Returns:
            The module to train: the model itself (default), or a wrapper around it (e.g. an input quantizer).

        Examples:
            >>> import torch.nn as nn
            >>> from landscape.compress import make_compressor
            >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
            >>> make_compressor("ptq").prepare(model) is model
            True
        """
        return model

    @abstractmethod
    def penalty(self, model: nn.Module) -> Tensor:
        """The compression loss L_C (a scalar tensor wired into autograd).

        Args:
            model: the module being trained (what `prepare` returned).

        Returns:
            A scalar tensor (zero for a method without a loss, e.g. PTQ).
        """

    @abstractmethod
    def codebooks(self, model: nn.Module) -> dict[str, Codebook]:
        """A codebook per compressed parameter (flattened order). Must not modify the model.

        Args:
            model: the module being trained (what `prepare` returned).

        Returns:
            Parameter name → `landscape.quantize.Codebook`.
        """

    def clamp(self, model: nn.Module) -> Clamped:
        """Every compressed weight replaced by its cluster value, on a copy of the model.

        Args:
            model: the module trained (what `prepare` returned; not modified).

        Returns:
            A `Clamped`: the hard-quantized copy and the codebook of each compressed parameter.

        Examples:
            >>> import torch.nn as nn
            >>> from landscape.compress import make_compressor
            >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
            >>> clamped = make_compressor("ptq", {"bits": 2}).clamp(model)
            >>> clamped.mean_bits(), clamped.model is model, len(clamped.model[0].weight.unique()) <= 4
            (2.0, False, True)
        """
        params = self.selected(model)
        books = self.codebooks(model)
        new = {name: books[name].apply().view_as(params[name]).to(params[name].dtype) for name in books}
        return Clamped(with_params(model, new), books)

    def calibration(self) -> int:
        """Images of unaugmented training data `calibrate` needs before `clamp` (0: none, the default).

        Returns:
            The number of images (≥ 0).

        Examples:
            >>> from landscape.compress import make_compressor
            >>> make_compressor("ptq").calibration(), make_compressor("gptq", {"calibration_images": 256}).calibration()
            (0, 256)
        """
        return 0

    def calibrate(self, model: nn.Module, batches: list) -> None:  # noqa: B027 (no calibration by default)
        """Compute what the clamp needs from data (called once before `clamp` where `calibration()` > 0; the
        default does nothing). Must not modify the model.

        Args:
            model: the module trained (what `prepare` returned).
            batches: (x, y) batches of `calibration()` unaugmented training images, on the model's device.

        Examples:
            >>> import torch, torch.nn as nn
            >>> from landscape.compress import make_compressor
            >>> model = nn.Linear(4, 3)
            >>> make_compressor("ptq").calibrate(model, [(torch.randn(2, 4), torch.zeros(2))])  # a no-op
        """
        pass

    def param_groups(self) -> list[dict[str, Any]]:
        """Extra optimizer parameter groups (e.g. centroids with their own learning rate).

        Returns:
            A list of torch optimizer parameter groups ([] by default).

        Examples:
            >>> import torch.nn as nn
            >>> from landscape.compress import make_compressor
            >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
            >>> make_compressor("ptq").param_groups()
            []
            >>> centroid = make_compressor("centroid", {"bits": 2})
            >>> _ = centroid.prepare(model)
            >>> [len(group["params"]) for group in centroid.param_groups()]
            [2]
        """
        return []

    def wrap_optimizer(self, optimizer: torch.optim.Optimizer, model: nn.Module) -> torch.optim.Optimizer:
        """What the trainer steps, given the fresh optimizer over `model`'s parameters (+ `param_groups()`) it built
        for the module `prepare` returned: the optimizer itself (default), or a wrapper / a rebuilt optimizer over
        the same parameters (see the module docstring). Called once, before any step.

        Args:
            optimizer: the trainer's optimizer (SGD over the model's parameters and `param_groups()`).
            model: the module trained (what `prepare` returned).

        Returns:
            The optimizer the trainer steps (and its learning-rate scheduler sets).

        Examples:
            >>> import torch, torch.nn as nn
            >>> from landscape.compress import make_compressor
            >>> model = nn.Linear(4, 3)
            >>> sgd = torch.optim.SGD(model.parameters(), lr=0.1)
            >>> make_compressor("ptq").wrap_optimizer(sgd, model) is sgd
            True
        """
        return optimizer

    def learnable(self) -> dict[str, nn.Parameter]:
        """The compressor's own trained tensors by name (the parameters of `param_groups()`): their gradients are
        averaged over torchrun ranks (each rank's task loss sees only its slice of the batch), and the run file
        stores them at every checkpoint (/compressor/<step>/<name>). Tensors inside the trained module (e.g. an
        input quantizer's) are the model's: DDP averages them, the checkpoint's state dict holds them.

        Returns:
            Name → parameter ({} for a method without any).

        Examples:
            >>> import torch.nn as nn
            >>> from landscape.compress import make_compressor
            >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
            >>> centroid = make_compressor("centroid", {"bits": 2})
            >>> _ = centroid.prepare(model)
            >>> list(centroid.learnable()), make_compressor("ptq").learnable()
            (['0.weight.centroids', '2.weight.centroids'], {})
        """
        return {}

    def stats(self, model: nn.Module) -> dict[str, float]:
        """Numbers for the progress bar and the run file's scalars (called every few steps, not every step).

        Args:
            model: the module being trained.

        Returns:
            Name → float ("mean_clusters", "mean_bits" by default).

        Examples:
            >>> import torch.nn as nn
            >>> from landscape.compress import make_compressor
            >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
            >>> make_compressor("ptq", {"bits": 2}).stats(model)
            {'mean_clusters': 4.0, 'mean_bits': 2.0}
        """
        books = self.codebooks(model)
        return {"mean_clusters": sum(cb.k for cb in books.values()) / max(len(books), 1),
                "mean_bits": mean_bits(books)}

    def state_dict(self) -> dict[str, Any]:
        """The compressor's own state, for a checkpoint (resume).

        Returns:
            Name → tensor or value ({} for a stateless compressor).

        Examples:
            >>> from landscape.compress import make_compressor
            >>> make_compressor("ptq").state_dict()
            {}
        """
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 (stateless by default)
        """Restore what `state_dict` returned (resume).

        Args:
            state: a `state_dict()` of a compressor of the same method and config.

        Examples:
            >>> from landscape.compress import make_compressor
            >>> compressor = make_compressor("ptq")
            >>> compressor.load_state_dict(compressor.state_dict())
        """
        pass

    def config_dict(self) -> dict[str, Any]:
        """The settings, for the run file (dataclass configs return their fields).

        Returns:
            Field name → value (JSON-ready).

        Examples:
            >>> from landscape.compress import make_compressor
            >>> make_compressor("ptq", {"bits": 3}).config_dict()
            {'quantizer': 'heq', 'bits': 3, 'params': 'weights', 'levels': None}
        """
        cfg = getattr(self, "config", None)
        from dataclasses import asdict, is_dataclass

        return asdict(cfg) if is_dataclass(cfg) else {}


def check_finite(name: str, value: Tensor) -> None:
    if not torch.isfinite(value).all():
        raise ValueError(f"{name} holds NaN or inf values")
