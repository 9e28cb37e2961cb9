"""Compression methods behind one interface (`base.Compressor`), by the name `--method` takes."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..params import check_selection
from .base import Clamped, Compressor
from .centroid import Centroid, CentroidConfig
from .dkm import DKM, DKMConfig
from .dsmm import DSMM, DSMMConfig
from .gptq import GPTQ, GPTQConfig
from .input_bitwise import InputBitwise, InputBitwiseConfig
from .lsq import LSQ, LSQConfig
from .parq import PARQ, BinaryRelax, BinaryRelaxConfig, PARQConfig
from .ptq import PTQ, PTQConfig
from .vq import VQ, VQConfig
from .vq_nas import VQNAS, VQNASConfig
from .weight_coupling import WeightCoupling, WeightCouplingConfig

# --method name → (compressor class, its config dataclass)
METHODS: dict[str, tuple[type[Compressor], type]] = {
    "weight-coupling": (WeightCoupling, WeightCouplingConfig),
    "ptq": (PTQ, PTQConfig),
    "centroid": (Centroid, CentroidConfig),
    "dsmm": (DSMM, DSMMConfig),
    "vq": (VQ, VQConfig),
    "vq-nas": (VQNAS, VQNASConfig),
    "input-bitwise": (InputBitwise, InputBitwiseConfig),
    "lsq": (LSQ, LSQConfig),
    "parq": (PARQ, PARQConfig),
    "binaryrelax": (BinaryRelax, BinaryRelaxConfig),
    "dkm": (DKM, DKMConfig),
    "gptq": (GPTQ, GPTQConfig),
}


def make_compressor(method: str, settings: dict[str, Any] | None = None, *, seed: int = 0) -> Compressor:
    """A compressor from its name and the config fields to override (the rest keep their defaults).

    Args:
        method: the method's name (a key of `METHODS`, what `--method` takes).
        settings: config fields to override (unknown fields are a ValueError naming the ones it takes).
        seed: the compressor's random draws (e.g. initial centroids).

    Returns:
        The `Compressor`, its config a frozen dataclass (`.config`).

    Examples:
        >>> compressor = make_compressor("ptq", {"bits": 2})
        >>> compressor.name, compressor.config_dict()
        ('ptq', {'quantizer': 'heq', 'bits': 2, 'params': 'weights', 'levels': None})
        >>> make_compressor("ptq", {"h": 0.1})
        Traceback (most recent call last):
        ...
        ValueError: method ptq has no setting h (it takes: bits, levels, params, quantizer)
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    cls, config_cls = METHODS[method]
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(settings or {}) - fields)
    if unknown:
        raise ValueError(f"method {method} has no setting {', '.join(unknown)} "
                         f"(it takes: {', '.join(sorted(fields))})")
    config = config_cls(**(settings or {}))
    if hasattr(config, "params"):
        check_selection(config.params)
    return cls(config, seed=seed)


__all__ = ["METHODS", "Clamped", "Compressor", "make_compressor", "PTQ", "PTQConfig", "WeightCoupling",
           "WeightCouplingConfig", "Centroid", "CentroidConfig", "DSMM", "DSMMConfig", "VQ", "VQConfig",
           "VQNAS", "VQNASConfig",
           "InputBitwise", "InputBitwiseConfig", "LSQ", "LSQConfig",
           "PARQ", "PARQConfig", "BinaryRelax", "BinaryRelaxConfig",
           "DKM", "DKMConfig", "GPTQ", "GPTQConfig"]
