"""GPTQ (Frantar, Ashkboos, Hoefler, Alistarh, "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained
Transformers", ICLR 2023; arXiv 2210.17323) as a post-training baseline: every conv/linear layer is quantized
column by column, the error of each quantized column compensated on the columns not yet quantized, using the
inverse Hessian of the layer's squared output error on calibration data.

The problem, per layer (weight W of shape [rows, d]: rows = output channels, d = input features, a conv's
in·kh·kw), with X the layer's inputs on the calibration set as columns (n input vectors):

    Ŵ = argmin ‖W X − Ŵ X‖²_F  over Ŵ with every entry on the layer's grid,  H = 2/n · Σ x xᵀ = 2 X Xᵀ / n  [d, d]

Optimal Brain Quantization quantizes one column q (input feature q, all rows at once; the Hessian is the same
for every row) and moves the not yet quantized columns F to compensate:

    ŵ_q = nearest grid value of w_q,   e = (w_q − ŵ_q) / [H_F⁻¹]_qq,   W_F ← W_F − e ⊗ [H_F⁻¹]_{q,F}
    H_{F∖q}⁻¹ = H_F⁻¹ − [H_F⁻¹]_{:,q} [H_F⁻¹]_{q,:} / [H_F⁻¹]_qq                       (Gaussian elimination of q)

GPTQ (paper Algorithm 1) fixes one column order for all rows, so the rows [H_F⁻¹]_{q,F}/√[H_F⁻¹]_qq it needs are
the rows of the upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU, computed once): e = (w_q − ŵ_q)/U_qq,
W_{q+1:} −= e ⊗ U_{q,q+1:}. Lazy batch updates: the columns are swept in blocks of B; inside a block the update
touches the block only, the block's errors E reach the later columns at its end in one product,
W_{i2:} −= E U_{block,i2:}. The result is that of the plain sequential update up to round-off, for any B
(tests/compress/test_gptq.py checks B = 1, 3, 128 against the explicit-inverse update above).

Dampening: H + λI with λ = damp · mean(diag H) (the reference's `percdamp`, 0.01), after the dead columns below.

Choices the paper leaves open, or that differ here, and why:
  * one grid per layer, not per output channel: the grid is the 2^b values (at most) that `grid`'s quantizer of
    landscape.quantize (uniform, heq or kmeans; default uniform, the paper's kind) proposes for the layer's
    weights as they are before GPTQ runs (the pretrained weights, or the fine-tuned ones after epochs ≥ 1), i.e.
    that codebook's values; GPTQ then puts each weight on the nearest of them (ties: the lower value), so the
    result is a per-layer `Codebook` of at most 2^b values exactly like every other method's. The reference
    (and the paper's results) use a min-max asymmetric grid per output channel, whose layer holds up to
    out_channels × 2^b distinct values: in our tables GPTQ would get out_channels× more levels than its
    rivals. Consequences: the uniform grid spans the layer's [min, max], and 0 is not necessarily a level (the
    reference's rounded zero point makes 0 one); a level of `uniform` that no weight rounds to is not in the
    codebook it proposes, hence not in the grid (it does not happen but on tiny layers);
  * sequential: the layers are quantized one after another in module (parameter) order, each layer's H
    estimated from its inputs *through the already-quantized earlier layers* (the reference quantizes a
    transformer block at a time; this is its "true sequential" option at layer granularity), on a copy of the
    model in eval mode (BN running statistics, no dropout). It costs one forward pass over the calibration
    images per layer, each stopped once the layer has had its input (as many calls as in the first, whole
    forward). A layer registered before a layer that runs earlier (e.g. a shortcut conv defined after the main
    branch) sees that layer's float output: module order is the order, not execution order;
  * calibration data: `calibration_images` (default 1024) images from the start of the training split,
    unaugmented (the data BN recalibration uses, landscape.bn.recalibration_batches), where the trainer or
    `landscape ptq` calibrates; the paper uses 128 random 2048-token segments of C4. A compressor's
    `calibrate(model, batches)` uses all the batches it is given; `gptq_quantize` takes the first
    `calibration_images` images of its batches;
  * H = 2/n Σ x xᵀ with n the number of input vectors (tokens, or image × output position of a conv); the
    reference counts batch entries. The scale of H changes nothing (λ is relative to it);
  * dead columns (diag H = 0: an input feature that is zero on every calibration input, e.g. a dead ReLU
    channel): H_qq ← 1 and w_q ← 0 before the sweep, as in the reference (the 1 counts in mean diag H); w_q
    then goes to the grid value nearest 0 and never touches the output on the calibration data;
  * `act_order`: the columns are swept in order of decreasing diag H (the reference's `--act-order`, not in
    Algorithm 1), the grid unchanged; off by default (the paper's algorithm);
  * convolutions: the input is padded as the conv pads it (zeros, reflect, circular, 'same') and unfolded into
    its patches (nn.Unfold's order: channel, then kernel position), so X holds exactly the vectors the conv's
    weight [out, in·kh·kw] multiplies (the reference unfolds with the conv's padding, zeros only); Conv1d as a
    Conv2d of height 1. A grouped or depthwise conv, which the reference does not handle, is one problem per
    group (a group's output channels see its input channels only): one sweep per group with that group's H of
    size (in/groups·k)², the grid still per layer;
  * supported layers: nn.Linear (and subclasses), Hugging Face's Conv1D (GPT-2's; its `[in, out]` weight swept
    as the `[out, in]` matrix it is), nn.Conv1d, nn.Conv2d. A tied head (the token embedding's tensor) is swept
    as the head, from the head's inputs. Not: Conv3d, transposed convs, nn.MultiheadAttention's in_proj_weight
    (no module of its own to take inputs from) and its out_proj (its parent uses the weight directly, so the
    module is never called; a clear error after the calibration forward). Leave them out with `params`, e.g.
    weights,-attn.in_proj_weight;
  * arithmetic, where the model lives: each batch's X Xᵀ in float32 as in the reference (float64 for a float64
    model), summed over the batches and swept in float64 (float32 on MPS, which has no float64); the quantized
    weights are grid values in the weights' dtype;
  * no penalty: GPTQ trains nothing. With 0 epochs (`gptq_quantize`, `landscape ptq --method gptq`) it is the
    paper's post-training quantization; with epochs ≥ 1 the run is plain fine-tuning, then GPTQ at the clamp
    (the trainer calibrates there: `Compressor.calibration`/`calibrate`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..checks import check_int
from ..params import is_hf_conv1d, output_major, select_params
from ..quantize import QUANTIZERS, Codebook
from .base import Clamped, Compressor, check_finite
from .forward import quantized_modules

__all__ = ["GPTQConfig", "GPTQ", "gptq_sweep", "gptq_quantize", "layer_columns"]

MIN_BITS, MAX_BITS = 2, 8  # the range of LSQ's and the methods table's bits; the paper reports 2..4 (and 8)
SUPPORTED = (nn.Linear, nn.Conv1d, nn.Conv2d)


@dataclass(frozen=True)
class GPTQConfig:
    """GPTQ's settings (`--method gptq`, `landscape ptq --method gptq`); the choices are in the module docstring.

    Examples:
        >>> GPTQConfig(bits=3).grid, GPTQConfig().damp
        ('uniform', 0.01)
        >>> GPTQConfig(damp=0)
        Traceback (most recent call last):
        ...
        ValueError: damp (dampening, a fraction of mean diag H) must be a finite number > 0, got 0
    """

    bits: int = 4  # bits per weight b, 2..8: a grid of at most 2^b values per layer
    grid: str = "uniform"  # the per-layer grid, landscape.quantize's uniform | heq | kmeans on the weights before GPTQ
    block_size: int = 128  # columns per lazy batch update B, ≥ 1 (the result is the same up to round-off)
    damp: float = 0.01  # dampening λ as a fraction of mean diag H, > 0: the sweep uses H + λ·I
    act_order: bool = False  # sweep the columns in order of decreasing diag H (the reference's act-order)
    calibration_images: int = 1024  # unaugmented training images H is estimated on, ≥ 1 (the train split's first)
    params: str = "weights"  # which weights are quantized: conv/linear weights (a selection: landscape/params.py)

    def __post_init__(self):
        check_int("bits", self.bits, MIN_BITS, MAX_BITS)
        if self.grid not in QUANTIZERS:
            raise ValueError(f"unknown GPTQ grid {self.grid!r}; choose one of {', '.join(QUANTIZERS)}")
        check_int("block_size", self.block_size, 1)
        if isinstance(self.damp, bool) or not isinstance(self.damp, (int, float)) or not math.isfinite(self.damp) \
                or self.damp <= 0:
            raise ValueError(f"damp (dampening, a fraction of mean diag H) must be a finite number > 0, "
                             f"got {self.damp!r}")
        if not isinstance(self.act_order, bool):
            raise ValueError(f"act_order must be true or false, got {self.act_order!r}")
        check_int("calibration_images", self.calibration_images, 1)


def _acc_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64


# ------------------------------------------------------------------------------------------------ one layer


def layer_columns(module: nn.Module, x: Tensor) -> Tensor:
    """The input vectors the layer's weight multiplies, per group: the columns of X (module docstring).

    Args:
        module: an nn.Linear, nn.Conv1d or nn.Conv2d.
        x: the module's input (a batch, or one unbatched input).

    Returns:
        [groups, d, n] (groups = 1 but for grouped convs; d = in_features or in/groups·kh·kw; n input vectors),
            in x's dtype: `weight.reshape(groups, rows/groups, d)[j] @ columns[j]` is group j's output without bias.

    Examples:
        >>> import torch, torch.nn as nn
        >>> conv = nn.Conv2d(2, 3, 3, padding=1, bias=False)
        >>> x = torch.randn(4, 2, 5, 5)
        >>> cols = layer_columns(conv, x)
        >>> cols.shape
        torch.Size([1, 18, 100])
        >>> out = (conv.weight.reshape(3, 18) @ cols[0]).reshape(3, 4, 25).transpose(0, 1)
        >>> torch.allclose(out.reshape(4, 3, 5, 5), conv(x), atol=1e-5)
        True
    """
    return _rows(module, x).permute(1, 2, 0)


def _rows(module: nn.Module, x: Tensor) -> Tensor:
    """The input vectors of one input as rows per group, [n, groups, d] (a conv: one row per image and output
    position, its patch in nn.Unfold's order: channel, then kernel position)."""
    if isinstance(module, nn.Linear):
        return x.reshape(-1, 1, module.in_features)
    if is_hf_conv1d(module):  # GPT-2's linear layer: weight [in, out]
        return x.reshape(-1, 1, module.weight.shape[0])
    if not isinstance(module, (nn.Conv1d, nn.Conv2d)):
        raise ValueError(f"gptq: no input columns for a {type(module).__name__} (Linear, Conv1d, Conv2d only)")
    dims = 1 if isinstance(module, nn.Conv1d) else 2
    if x.dim() == dims + 1:  # an unbatched input
        x = x.unsqueeze(0)
    mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
    x = F.pad(x, list(module._reversed_padding_repeated_twice), mode=mode)  # the conv's own padding, any mode
    kernel, dilation, stride = module.kernel_size, module.dilation, module.stride
    if dims == 1:  # Conv1d as a Conv2d of height 1
        x, kernel, dilation, stride = x.unsqueeze(2), (1, *kernel), (1, *dilation), (1, *stride)
    x = x.contiguous()
    n, c, h, w = x.shape
    out_h = (h - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    out_w = (w - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    sn, sc, sh, sw = x.stride()
    # the patches as a strided view [n, out_h, out_w, c, kh, kw] (what F.unfold copies out, several times faster)
    view = x.as_strided((n, out_h, out_w, c, *kernel),
                        (sn, sh * stride[0], sw * stride[1], sc, sh * dilation[0], sw * dilation[1]))
    return view.reshape(n * out_h * out_w, module.groups, c // module.groups * kernel[0] * kernel[1])


def _gram(module: nn.Module, x: Tensor, acc: torch.dtype) -> tuple[Tensor, int]:
    """(Σ x xᵀ over the input vectors of one input, [groups, d, d] in `acc`; their number n), computed in float32
    (float64 for float64 inputs), returned in `acc`."""
    rows = _rows(module, x).to(torch.float64 if x.dtype == torch.float64 else torch.float32)
    if rows.shape[1] == 1:
        flat = rows[:, 0]
        return (flat.T @ flat).unsqueeze(0).to(acc), rows.shape[0]
    grouped = rows.transpose(0, 1)  # [groups, n, d]
    return torch.bmm(grouped.transpose(1, 2), grouped).to(acc), rows.shape[0]


def gptq_sweep(weight: Tensor, hessian: Tensor, grid: Tensor, *, block_size: int = 128, damp: float = 0.01,
               act_order: bool = False) -> Tensor:
    """GPTQ's column sweep (paper Algorithm 1, with the reference's dead columns and act-order) of one weight
    matrix: the grid index of every quantized weight.

    Args:
        weight: W, [rows, d] (rows share the Hessian; d input features).
        hessian: H = 2 X Xᵀ / n, [d, d], symmetric positive semi-definite.
        grid: the values the weights may take, 1-D, strictly increasing.
        block_size: columns per lazy batch update B (≥ 1).
        damp: λ = damp · mean(diag H) is added to diag H (> 0).
        act_order: sweep the columns in order of decreasing diag H.

    Returns:
        [rows, d] int64 indices into `grid`: the quantized weight is `grid[index]`. Computed in float64 (float32
            on MPS) on the weight's device; the inputs are not modified.

    Examples:
        >>> import torch
        >>> x = torch.randn(3, 200, dtype=torch.float64)
        >>> x[1] = x[0] + 0.1 * x[1]  # correlated inputs
        >>> h = 2 * x @ x.T / 200
        >>> w = torch.randn(5, 3, dtype=torch.float64)
        >>> grid = torch.linspace(-2, 2, 4, dtype=torch.float64)
        >>> q = grid[gptq_sweep(w, h, grid)]
        >>> rtn = grid[torch.argmin((w[..., None] - grid).abs(), -1)]
        >>> bool(((w - q) @ x).square().sum() <= ((w - rtn) @ x).square().sum())
        True
    """
    return _sweep(weight, hessian, grid, block_size=block_size, damp=damp, act_order=act_order)[0]


def _sweep(weight: Tensor, hessian: Tensor, grid: Tensor, *, block_size: int, damp: float, act_order: bool
           ) -> tuple[Tensor, Tensor]:
    """`gptq_sweep`, and each weight's value at its rounding (after the updates of the columns before it)."""
    check_int("block_size", block_size, 1)
    if weight.dim() != 2 or hessian.shape != (weight.shape[1], weight.shape[1]):
        raise ValueError(f"gptq_sweep: weight must be [rows, d] and hessian [d, d], got {tuple(weight.shape)} and "
                         f"{tuple(hessian.shape)}")
    if not (math.isfinite(damp) and damp > 0):
        raise ValueError(f"damp must be a finite number > 0, got {damp!r}")
    acc = _acc_dtype(weight.device)
    W = weight.detach().to(acc).clone()
    H = hessian.detach().to(device=weight.device, dtype=acc).clone()
    grid = grid.detach().to(device=weight.device, dtype=acc)
    mids = (grid[1:] + grid[:-1]) / 2
    d = W.shape[1]
    dead = H.diagonal() == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    perm = None
    if act_order:
        perm = torch.argsort(H.diagonal(), descending=True, stable=True)
        W, H = W[:, perm], H[perm][:, perm]
    H.diagonal().add_(damp * H.diagonal().mean())
    L, info = torch.linalg.cholesky_ex(H)
    if int(info) != 0:
        raise ValueError("gptq: the dampened Hessian is not positive definite (not a Gram matrix, or round-off): "
                         "raise damp")
    U = torch.linalg.cholesky(torch.cholesky_inverse(L), upper=True)  # H⁻¹ = UᵀU
    Wt = W.T.contiguous()  # [d, rows]: a column of W is a contiguous row here
    index = torch.empty(Wt.shape, dtype=torch.long, device=W.device)
    for i1 in range(0, d, block_size):
        i2 = min(i1 + block_size, d)
        W1, U1 = Wt[i1:i2], U[i1:i2, i1:i2]  # a view: Wt keeps each column's value at its rounding
        E1 = torch.zeros_like(W1)
        for i in range(i2 - i1):
            w = W1[i]
            idx = torch.bucketize(w, mids)  # w ≤ midpoint → the lower value, as landscape.quantize.nearest
            err = (w - grid[idx]) / U1[i, i]
            W1[i + 1:] -= U1[i, i + 1:, None] * err[None, :]
            E1[i] = err
            index[i1 + i] = idx
        Wt[i2:] -= U[i1:i2, i2:].T @ E1
    index, swept = index.T, Wt.T
    if perm is not None:
        inverse = torch.argsort(perm)
        index, swept = index[:, inverse], swept[:, inverse]
    return index.contiguous(), swept.contiguous()


def _codebook(index: Tensor, values: Tensor) -> Codebook:
    """The Codebook of grid indices [N] into `values` (the grid in the weights' dtype), unused values dropped."""
    counts = torch.bincount(index, minlength=values.numel())
    used = counts > 0
    return Codebook(values=values[used], index=(torch.cumsum(used, 0) - 1)[index], counts=counts[used])


# ------------------------------------------------------------------------------------------- the whole model


def _layers(model: nn.Module, names: Iterable[str]) -> dict[str, nn.Module]:
    """name → its Linear/Conv1d/Conv2d module; a one-line ValueError naming any other selected parameter."""
    return quantized_modules(model, names, "gptq", types=SUPPORTED,
                             what="Linear (and transformers' Conv1D), Conv1d and Conv2d modules from their inputs")


def _device(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


class _Stop(Exception):
    """Raised by the input hook to end a calibration forward early."""


@torch.no_grad()
def _hessian(model: nn.Module, module: nn.Module, name: str, batches: list, device: torch.device) -> Tensor:
    """H = 2 X Xᵀ / n of `module`'s inputs over `batches` (model's forward), [groups, d, d] in float64."""
    acc = _acc_dtype(device)
    state: dict[str, Any] = {"h": None, "n": 0, "calls": 0, "stop_at": None}

    def hook(mod, args):
        gram, count = _gram(mod, args[0].detach(), acc)
        state["h"] = gram if state["h"] is None else state["h"] + gram
        state["n"] += count
        state["calls"] += 1
        if state["calls"] == state["stop_at"]:
            raise _Stop  # the rest of this forward cannot change H

    handle = module.register_forward_pre_hook(hook)
    try:
        for i, (x, _) in enumerate(batches):
            state["calls"] = 0
            try:
                model(x.to(device) if isinstance(x, Tensor) else x)
            except _Stop:
                pass
            if i == 0:  # the later forwards stop once the layer has had as many inputs as in this whole one
                state["stop_at"] = state["calls"] or None
    finally:
        handle.remove()
    if state["n"] == 0:
        raise ValueError(f"gptq: {name} ({type(module).__name__}) was not called by the model's forward on the "
                         f"calibration batches (its parent uses the weight directly, e.g. nn.MultiheadAttention's "
                         f"out_proj), so it has no inputs: leave it out with --params weights,-{name}")
    return state["h"] * (2 / state["n"])


def _calibrate(model: nn.Module, batches: list, config: GPTQConfig, seed: int) -> dict[str, Codebook]:
    if not batches:
        raise ValueError("gptq: calibrate got no batches")
    work = copy.deepcopy(model).eval()  # quantized layer by layer; the caller's model stays as it is
    layers = _layers(work, select_params(work, config.params))
    device = _device(work)
    seeded = {"seed": seed} if config.grid == "kmeans" else {}
    books = {}
    for name, module in layers.items():
        weight = module.weight
        check_finite(f"weight {name}", weight.detach())
        grid = QUANTIZERS[config.grid](weight.detach().flatten(), config.bits, **seeded).values
        hessian = _hessian(work, module, name, batches, device)
        g = hessian.shape[0]
        matrix = output_major(module, weight.detach())  # [out, in, …]: a Conv1D's weight transposed
        matrix = matrix.reshape(g, matrix.shape[0] // g, -1)
        index = torch.cat([gptq_sweep(matrix[j], hessian[j], grid, block_size=config.block_size,
                                      damp=config.damp, act_order=config.act_order) for j in range(g)])
        index = output_major(module, index.reshape(output_major(module, weight).shape))  # the weight's own layout
        books[name] = _codebook(index.flatten(), grid)
        with torch.no_grad():
            weight.copy_(books[name].apply().view_as(weight))  # the next layers see this layer quantized
    return books


class GPTQ(Compressor):
    """GPTQ post-training quantization as a compressor: no penalty; `calibrate(model, batches)` quantizes a copy
    layer by layer (module docstring) and keeps each layer's codebook, which `codebooks`/`clamp` then give.

    Args:
        config: the settings (`GPTQConfig`).
        seed: k-means initialisation of the grid (grid "kmeans"); nothing else is drawn.

    Examples:
        >>> import torch, torch.nn as nn
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> gptq = GPTQ(GPTQConfig(bits=2))
        >>> gptq.calibration()
        1024
        >>> gptq.calibrate(gptq.prepare(model), [(torch.randn(32, 4), torch.zeros(32))])
        >>> clamped = gptq.clamp(model)
        >>> clamped.mean_bits() <= 2, [len(clamped.model[i].weight.unique()) <= 4 for i in (0, 2)]
        (True, [True, True])
    """

    name = "gptq"
    label = "GPTQ"

    @classmethod
    def settings_for_bits(cls, bits: int) -> dict[str, Any]:
        """{"bits": bits}.

        Args:
            bits: bits per weight.

        Returns:
            The config fields.

        Examples:
            >>> GPTQ.settings_for_bits(3)
            {'bits': 3}
        """
        return {"bits": bits}

    def __init__(self, config: GPTQConfig = GPTQConfig(), *, seed: int = 0):
        self.config, self.params, self.seed = config, config.params, seed
        self.books: dict[str, Codebook] | None = None  # the last calibrate's codebooks

    def prepare(self, model: nn.Module) -> nn.Module:
        """Check that every selected parameter is a Linear/Conv1d/Conv2d weight (before any training); returns
        the model itself.

        Args:
            model: the pretrained model.

        Returns:
            `model`.

        Examples:
            >>> import torch.nn as nn
            >>> model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
            >>> GPTQ().prepare(model) is model
            True
            >>> GPTQ(GPTQConfig(params="all")).prepare(model)  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            ValueError: gptq quantizes the weights of Linear (and transformers' Conv1D), Conv1d and Conv2d modules ...; 0.bias ...
        """
        _layers(model, self.selected(model))
        return model

    def calibration(self) -> int:
        """`calibration_images`: the unaugmented training images `calibrate` is given before the clamp.

        Returns:
            The number of images.

        Examples:
            >>> GPTQ(GPTQConfig(calibration_images=256)).calibration()
            256
        """
        return self.config.calibration_images

    def calibrate(self, model: nn.Module, batches: Iterable) -> None:
        """Quantize a copy of `model` layer by layer with GPTQ on `batches` (all of them; module docstring) and keep
        each layer's codebook for `codebooks`/`clamp`. `model` is not modified.

        Args:
            model: the model (what `prepare` returned), on the device to compute on.
            batches: (x, y) batches (y unused); x is moved to the model's device.

        Examples:
            >>> import torch, torch.nn as nn
            >>> model = nn.Sequential(nn.Linear(4, 3))
            >>> gptq = GPTQ(GPTQConfig(bits=2))
            >>> gptq.calibrate(model, [(torch.randn(8, 4), None)])
            >>> sorted(gptq.codebooks(model)), gptq.codebooks(model)["0.weight"].k <= 4
            (['0.weight'], True)
        """
        self.books = _calibrate(model, list(batches), self.config, self.seed)

    def penalty(self, model: nn.Module) -> Tensor:
        """0: GPTQ trains nothing (with epochs ≥ 1 the run is plain fine-tuning).

        Args:
            model: the module being trained.

        Returns:
            A zero scalar on the model's device.

        Examples:
            >>> import torch.nn as nn
            >>> GPTQ().penalty(nn.Linear(2, 2)).item()
            0.0
        """
        return torch.zeros((), device=_device(model))

    def codebooks(self, model: nn.Module) -> dict[str, Codebook]:
        """The codebooks of the last `calibrate` (the model is not read but for a check of its layers).

        Args:
            model: the model calibrated.

        Returns:
            Parameter name → `Codebook`; RuntimeError before `calibrate`, or when the model's selected layers are
                not those calibrated.

        Examples:
            >>> import torch.nn as nn
            >>> GPTQ().codebooks(nn.Linear(2, 2))
            Traceback (most recent call last):
            ...
            RuntimeError: GPTQ needs calibrate(model, batches) before clamping
        """
        if self.books is None:
            raise RuntimeError("GPTQ needs calibrate(model, batches) before clamping")
        params = self.selected(model)
        if set(params) != set(self.books) or any(p.numel() != self.books[n].index.numel() for n, p in params.items()):
            raise RuntimeError("GPTQ was calibrated on a model with other layers; calibrate this one")
        return dict(self.books)

    def stats(self, model: nn.Module) -> dict[str, float]:
        """mean_clusters, mean_bits of the calibrated codebooks; {} before `calibrate` (during fine-tuning).

        Args:
            model: the module being trained.

        Returns:
            Name → float.

        Examples:
            >>> import torch.nn as nn
            >>> GPTQ().stats(nn.Linear(2, 2))
            {}
        """
        return {} if self.books is None else super().stats(model)


def gptq_quantize(model: nn.Module, batches: Iterable, config: GPTQConfig = GPTQConfig(), *,
                  seed: int = 0) -> Clamped:
    """The zero-epoch GPTQ baseline: a copy of `model` quantized by GPTQ on the first `config.calibration_images`
    images of `batches` (the caller's model untouched).

    Args:
        model: the model, on the device to compute on.
        batches: (x, y) batches (y unused), e.g. unaugmented training batches; read until
            `config.calibration_images` images (the last batch trimmed).
        config: the settings.
        seed: k-means initialisation of the grid (grid "kmeans").

    Returns:
        A `Clamped`: the quantized copy and each layer's codebook (at most 2^bits values per layer).

    Examples:
        >>> import torch, torch.nn as nn
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,))) for _ in range(2)]
        >>> q = gptq_quantize(model, data, GPTQConfig(bits=2, calibration_images=24))
        >>> sorted(q.codebooks), q.mean_bits() <= 2, q.model is model
        (['0.weight', '2.weight'], True, False)
    """
    taken, left = [], config.calibration_images
    for x, y in batches:
        if left <= 0:
            break
        taken.append((x[:left], y[:left] if isinstance(y, Tensor) and y.dim() > 0 else y))
        left -= len(taken[-1][0])
    compressor = GPTQ(config, seed=seed)
    compressor.calibrate(compressor.prepare(model), taken)
    return compressor.clamp(model)
