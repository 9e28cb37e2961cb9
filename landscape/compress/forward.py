"""Methods whose training forward quantizes the weights (VQ-QAT, LSQ): the forward of every selected conv/linear
module of the trainer's own copy is replaced by one that uses the quantized weight; `unpatch` gives a copy (the
clamp) its plain forward back. The state the forward reads is the method's (`module.<attr>`), not a submodule, so
the model's parameters and state dict stay the plain network's and the run file needs no special case.

    >>> import torch.nn as nn
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> sorted(quantized_modules(net, ["0.weight", "2.weight"], "toy"))
    ['0.weight', '2.weight']
    >>> quantized_modules(net, ["0.bias"], "toy")
    Traceback (most recent call last):
    ...
    ValueError: toy quantizes the weights of conv and linear modules (...); 0.bias (Linear) is not one: ...
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..params import canonical_names, is_hf_conv1d

LAYERS = (nn.Linear, nn.modules.conv._ConvNd)


def is_layer(module: nn.Module, types: tuple = LAYERS) -> bool:
    """Whether `module` is one of `types`; a Hugging Face Conv1D (GPT-2's linear layers) counts as an nn.Linear.

    Examples:
        >>> is_layer(nn.Linear(2, 2)), is_layer(nn.LayerNorm(2))
        (True, False)
    """
    return isinstance(module, types) or (nn.Linear in types and is_hf_conv1d(module))


def quantized_modules(model: nn.Module, names: Iterable[str], method: str, *, types: tuple = LAYERS,
                      what: str = "conv and linear modules (its quantizing forward replaces theirs)"
                      ) -> dict[str, nn.Module]:
    """The module of each selected parameter name, which must be the weight of a module of `types`.

    Args:
        model: the network.
        names: the selected parameters' names (e.g. "layer1.0.conv1.weight").
        method: the method's name, for the error.
        types: the module types the method quantizes (default: every conv and linear module).
        what: those types in words, for the error.

    Returns:
        name → its module; raises ValueError (one line naming the parameter) for any other. A tied weight (a
        head that is the token embedding) is found under any of its names, as the weight of its layer of `types`.

    Examples:
        >>> import torch.nn as nn
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8))
        >>> list(quantized_modules(model, ["0.weight"], "lsq"))
        ['0.weight']
        >>> quantized_modules(model, ["1.weight"], "lsq")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: lsq quantizes the weights of conv and linear modules ...; 1.weight (BatchNorm1d) is not one: ...
    """
    modules = dict(model.named_modules())
    canon = canonical_names(model)
    layers: dict[str, nn.Module] = {}  # canonical name of a weight → the first layer of `types` that owns it
    for owner, module in model.named_modules(remove_duplicate=False):
        key = f"{owner}.weight" if owner else "weight"
        if key in canon and is_layer(module, types):
            layers.setdefault(canon[key], module)
    out = {}
    for name in names:
        module = layers.get(canon.get(name, name))
        if module is None:
            owner = name.rpartition(".")[0]
            kind = type(modules[owner]).__name__ if owner in modules else "no module"
            raise ValueError(f"{method} quantizes the weights of {what}; {name} ({kind}) is not one: leave it out "
                             f"with --params weights,-{name}")
        out[name] = module
    return out


def patch(module: nn.Module, attr: str, state, forward: Callable[[nn.Module, Tensor], Tensor]) -> None:
    """Give `module` the method's `state` as `module.<attr>` and `forward` as its forward.

    Args:
        module: a conv or linear module (of the trainer's copy).
        attr: where the state lives, e.g. "_lsq".
        state: what `forward` reads.
        forward: forward(module, x) → output.

    >>> import torch
    >>> lin = nn.Linear(2, 2)
    >>> patch(lin, "_toy", 0.0, lambda m, x: layer_forward(m, x, m.weight * m._toy))
    >>> float(lin(torch.ones(1, 2)).sub(lin.bias).abs().sum())
    0.0
    """
    setattr(module, attr, state)
    module.forward = types.MethodType(forward, module)


def unpatch(model: nn.Module, attr: str) -> nn.Module:
    """The plain forward back on every module `patch` gave `attr`; returns `model`.

    Args:
        model: a (copied) network.
        attr: the attribute `patch` set.

    Returns:
        `model`, its modules' own forwards restored.

    >>> lin = nn.Linear(2, 2)
    >>> patch(lin, "_toy", None, lambda m, x: x)
    >>> "forward" in vars(unpatch(lin, "_toy"))
    False
    """
    for module in model.modules():
        if attr in module.__dict__:
            delattr(module, "forward")
            delattr(module, attr)
    return model


def layer_forward(module: nn.Module, x: Tensor, weight: Tensor) -> Tensor:
    """The conv or linear module's own forward with another weight.

    Args:
        module: an nn.Linear or a conv module.
        x: the input.
        weight: the weight to use (same shape as the module's).

    Returns:
        The module's output with `weight`.

    >>> import torch
    >>> lin = nn.Linear(3, 2)
    >>> torch.equal(layer_forward(lin, torch.ones(1, 3), lin.weight), lin(torch.ones(1, 3)))
    True
    """
    if isinstance(module, nn.Linear):
        return F.linear(x, weight, module.bias)
    if is_hf_conv1d(module):  # its own forward: x @ W + b, W [in, out]
        return torch.addmm(module.bias, x.reshape(-1, x.shape[-1]), weight).view(*x.shape[:-1], weight.shape[1])
    return module._conv_forward(x, weight, module.bias)
