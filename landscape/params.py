"""Which parameters a compressor acts on, and copies of a model with some of them replaced.

By default the conv and linear *weights* are compressed; BN parameters, BN buffers and biases are not (paper
A.1: "excluding the biases and the BatchNorm layers"). `which="all"` selects every floating parameter.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
import torch.nn as nn
from torch import Tensor

SELECTIONS = ("weights", "all")


def select_params(model: nn.Module, which: str = "weights") -> dict[str, nn.Parameter]:
    """name → parameter, in model order. "weights": weight of every Conv*/Linear module; "all": every parameter."""
    if which not in SELECTIONS:
        raise ValueError(f"parameter selection must be one of {SELECTIONS}, got {which!r}")
    if which == "all":
        return dict(model.named_parameters())
    selected = {}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            selected[f"{name}.weight" if name else "weight"] = module.weight
    return selected


def with_params(model: nn.Module, new: Mapping[str, Tensor]) -> nn.Module:
    """A deep copy of `model` whose named parameters/buffers are replaced by `new` (shapes must match).
    The input model is never modified."""
    out = copy.deepcopy(model)
    state = out.state_dict()
    for name, value in new.items():
        if name not in state:
            raise KeyError(f"{name} is not a parameter or buffer of the model")
        if state[name].shape != value.shape:
            raise ValueError(f"{name}: new value has shape {tuple(value.shape)}, model has {tuple(state[name].shape)}")
    with torch.no_grad():
        for name, value in new.items():
            state[name].copy_(value)
    return out


def n_weights(params: Mapping[str, Tensor]) -> int:
    return sum(p.numel() for p in params.values())


def weighted_mean(per_layer: Mapping[str, float], params: Mapping[str, Tensor]) -> float:
    """Parameter-count-weighted mean of a per-layer quantity (e.g. bits)."""
    total = n_weights({k: params[k] for k in per_layer})
    return sum(v * params[k].numel() for k, v in per_layer.items()) / total
