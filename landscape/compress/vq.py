"""VQ-QAT (Gou & Gupta, "Efficient VQ-QAT and Mixed Vector/Linear quantized Neural Networks"): each
layer's weights are cut into sub-vectors of d consecutive weights (flattened order), and every sub-vector is
replaced by one of 2^b learnable codewords: the entry with the highest cosine similarity (the paper's
assignment, against codebook collapse), top-1 (hard) selection, and a straight-through estimator (STE)
instead of DKM's weighted average. Bits per weight: b/d (the b-bit index of a sub-vector, shared by its d
weights; the codebook itself, 2^b·d floats per layer, is not counted, as the scalar methods do not count
their cluster values).

Cosine assignment ignores a sub-vector's length, and the codeword it picks carries one length for the whole
angular sector. Measured on the adapted ResNet-20 after the initial Lloyd iterations, relative squared
error Σ(θ − q)²/Σθ² at d = 2 and b = 4/6/8 (2/3/4 bits per weight): cosine 0.30/0.29/0.26, euclidean
0.115/0.033/0.010, scalar k-means at 2/3/4 bits 0.14/0.042/0.012. `assign="euclidean"` is offered for
that reason (and is required for d = 1, where the cosine only sees the sign).

Training forward (the STE). `prepare(model)` replaces the forward of every conv/linear module of the
trainer's own copy: in training mode it uses the quantized weight q + (θ − sg(θ)), whose value is
q = C[a(θ)] and whose gradient reaches the latent weights θ (identity, the STE) and the used codewords C
(each gets the sum over its sub-vectors). The parameters and the state dict stay those of the plain
network, so the run file holds the latent weights as the "compressed" state and the analysis layer needs no
special case. In eval mode the module is the plain network with its latent weights; the quantized network
is `clamp(model)` (hard assignment), a copy with the plain forward back. The trainer is untouched.

Penalty: λ·Σ_l Σ_i (θ_i − sg(q_i))², the commitment term of VQ-VAE: it pulls each latent weight towards its
codeword (the assignment distance), while the codewords learn from the task loss through the STE (their
own optimizer group, lr `codebook_lr`).

Codebook collapse. Besides the cosine assignment, every training forward re-seeds dead entries (no
sub-vector assigned) with the worst-reconstructed sub-vectors; `stats` reports the used entries. The
codebooks start from `init_iters` Lloyd iterations (same assignment, mean update, same re-seeding) from 2^b
distinct sub-vectors drawn with the seed. A layer with fewer than 2^b sub-vectors cannot use all entries.

d not dividing a layer's size N: the last sub-vector is padded with zeros (at most d − 1, used only to
assign it) and the padding is dropped on reconstruction, so every layer is quantized; that layer stores
ceil(N/d) indices, i.e. ceil(N/d)·b/N bits per weight, slightly above b/d.

The ablation of the top-1 STE (`forward="soft"`, the issue's "DKM's soft reconstruction as the ablation of
VQ-QAT's top-1 STE"). Everything else held fixed (the same assignment score, the same learned codebook and its
optimizer group, the same commitment penalty, re-seeding and hard clamp), the training forward uses DKM's
attention-weighted reconstruction instead of the hard codeword with an STE:

    A = softmax(s(v, C)/τ) over the 2^b entries,   W̃ = A·C,   gradients through A and C (no STE)
    s = cosine similarity (assign="cosine"; τ unitless, cos ∈ [−1, 1]) or −‖v − c‖/σ_l (assign="euclidean";
    τ in units of the layer's pretrained weight std σ_l, as DKM's τ here)

It differs from DKM (compress/dkm.py) in two ways, on purpose: no k-means iterations inside the forward (the
codewords are VQ-QAT's, learned by SGD), and the score is VQ's. So the only change against `forward="ste"` is
the estimator; DKM itself is the row that changes the codebook learning too. τ → 0 gives the hard codeword in
the forward (tests/compress/test_vq.py), with exact gradients of a near-one-hot A instead of the STE's.

Codebooks for the rest of the toolkit: `codebooks()` returns a `VectorCodebook` per layer: the usual
per-weight view (values = the distinct reconstructed weight values, index, counts; `apply()` gives the
clamped layer, so the base class's clamp and the run file's /final/clusters work unchanged) whose `bits`
are the vector bits, log2(used entries)·ceil(N/d)/N (b/d when all 2^b entries are used and d divides N),
not log2 of the number of distinct scalar values.

Per-layer measurements (`layer_stats=True`, off by default): every `stats` call adds, for every layer, the
measurements the issue asks to log during training for the ablations (cosine vs euclidean assignment, top-1 STE vs
the soft forward), named `layer:<param>:<metric>` (the run file stores every stat whose name holds a ":" as its
own /scalars dataset, store.py):

    entries     codewords in use (at most 2^b)
    dead        2^b − entries
    perplexity  exp(H(usage)), H the entropy (nats) of the codewords' share of the sub-vectors: 2^b when all are
                used equally, 1 when one takes every sub-vector
    changed     fraction of the sub-vectors whose codeword differs from the previous `stats` call's (NaN on the
                first call, and after a resume: the previous assignment is not part of the checkpoint)
    rel_error   Σ(θ − q)²/Σθ², the clamp's relative squared reconstruction error (NaN for an all-zero layer)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..checks import check_int
from ..quantize import Codebook
from .base import Clamped, Compressor, check_finite, mean_bits
from .forward import layer_forward, patch, quantized_modules, unpatch

ASSIGNMENTS = ("cosine", "euclidean")
FORWARDS = ("ste", "soft")  # the training forward: top-1 codeword with an STE (the paper), or DKM's A·C
MAX_CODEBOOK_BITS = 12  # 4096 entries: assignment costs (N/d)·2^b·d per layer per step


@dataclass(frozen=True)
class VQConfig:
    """Vector-quantization QAT's settings (`--method vq`): units beside each field.

    Examples:
        >>> config = VQConfig(dim=2, codebook_bits=6)
        >>> config.bits_per_weight, config.assign
        (3.0, 'cosine')
        >>> VQConfig(assign="dot")
        Traceback (most recent call last):
        ...
        ValueError: assign must be one of cosine, euclidean, got 'dot'
    """

    dim: int = 4  # d: consecutive weights (flattened order) per sub-vector; bits/weight = codebook_bits/d
    codebook_bits: int = 8  # b: 2^b codebook entries per layer, 1..12; a sub-vector stores a b-bit index
    assign: str = "cosine"  # sub-vector → entry: "cosine" (highest cosine, the paper) | "euclidean"
    strength: float = 1.0  # λ of λ·Σ(θ − sg(q))², pulling weights to codewords. Loss per (weight unit)²
    codebook_lr: float | None = None  # SGD step size of the codewords (None: the trainer's lr)
    init_iters: int = 20  # Lloyd iterations initialising each codebook from the pretrained sub-vectors
    forward: str = "ste"  # training forward: "ste" (top-1 codeword + STE, the paper) | "soft" (A·C, the ablation)
    tau: float = 0.05  # soft forward's temperature: unitless (cosine) or in units of σ_l (euclidean); > 0
    params: str = "weights"  # which weights are quantized: conv/linear weights (a selection: landscape/params.py)
    layer_stats: bool = False  # stats add layer:<param>:<metric> per layer (entries, dead, perplexity, changed,
    #                            rel_error: the module docstring), stored in the run file's /scalars

    def __post_init__(self):
        check_int("dim", self.dim, 1, 64)
        check_int("codebook_bits", self.codebook_bits, 1, MAX_CODEBOOK_BITS)
        if self.assign not in ASSIGNMENTS:
            raise ValueError(f"assign must be one of {', '.join(ASSIGNMENTS)}, got {self.assign!r}")
        if self.assign == "cosine" and self.dim == 1:
            raise ValueError("cosine assignment needs dim ≥ 2 (in 1-D it only sees the sign); "
                             "use assign=euclidean for scalar codebooks")
        if not math.isfinite(self.strength) or self.strength < 0:
            raise ValueError(f"strength must be a finite number ≥ 0, got {self.strength}")
        if self.codebook_lr is not None and (not math.isfinite(self.codebook_lr) or self.codebook_lr < 0):
            raise ValueError(f"codebook_lr must be a finite number ≥ 0 or None, got {self.codebook_lr}")
        check_int("init_iters", self.init_iters, 0)
        if self.forward not in FORWARDS:
            raise ValueError(f"forward must be one of {', '.join(FORWARDS)}, got {self.forward!r}")
        if not math.isfinite(self.tau) or self.tau <= 0:
            raise ValueError(f"tau (the soft forward's temperature) must be a finite number > 0, got {self.tau}")

    @property
    def bits_per_weight(self) -> float:
        """Index bits per weight, codebook_bits / dim (the codebooks themselves not counted).

        Examples:
            >>> VQConfig(dim=2, codebook_bits=6).bits_per_weight
            3.0
        """
        return self.codebook_bits / self.dim


@dataclass(frozen=True, eq=False)
class VectorCodebook(Codebook):
    """The per-weight view of a vector-quantized layer (see the module docstring), with vector bits."""

    entries: int  # codewords in use
    n_sub: int  # sub-vectors, ceil(N/d)

    @property
    def bits(self) -> float:
        """log2(used entries) bits per sub-vector, spread over the layer's N weights."""
        return math.log2(self.entries) * self.n_sub / self.index.numel() if self.entries > 1 else 0.0

    @property
    def storage_bits(self) -> float:
        return (self.entries - 1).bit_length() * self.n_sub / self.index.numel()


def subvectors(theta: Tensor, dim: int) -> Tensor:
    """[ceil(N/d), d] sub-vectors of the 1-D weights, the last one zero-padded."""
    pad = -theta.numel() % dim
    return F.pad(theta, (0, pad)).view(-1, dim)


@torch.no_grad()
def assign(v: Tensor, codebook: Tensor, how: str) -> Tensor:
    """Entry of every sub-vector: highest cosine similarity, or smallest distance (ties: lower index)."""
    if how == "cosine":
        return (F.normalize(v, dim=1) @ F.normalize(codebook, dim=1).T).argmax(1)
    return ((codebook * codebook).sum(1) - 2 * v @ codebook.T).argmin(1)


@torch.no_grad()
def reseed_dead(codebook: Tensor, v: Tensor, index: Tensor, how: str) -> Tensor:
    """Move each unused entry onto one of the worst-reconstructed sub-vectors (in place); returns the
    new assignment."""
    dead = torch.nonzero(torch.bincount(index, minlength=len(codebook)) == 0).flatten()
    if len(dead) == 0:
        return index
    error = ((v - codebook[index]) ** 2).sum(1)
    worst = torch.argsort(error, descending=True)[: len(dead)]
    worst = worst[error[worst] > 0]
    if len(worst) == 0:
        return index
    codebook[dead[: len(worst)]] = v[worst]
    return assign(v, codebook, how)


@torch.no_grad()
def init_codebook(v: Tensor, k: int, how: str, iters: int, generator: torch.Generator) -> Tensor:
    """Lloyd iterations (the given assignment, member-mean update, dead entries re-seeded) from k distinct
    sub-vectors drawn with `generator` (all of them, repeated, when there are fewer than k)."""
    n = len(v)
    pick = torch.randperm(n, generator=generator)[:k] if n >= k else torch.arange(k) % n
    codebook = v[pick.to(v.device)].clone()
    for _ in range(iters):
        index = reseed_dead(codebook, v, assign(v, codebook, how), how)
        counts = torch.bincount(index, minlength=k)
        sums = torch.zeros_like(codebook).index_add_(0, index, v)
        used = counts > 0
        codebook[used] = sums[used] / counts[used, None]
    return codebook


@dataclass(eq=False)
class LayerVQ:
    """One layer's codebook and assignment rule. A plain object, not a Module: the codebook stays out of the
    model's state dict (it lives in the compressor and its optimizer group)."""

    codebook: nn.Parameter  # [2^b, d]
    dim: int
    how: str
    forward: str = "ste"  # "ste" | "soft" (VQConfig.forward)
    tau: float = 0.05  # the soft forward's temperature (VQConfig.tau)
    scale: float = 1.0  # σ_l of the pretrained weights: the unit of τ for the euclidean score

    def quantize(self, theta: Tensor, *, reseed: bool = False) -> Tensor:
        """The hard reconstruction q of `theta` (any shape), differentiable in the codebook only."""
        flat = theta.detach().flatten()
        v = subvectors(flat, self.dim)
        index = assign(v, self.codebook, self.how)
        if reseed:
            index = reseed_dead(self.codebook.data, v, index, self.how)
        return self.codebook[index].flatten()[: flat.numel()].view_as(theta)

    def ste(self, theta: Tensor) -> Tensor:
        """Value q, gradient identity to θ and the member sum to the used codewords."""
        return self.quantize(theta, reseed=True) + (theta - theta.detach())

    def soft(self, theta: Tensor) -> Tensor:
        """W̃ = softmax(s(v, C)/τ)·C (module docstring), differentiable in θ and C; dead entries re-seeded first."""
        flat = theta.flatten()
        v = subvectors(flat, self.dim)
        reseed_dead(self.codebook.data, v.detach(), assign(v.detach(), self.codebook, self.how), self.how)
        if self.how == "cosine":
            score = F.normalize(v, dim=1) @ F.normalize(self.codebook, dim=1).T
        else:
            score = -torch.cdist(v, self.codebook) / self.scale
        out = torch.softmax(score / self.tau, dim=1) @ self.codebook
        return out.flatten()[: flat.numel()].view_as(theta)


@torch.no_grad()
def vector_codebook(theta: Tensor, layer: LayerVQ) -> tuple[VectorCodebook, Tensor]:
    """The hard assignment of a layer's weights to its codebook, as the per-weight `VectorCodebook` the clamp
    applies, and the codeword of every sub-vector.

    Args:
        theta: the layer's weights (any shape; not modified).
        layer: its codebook and assignment rule.

    Returns:
        (the VectorCodebook, the [ceil(N/d)] int64 codeword index of each sub-vector).

    Examples:
        >>> import torch, torch.nn as nn
        >>> layer = LayerVQ(nn.Parameter(torch.tensor([[1.0, 0.0], [0.0, 1.0]])), dim=2, how="cosine")
        >>> book, index = vector_codebook(torch.tensor([2.0, 0.1, 0.2, 3.0, 0.5]), layer)
        >>> index.tolist(), book.apply().tolist(), book.entries, book.bits
        ([0, 1, 0], [1.0, 0.0, 0.0, 1.0, 1.0], 2, 0.6)
    """
    flat = theta.detach().flatten()
    index = assign(subvectors(flat, layer.dim), layer.codebook, layer.how)
    q = layer.codebook.detach()[index].flatten()[: flat.numel()]
    values, inverse, counts = torch.unique(q, return_inverse=True, return_counts=True)
    entries = int(torch.unique(index).numel())
    return VectorCodebook(values, inverse, counts, entries=entries, n_sub=len(index)), index


@torch.no_grad()
def usage_stats(index: Tensor, k: int, theta: Tensor, q: Tensor, previous: Tensor | None = None) -> dict[str, float]:
    """One layer's codebook measurements (module docstring, "Per-layer measurements"): entries, dead,
    perplexity, changed, rel_error.

    Args:
        index: the entry (codeword or grid level) of every sub-vector (or weight), int64 in [0, k).
        k: the entries the codebook has (2^b).
        theta: the layer's latent weights (flattened or not).
        q: their reconstruction (same number of elements).
        previous: the `index` of the previous measurement (None, or another length: `changed` is NaN).

    Returns:
        Metric name → float.

    Examples:
        >>> import torch
        >>> theta, q = torch.tensor([1.0, 1.0, 2.0, 2.0]), torch.tensor([1.0, 1.0, 2.0, 1.0])
        >>> usage_stats(torch.tensor([0, 0, 1, 1]), 4, theta, q, previous=torch.tensor([0, 1, 1, 1]))
        {'entries': 2.0, 'dead': 2.0, 'perplexity': 2.0, 'changed': 0.25, 'rel_error': 0.1}
    """
    counts = torch.bincount(index.flatten(), minlength=k).double()
    share = counts[counts > 0] / counts.sum()
    entries = float((counts > 0).sum())
    perplexity = math.exp(float(-(share * share.log()).sum()))
    changed = (float((index != previous).double().mean())
               if previous is not None and previous.shape == index.shape else math.nan)
    norm = float((theta.detach().double() ** 2).sum())
    error = float(((theta.detach().flatten().double() - q.detach().flatten().double()) ** 2).sum())
    return {"entries": entries, "dead": float(k) - entries, "perplexity": perplexity, "changed": changed,
            "rel_error": error / norm if norm > 0 else math.nan}


def _vq_forward(module: nn.Module, x: Tensor) -> Tensor:
    """The forward `VQ.prepare` installs on a conv/linear module: quantized weights (STE, or the soft
    reconstruction) while training."""
    layer = module._vq
    w = (layer.soft if layer.forward == "soft" else layer.ste)(module.weight) if module.training else module.weight
    return layer_forward(module, x, w)


class VQ(Compressor):
    name = "vq"

    @classmethod
    def settings_for_bits(cls, bits: int) -> dict[str, Any]:
        # d = 2, the smallest true vector, with 2·bits index bits: bits/d = `bits` bits per weight (paper: b/d)
        return {"dim": 2, "codebook_bits": 2 * bits}

    @classmethod
    def vector_dims(cls, run) -> int | None:
        return run.config.get("compressor", {}).get("dim")

    @classmethod
    def label_for(cls, settings: Mapping[str, Any]) -> str:
        soft = settings.get("forward", VQConfig.forward) == "soft"
        assign = settings.get("assign", VQConfig.assign)
        return "VQ-QAT" + (" (soft A·C)" if soft else "") + ("" if assign == "cosine" else f" ({assign})")

    def __init__(self, config: VQConfig = VQConfig(), *, seed: int = 0):
        self.config, self.seed, self.params = config, seed, config.params
        self.layers: dict[str, LayerVQ] = {}
        self._previous: dict[str, Tensor] = {}  # each layer's assignment at the last stats call (layer_stats)

    def prepare(self, model: nn.Module) -> nn.Module:
        """Initial codebooks from the pretrained weights, and the STE forward on each quantized module."""
        cfg, generator = self.config, torch.Generator().manual_seed(self.seed)
        self.layers = {}
        selected = self.selected(model)
        owners = quantized_modules(model, selected, "vq")  # the STE lives in the module's forward
        for name, p in selected.items():
            check_finite(f"pretrained parameter {name}", p.detach())
            v = subvectors(p.detach().flatten(), cfg.dim)
            codebook = init_codebook(v, 2**cfg.codebook_bits, cfg.assign, cfg.init_iters, generator)
            scale = float(p.detach().float().std()) if p.numel() > 1 else 0.0
            layer = self.layers[name] = LayerVQ(nn.Parameter(codebook), cfg.dim, cfg.assign, cfg.forward, cfg.tau,
                                                scale if scale > 0 else 1.0)
            patch(owners[name], "_vq", layer, _vq_forward)
        return model

    def _check_prepared(self, model: nn.Module) -> dict[str, nn.Parameter]:
        params = self.selected(model)
        if set(params) != set(self.layers):
            raise RuntimeError("VQ.prepare(model) must be called first")
        return params

    def penalty(self, model: nn.Module) -> Tensor:
        params = self._check_prepared(model)
        total = torch.zeros((), device=next(iter(params.values())).device) if params else torch.zeros(())
        for name, p in params.items():
            total = total + ((p - self.layers[name].quantize(p).detach()) ** 2).sum()
        return self.config.strength * total

    def codebooks(self, model: nn.Module) -> dict[str, VectorCodebook]:
        return {name: vector_codebook(p, self.layers[name])[0] for name, p in self._check_prepared(model).items()}

    def clamp(self, model: nn.Module) -> Clamped:
        """Hard assignment on a copy, which gets the plain forward back."""
        clamped = super().clamp(model)
        return Clamped(unpatch(clamped.model, "_vq"), clamped.codebooks)

    def param_groups(self) -> list[dict[str, Any]]:
        if not self.layers:
            return []
        group = {"params": [layer.codebook for layer in self.layers.values()], "weight_decay": 0.0}
        return [group if self.config.codebook_lr is None else {**group, "lr": self.config.codebook_lr}]

    def learnable(self) -> dict[str, nn.Parameter]:
        return {f"{name}.codebook": layer.codebook for name, layer in self.layers.items()}

    def stats(self, model: nn.Module) -> dict[str, float]:
        """mean_clusters: codewords in use per layer; used_entries: their fraction of 2^b; nominal_bits:
        b/d; assignment_distance: mean squared distance weight ↔ reconstruction; with `layer_stats`,
        layer:<param>:<metric> per layer (module docstring)."""
        params = self._check_prepared(model)
        assigned = {name: vector_codebook(p, self.layers[name]) for name, p in params.items()}
        books = {name: book for name, (book, _) in assigned.items()}
        with torch.no_grad():
            sq = sum(((p.detach().flatten() - books[n].apply()) ** 2).sum().item() for n, p in params.items())
        out = {"mean_clusters": sum(b.entries for b in books.values()) / max(len(books), 1),
               "mean_bits": mean_bits(books),
               "used_entries": sum(b.entries for b in books.values()) / max(len(books), 1)
               / 2**self.config.codebook_bits,
               "nominal_bits": self.config.bits_per_weight,
               "assignment_distance": sq / max(sum(p.numel() for p in params.values()), 1)}
        if self.config.layer_stats:
            for name, p in params.items():
                book, index = assigned[name]
                measured = usage_stats(index, 2**self.config.codebook_bits, p, book.apply(),
                                       self._previous.get(name))
                out.update({f"layer:{name}:{metric}": value for metric, value in measured.items()})
                self._previous[name] = index
        return out

    def state_dict(self) -> dict:
        return {"codebooks": {k: v.codebook.detach().clone() for k, v in self.layers.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Restores the codebooks in place (the optimizer holds those tensors); `prepare` must have run."""
        for name, value in state["codebooks"].items():
            check_finite(f"VQ codebook of {name}", value)
            if name not in self.layers or self.layers[name].codebook.shape != value.shape:
                raise ValueError(f"VQ state has a codebook for {name} {tuple(value.shape)} that does not fit")
            with torch.no_grad():
                self.layers[name].codebook.copy_(value)
