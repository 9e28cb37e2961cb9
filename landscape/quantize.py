"""Quantizers that *propose* a discrete version of one layer's weights and never touch the weights themselves.

Every function here maps a 1-D weight tensor ``theta`` (N weights) to a :class:`Codebook`: the K distinct
values the weights are clamped to (sorted ascending), the cluster index of every weight, and the cluster
sizes. The caller decides what to do with the proposal: ``codebook.apply()`` builds the clamped weights as a
*new* tensor, ``codebook.bits`` is the layer's effective bit-width log2 K. This follows the design of
facebookresearch/parq, where a quantizer proposes targets and an optimizer or a clamp step uses them.

Functions:
    uniform, heq, kmeans   the post-training (PTQ) baselines, each ``f(theta, bits)`` (2^bits levels) or
                           ``f(theta, levels=K)`` (K levels, any K ≥ 1: mixed precision); also in ``QUANTIZERS``
    refine_clusters        the soft-quantization paper's post-training cluster identification (7-bit
                           binning, then tiny clusters merged into their nearest neighbour)
    nearest                assignment to given centroid values

All functions are pure, deterministic, device-agnostic (they run where ``theta`` lives), and compute cluster
statistics in float64; the returned values have ``theta``'s dtype. Values that coincide after the cast back to
that dtype are merged, so ``values`` is always strictly increasing and ``counts`` always positive.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch
from torch import Tensor

from .checks import check_int

__all__ = ["Codebook", "uniform", "heq", "kmeans", "refine_clusters", "nearest", "QUANTIZERS"]

MAX_BITS = 16  # upper limit for ``bits`` / ``resolution_bits``: 2^16 levels is far beyond any PTQ use here
MAX_LEVELS = 2**MAX_BITS  # upper limit for ``levels``: the same budget
FILL_ROUNDS = 10  # kmeans(levels=K): rounds of (split clusters up to K, Lloyd) before a final split-only fill


@dataclass(frozen=True, eq=False)
class Codebook:
    """A proposed quantization of one 1-D weight tensor.

    values: [K] float, strictly increasing, the distinct cluster values (dtype of the weights).
    index:  [N] int64, ``index[i]`` is the cluster of weight i.
    counts: [K] int64, members per cluster, all > 0.

    Examples:
        >>> import torch
        >>> cb = Codebook(values=torch.tensor([-0.5, 0.5]), index=torch.tensor([0, 1, 1]), counts=torch.tensor([1, 2]))
        >>> cb.apply().tolist(), cb.k, cb.bits, cb.storage_bits
        ([-0.5, 0.5, 0.5], 2, 1.0, 1)
    """

    values: Tensor
    index: Tensor
    counts: Tensor

    def __post_init__(self):
        if self.values.dim() != 1 or self.index.dim() != 1 or self.counts.shape != self.values.shape:
            raise ValueError(
                "Codebook: values and counts must be 1-D of equal length and index 1-D; got values "
                f"{tuple(self.values.shape)}, index {tuple(self.index.shape)}, "
                f"counts {tuple(self.counts.shape)}"
            )

    def apply(self) -> Tensor:
        """The clamped weights, a new [N] tensor: every weight replaced by its cluster value.

        Returns:
            `values[index]`, in the weights' dtype.

        Examples:
            >>> import torch
            >>> cb = uniform(torch.tensor([-1.0, -0.9, -0.1, 0.0, 0.1, 0.8, 1.0, 1.0]), 2)
            >>> [round(v, 3) for v in cb.apply().tolist()]
            [-1.0, -1.0, -0.333, 0.333, 0.333, 1.0, 1.0, 1.0]
        """
        return self.values[self.index]

    @property
    def k(self) -> int:
        """Number of clusters K.

        Examples:
            >>> import torch
            >>> cb = uniform(torch.tensor([-1.0, -0.9, -0.1, 0.0, 0.1, 0.8, 1.0, 1.0]), 2)
            >>> cb.k
            4
        """
        return self.values.numel()

    @property
    def bits(self) -> float:
        """Effective bit-width log2 K (0.0 for a single cluster).

        Examples:
            >>> import torch
            >>> cb = uniform(torch.tensor([-1.0, -0.9, -0.1, 0.0, 0.1, 0.8, 1.0, 1.0]), 2)
            >>> cb.bits
            2.0
        """
        return math.log2(self.k) if self.k > 1 else 0.0

    @property
    def storage_bits(self) -> int:
        """Bits per weight needed to store the index, ceil(log2 K) (0 for a single cluster).

        Examples:
            >>> import torch
            >>> nearest(torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.0, 1.0, 2.0])).storage_bits  # log2 3 = 1.58
            2
        """
        return (self.k - 1).bit_length()


# -------------------------------------------------------------------------------------------------- helpers


def _acc_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64


def _check_theta(theta) -> Tensor:
    if not isinstance(theta, Tensor):
        raise ValueError(f"theta must be a torch.Tensor, got {type(theta).__name__}")
    if not theta.is_floating_point():
        raise ValueError(f"theta must be a floating-point tensor, got dtype {theta.dtype}")
    if theta.dim() != 1:
        raise ValueError(f"theta must be 1-D (flatten the layer first), got shape {tuple(theta.shape)}")
    if theta.numel() == 0:
        raise ValueError("theta must not be empty")
    if not bool(torch.isfinite(theta).all()):
        raise ValueError("theta contains NaN or inf values")
    return theta.detach()


def _check_int(name: str, value, lo: int, hi: int | None = None) -> int:
    """checks.check_int, also taking numpy integers (returned as int)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = int(value)
    return check_int(name, value, lo, hi)


def _n_levels(bits, levels) -> int:
    """The number of levels K a PTQ quantizer aims at: 2^bits (bits in 1..16), or ``levels`` (1..2^16) where
    given; exactly one of the two."""
    if levels is None:
        return 2 ** _check_int("bits", bits, 1, MAX_BITS)
    if bits is not None:
        raise ValueError(f"give bits or levels, not both (got bits={bits!r}, levels={levels!r})")
    return _check_int("levels", levels, 1, MAX_LEVELS)


def _finalize(values: Tensor, index: Tensor, dtype: torch.dtype) -> Codebook:
    """Codebook from candidate values [M] (any order; unused ones, and ones equal after the cast, allowed)
    and the index [N] into them."""
    uniq, inv = torch.unique(values.to(dtype), sorted=True, return_inverse=True)
    index = inv[index]
    counts = torch.bincount(index, minlength=uniq.numel())
    used = counts > 0
    if not bool(used.all()):
        index = (torch.cumsum(used, 0) - 1)[index]
        uniq, counts = uniq[used], counts[used]
    return Codebook(values=uniq, index=index, counts=counts)


def _from_labels(theta: Tensor, labels: Tensor, m: int) -> Codebook:
    """Codebook whose cluster values are the member means of the clusters given by ``labels`` in 0..m-1."""
    acc = _acc_dtype(theta.device)
    sums = torch.zeros(m, dtype=acc, device=theta.device).index_add_(0, labels, theta.to(acc))
    counts = torch.bincount(labels, minlength=m)
    return _finalize(sums / counts.clamp(min=1), labels, theta.dtype)


def _heq_bins_sorted(s: Tensor, n_bins: int) -> Tensor:
    """HEQ bin of every position of the ascending-sorted weights ``s``: floor(r·n_bins/N) with r the *first*
    rank of the weight's tie group, so equal weights share a bin."""
    n = s.numel()
    pos = torch.arange(n, device=s.device)
    new_group = torch.ones(n, dtype=torch.bool, device=s.device)
    new_group[1:] = s[1:] != s[:-1]
    first_rank = torch.cummax(torch.where(new_group, pos, torch.zeros_like(pos)), 0).values
    return first_rank * n_bins // n


# ------------------------------------------------------------------------------------------------- quantizers


def uniform(theta: Tensor, bits: int | None = None, *, levels: int | None = None) -> Codebook:
    """Naive uniform PTQ: 2^bits (or ``levels``) evenly spaced levels over the layer's [min, max], each weight
    rounded to the nearest level (exact halfway cases round to even). Only the levels in use are kept, so
    K <= 2^bits; a constant layer gives one value. A single level (``levels=1``) is the midpoint of [min, max].

    Args:
        theta: the layer's weights, a 1-D tensor (any float dtype, any device).
        bits: at most 2^bits clusters (1..16); give `bits` or `levels`.
        levels: at most this many clusters (1..2^16), any count (e.g. the K_l a mixed-precision run chose);
            ``levels=2**b`` gives exactly the codebook of ``bits=b``.

    Returns:
        The proposed `Codebook` (values in `theta`'s dtype).

    Examples:
        >>> import torch
        >>> theta = torch.tensor([-1.0, -0.9, -0.1, 0.0, 0.1, 0.8, 1.0, 1.0])
        >>> cb = uniform(theta, 2)
        >>> [round(v, 3) for v in cb.values.tolist()], cb.index.tolist()
        ([-1.0, -0.333, 0.333, 1.0], [0, 0, 1, 2, 2, 3, 3, 3])
        >>> cb = uniform(theta, levels=3)
        >>> cb.values.tolist(), cb.index.tolist()
        ([-1.0, 0.0, 1.0], [0, 0, 1, 1, 1, 2, 2, 2])
    """
    theta, k = _check_theta(theta), _n_levels(bits, levels)
    x = theta.to(_acc_dtype(theta.device))
    lo, hi = x.min(), x.max()
    if lo == hi or k == 1:
        level = lo if lo == hi else (lo + hi) / 2
        return _finalize(level.reshape(1), torch.zeros_like(x, dtype=torch.long), theta.dtype)
    steps = k - 1
    index = torch.round((x - lo) / (hi - lo) * steps).clamp_(0, steps).long()
    levels = lo + (hi - lo) * torch.arange(steps + 1, dtype=x.dtype, device=x.device) / steps
    return _finalize(levels, index, theta.dtype)


def heq(theta: Tensor, bits: int | None = None, *, levels: int | None = None) -> Codebook:
    """Histogram-equalized PTQ: 2^bits (or ``levels``) bins of equal population, each weight replaced by the mean
    of its bin.

    Definition (the HEQ papers leave details open): sort the weights; the weight of rank r (0-based, N
    weights) goes to bin floor(r·2^bits / N), so bin sizes differ by at most one; the bin's value is its
    member mean. Equal-population bins put more levels where weights are dense, which is the point of
    equalization; the member mean minimises the squared error within each bin.

    Tie policy: a group of equal weights gets the rank of its *first* member (scipy's rankdata
    method='min'), so the whole group lands in the bin of its lowest rank. Equal weights thus always get
    equal clamped values (the clamped layer is a function of the weight value), bins stay contiguous and
    ordered in value, K never exceeds 2^bits, and no untied weight is moved. The price is balance: with ties
    a bin can exceed N/2^bits by the size of a tie group, and bins swallowed by a group stay empty
    (dropped). Without ties this is the plain rule. Bins whose means coincide (only possible after the cast
    to a low-precision dtype) merge.

    With ``levels=K`` the same rule holds with K bins in place of 2^bits (rank r → bin floor(r·K / N)).

    Args:
        theta: the layer's weights, a 1-D tensor (any float dtype, any device).
        bits: at most 2^bits clusters (1..16); give `bits` or `levels`.
        levels: at most this many clusters (1..2^16), any count (e.g. the K_l a mixed-precision run chose);
            ``levels=2**b`` gives exactly the codebook of ``bits=b``.

    Returns:
        The proposed `Codebook` (values in `theta`'s dtype).

    Examples:
        >>> import torch
        >>> theta = torch.tensor([-1.0, -0.9, -0.1, 0.0, 0.1, 0.8, 1.0, 1.0])
        >>> cb = heq(theta, 2)
        >>> [round(v, 3) for v in cb.values.tolist()], cb.counts.tolist()
        ([-0.95, -0.05, 0.45, 1.0], [2, 2, 2, 2])
        >>> cb = heq(theta, levels=3)
        >>> [round(v, 3) for v in cb.values.tolist()], cb.counts.tolist()
        ([-0.667, 0.3, 1.0], [3, 3, 2])
    """
    theta, k = _check_theta(theta), _n_levels(bits, levels)
    s, perm = torch.sort(theta)
    labels = torch.empty_like(perm)
    labels[perm] = _heq_bins_sorted(s, k)
    return _from_labels(theta, labels, k)


def _kmeans_inits(s: Tensor, k: int) -> list[Tensor]:
    """Three deterministic ascending initial centroid sets for the sorted weights ``s`` (> k distinct values):
    1. quantiles (j + 1/2)/k of the density p^(1/3), p a histogram of max(16k, 1024) bins over [min, max],
       interpolated linearly within a bin (so every centroid lies in a non-empty bin);
    2. the uniform grid of ``uniform`` (k levels over [min, max]);
    3. the HEQ bin means of ``heq``."""
    lo, hi = s[0], s[-1]
    n_hist = max(16 * k, 1024)
    h = torch.bincount(
        ((s - lo) / (hi - lo) * n_hist).floor().long().clamp_(max=n_hist - 1), minlength=n_hist
    )
    cdf = torch.cat([s.new_zeros(1), torch.cumsum(h.to(s.dtype) ** (1 / 3), 0)])
    cdf = cdf / cdf[-1]
    t = (torch.arange(k, dtype=s.dtype, device=s.device) + 0.5) / k
    j = torch.searchsorted(cdf, t, right=True).clamp_(1, n_hist)  # cdf[j-1] <= t < cdf[j]
    cube_root = lo + (hi - lo) * (j - 1 + (t - cdf[j - 1]) / (cdf[j] - cdf[j - 1])) / n_hist

    grid = lo + (hi - lo) * torch.arange(k, dtype=s.dtype, device=s.device) / (k - 1)

    bins = _heq_bins_sorted(s, k)
    cnt = torch.bincount(bins, minlength=k)
    heq_means = torch.zeros(k, dtype=s.dtype, device=s.device).index_add_(0, bins, s)[cnt > 0] / cnt[cnt > 0]
    return [cube_root, grid, heq_means]


def _lloyd(s: Tensor, c: Tensor, max_iter: int) -> Tensor:
    """Lloyd's iterations on the sorted weights ``s`` from the ascending centroids ``c``. In 1-D each cluster
    is a run of ``s``; returns the run lengths (cluster sizes, 0 if empty) of the last assignment."""
    n = s.numel()
    csum = torch.cat([s.new_zeros(1), torch.cumsum(s, 0)])
    ends = None
    for _ in range(max_iter):
        new_ends = torch.searchsorted(s, (c[1:] + c[:-1]) / 2, right=True)  # x <= midpoint -> lower centroid
        if ends is not None and torch.equal(new_ends, ends):
            break
        ends = new_ends
        bounds = torch.cat([ends.new_zeros(1), ends, ends.new_full((1,), n)])
        cnt = bounds[1:] - bounds[:-1]
        mean = (csum[bounds[1:]] - csum[bounds[:-1]]) / cnt.clamp(min=1)
        c = torch.sort(torch.where(cnt > 0, mean, c)).values  # an empty cluster keeps its centroid
    return torch.diff(ends, prepend=ends.new_zeros(1), append=ends.new_full((1,), n))


def _runs_sse(s: Tensor, runs: Tensor) -> float:
    """Sum of squared errors of the sorted weights ``s`` split into runs of the given lengths, each run
    replaced by its mean."""
    seg = torch.repeat_interleave(torch.arange(runs.numel(), device=s.device), runs)
    means = torch.zeros(runs.numel(), dtype=s.dtype, device=s.device).index_add_(0, seg, s) / runs.clamp(
        min=1
    )
    return float(((s - means[seg]) ** 2).sum())


def _split_to(s: Tensor, runs: Tensor, k: int) -> Tensor:
    """The partition of the sorted weights ``s`` into runs of the given lengths (zeros allowed, dropped), split
    further until it has ``k`` runs: each time the one split of one run that lowers the squared error most (ties:
    the first in sorted order), only between distinct values, so equal weights stay together. A split of a run of
    n1 + n2 weights into parts with means m1, m2 lowers the error by n1·n2/(n1 + n2)·(m1 − m2)². Needs more than
    ``k`` distinct values in ``s`` when it has to split."""
    n = s.numel()
    runs = runs[runs > 0]
    csum = torch.cat([s.new_zeros(1), torch.cumsum(s, 0)])
    pos = torch.arange(1, n, device=s.device)  # split before position pos: s[:pos] | s[pos:]
    distinct = s[1:] != s[:-1]
    while runs.numel() < k:
        ends = torch.cumsum(runs, 0)
        run = torch.repeat_interleave(torch.arange(runs.numel(), device=s.device), runs)[1:]  # run of pos
        a, b = (ends - runs)[run], ends[run]
        n1, n2 = pos - a, b - pos
        m1 = (csum[pos] - csum[a]) / n1.clamp(min=1)
        m2 = (csum[b] - csum[pos]) / n2
        gain = torch.where(distinct & (n1 > 0), (n1 * n2).to(s.dtype) / (n1 + n2) * (m1 - m2) ** 2,
                           torch.full_like(m1, -math.inf))
        i = int(torch.argmax(gain))  # the first of equal maxima
        j, left = int(run[i]), int(n1[i])
        runs = torch.cat([runs[:j], torch.stack([runs.new_tensor(left), runs[j] - left]), runs[j + 1 :]])
    return runs


def _fill(s: Tensor, runs: Tensor, k: int, max_iter: int) -> Tensor:
    """Run lengths of a partition of the sorted weights ``s`` (> k distinct values) into exactly ``k`` non-empty
    runs, from a Lloyd result ``runs`` that left clusters empty: split up to k runs (``_split_to``), rerun Lloyd
    from their means, and repeat while Lloyd empties a cluster again (``FILL_ROUNDS`` at most, then split without
    Lloyd). Neither a split nor Lloyd raises the squared error, so the result is never worse than ``runs``."""
    for _ in range(FILL_ROUNDS):
        runs = _split_to(s, runs, k)
        seg = torch.repeat_interleave(torch.arange(k, device=s.device), runs)
        means = torch.zeros(k, dtype=s.dtype, device=s.device).index_add_(0, seg, s) / runs
        runs = _lloyd(s, means, max_iter)
        if bool((runs > 0).all()):
            return runs
    return _split_to(s, runs, k)


def kmeans(theta: Tensor, bits: int | None = None, *, levels: int | None = None, seed: int = 0,
           max_iter: int = 1000) -> Codebook:
    """1-D k-means (Lloyd's algorithm) with at most 2^bits centroids, or with exactly ``levels`` centroids where
    the layer has that many distinct values; cluster values are member means.

    Init: Lloyd is run from three deterministic inits and the partition with the lowest squared error is
    kept (the first on a tie): (1) the quantiles of the cube root of the weight density, (2) the ``uniform``
    grid, (3) the ``heq`` bin means (see ``_kmeans_inits``). Why: (1) is the usual best start, since by the
    Panter-Dite / Gersho high-resolution result the MSE-optimal quantizer has a point density proportional to
    p^(1/3); it converges in tens to hundreds of iterations. But with few weights per cluster (e.g. 8 bits on
    a 20k-weight layer) its histogram estimate is noisy and Lloyd can end worse than the plain uniform grid.
    Lloyd never increases the error, so starting also from (2) and (3) guarantees that k-means is never worse
    than ``uniform`` or ``heq`` at the same bits, which a PTQ baseline table needs. (3) alone converges
    slowly (thousands of iterations at 8 bits) into poor local minima: Gaussian weights, 8 bits, 1.4x to 2.5x
    the MSE of (1). k-means++ would add seed dependence and O(N·K²) init cost. The result is deterministic and
    ``seed`` is unused; it is accepted so callers can pass one uniformly.

    The iterations are those of scipy.cluster.vq.kmeans2 with ``minit='matrix'`` and ``missing='warn'``
    (nearest-centroid assignment, ties to the lower centroid; mean update; an empty cluster keeps its
    centroid), but exploit 1-D order: on the sorted weights each cluster is a contiguous run found by
    searchsorted of the centroid midpoints, and its mean comes from prefix sums, so one iteration costs
    O(K log N) (about 0.2 ms at K = 256, N = 10^6) instead of O(N·K). Iteration stops when the assignment no
    longer changes or after ``max_iter`` iterations (per init). Empty clusters are dropped. A layer with at
    most 2^bits distinct values gets one cluster per distinct value (the exact optimum, zero error).

    ``levels=K`` (any K ≥ 1, e.g. the K_l a mixed-precision run chose for the layer) runs the same algorithm
    with K centroids (K = 1: the layer's mean) and then guarantees the count: K = min(levels, distinct values).
    Where Lloyd's best partition leaves clusters empty, which at 2^bits happens often with few weights per
    cluster (ResNet-20's 432-weight first conv gets 15 of 16 clusters at 4 bits, 130 of 256 at 8), they are
    refilled (``_fill``: the clusters are split where a split lowers the squared error most, then Lloyd is
    rerun), which only lowers the error further; so a K-level budget is spent in full, as a matched-bits
    comparison needs. Where Lloyd leaves no cluster empty, ``levels=2**b`` gives exactly the codebook of
    ``bits=b``; ``bits`` keeps dropping empty clusters, so existing results are unchanged.

    Args:
        theta: the layer's weights, a 1-D tensor (any float dtype, any device).
        bits: at most 2^bits clusters (1..16); give `bits` or `levels`.
        levels: exactly min(levels, distinct values) clusters (1..2^16).
        seed: unused (the result is deterministic); accepted so callers can pass one.
        max_iter: Lloyd iterations per init (and per refill round), at most.

    Returns:
        The proposed `Codebook` (values in `theta`'s dtype).

    Examples:
        >>> import torch
        >>> theta = torch.tensor([-1.0, -0.9, -0.1, 0.0, 0.1, 0.8, 1.0, 1.0])
        >>> cb = kmeans(theta, 2)
        >>> [round(v, 3) for v in cb.values.tolist()], cb.counts.tolist()
        ([-0.95, -0.05, 0.1, 0.933], [2, 2, 1, 3])
        >>> cb = kmeans(theta, levels=3)
        >>> [round(v, 3) for v in cb.values.tolist()], cb.counts.tolist()
        ([-0.95, 0.0, 0.933], [2, 3, 3])
        >>> [round(v, 4) for v in kmeans(theta, levels=1).values.tolist()]  # one level: the mean
        [0.1125]
    """
    theta, k_max = _check_theta(theta), _n_levels(bits, levels)
    _check_int("seed", seed, 0)
    max_iter = _check_int("max_iter", max_iter, 1)
    s, perm = torch.sort(theta.to(_acc_dtype(theta.device)))
    labels = torch.empty_like(perm)

    new_group = torch.ones_like(perm)
    new_group[1:] = (s[1:] != s[:-1]).long()
    n_distinct = int(new_group.sum())
    if n_distinct <= k_max:  # one cluster per distinct value
        labels[perm] = torch.cumsum(new_group, 0) - 1
        return _from_labels(theta, labels, n_distinct)

    if k_max == 1:  # one cluster: the mean (the inits need two centroids)
        return _from_labels(theta, torch.zeros_like(perm), 1)

    candidates = [_lloyd(s, c, max_iter) for c in _kmeans_inits(s, k_max)]
    runs = min(candidates, key=lambda r: _runs_sse(s, r))
    if levels is not None and not bool((runs > 0).all()):
        runs = _fill(s, runs, k_max, max_iter)
    labels[perm] = torch.repeat_interleave(torch.arange(runs.numel(), device=s.device), runs)
    return _from_labels(theta, labels, runs.numel())


def refine_clusters(theta: Tensor, *, resolution_bits: int = 7, n_min: int = 10) -> Codebook:
    """Post-training cluster identification of soft quantization (arXiv:2601.21219, "Soft Quantization: Model
    Compression Via Weight Coupling": clusters found by 7-bit binning, tiny clusters merged).

    Convention (../shared/papers/README.md; calibrated there to the paper's ≈3.8 bits at h=0.05, w=0.3):
    2^resolution_bits equal-width bins over the layer's [min, max] (the max falls in the last bin); the
    clusters are the non-empty bins. Then, while some cluster has fewer than ``n_min`` members and more than
    one cluster is left, the smallest such cluster (ties: the lowest in value) is merged into its left or
    right neighbour in sorted order, whichever has the closer mean (ties: the left one). A cluster's value
    is the mean of its members. Vectorised over weights; the merge loop runs over at most 2^resolution_bits
    clusters.

    Args:
        theta: the layer's weights, a 1-D tensor (any float dtype, any device).
        resolution_bits: 2^resolution_bits equal-width bins over [min, max] (1..16).
        n_min: clusters with fewer members are merged into a neighbour.

    Returns:
        The `Codebook` of the clusters found.

    Examples:
        >>> import torch
        >>> theta = torch.tensor([-1.0, -0.9, -0.1, 0.0, 0.1, 0.8, 1.0, 1.0])
        >>> cb = refine_clusters(theta, resolution_bits=2, n_min=2)
        >>> [round(v, 3) for v in cb.values.tolist()], cb.counts.tolist()
        ([-0.95, 0.0, 0.933], [2, 3, 3])
    """
    theta = _check_theta(theta)
    resolution_bits = _check_int("resolution_bits", resolution_bits, 1, MAX_BITS)
    n_min = _check_int("n_min", n_min, 1)
    x = theta.to(_acc_dtype(theta.device))
    n_bins = 2**resolution_bits
    lo, hi = x.min(), x.max()
    width = (hi - lo) if hi > lo else torch.ones_like(hi)
    bin_of = ((x - lo) / width * n_bins).floor().long().clamp_(0, n_bins - 1)
    counts_t = torch.bincount(bin_of, minlength=n_bins)
    sums_t = torch.zeros(n_bins, dtype=x.dtype, device=x.device).index_add_(0, bin_of, x)

    occupied = torch.nonzero(counts_t).flatten().tolist()
    counts = counts_t[occupied].tolist()
    sums = sums_t[occupied].tolist()
    members = [[b] for b in occupied]  # bins forming each cluster, clusters in ascending order
    while len(counts) > 1:
        small = [j for j, c in enumerate(counts) if c < n_min]
        if not small:
            break
        j = min(small, key=counts.__getitem__)  # min() returns the first, i.e. lowest, of equal counts
        mean = sums[j] / counts[j]
        dists = [(abs(mean - sums[t] / counts[t]), t) for t in (j - 1, j + 1) if 0 <= t < len(counts)]
        t = min(dists)[1]  # on equal distance the left neighbour (smaller index) wins
        counts[t] += counts[j]
        sums[t] += sums[j]
        members[t] += members[j]
        del counts[j], sums[j], members[j]

    cluster_of_bin = torch.zeros(n_bins, dtype=torch.long)
    for c, bins in enumerate(members):
        cluster_of_bin[bins] = c
    return _from_labels(theta, cluster_of_bin.to(x.device)[bin_of], len(members))


def nearest(theta: Tensor, centroids: Tensor) -> Codebook:
    """Assign every weight to the nearest of the given centroid values (ties: the lower value); the values are
    the centroids themselves (in ``theta``'s dtype), unused and duplicate centroids dropped.

    Args:
        theta: the layer's weights, a 1-D tensor.
        centroids: the candidate values, a non-empty 1-D tensor of finite numbers.

    Returns:
        The `Codebook` of the centroids in use.

    Examples:
        >>> import torch
        >>> theta = torch.tensor([-1.0, -0.9, -0.1, 0.0, 0.1, 0.8, 1.0, 1.0])
        >>> cb = nearest(theta, torch.tensor([-1.0, 0.0, 1.0, 5.0]))
        >>> cb.values.tolist(), cb.apply().tolist()
        ([-1.0, 0.0, 1.0], [-1.0, -1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    """
    theta = _check_theta(theta)
    if not isinstance(centroids, Tensor) or centroids.dim() != 1 or centroids.numel() == 0:
        raise ValueError("centroids must be a non-empty 1-D torch.Tensor")
    if not bool(torch.isfinite(centroids).all()):
        raise ValueError("centroids contain NaN or inf values")
    acc = _acc_dtype(theta.device)
    c = torch.unique(centroids.detach().to(device=theta.device, dtype=acc))  # sorted, distinct
    index = torch.bucketize(theta.to(acc), (c[1:] + c[:-1]) / 2, right=False)  # x <= midpoint -> lower
    return _finalize(c, index, theta.dtype)


# the PTQ baselines, each f(theta, bits) or f(theta, levels=K)
QUANTIZERS = {"uniform": uniform, "heq": heq, "kmeans": kmeans}
