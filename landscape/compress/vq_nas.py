"""Mixed vector/linear quantized networks chosen by differentiable search (Gou & Gupta, "Efficient VQ-QAT and
Mixed Vector/Linear quantized Neural Networks", the NAS part; `--method vq-nas`).

Every quantized layer l may take one of a set of candidate quantizers (`candidates`, the same set for every layer):

    vq:<b>x<d>   VQ-QAT (vq.py): sub-vectors of d consecutive weights, each replaced by one of 2^b learnable
                 codewords (cosine assignment by default, top-1 with a straight-through estimator);
                 b·ceil(N/d)/N bits per weight (b/d where d divides the layer's size N)
    lin:<b>      a uniform grid of 2^b levels evenly spaced over the layer's *pretrained* [min, max] (the grid of
                 `quantize.uniform`), each weight rounded to the nearest level, with a straight-through
                 estimator; b bits per weight

The default set is the issue's: VQ with b ∈ {4, 6, 8} × d ∈ {2, 4} and linear at 2, 3, 4 and 8 bits.

Search. Each layer has architecture logits α_l (one per candidate, starting at 0: every candidate equally likely)
and the distribution p_l = softmax(α_l). While searching, the training forward uses

    W_l = Σ_k w_lk · Q_lk(θ_l) + (θ_l − sg(θ_l))
    w_l = p_l                                   (relaxation="softmax", DARTS's continuous relaxation)
    w_l = softmax((α_l + g)/τ), g ~ Gumbel(0,1) (relaxation="gumbel", a fresh sample every forward: FBNet's /
                                                 ProxylessNAS's Gumbel-softmax, τ = `tau`)

where Q_lk(θ) is candidate k's quantized weight, computed from sg(θ) (VQ: the codewords C[a(θ)], differentiable in
the codebook; linear: the nearest level, a constant). Since Σ_k w_lk = 1 the latent weights get the identity
gradient (the STE of each candidate), each codebook gets w_lk times VQ-QAT's member-sum gradient, and α_l gets the
task loss's preference between the candidates' reconstructions, ∂L/∂w_lk = ⟨∂L/∂W_l, Q_lk(θ_l)⟩. The loss added to
the task loss (`penalty`) is

    L_C = λ·E_p[bits] + μ·max(0, E_p[bits] − B) + λ_c·Σ_l Σ_k sg(p_lk)·Σ_i (θ_li − sg(Q_lk(θ_l))_i)²
    E_p[bits] = Σ_l N_l Σ_k p_lk·bits_lk / Σ_l N_l          (the parameter-weighted mean bits per weight)

λ = `size_penalty` (loss per bit per weight), B = `budget_bits` (0: no budget) with μ = `budget_penalty` (loss per
bit per weight above the budget: a hinge, so a configuration under the budget feels no pull from it; with
`budget_mode="target"` the term is μ·|E_p[bits] − B| instead, pulling the size up to the budget too), λ_c =
`strength` (VQ-QAT's commitment term, weighted by each candidate's probability). The commitment's weights p are
detached, so that α learns from the task loss and the size terms only: with them attached the commitment alone
would pull α towards the candidate of smallest reconstruction error, i.e. the most bits. The expected size uses
p = softmax(α) in both relaxations (the distribution whose samples the Gumbel-softmax relaxes), so the size
gradient is noise-free.

Choices, and why:
  * α is trained *jointly* with the weights, on the same training batches: every trainer step's backward gives
    ∂L/∂α beside the weights' gradients. DARTS's alternating first-order variant steps α on a held-out validation
    split, which the trainer does not have (the run's data are a training split and the test split; the test split
    must not steer the search).
  * α's optimizer (`arch_optimizer`) is Adam by default, as DARTS's (β = (0.5, 0.999), no weight decay, a constant
    step `arch_lr`), stepped by the compressor right after each trainer step (`after_step`, on the gradients the
    trainer averaged over ranks). Why not the trainer's SGD: ∂L/∂α is a difference of reconstructions, small beside
    a weight gradient and, through the size terms, proportional to each layer's share N_l/N of the weights, so SGD
    moves the α of a small layer by almost nothing; measured on ResNet-20 (budget 3 bits, 40 search steps, SGD at
    lr 0.1) every p_l stayed within 0.05–0.13 of uniform 0.1 and the argmax configuration fell to 1.53 bits, far
    off the budget. Adam's per-coordinate normalisation moves each α by about `arch_lr` per step wherever its
    gradient keeps a sign. `arch_optimizer="sgd"` keeps the older behaviour (an SGD group of the trainer: its
    Nesterov momentum and learning-rate schedule, lr `arch_lr`).
  * The search lasts `search_steps` SGD steps counted from the run's start; then every layer keeps its argmax
    candidate (ties: the earlier candidate of `candidates`) and fine-tunes with it alone until the end (top-1
    STE for VQ, STE for linear), the other candidates no longer computed. A fraction of the run is not offered:
    a compressor does not see the run's length. The step count comes from `wrap_optimizer`, the trainer's one
    hook into a compressor's optimizer: it registers a post-step hook on the trainer's SGD (the optimizer itself
    is returned unchanged) that counts SGD steps (`after_step`); the count is in `state_dict`, so a resumed run
    goes on counting (and so is α's Adam state). Driving the compressor from another loop, call `after_step()` after
    each optimizer step (it steps α's Adam too; or `freeze()` once). After the freeze α is in no graph: its gradient
    stays None, no optimizer moves it (no momentum drift), and its values stay those of the search's end.
  * The choice is the most probable configuration within the budget (`within_budget`): the argmax of every α_l
    where its size fits `budget_bits`, else per layer argmax_k log p_lk − λ·N_l·b_lk/N with the smallest λ that
    fits (the Lagrangian relaxation of the knapsack "maximise Σ_l log p_l(k_l) under the size"). So a budget is a
    hard limit on the chosen configuration's nominal bits (nas:bits ≤ budget_bits), not only on E_p[bits]: the
    size penalty and the hinge act on E_p[bits], and where p is still far from one-hot when the search ends (a
    short search, a small `arch_lr`) the plain argmax can lie well off the budget (measured: 1.53 bits at a 3-bit
    budget, and above the budget where every α_l leans to its largest candidate). Without a budget the choice is
    the plain argmax. Before the search ends (a run shorter than `search_steps`), `codebooks`/`clamp`/`stats` use
    the current choice; `stats` reports both sizes (nas:expected_bits, nas:bits).
  * The hinge is a limit, not a target: while E_p[bits] is above B it pushes every α_l towards the smallest
    candidates, and once below nothing pulls the size back up but the task loss's weak preference. Measured on
    ResNet-20 (reproduction row vq-nas, quick budget: 39 search steps): the 2-bit budget's search ended at
    1.07 bits, the 3- and 4-bit ones at 2.50 and 3.57. `budget_mode="target"` (μ·|E_p[bits] − B|) makes B a
    size to reach; the choice still never exceeds it (`within_budget`).
  * `anneal` < 1 sharpens p over the search: p = softmax(α/T), T = anneal^(step/search_steps) falling from 1 to
    `anneal` (the temperature annealing of DNAS/FBNet's relaxations). As T falls, E_p[bits] approaches the argmax
    configuration's bits, so the size terms act on the configuration that will be chosen; the argmax itself is
    unchanged by T. The temperature is a function of the step count, so a resumed run continues it exactly.
  * The linear grid is fixed: the pretrained layer's [min, max] with 2^b evenly spaced levels, the latent weights
    adapting to it through the STE (and the commitment term). An LSQ-style learned step would give every linear
    candidate a learnable whose gradient competes with α's; it is left as a variant.
  * The bits of a candidate are counted as the export counts bytes (landscape/codec: ceil(log2 K) bits per index,
    ceil(N/d) indices for a d-vector code, N for a scalar one) with all 2^b entries in use: VQ b·ceil(N/d)/N,
    linear b. The codebooks and grids (2^b·d floats per layer) are not counted, as VQ-QAT and the scalar methods
    do not count theirs (the export reports them apart, "with_codebook"). The clamp's `mean_bits` (Clamped, the
    run file's /final/bits) counts log2 of the entries *in use*, so it is at most the configuration's nominal bits
    (`stats()["nas:bits"]`), equal when every layer uses all its entries. `landscape export` tries each VQ
    layer's chosen d-vector code (`VQNAS.vector_dims`, read from the run file by `chosen_configuration`).
  * d not dividing a layer's size: VQ would pad its last sub-vector (vq.py), but here such a candidate is refused,
    naming the layer and the candidate (the CLI exits 2 on it), unless `skip_indivisible` drops it for that layer
    alone with a warning (the layer searches over its other candidates; α_l then has fewer entries).
  * A budget below the smallest candidate's bits is refused at construction (the candidates' nominal b/d and b)
    and again at `prepare`, with the layers' sizes (what the smallest configuration reaches).
  * Cost: while searching, every training step quantizes every layer with every candidate, in the forward and
    again in the commitment term (as VQ-QAT's penalty recomputes its assignment): the VQ assignments dominate,
    (N/d)·2^b·d multiply-adds per layer and VQ candidate. With the default set on the adapted ResNet-20 that is
    about one of `prepare`'s 20 Lloyd iterations per step twice over (`prepare`: ~17 s on 2 loaded CPU cores);
    after the freeze only the chosen candidate is computed.

Codebooks for the rest of the toolkit (`codebooks()`): per layer the chosen candidate's, a `VectorCodebook` with
vector bits for VQ and a `Codebook` of the used levels for linear, so that `Clamped.mean_bits()` is the chosen
configuration's size. The parameters and the state dict stay the plain network's (as VQ-QAT's; eval mode is the
plain network, the clamp a copy with the plain forward back).

What the run file gets (store.py): α_l and every VQ candidate's codebook at every checkpoint
(/compressor/<step>/<param>.alpha, /<param>.<candidate key>.codebook: `learnable`), so the last checkpoint holds
the final p_l = softmax(α_l); and `stats()` (every `stats_every` steps and at the last step) gives

    mean_clusters, mean_bits  the chosen (argmax) configuration's clamp, as for every method
    nas:bits                  its nominal mean bits per weight (= E_p[bits] at a one-hot p)
    nas:expected_bits         E_p[bits], p = softmax(α) (constant after the freeze)
    nas:entropy               mean over layers of H(p_l), in bits
    nas:vq_fraction           the share of the weights in layers whose choice is a VQ candidate
    nas:searching             1 while searching, 0 after the freeze
    layer:<param>:choice      the chosen candidate's position in `candidates` (the configuration itself)
    layer:<param>:bits        its bits per weight
    layer:<param>:<metric>    with `layer_stats`, the chosen candidate's entries, dead, perplexity, changed and
                              rel_error (vq.usage_stats; for a linear candidate the entries are grid levels)

each a /scalars/<name> dataset (names holding ":" are stored, store.NAMESPACED). `chosen_configuration(run)` reads
the configuration and p back; `landscape.figures.nas_allocation` draws them.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..checks import check_int
from ..quantize import Codebook
from .base import Clamped, Compressor, check_finite, mean_bits
from .forward import layer_forward, patch, quantized_modules, unpatch
from .vq import ASSIGNMENTS, MAX_CODEBOOK_BITS, LayerVQ, init_codebook, subvectors, usage_stats, vector_codebook

DEFAULT_CANDIDATES = "vq:4x2,vq:6x2,vq:8x2,vq:4x4,vq:6x4,vq:8x4,lin:2,lin:3,lin:4,lin:8"
RELAXATIONS = ("softmax", "gumbel")
BUDGET_MODES = ("hinge", "target")
ARCH_OPTIMIZERS = ("adam", "sgd")
ADAM_BETAS = (0.5, 0.999)  # DARTS's for the architecture parameters
MAX_LINEAR_BITS = 16  # quantize.uniform's range
_VQ = re.compile(r"vq:(\d+)x(\d+)")
_LIN = re.compile(r"lin:(\d+)")


@dataclass(frozen=True)
class Candidate:
    """One candidate quantizer of a layer: `vq` (2^bits codewords of `dim` weights) or `lin` (2^bits levels).

    Examples:
        >>> Candidate("vq", 6, 2).name, Candidate("vq", 6, 2).nominal_bits, Candidate("lin", 3).bits_per_weight(10)
        ('vq:6x2', 3.0, 3.0)
        >>> Candidate("vq", 4, 4).bits_per_weight(10)  # ceil(10/4) = 3 indices of 4 bits over 10 weights
        1.2
    """

    kind: str  # "vq" | "lin"
    bits: int  # b: index bits, 2^b codewords (vq) or grid levels (lin)
    dim: int = 1  # d: weights per sub-vector (vq; 1 for lin)

    @property
    def name(self) -> str:
        """As `candidates` spells it: vq:<b>x<d> or lin:<b>."""
        return f"vq:{self.bits}x{self.dim}" if self.kind == "vq" else f"lin:{self.bits}"

    @property
    def key(self) -> str:
        """The name without punctuation (vq4x2, lin3), for tensor names in the run file."""
        return self.name.replace(":", "")

    @property
    def nominal_bits(self) -> float:
        """Index bits per weight where d divides the layer: b/d (vq) or b (lin)."""
        return self.bits / self.dim

    def divides(self, numel: int) -> bool:
        """Whether a layer of `numel` weights splits into whole sub-vectors (always, for lin)."""
        return numel % self.dim == 0

    def bits_per_weight(self, numel: int) -> float:
        """Index bits per weight of a layer of `numel` weights, as the export counts them (module docstring):
        b·ceil(N/d)/N."""
        return self.bits * math.ceil(numel / self.dim) / numel


def parse_candidates(text: str) -> tuple[Candidate, ...]:
    """The candidate set a `candidates` string names, in its order.

    Args:
        text: comma-separated entries vq:<b>x<d> (b in 1..12, d in 1..64) or lin:<b> (b in 1..16).

    Returns:
        The candidates; a one-line ValueError for an empty set, a malformed or out-of-range entry, or a repeat.

    Examples:
        >>> [c.name for c in parse_candidates("vq:4x2, lin:3")]
        ['vq:4x2', 'lin:3']
        >>> parse_candidates("vq:4")
        Traceback (most recent call last):
        ...
        ValueError: candidates: 'vq:4' is not vq:<b>x<d> or lin:<b> (e.g. vq:4x2,lin:3)
    """
    if not isinstance(text, str):
        raise ValueError(f"candidates must be a string such as 'vq:4x2,lin:3', got {text!r}")
    entries = [e.strip() for e in text.split(",")]
    if not any(entries):
        raise ValueError("candidates is empty: give at least one, e.g. vq:4x2,lin:3")
    out = []
    for entry in entries:
        vq, lin = _VQ.fullmatch(entry), _LIN.fullmatch(entry)
        if vq:
            b, d = int(vq.group(1)), int(vq.group(2))
            if not 1 <= b <= MAX_CODEBOOK_BITS or not 1 <= d <= 64:
                raise ValueError(f"candidates: {entry} needs b in 1..{MAX_CODEBOOK_BITS} and d in 1..64")
            out.append(Candidate("vq", b, d))
        elif lin:
            b = int(lin.group(1))
            if not 1 <= b <= MAX_LINEAR_BITS:
                raise ValueError(f"candidates: {entry} needs b in 1..{MAX_LINEAR_BITS}")
            out.append(Candidate("lin", b))
        else:
            raise ValueError(f"candidates: {entry!r} is not vq:<b>x<d> or lin:<b> (e.g. vq:4x2,lin:3)")
    names = [c.name for c in out]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"candidates: {', '.join(repeated)} given more than once")
    return tuple(out)


def _finite(name: str, value: float, low: float, *, strict: bool = False, why: str = "") -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) \
            or value < low or (strict and value == low):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '≥'} {low:g}{why}, got {value!r}")


@dataclass(frozen=True)
class VQNASConfig:
    """The settings of the VQ/linear search (`--method vq-nas`): units beside each field; checked at construction.

    Examples:
        >>> config = VQNASConfig(candidates="vq:4x2,lin:3", budget_bits=2.5)
        >>> [c.name for c in config.candidate_set], config.smallest_bits
        (['vq:4x2', 'lin:3'], 2.0)
        >>> VQNASConfig(candidates="vq:4x2,lin:3", budget_bits=1.5)
        Traceback (most recent call last):
        ...
        ValueError: budget_bits 1.5 is below the smallest candidate's 2 bits per weight (vq:4x2): no ...
    """

    candidates: str = DEFAULT_CANDIDATES  # every layer's candidate set: vq:<b>x<d> (2^b codewords of d weights, b/d bits per weight) | lin:<b> (2^b levels over the pretrained range, b bits), comma-separated  # noqa: E501
    size_penalty: float = 0.0  # λ of λ·E_p[bits]: loss per bit per weight of the expected mean size, ≥ 0
    budget_bits: float = 0.0  # B: target on the expected mean bits per weight E_p[bits], hinge above it (0: none)
    budget_penalty: float = 10.0  # μ of μ·max(0, E_p[bits] − B): loss per bit per weight above the budget, ≥ 0
    budget_mode: str = "hinge"  # "hinge": μ·max(0, E_p − B), a limit | "target": μ·|E_p − B|, a size to reach
    relaxation: str = "softmax"  # the search forward's candidate weights: "softmax" (p_l) | "gumbel" (a sample)
    tau: float = 1.0  # Gumbel-softmax temperature (relaxation=gumbel), unitless like α; > 0
    anneal: float = 1.0  # T at the search's end: p = softmax(α/T), T falling geometrically from 1 to this over search_steps (1: none), in (0, 1]  # noqa: E501
    arch_optimizer: str = "adam"  # the architecture logits' optimizer: "adam" (DARTS's: β = (0.5, 0.999), constant lr) | "sgd" (a group of the trainer's SGD)  # noqa: E501
    arch_lr: float = 0.05  # step size of the architecture logits α_l (unitless, like α; no weight decay), > 0
    search_steps: int = 500  # SGD steps of the search (from the run's start); then each layer keeps its argmax
    strength: float = 1.0  # λ_c of Σ_k sg(p_k)·Σ(θ − sg(Q_k))², the commitment term. Loss per (weight unit)²
    assign: str = "cosine"  # VQ candidates' sub-vector → codeword: "cosine" (the paper) | "euclidean"
    codebook_lr: float | None = None  # SGD step size of the VQ candidates' codewords (None: the trainer's lr)
    init_iters: int = 20  # Lloyd iterations initialising each VQ candidate's codebook from the pretrained weights
    skip_indivisible: bool = False  # drop a layer's VQ candidates whose d does not divide its size (with a warning) instead of refusing them  # noqa: E501
    layer_stats: bool = True  # stats add layer:<param>:<metric> of the chosen candidate (vq.usage_stats)
    params: str = "weights"  # which weights are quantized: conv/linear weights (a selection: landscape/params.py)

    def __post_init__(self):
        candidates = parse_candidates(self.candidates)
        if self.assign not in ASSIGNMENTS:
            raise ValueError(f"assign must be one of {', '.join(ASSIGNMENTS)}, got {self.assign!r}")
        if self.assign == "cosine" and any(c.kind == "vq" and c.dim == 1 for c in candidates):
            raise ValueError("cosine assignment needs d ≥ 2 (in 1-D it only sees the sign); use assign=euclidean "
                             "for scalar codebooks vq:<b>x1")
        _finite("size_penalty", self.size_penalty, 0)
        _finite("budget_bits", self.budget_bits, 0, why=" (0: no budget)")
        _finite("budget_penalty", self.budget_penalty, 0)
        if self.budget_mode not in BUDGET_MODES:
            raise ValueError(f"budget_mode must be one of {', '.join(BUDGET_MODES)}, got {self.budget_mode!r}")
        if self.relaxation not in RELAXATIONS:
            raise ValueError(f"relaxation must be one of {', '.join(RELAXATIONS)}, got {self.relaxation!r}")
        _finite("tau", self.tau, 0, strict=True, why=" (the Gumbel-softmax temperature)")
        if not (isinstance(self.anneal, int | float) and 0 < self.anneal <= 1):
            raise ValueError(f"anneal must be in (0, 1] (the temperature at the search's end), got {self.anneal!r}")
        if self.arch_optimizer not in ARCH_OPTIMIZERS:
            raise ValueError(f"arch_optimizer must be one of {', '.join(ARCH_OPTIMIZERS)}, got {self.arch_optimizer!r}")
        _finite("arch_lr", self.arch_lr, 0, strict=True)
        check_int("search_steps", self.search_steps, 1)
        _finite("strength", self.strength, 0)
        if self.codebook_lr is not None:
            _finite("codebook_lr", self.codebook_lr, 0, why=" or None")
        check_int("init_iters", self.init_iters, 0)
        if 0 < self.budget_bits < self.smallest_bits:
            smallest = min(candidates, key=lambda c: c.nominal_bits)
            raise ValueError(f"budget_bits {self.budget_bits:g} is below the smallest candidate's "
                             f"{self.smallest_bits:g} bits per weight ({smallest.name}): no configuration reaches it")

    @property
    def candidate_set(self) -> tuple[Candidate, ...]:
        """The parsed `candidates`.

        Examples:
            >>> [c.nominal_bits for c in VQNASConfig(candidates="vq:8x4,lin:2").candidate_set]
            [2.0, 2.0]
        """
        return parse_candidates(self.candidates)

    @property
    def smallest_bits(self) -> float:
        """The fewest bits per weight a candidate gives (where d divides the layer).

        Examples:
            >>> VQNASConfig().smallest_bits  # vq:4x4
            1.0
        """
        return min(c.nominal_bits for c in self.candidate_set)


def within_budget(log_p: list[Tensor], bits: list[Tensor], sizes: list[int], budget: float) -> list[int]:
    """The most probable configuration whose size fits the budget: per layer l the candidate
    argmax_k log p_lk − λ·N_l·b_lk/N, with the smallest λ ≥ 0 whose configuration has mean bits Σ N_l b_l / N ≤
    `budget` (λ = 0, the plain argmax, where that fits). This is the Lagrangian relaxation of the multiple-choice
    knapsack "maximise Σ_l log p_l(k_l) subject to the size": exact at the configurations it reaches, found by
    bisection on λ (the size falls as λ grows; a large enough λ gives every layer its smallest candidate, which
    `prepare` checked fits). Ties: the earlier candidate. budget ≤ 0: the plain argmax.

    Args:
        log_p: per layer, log p over its candidates.
        bits: per layer, each candidate's bits per weight.
        sizes: per layer, its number of weights N_l.
        budget: the mean bits per weight to stay within (0: none).

    Returns:
        Per layer, the position of its chosen candidate.

    Examples:
        >>> import torch
        >>> log_p = [torch.tensor([0.6, 0.4]).log(), torch.tensor([0.3, 0.7]).log()]
        >>> bits = [torch.tensor([2.0, 4.0]), torch.tensor([2.0, 4.0])]
        >>> within_budget(log_p, bits, [100, 100], 0), within_budget(log_p, bits, [100, 100], 3.0)
        ([0, 1], [0, 1])
        >>> within_budget(log_p, bits, [100, 100], 2.0)
        [0, 0]
    """
    def pick(lam: float) -> tuple[list[int], float]:
        total = sum(sizes)
        ks = [int(torch.argmax(lp.double() - lam * n * b.double() / total)) for lp, b, n in
              zip(log_p, bits, sizes, strict=True)]
        return ks, sum(n * float(b[k]) for k, b, n in zip(ks, bits, sizes, strict=True)) / total

    ks, size = pick(0.0)
    if budget <= 0 or size <= budget + 1e-9:
        return ks
    lo, hi = 0.0, 1.0
    while pick(hi)[1] > budget + 1e-9:  # grows until it fits: every layer's smallest candidate does
        lo, hi = hi, 2 * hi
        if hi > 1e30:
            raise ValueError(f"no configuration fits {budget:g} bits per weight")
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if pick(mid)[1] <= budget + 1e-9 else (mid, hi)
    return pick(hi)[0]


def layer_candidates(candidates: tuple[Candidate, ...], numel: int, name: str, *, skip: bool) -> tuple[int, ...]:
    """The positions (in `candidates`) of the candidates a layer of `numel` weights may take: all of them, or a
    one-line ValueError naming the layer and a VQ candidate whose d does not divide it; with `skip`, those are
    dropped with a warning instead (a ValueError if none is left).

    Args:
        candidates: the configuration's candidate set.
        numel: the layer's weights.
        name: the layer's parameter name (for the messages).
        skip: drop indivisible VQ candidates instead of refusing them (`skip_indivisible`).

    Returns:
        The positions, in order.

    Examples:
        >>> both = parse_candidates("vq:4x3,lin:2")
        >>> layer_candidates(both, 12, "fc.weight", skip=False)
        (0, 1)
        >>> layer_candidates(both, 10, "fc.weight", skip=False)
        Traceback (most recent call last):
        ...
        ValueError: vq-nas: candidate vq:4x3 (d = 3) does not divide fc.weight (10 weights); drop it from ...
    """
    bad = [c for c in candidates if not c.divides(numel)]
    if bad and not skip:
        c = bad[0]
        raise ValueError(f"vq-nas: candidate {c.name} (d = {c.dim}) does not divide {name} ({numel} weights); drop "
                         f"it from --candidates, or --skip-indivisible true drops it for such layers only")
    keep = tuple(i for i, c in enumerate(candidates) if c.divides(numel))
    if not keep:
        raise ValueError(f"vq-nas: no candidate of {', '.join(c.name for c in candidates)} divides {name} "
                         f"({numel} weights); add a linear one, e.g. lin:4")
    if bad:
        warnings.warn(f"vq-nas: {name} ({numel} weights) leaves out {', '.join(c.name for c in bad)} (d does not "
                      f"divide it)", UserWarning, stacklevel=2)
    return keep


@dataclass(eq=False)
class LinearGrid:
    """A fixed uniform grid of 2^b levels over [lo, hi] (one level where lo = hi), nearest-level rounding: the grid
    and rounding of `quantize.uniform`. A plain object (its levels stay out of the model's state dict).

    Examples:
        >>> import torch
        >>> grid = LinearGrid.fit(torch.tensor([-1.0, -0.1, 0.1, 1.0]), bits=2)
        >>> [round(v, 3) for v in grid.levels.tolist()], grid.index(torch.tensor([-0.9, 0.2, 5.0])).tolist()
        ([-1.0, -0.333, 0.333, 1.0], [0, 2, 3])
    """

    levels: Tensor  # [2^b] increasing (or [1])
    lo: float
    hi: float

    @classmethod
    def fit(cls, theta: Tensor, bits: int) -> LinearGrid:
        """The grid of `bits` bits over the range of `theta` (the pretrained weights).

        Args:
            theta: the layer's weights.
            bits: b (2^b levels).

        Returns:
            The grid, in `theta`'s dtype and device.

        Examples:
            >>> import torch
            >>> LinearGrid.fit(torch.tensor([0.0, 3.0]), 1).levels.tolist()
            [0.0, 3.0]
        """
        x = theta.detach().flatten().double()
        lo, hi = float(x.min()), float(x.max())
        steps = 2**bits - 1
        if lo == hi:
            levels = torch.tensor([lo], dtype=torch.float64)
        else:
            levels = lo + (hi - lo) * torch.arange(steps + 1, dtype=torch.float64) / steps
        return cls(levels.to(dtype=theta.dtype, device=theta.device), lo, hi)

    def index(self, theta: Tensor) -> Tensor:
        """The level of every weight (flattened), int64, weights outside [lo, hi] on the end levels.

        Args:
            theta: weights (any shape; not modified).

        Returns:
            [N] level indices.

        Examples:
            >>> import torch
            >>> LinearGrid.fit(torch.tensor([0.0, 3.0]), 2).index(torch.tensor([1.4, -2.0])).tolist()
            [1, 0]
        """
        flat = theta.detach().flatten()
        steps = len(self.levels) - 1
        if steps == 0:
            return torch.zeros(flat.shape, dtype=torch.long, device=flat.device)
        return torch.round((flat - self.lo) * (steps / (self.hi - self.lo))).clamp_(0, steps).long()

    def quantize(self, theta: Tensor) -> Tensor:
        """The nearest levels, shaped like `theta` (a constant: no gradient).

        Args:
            theta: weights.

        Returns:
            The quantized weights.

        Examples:
            >>> import torch
            >>> LinearGrid.fit(torch.tensor([0.0, 3.0]), 2).quantize(torch.tensor([[1.4, 2.9]])).tolist()
            [[1.0, 3.0]]
        """
        return self.levels[self.index(theta)].view_as(theta)


@torch.no_grad()
def linear_codebook(theta: Tensor, grid: LinearGrid) -> tuple[Codebook, Tensor]:
    """The grid's levels in use as a `Codebook` of a layer's weights, and each weight's level on the full grid.

    Args:
        theta: the layer's weights (not modified).
        grid: its grid.

    Returns:
        (the Codebook, [N] int64 level indices on the full grid).

    Examples:
        >>> import torch
        >>> grid = LinearGrid.fit(torch.tensor([0.0, 3.0]), 2)
        >>> book, index = linear_codebook(torch.tensor([0.0, 0.1, 2.9, 3.0]), grid)
        >>> book.values.tolist(), book.index.tolist(), index.tolist()
        ([0.0, 3.0], [0, 0, 1, 1], [0, 0, 3, 3])
    """
    index = grid.index(theta)
    counts = torch.bincount(index, minlength=len(grid.levels))
    used = counts > 0
    remap = torch.cumsum(used, 0) - 1
    return Codebook(values=grid.levels[used], index=remap[index], counts=counts[used]), index


@dataclass(eq=False)
class LayerNAS:
    """One layer's candidates, their quantizers, bits and architecture logits, and the frozen choice. A plain object,
    not a Module: its tensors stay out of the model's state dict (they live in the compressor's optimizer groups).

    Examples:
        >>> import torch, torch.nn as nn
        >>> theta = torch.tensor([-1.0, -0.2, 0.3, 1.0])
        >>> grids = (LinearGrid.fit(theta, 1), LinearGrid.fit(theta, 2))
        >>> layer = LayerNAS((0, 1), parse_candidates("lin:1,lin:2"), grids, torch.tensor([1.0, 2.0]),
        ...                  nn.Parameter(torch.zeros(2)), numel=4)
        >>> [round(v, 3) for v in layer.train_weight(theta).tolist()]  # ½·(1-bit grid) + ½·(2-bit grid)
        [-1.0, -0.667, 0.667, 1.0]
        >>> layer.choice = 1
        >>> [round(v, 3) for v in layer.train_weight(theta).tolist()]
        [-1.0, -0.333, 0.333, 1.0]
    """

    positions: tuple[int, ...]  # the layer's candidates, as positions in the configuration's candidate set
    candidates: tuple[Candidate, ...]  # those candidates
    quantizers: tuple[LayerVQ | LinearGrid, ...]  # one per candidate
    bits: Tensor  # [K_l] bits per weight of each candidate (export's count)
    alpha: nn.Parameter  # [K_l] architecture logits
    numel: int  # N_l, the layer's weights
    relaxation: str = "softmax"
    tau: float = 1.0
    choice: int | None = None  # once frozen: the kept candidate (index into `candidates`)
    temperature: float = 1.0  # T of p_l = softmax(α_l / T): 1, or annealed over the search (VQNASConfig.anneal)

    def probs(self) -> Tensor:
        """p_l = softmax(α_l / T), differentiable in α."""
        return torch.softmax(self.alpha / self.temperature, dim=0)

    def distribution(self) -> Tensor:
        """p_l while searching, the one-hot of the choice once frozen (a constant then)."""
        if self.choice is None:
            return self.probs()
        return F.one_hot(torch.tensor(self.choice, device=self.alpha.device), len(self.candidates)).to(
            self.alpha.dtype)

    def relaxed(self) -> Tensor:
        """The search forward's candidate weights: p_l, or a Gumbel-softmax sample at temperature τ."""
        if self.relaxation == "gumbel":
            return F.gumbel_softmax(self.alpha / self.temperature, tau=self.tau, hard=False)
        return self.probs()

    def quantize(self, k: int, theta: Tensor, *, reseed: bool = False) -> Tensor:
        """Candidate k's quantized weights from sg(θ) (VQ: differentiable in its codebook; linear: a constant)."""
        quantizer = self.quantizers[k]
        if isinstance(quantizer, LayerVQ):
            return quantizer.quantize(theta, reseed=reseed)
        return quantizer.quantize(theta)

    def train_weight(self, theta: Tensor) -> Tensor:
        """Σ_k w_k·Q_k(θ) + (θ − sg θ) while searching, Q_choice(θ) + (θ − sg θ) once frozen (dead VQ entries
        re-seeded first, as VQ-QAT's training forward does)."""
        if self.choice is not None:
            q = self.quantize(self.choice, theta, reseed=True)
        else:
            w = self.relaxed()
            q = sum(w[k] * self.quantize(k, theta, reseed=True) for k in range(len(self.candidates)))
        return q + (theta - theta.detach())

    def codebook(self, k: int, theta: Tensor) -> tuple[Codebook, Tensor]:
        """Candidate k's hard assignment: (its codebook of the layer's weights, the entry of each sub-vector or
        weight)."""
        quantizer = self.quantizers[k]
        if isinstance(quantizer, LayerVQ):
            return vector_codebook(theta, quantizer)
        return linear_codebook(theta, quantizer)


def _nas_forward(module: nn.Module, x: Tensor) -> Tensor:
    """The forward `VQNAS.prepare` installs on a conv/linear module: the relaxed mixture (or the chosen candidate)
    with the STE while training, the plain module in eval mode."""
    layer: LayerNAS = module._nas
    w = layer.train_weight(module.weight) if module.training else module.weight
    return layer_forward(module, x, w)


class VQNAS(Compressor):
    """Differentiable search over VQ and linear candidates per layer, then fine-tuning of the chosen configuration
    (module docstring).

    Args:
        config: the settings.
        seed: seeds the VQ candidates' initial codebooks.

    Examples:
        >>> import torch
        >>> from landscape.models import build_model
        >>> from landscape.compress import make_compressor
        >>> nas = make_compressor("vq-nas", {"candidates": "vq:4x2,lin:3", "search_steps": 1})
        >>> model = nas.prepare(build_model("tiny"))
        >>> nas.layers["conv1.weight"].probs().detach().tolist()  # uniform before any step
        [0.5, 0.5]
        >>> nas.penalty(model).requires_grad, nas.searching
        (True, True)
        >>> nas.freeze()
        >>> sorted(set(nas.configuration().values())), nas.clamp(model).mean_bits() <= 2.0
        (['vq:4x2'], True)
    """

    name = "vq-nas"
    label = "VQ/linear NAS"

    @classmethod
    def settings_for_bits(cls, bits: int) -> dict[str, Any]:
        # the default candidate set under a budget of `bits` bits per weight on the expected size
        return {"budget_bits": float(bits)}

    @classmethod
    def vector_dims(cls, run) -> dict[str, int]:
        chosen = chosen_configuration(run)
        return {name: parse_candidates(layer["choice"])[0].dim for name, layer in chosen.items()
                if layer["choice"].startswith("vq:")}

    @classmethod
    def label_for(cls, settings: Mapping[str, Any]) -> str:
        candidates = parse_candidates(settings.get("candidates", VQNASConfig.candidates))
        if len(candidates) == 1:  # no search: every layer the one candidate (the fixed uniform baselines)
            return f"fixed {candidates[0].name}"
        gumbel = settings.get("relaxation", VQNASConfig.relaxation) == "gumbel"
        target = settings.get("budget_mode", VQNASConfig.budget_mode) == "target"
        return cls.display_name() + (" (Gumbel)" if gumbel else "") + (", budget as target" if target else "")

    def __init__(self, config: VQNASConfig = VQNASConfig(), *, seed: int = 0):
        self.config, self.seed, self.params = config, seed, config.params
        self.candidates = config.candidate_set
        self.layers: dict[str, LayerNAS] = {}
        self.step = 0  # SGD steps done (counted by the hook `wrap_optimizer` registers)
        self.frozen_at: int | None = None  # the step at which the search ended (None: still searching)
        self._previous: dict[str, tuple[int, Tensor]] = {}  # layer → (choice, assignment) at the last stats call
        self._arch: torch.optim.Optimizer | None = None  # α's Adam (arch_optimizer="adam"), built by prepare

    # ----------------------------------------------------------------------------------------------- set-up

    def prepare(self, model: nn.Module) -> nn.Module:
        """Every layer's candidates (codebooks from the pretrained weights, grids over their range), α_l = 0,
        and the searching forward on each quantized module; refuses indivisible candidates and a budget below
        what the smallest configuration reaches.

        Args:
            model: the pretrained model (the trainer's own copy; its modules' forwards are replaced).

        Returns:
            The model.

        Examples:
            >>> from landscape.models import build_model
            >>> nas = VQNAS(VQNASConfig(candidates="vq:4x3,lin:2"))
            >>> nas.prepare(build_model("tiny"))
            Traceback (most recent call last):
            ...
            ValueError: vq-nas: candidate vq:4x3 (d = 3) does not divide linear.weight (160 weights); drop ...
        """
        cfg, generator = self.config, torch.Generator().manual_seed(self.seed)
        selected = self.selected(model)
        owners = quantized_modules(model, selected, "vq-nas")
        layers, smallest = {}, 0.0
        for name, p in selected.items():
            check_finite(f"pretrained parameter {name}", p.detach())
            positions = layer_candidates(self.candidates, p.numel(), name, skip=cfg.skip_indivisible)
            candidates = tuple(self.candidates[i] for i in positions)
            quantizers = []
            for c in candidates:
                if c.kind == "vq":
                    v = subvectors(p.detach().flatten(), c.dim)
                    codebook = init_codebook(v, 2**c.bits, cfg.assign, cfg.init_iters, generator)
                    quantizers.append(LayerVQ(nn.Parameter(codebook), c.dim, cfg.assign))
                else:
                    quantizers.append(LinearGrid.fit(p, c.bits))
            bits = torch.tensor([c.bits_per_weight(p.numel()) for c in candidates], dtype=p.dtype, device=p.device)
            alpha = nn.Parameter(torch.zeros(len(candidates), dtype=p.dtype, device=p.device))
            layers[name] = LayerNAS(positions, candidates, tuple(quantizers), bits, alpha, p.numel(), cfg.relaxation,
                                    cfg.tau)
            smallest += float(bits.min()) * p.numel()
        total = sum(p.numel() for p in selected.values())
        if cfg.budget_bits > 0 and total and cfg.budget_bits < smallest / total:
            raise ValueError(f"vq-nas: budget_bits {cfg.budget_bits:g} is below {smallest / total:.4g} bits per "
                             f"weight, the smallest configuration of these layers")
        for name, layer in layers.items():
            patch(owners[name], "_nas", layer, _nas_forward)
        self.layers, self.step, self.frozen_at, self._previous = layers, 0, None, {}
        self._arch = (torch.optim.Adam([layer.alpha for layer in layers.values()], lr=cfg.arch_lr, betas=ADAM_BETAS)
                      if cfg.arch_optimizer == "adam" and layers else None)
        return model

    def _check_prepared(self, model: nn.Module) -> dict[str, nn.Parameter]:
        params = self.selected(model)
        if set(params) != set(self.layers):
            raise RuntimeError("VQNAS.prepare(model) must be called first")
        return params

    # ------------------------------------------------------------------------------------------ the search

    @property
    def searching(self) -> bool:
        """Whether the search is on (False once `freeze` ran).

        Examples:
            >>> VQNAS().searching
            True
        """
        return self.frozen_at is None

    def wrap_optimizer(self, optimizer: torch.optim.Optimizer, model: nn.Module) -> torch.optim.Optimizer:
        """The trainer's optimizer itself, with a post-step hook that counts SGD steps (`after_step`).

        Args:
            optimizer: the trainer's optimizer.
            model: the module trained (unused).

        Returns:
            `optimizer`, unchanged but for the hook.

        Examples:
            >>> import torch, torch.nn as nn
            >>> nas = VQNAS(VQNASConfig(candidates="lin:2,lin:4", search_steps=2))
            >>> model = nas.prepare(nn.Sequential(nn.Linear(4, 3)))
            >>> sgd = torch.optim.SGD(model.parameters(), lr=0.1)  # α has its own Adam (arch_optimizer)
            >>> sgd = nas.wrap_optimizer(sgd, model)
            >>> for _ in range(3):
            ...     sgd.step()
            >>> nas.step, nas.frozen_at
            (3, 2)
        """
        optimizer.register_step_post_hook(lambda opt, args, kwargs: self.after_step())
        return optimizer

    def after_step(self) -> None:
        """Step α's Adam (arch_optimizer="adam", while searching) and count one SGD step; the step that completes
        `search_steps` ends the search (`freeze`).

        Examples:
            >>> import torch.nn as nn
            >>> nas = VQNAS(VQNASConfig(candidates="lin:2,lin:4", search_steps=1))
            >>> _ = nas.prepare(nn.Sequential(nn.Linear(4, 3)))
            >>> nas.after_step()
            >>> nas.searching
            False
        """
        if self._arch is not None:  # α's own Adam, on this step's (rank-averaged) gradients
            if self.searching:
                self._arch.step()
            self._arch.zero_grad(set_to_none=True)
        self.step += 1
        self._set_temperature()
        if self.searching and self.step >= self.config.search_steps:
            self.freeze()

    def temperature(self) -> float:
        """T of p = softmax(α/T) at the current step: anneal^(step / search_steps), 1 without annealing.

        Returns:
            The temperature (1 at the start, `anneal` from the search's end on).

        Examples:
            >>> nas = VQNAS(VQNASConfig(anneal=0.01, search_steps=4))
            >>> nas.step = 2
            >>> round(nas.temperature(), 6)
            0.1
        """
        return self.config.anneal ** min(1.0, self.step / self.config.search_steps)

    def _set_temperature(self) -> None:
        for layer in self.layers.values():
            layer.temperature = self.temperature()

    def freeze(self) -> None:
        """End the search: every layer keeps its argmax candidate from now on (α untouched afterwards).

        Examples:
            >>> import torch.nn as nn
            >>> nas = VQNAS(VQNASConfig(candidates="lin:2,lin:4"))
            >>> _ = nas.prepare(nn.Sequential(nn.Linear(4, 3)))
            >>> nas.freeze()
            >>> nas.configuration(), nas.frozen_at
            ({'0.weight': 'lin:2'}, 0)
        """
        for name, k in self.choices().items():
            self.layers[name].choice = k
        self.frozen_at = self.step

    def configuration(self) -> dict[str, str]:
        """The chosen candidate of every layer (the frozen one, else the current argmax).

        Returns:
            Parameter name → candidate name, e.g. {"conv1.weight": "vq:4x2"}.

        Examples:
            >>> import torch.nn as nn
            >>> nas = VQNAS(VQNASConfig(candidates="lin:3,vq:4x2"))
            >>> _ = nas.prepare(nn.Sequential(nn.Linear(4, 3)))
            >>> nas.configuration()
            {'0.weight': 'lin:3'}
        """
        choices = self.choices()
        return {name: layer.candidates[choices[name]].name for name, layer in self.layers.items()}

    def choices(self) -> dict[str, int]:
        """The position (in the layer's candidates) of every layer's choice: the frozen one, else the current
        most probable configuration within `budget_bits` (`within_budget`: the argmax of α where it fits).

        Returns:
            Parameter name → candidate position.

        Examples:
            >>> import torch, torch.nn as nn
            >>> nas = VQNAS(VQNASConfig(candidates="lin:2,lin:4", budget_bits=3))
            >>> _ = nas.prepare(nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 3)))
            >>> with torch.no_grad():
            ...     nas.layers["0.weight"].alpha += torch.tensor([0.0, 1.0])
            ...     nas.layers["1.weight"].alpha += torch.tensor([0.0, 2.0])
            >>> nas.choices()  # both at 4 bits would be 4 > 3 bits: the less sure layer gives way
            {'0.weight': 0, '1.weight': 1}
        """
        if not self.searching:
            return {name: layer.choice for name, layer in self.layers.items()}
        names = list(self.layers)
        layers = [self.layers[n] for n in names]
        ks = within_budget([torch.log_softmax(layer.alpha.detach() / layer.temperature, 0) for layer in layers],
                           [layer.bits for layer in layers], [layer.numel for layer in layers],
                           self.config.budget_bits)
        return dict(zip(names, ks, strict=True))

    def expected_bits(self) -> Tensor:
        """E_p[bits]: the parameter-weighted mean over layers of Σ_k p_lk·bits_lk, p = softmax(α) while searching
        (differentiable in α), the one-hot choice once frozen.

        Returns:
            A scalar tensor (bits per weight).

        Examples:
            >>> import torch.nn as nn
            >>> nas = VQNAS(VQNASConfig(candidates="lin:2,lin:4"))
            >>> _ = nas.prepare(nn.Sequential(nn.Linear(4, 3)))
            >>> nas.expected_bits().item()  # uniform p over 2 and 4 bits
            3.0
        """
        total = sum(layer.numel for layer in self.layers.values())
        if not total:
            return torch.zeros(())
        return sum(layer.numel * (layer.distribution() * layer.bits).sum() for layer in self.layers.values()) / total

    # ---------------------------------------------------------------------------------- the Compressor contract

    def penalty(self, model: nn.Module) -> Tensor:
        """L_C = λ·E_p[bits] + μ·max(0, E_p[bits] − B) + λ_c·Σ_l Σ_k sg(p_lk)·Σ_i (θ_li − sg(Q_lk(θ_l))_i)²
        (module docstring); once frozen p is the one-hot choice, so only the chosen candidate's term is left."""
        params = self._check_prepared(model)
        cfg = self.config
        device = next(iter(params.values())).device if params else None
        total = torch.zeros((), device=device)
        if params and (cfg.size_penalty > 0 or cfg.budget_bits > 0):
            expected = self.expected_bits()
            total = total + cfg.size_penalty * expected
            if cfg.budget_bits > 0:
                over = expected - cfg.budget_bits
                total = total + cfg.budget_penalty * (over.abs() if cfg.budget_mode == "target" else torch.relu(over))
        if cfg.strength > 0:
            for name, p in params.items():
                layer = self.layers[name]
                weights = layer.distribution().detach()
                for k in ([layer.choice] if layer.choice is not None else range(len(layer.candidates))):
                    q = layer.quantize(k, p).detach()
                    total = total + cfg.strength * weights[k] * ((p - q) ** 2).sum()
        return total

    def codebooks(self, model: nn.Module) -> dict[str, Codebook]:
        """The chosen candidate's codebook of every layer (a VectorCodebook for VQ, the used levels for linear)."""
        params = self._check_prepared(model)
        choices = self.choices()
        return {name: self.layers[name].codebook(choices[name], p)[0] for name, p in params.items()}

    def clamp(self, model: nn.Module) -> Clamped:
        """The chosen configuration's hard quantization on a copy, which gets the plain forward back."""
        clamped = super().clamp(model)
        return Clamped(unpatch(clamped.model, "_nas"), clamped.codebooks)

    def param_groups(self) -> list[dict[str, Any]]:
        if not self.layers:
            return []
        groups = ([{"params": [layer.alpha for layer in self.layers.values()], "lr": self.config.arch_lr,
                    "weight_decay": 0.0}] if self.config.arch_optimizer == "sgd" else [])  # else: α's own Adam
        books = [q.codebook for layer in self.layers.values() for q in layer.quantizers if isinstance(q, LayerVQ)]
        if books:
            group = {"params": books, "weight_decay": 0.0}
            groups.append(group if self.config.codebook_lr is None else {**group, "lr": self.config.codebook_lr})
        return groups

    def learnable(self) -> dict[str, nn.Parameter]:
        out = {f"{name}.alpha": layer.alpha for name, layer in self.layers.items()}
        out.update({f"{name}.{c.key}.codebook": q.codebook for name, layer in self.layers.items()
                    for c, q in zip(layer.candidates, layer.quantizers, strict=True) if isinstance(q, LayerVQ)})
        return out

    def stats(self, model: nn.Module) -> dict[str, float]:
        """mean_clusters, mean_bits (the chosen configuration's clamp), nas:* and layer:<param>:* (module
        docstring)."""
        params = self._check_prepared(model)
        books, per, choices = {}, {}, self.choices()
        total = sum(layer.numel for layer in self.layers.values())
        nominal = expected = vq_weights = entropy = 0.0
        with torch.no_grad():
            for name, p in params.items():
                layer = self.layers[name]
                k = choices[name]
                candidate = layer.candidates[k]
                book, index = layer.codebook(k, p)
                books[name] = book
                probs = layer.probs()
                bits = float(layer.bits[k])
                nominal += bits * layer.numel
                expected += float((probs * layer.bits).sum()) * layer.numel
                vq_weights += layer.numel if candidate.kind == "vq" else 0
                entropy += -float(torch.special.xlogy(probs, probs).sum()) / math.log(2)
                per[f"layer:{name}:choice"] = float(layer.positions[k])
                per[f"layer:{name}:bits"] = bits
                if self.config.layer_stats:
                    previous = self._previous.get(name)
                    measured = usage_stats(index, 2**candidate.bits, p, book.apply(),
                                           previous[1] if previous is not None and previous[0] == k else None)
                    per.update({f"layer:{name}:{metric}": value for metric, value in measured.items()})
                    self._previous[name] = (k, index)
        entries = [getattr(b, "entries", b.k) for b in books.values()]
        n = max(total, 1)
        return {"mean_clusters": sum(entries) / max(len(entries), 1), "mean_bits": mean_bits(books),
                "nas:bits": nominal / n, "nas:expected_bits": expected / n,
                "nas:entropy": entropy / max(len(self.layers), 1), "nas:vq_fraction": vq_weights / n,
                "nas:searching": float(self.searching), **per}

    def state_dict(self) -> dict:
        return {"alphas": {name: layer.alpha.detach().clone() for name, layer in self.layers.items()},
                "codebooks": {name: {c.name: q.codebook.detach().clone()
                                     for c, q in zip(layer.candidates, layer.quantizers, strict=True)
                                     if isinstance(q, LayerVQ)} for name, layer in self.layers.items()},
                "step": self.step, "frozen_at": self.frozen_at,
                "arch_optimizer": None if self._arch is None else self._arch.state_dict(),
                "choice": {name: layer.candidates[layer.choice].name for name, layer in self.layers.items()
                           if layer.choice is not None}}

    def load_state_dict(self, state: dict) -> None:
        """Restores α, the codebooks (in place: the optimizer holds those tensors), the step count and the frozen
        choice; `prepare` must have run."""
        if set(state["alphas"]) != set(self.layers):
            raise ValueError(f"vq-nas state is of layers {sorted(state['alphas'])}, not {sorted(self.layers)}")
        for name, layer in self.layers.items():
            targets = [(f"α of {name}", layer.alpha, state["alphas"][name])]
            books = state["codebooks"].get(name, {})
            for c, q in zip(layer.candidates, layer.quantizers, strict=True):
                if isinstance(q, LayerVQ):
                    if c.name not in books:
                        raise ValueError(f"vq-nas state has no codebook of {c.name} for {name}")
                    targets.append((f"{c.name} codebook of {name}", q.codebook, books[c.name]))
            for what, target, value in targets:
                check_finite(f"vq-nas {what}", value)
                if target.shape != value.shape:
                    raise ValueError(f"vq-nas state has a {what} of shape {tuple(value.shape)}, not "
                                     f"{tuple(target.shape)}")
                with torch.no_grad():
                    target.copy_(value)
        self.step = int(state["step"])
        self._set_temperature()
        self.frozen_at = None if state["frozen_at"] is None else int(state["frozen_at"])
        if self._arch is not None and state.get("arch_optimizer") is not None:
            self._arch.load_state_dict(state["arch_optimizer"])
        names = {name: [c.name for c in layer.candidates] for name, layer in self.layers.items()}
        for name, layer in self.layers.items():
            chosen = state["choice"].get(name)
            if (chosen is None) != (self.frozen_at is None) or (chosen is not None and chosen not in names[name]):
                raise ValueError(f"vq-nas state's choice {chosen!r} for {name} does not fit (candidates "
                                 f"{', '.join(names[name])}, frozen at {self.frozen_at})")
            layer.choice = None if chosen is None else names[name].index(chosen)


def chosen_configuration(run: Any) -> dict[str, dict[str, Any]]:
    """What a vq-nas run file says about its search, per layer (model order): the layer's candidates, their bits
    per weight, the final p_l = softmax(α_l) (α at the last complete checkpoint; frozen since the search's end) and
    the chosen candidate (/scalars/layer:<param>:choice at its last stats step; the argmax of α where absent).

    Args:
        run: a `landscape.store.Run` of method vq-nas (or its path).

    Returns:
        Parameter name → {"numel", "candidates" (names), "kinds", "bits" (per candidate), "p" (per candidate),
            "choice" (a candidate name)}; a LandscapeError (one line) for another method or no checkpoint.

    Examples:
        >>> import tempfile, torch, torch.nn as nn
        >>> import landscape as ls
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,))) for _ in range(2)]
        >>> tmp = tempfile.TemporaryDirectory()
        >>> run = ls.compress_model(model, data, data, out=f"{tmp.name}/run.h5", method="vq-nas", epochs=1,
        ...                         candidates="vq:4x2,lin:3", search_steps=1, progress=False)
        >>> layers = chosen_configuration(run)
        >>> list(layers), layers["0.weight"]["candidates"], round(sum(layers["0.weight"]["p"]), 6)
        (['0.weight', '2.weight'], ['vq:4x2', 'lin:3'], 1.0)
        >>> tmp.cleanup()
    """
    from ..errors import LandscapeError, RunFileError
    from ..store import Run

    run = run if isinstance(run, Run) else Run(run)
    if run.method != VQNAS.name:
        raise LandscapeError(f"{run.path} is a {run.method} run, not {VQNAS.name}")
    config = VQNASConfig(**run.config.get("compressor", {}))
    steps = run.steps()
    if not steps:
        raise LandscapeError(f"{run.path} has no complete checkpoint (no α stored yet)")
    state = run.compressor_state(steps[-1])
    anneal_end = config.anneal ** min(1.0, steps[-1] / config.search_steps)  # p's temperature at that checkpoint
    alphas = {key.removesuffix(".alpha"): value for key, value in state.items() if key.endswith(".alpha")}
    try:
        order = [name for name in run.bits()["effective"] if name in alphas]
    except RunFileError:  # an unfinished run: no /final/bits to give the model's order
        order = sorted(alphas)
    pretrained = run.state("pretrained")
    scalars = run.scalars()
    out = {}
    for name in order:
        numel = int(pretrained[name].numel())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            positions = layer_candidates(config.candidate_set, numel, name, skip=config.skip_indivisible)
        candidates = [config.candidate_set[i] for i in positions]
        p = torch.softmax(alphas[name].double() / anneal_end, 0)
        series = scalars.get(f"layer:{name}:choice")
        finite = series[~np.isnan(series)] if series is not None else []
        choice = (config.candidate_set[int(finite[-1])].name if len(finite)
                  else candidates[int(torch.argmax(alphas[name]))].name)
        out[name] = {"numel": numel, "candidates": [c.name for c in candidates], "kinds": [c.kind for c in candidates],
                     "bits": [c.bits_per_weight(numel) for c in candidates], "p": p.tolist(), "choice": choice}
    return out
