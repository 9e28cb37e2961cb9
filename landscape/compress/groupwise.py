"""The LLM field's weight-only baselines, per output channel or per group of input weights: round-to-nearest
(RTN) and HQQ (Badri & Shaji, 2023, the `hqq` package; the `[lm]` extra). `landscape ptq --method rtn|hqq
--bits B [--group-size G]`.

Each selected layer's weight is seen as its `[out, in]` matrix (`params.output_major`: a Hugging Face Conv1D
transposed, a conv's kernel flattened with its input channels) and split along each row into groups of G
consecutive input weights (no G: one group per output channel, the whole row). Every group gets its own affine
grid of 2^B levels:

  * RTN, asymmetric min–max (GPTQ's RTN baseline): scale s = (max − min)/(2^B − 1), zero z = round(−min/s),
    q = clamp(round(w/s) + z, 0, 2^B − 1), ŵ = (q − z)·s; a constant group is kept exactly (s = 0 → ŵ = w);
  * HQQ: the same grid, its scale and zero point fitted by HQQ's half-quadratic solver (`Quantizer.quantize`
    with `optimize=True`, axis 1, float32, on the weights' device), then `Quantizer.dequantize`; calibration-free.

Bits. A group's scale and zero point are counted as two 16-bit numbers (the float16 a kernel would store), so a
layer costs B + 32/G bits per weight (per channel: B + 32/in). The summary's `mean_effective_bits` is that
count, weighted by layer size (4-bit g128: 4.25), so the rows sit beside the codebook methods' log2 K at honest
bits; `index_bits` is B alone. The codebook methods' own K values per layer are not counted either way (a few
hundred bytes per layer). A G that does not divide a layer's inputs is a one-line error naming the layer.

    >>> import torch, torch.nn as nn
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> q = groupwise_quantize(model, GroupwiseConfig("rtn", bits=2, group_size=4))
    >>> q.bits, len(torch.unique(q.model[0].weight[0, :4])) <= 4
    ({'0.weight': 10.0, '2.weight': 10.0}, True)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from ..checks import check_int
from ..errors import LandscapeError
from ..params import output_major, select_params, weighted_mean

GROUPWISE = ("rtn", "hqq")
SCALE_BITS = 16  # each of a group's scale and zero point, as float16


@dataclass(frozen=True)
class GroupwiseConfig:
    """Settings of a group-wise baseline (module docstring); checked at construction.

    Examples:
        >>> GroupwiseConfig("hqq", bits=3, group_size=64).overhead_bits(128)
        0.5
        >>> GroupwiseConfig("rtn", group_size=0)
        Traceback (most recent call last):
        ...
        ValueError: group_size must be an integer ≥ 1, got 0
    """

    quantizer: str = "rtn"  # rtn | hqq
    bits: int = 4  # bits per weight B, 1..8: 2^B levels per group
    group_size: int | None = None  # input weights per group G (None: one group per output channel)
    params: str = "weights"  # the parameter selection (landscape/params.py)

    def __post_init__(self):
        if self.quantizer not in GROUPWISE:
            raise ValueError(f"unknown group-wise method {self.quantizer!r}; choose one of {', '.join(GROUPWISE)}")
        check_int("bits", self.bits, 1, 8)
        if self.group_size is not None:
            check_int("group_size", self.group_size, 1)

    def overhead_bits(self, inputs: int) -> float:
        """Scale and zero point per weight of a layer with `inputs` input weights per output channel.

        Args:
            inputs: the layer's row length (in_features, or in_channels·kernel).

        Returns:
            2·16/G (per channel: 2·16/inputs).

        Examples:
            >>> GroupwiseConfig("rtn", bits=4).overhead_bits(128)
            0.25
        """
        return 2 * SCALE_BITS / (self.group_size or inputs)


@dataclass
class GroupQuantized:
    """A group-wise quantized copy of a model: the model, each layer's bits per weight (B plus the scales'
    overhead), and the settings."""

    model: nn.Module
    bits: dict[str, float]
    config: GroupwiseConfig

    def mean_bits(self) -> float:
        """Bits per weight over the quantized layers, weighted by their sizes (scales included)."""
        return weighted_mean(self.bits, select_params(self.model, self.config.params))


def rtn_groups(groups: Tensor, bits: int) -> Tensor:
    """Round-to-nearest of each row of `groups` [n, G] on its own min–max grid of 2^bits levels (module docstring).

    Args:
        groups: one group per row.
        bits: bits per weight.

    Returns:
        The dequantized groups, same shape and dtype.

    Examples:
        >>> rtn_groups(torch.tensor([[0.0, 0.4, 1.0], [2.0, 2.0, 2.0]]), 1)
        tensor([[0., 0., 1.],
                [2., 2., 2.]])
    """
    g = groups.double()
    lo, hi = g.min(1, keepdim=True).values, g.max(1, keepdim=True).values
    top = 2**bits - 1
    scale = (hi - lo) / top
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero = torch.round(-lo / safe)
    q = torch.clamp(torch.round(g / safe) + zero, 0, top)
    return torch.where(scale > 0, (q - zero) * safe, g).to(groups.dtype)


def hqq_groups(groups: Tensor, bits: int) -> Tensor:
    """HQQ of each row of `groups` [n, G] (module docstring), through the `hqq` package.

    Args:
        groups: one group per row.
        bits: bits per weight (hqq takes 1..8).

    Returns:
        The dequantized groups, same shape and dtype.
    """
    try:
        from hqq.core.quantize import Quantizer
    except ImportError:
        raise LandscapeError("--method hqq needs the hqq package: pip install -e '.[lm]'") from None
    w = groups.float().contiguous()
    q, meta = Quantizer.quantize(w, nbits=bits, group_size=w.shape[1], optimize=True, axis=1, bitpack=False,
                                 compute_dtype=torch.float32, device=str(w.device))
    return Quantizer.dequantize(q, meta).reshape(w.shape).to(groups.dtype)


QUANTIZE = {"rtn": rtn_groups, "hqq": hqq_groups}


def _owners(model: nn.Module, names) -> dict[str, nn.Module]:
    from .forward import quantized_modules

    return quantized_modules(model, names, "group-wise quantization", what="conv and linear modules (a row per "
                             "output channel)")


@torch.no_grad()
def groupwise_quantize(model: nn.Module, config: GroupwiseConfig = GroupwiseConfig()) -> GroupQuantized:
    """A copy of `model` with every selected layer quantized group-wise (module docstring); `model` is untouched.

    Args:
        model: the model.
        config: method, bits, group size, selection.

    Returns:
        The `GroupQuantized` copy, its bits per layer.

    Examples:
        >>> import torch.nn as nn
        >>> model = nn.Sequential(nn.Linear(64, 8))
        >>> q = groupwise_quantize(model, GroupwiseConfig("rtn", bits=4, group_size=32))
        >>> q.bits, q.mean_bits()
        ({'0.weight': 5.0}, 5.0)
    """
    work = copy.deepcopy(model)
    selected = select_params(work, config.params)
    owners = _owners(work, selected)
    bits = {}
    for name, p in selected.items():
        matrix = output_major(owners[name], p.data)
        rows = matrix.reshape(matrix.shape[0], -1)
        size = config.group_size or rows.shape[1]
        if rows.shape[1] % size:
            raise LandscapeError(f"group size {size} does not divide the {rows.shape[1]} inputs of {name}: choose a "
                                 f"divisor, or leave it out with --params weights,-{name}")
        flat = QUANTIZE[config.quantizer](rows.reshape(-1, size), config.bits)
        matrix.copy_(flat.reshape(matrix.shape))  # a view of the parameter: written in its own layout
        bits[name] = config.bits + config.overhead_bits(rows.shape[1])
    return GroupQuantized(work, bits, config)


def summary_entries(q: GroupQuantized) -> dict[str, Any]:
    """What `landscape ptq` reports of a group-wise run besides the metric.

    Args:
        q: the quantized copy.

    Returns:
        group_size, index_bits, mean_effective_bits (scales included), bits_per_layer.
    """
    return {"group_size": q.config.group_size, "index_bits": q.config.bits, "mean_effective_bits": q.mean_bits(),
            "bits_per_layer": q.bits}
