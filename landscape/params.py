"""Which parameters a compressor acts on, and copies of a model with some of them replaced.

By default the conv and linear *weights* are compressed; BN parameters, BN buffers and biases are not (paper
A.1: "excluding the biases and the BatchNorm layers"). Which tensors count as such weights follows from the module
types: `nn.Conv1d/2d/3d` of any groups (depthwise included), `nn.Linear` (attention output projections and
transformer MLPs included), and the input projections of `nn.MultiheadAttention` (`in_proj_weight`, or
`q/k/v_proj_weight` when the key/value sizes differ), and Hugging Face's `Conv1D` (GPT-2's linear layers, weight
stored `[in, out]`: `is_hf_conv1d`; `output_major` gives any layer's weight as `[out, in, …]`, the view that
per-channel quantizers and GPTQ read). `which="all"` selects every floating parameter.

Tied weights (GPT-2's and our GPT's head *is* the token embedding, one tensor) are one parameter under one name,
PyTorch's first (`named_parameters`: e.g. `tok.weight`, not `head.weight`), so they are compressed once and
counted once; a pattern may name either alias.

A selection can be edited by name patterns (fnmatch, on parameter names): "weights,-head.*" drops the head,
"weights,+embed.weight" adds an embedding table, "+*.weight" selects by pattern alone. A pattern that matches
nothing is an error (a typo never silently compresses nothing). `not_compressed` lists the multi-dimensional
parameters a selection leaves out (embeddings, …), so they are reported, not skipped in silence.
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Mapping

import torch
import torch.nn as nn
from torch import Tensor

SELECTIONS = ("weights", "all")
WEIGHT_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
ATTENTION_WEIGHTS = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")


def check_selection(which: str) -> str:
    """`which` if it is a valid selection ("weights", "all", or either followed by ±patterns, or patterns alone);
    ValueError otherwise."""
    parts = [t.strip() for t in str(which).split(",")]
    if not parts or any(not t for t in parts):
        raise ValueError(f"parameter selection {which!r}: empty entry (write e.g. weights,-head.*)")
    for t in parts[1:] if parts[0] in SELECTIONS else parts:
        if t in SELECTIONS:
            raise ValueError(f"parameter selection {which!r}: {t} must come first")
        if not t.startswith(("+", "-")) or len(t) < 2:
            raise ValueError(f"parameter selection {which!r}: write patterns as +PATTERN or -PATTERN, got {t!r}")
    return which


def is_hf_conv1d(module: nn.Module) -> bool:
    """Whether `module` is Hugging Face's `transformers.pytorch_utils.Conv1D` (y = x @ W + b, W stored `[in, out]`;
    GPT-2's attention and MLP layers), recognised by its class name and `nf` without importing transformers.

    Examples:
        >>> is_hf_conv1d(nn.Linear(2, 3))
        False
    """
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and getattr(module, "weight", None) is not None


def is_weight_module(module: nn.Module) -> bool:
    """A conv or linear layer whose `.weight` the "weights" selection takes (WEIGHT_MODULES, or a Hugging Face
    Conv1D)."""
    return isinstance(module, WEIGHT_MODULES) or is_hf_conv1d(module)


def output_major(module: nn.Module, weight: Tensor) -> Tensor:
    """`weight` (the module's, or one of its shape) as `[out, in, …]`: a view, transposed for a Hugging Face Conv1D.

    Args:
        module: the layer that owns the weight.
        weight: a tensor of the layer's weight shape.

    Returns:
        The same storage seen output channel first (`output_major(m, output_major(m, w))` is `w` again).

    Examples:
        >>> lin = nn.Linear(3, 2)
        >>> output_major(lin, lin.weight).shape
        torch.Size([2, 3])
    """
    return weight.transpose(0, 1) if is_hf_conv1d(module) else weight


def canonical_names(model: nn.Module) -> dict[str, str]:
    """Every name of every parameter (tied ones under each of their names) → the name `named_parameters` gives it.

    Examples:
        >>> net = nn.Sequential(nn.Embedding(5, 4), nn.Linear(4, 5, bias=False))
        >>> net[1].weight = net[0].weight
        >>> canonical_names(net)
        {'0.weight': '0.weight', '1.weight': '0.weight'}
    """
    first = {id(p): n for n, p in model.named_parameters()}
    return {n: first[id(p)] for n, p in model.named_parameters(remove_duplicate=False)}


def _weights(model: nn.Module) -> dict[str, nn.Parameter]:
    canon = canonical_names(model)
    selected = {}
    for name, module in model.named_modules(remove_duplicate=False):
        prefix = f"{name}." if name else ""
        if is_weight_module(module):
            selected[canon[f"{prefix}weight"]] = module.weight
        elif isinstance(module, nn.MultiheadAttention):
            for attr in ATTENTION_WEIGHTS:
                if getattr(module, attr, None) is not None:
                    selected[canon[prefix + attr]] = getattr(module, attr)
    return selected


def select_params(model: nn.Module, which: str = "weights") -> dict[str, nn.Parameter]:
    """name → parameter, in model order: the selection `which` (module docstring). A tied parameter appears once,
    under its first name.

    Examples:
        >>> net = nn.Sequential(nn.Embedding(5, 4), nn.Linear(4, 5, bias=False))
        >>> net[1].weight = net[0].weight  # a tied head
        >>> list(select_params(net)), list(select_params(net, "weights,-1.weight"))
        (['0.weight'], [])
    """
    parts = [t.strip() for t in check_selection(which).split(",")]
    everything = dict(model.named_parameters())
    canon = canonical_names(model)
    base = {"weights": _weights, "all": lambda m: everything}.get(parts[0])
    chosen = set(base(model)) if base is not None else set()
    for t in parts[1:] if base is not None else parts:
        hits = {canon[n] for n in canon if fnmatch.fnmatchcase(n, t[1:])}
        if not hits:
            raise ValueError(f"parameter selection {which!r}: {t[1:]!r} matches no parameter of the model")
        chosen = chosen | hits if t[0] == "+" else chosen - hits
    return {n: p for n, p in everything.items() if n in chosen and p.is_floating_point()}


def not_compressed(model: nn.Module, which: str = "weights") -> dict[str, str]:
    """Multi-dimensional floating parameters the selection leaves out: name → the type of the module that owns
    it (e.g. {"embed.weight": "Embedding"}). BN/LayerNorm affine parameters and biases are 1-D and not listed."""
    chosen = select_params(model, which)
    owners = {f"{m}.{n}" if m else n: type(mod).__name__ for m, mod in model.named_modules()
              for n, _ in mod.named_parameters(recurse=False)}
    return {n: owners.get(n, "?") for n, p in model.named_parameters()
            if n not in chosen and p.dim() >= 2 and p.is_floating_point()}


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
