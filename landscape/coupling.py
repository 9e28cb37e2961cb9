"""Weight-coupling energy of soft quantization, and four ways to compute it.

For one layer with flattened weights theta (N values, units of the weights) the unweighted coupling energy is

    E(theta) = sum_{i != j} U_w(theta_i - theta_j)      (ordered pairs: each pair counted twice)
    U_w(x)   = |x| if |x| < w else w                    (triangular well; eq. 2 and S3.1 of
                                                         quantization-bottom-of-loss-landscape.md)

and its gradient ("force", the quantity SGD sees) is

    dE/dtheta_i = 2 sum_j sign(theta_i - theta_j) [|theta_i - theta_j| < w],   sign(0) = 0.

Conventions: ties exert no force; the window is open, so pairs exactly w apart exert none (U is flat there).
The caller multiplies by h_l = h N^-alpha and picks w_l = w sigma_l (`layer_scales`; soft-quantization paper).
All estimators take any-shape floating tensors (treated as flattened) and a finite w > 0 (same units as
theta); NaN/inf weights raise ValueError; N < 2 gives energy 0 (there are no pairs).

Estimators (each returns E as a 0-d tensor, in weight units; backward gives dE/dtheta):
`energy_exact` (O(N^2) reference), `energy_subsampled` (random pairs, unbiased), `energy_subset` (the workshop
paper's wording: all pairs among a random sqrt(N)-subset of the weights, unbiased),
`energy_histogram` (soft-quantization paper: cloud-in-cell histogram + FFT convolution,
O(N + n_bins log n_bins); conv="prefix" does the same convolution by prefix sums in O(N + n_bins)) and
`energy_sorted` (beyond the papers: exact, O(N log N), sort + searchsorted + prefix sums).

All layers of a model at once (what a training step needs): `energy_histogram_multi(thetas, ws)` and
`energy_sorted_multi(thetas, ws)` take lists of layers and their w_l and return the (L,) vector of E_l, equal
to the per-layer functions (forces bit-identical for sorted; to rounding for histogram), in one batched pass
with one autograd node, instead of L calls that each pay ~0.4 ms of fixed overhead.

For analysis, not training: `layer_energies(model_or_state, w)` gives every coupled layer's N_l, σ_l, w_l and
its exact E_l in float64 (analyses/fig_alpha.py fits the layer-size power law of E_l with it).

Why `energy_sorted` accumulates prefix sums in float64: E is assembled from differences of prefix sums, so
their rounding error enters in full. In float64 the result agrees with the exact sum to 1e-9 (tested). With a
float32 running sum the total E (Gaussian weights, w = 0.3 std) loses 1e-6 relative agreement between
N = 2**18 (1.6e-7) and N = 2**20 (1.9e-6; 1.0e-5 at 2**21); see test_sorted_float32_breakdown in the tests.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from . import _segments as _seg

CHUNK = 2**18  # weights handled at a time by the histogram/sorted estimators: bounds temporary memory


def _check_w(w: float) -> float:
    w = float(w)
    if not (math.isfinite(w) and w > 0):  # also rejects NaN
        raise ValueError(f"well width w must be a finite number > 0, got {w!r}")
    return w


def _check(theta: Tensor, w: float, finite: bool = True) -> tuple[Tensor, float]:
    """Validate and flatten; returns (theta as 1-D, w as float). finite=False: the caller checks theta."""
    w = _check_w(w)
    if not theta.is_floating_point():
        raise TypeError(f"theta must be a floating-point tensor, got {theta.dtype}")
    if finite and theta.numel() and not bool(torch.isfinite(theta).all()):
        raise ValueError("theta contains NaN or inf")
    return theta.reshape(-1), w


def _zero(theta: Tensor) -> Tensor:
    return theta.sum() * 0  # N < 2: no pairs; keeps the graph so backward gives a zero gradient


def triangular_well(x: Tensor, w: float) -> Tensor:
    """U_w(x) = |x| for |x| < w, else w (x, w in weight units); gradient sign(x) inside, 0 at 0, |x| >= w."""
    a = x.abs()
    return torch.where(a < w, a, torch.full_like(a, w))  # `where`, not clamp: no gradient at |x| = w


class _ClosedForm(torch.autograd.Function):
    """E from compute(theta, *args) -> (E, force); the backward returns the precomputed force."""

    @staticmethod
    def forward(ctx, theta, compute, *args):
        energy, force = compute(theta, *args)
        ctx.save_for_backward(force)
        ctx.n_args = len(args)
        return energy.to(theta.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        return (grad * ctx.saved_tensors[0], None) + (None,) * ctx.n_args


def _exact(theta: Tensor, w: float, chunk: int) -> tuple[Tensor, Tensor]:
    energy = theta.new_zeros((), dtype=torch.float64)
    force = torch.empty_like(theta)
    for s in range(0, theta.numel(), chunk):
        d = theta[s : s + chunk, None] - theta[None, :]  # chunk x N block of theta_i - theta_j
        sign = d.sign()
        a = d.abs_()
        sign.mul_(a < w)  # open window; the diagonal (self, ties) has sign 0
        force[s : s + chunk] = 2 * sign.sum(1)
        energy += a.clamp_max_(w).sum(dtype=torch.float64)  # U(0) = 0, so the diagonal adds nothing
    return energy, force


def energy_exact(theta: Tensor, w: float, *, chunk: int = 2048) -> Tensor:
    """Exact E by direct pairwise summation, O(N^2) time, O(chunk N) memory.

    chunk: rows of the N x N difference matrix formed at a time. The backward returns the closed-form force
    (computed in the same pass); `torch.autograd.gradcheck` checks it against finite differences in float64.
    """
    theta, w = _check(theta, w)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    return _zero(theta) if theta.numel() < 2 else _ClosedForm.apply(theta, _exact, w, int(chunk))


def energy_subsampled(
    theta: Tensor, w: float, *, n_pairs: int | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """Unbiased Monte-Carlo estimate of E from n_pairs uniformly drawn ordered pairs i != j (default N).

    Returns N(N-1) mean U_w(theta_i - theta_j); its gradient is the autograd one of that estimate.
    generator: optional torch.Generator on theta's device, for reproducible draws.
    """
    theta, w = _check(theta, w)
    n = theta.numel()
    if n_pairs is not None and n_pairs < 1:
        raise ValueError(f"n_pairs must be >= 1, got {n_pairs}")
    if n < 2:
        return _zero(theta)
    n_pairs = n if n_pairs is None else int(n_pairs)
    i = torch.randint(0, n, (n_pairs,), generator=generator, device=theta.device)
    j = (i + torch.randint(1, n, (n_pairs,), generator=generator, device=theta.device)) % n  # j != i, uniform
    return n * (n - 1) * triangular_well(theta[i] - theta[j], w).mean()


def energy_subset(
    theta: Tensor, w: float, *, n_weights: int | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """Unbiased estimate of E from all ordered pairs among n_weights weights drawn without replacement (default
    ceil(sqrt(N)), so about N pairs): the workshop paper's wording, "randomly subsampling a fraction O(sqrt(N_l))
    of weights per layer" (S3.1) and "we subsample N_l of the N_l^2 pairwise interactions" (App. A).

    Returns N(N-1) / (m(m-1)) * sum over the subset's pairs, m = n_weights (a uniform subset makes every pair
    equally likely, with probability m(m-1) / (N(N-1))). The pair sum within the subset is exact (`energy_sorted`,
    O(m log m)); drawing the subset costs O(N). Unlike `energy_subsampled` (independent random pairs, about two
    per weight), only the m drawn weights feel a force, each from m - 1 partners: the same expectation, larger
    and rarer kicks. The paper does not say whether it rescales the sum; rescaling keeps h meaning the same
    across estimators.
    generator: optional torch.Generator on theta's device, for reproducible draws.
    """
    theta, w = _check(theta, w)
    n = theta.numel()
    if n_weights is not None and n_weights < 2:
        raise ValueError(f"n_weights must be >= 2 (a pair), got {n_weights}")
    if n < 2:
        return _zero(theta)
    m = min(n, math.ceil(math.sqrt(n)) if n_weights is None else int(n_weights))
    m = max(m, 2)
    pick = torch.randperm(n, generator=generator, device=theta.device)[:m]
    return (n * (n - 1)) / (m * (m - 1)) * energy_sorted(theta[pick], w)


# ---------------------------------------------------------------------------------------------------------
# Histogram estimator. Grid nodes x_k = lo + k dx, k < M = n_bins, spanning [min, max]; dx = w / K with
# integer K, so U is exactly piecewise linear on the grid: U(j dx) = w - T_j, tent T_j = dx (K - |j|)+.
# Weights are deposited cloud-in-cell (linear), giving the density rho_k (sum N). Then
#   E   = N^2 w - rho . (T * rho) - self     (= sum_i of the potential linearly interpolated at theta_i,
#                                              because read-out and deposit use the same weights)
#   F_i = 2 (D * rho)(theta_i), read by linear interpolation, D_j = (T_{j-1} - T_{j+1}) / (2 dx),
# D being the cell average of U' = sign(x)[|x| < w]: 0 at j = 0, 1 inside, 1/2 at |j| = K.
# Self-interaction: a weight deposited with fractions (1-f, f) reads back its own U as 2 f (1-f) dx, which is
# subtracted; its own force reads back as exactly 0 because D is odd with D_0 = 0.
# conv="fft": both kernels have closed-form DFTs, T^ = dx S, S_n = sin^2(pi K n / L) / sin^2(pi n / L), and
#   D^ = -i sin(2 pi n / L) S, so the only FFTs are one rfft of rho (forward; the energy by Parseval) and
#   one irfft (backward); zero padding to L >= M + K + 1 stops circular wrap-around.
# conv="prefix": T = dx B B^T with B a box of K ones, so rho . (T * rho) = dx sum_k (window-K sum of rho)^2
#   and D * rho = (sum of rho over the K - 1 nodes left) - (right) + (edge nodes)/2: prefix sums, O(M).
#   Same numbers to rounding, without the log factor.
# ---------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _fft_len(n: int) -> int:
    """Smallest even 2^a 3^b 5^c >= n (FFT libraries are fast on such sizes)."""
    e = range(n.bit_length() + 1)
    return min(p for p in (2**a * 3**b * 5**c for a in e[1:] for b in e for c in e) if p >= n)


@functools.lru_cache(maxsize=64)
def _kernels(k: int, length: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """Half-spectrum kernels for window K and FFT length L, cached because K and L rarely change per layer.

    Returns (c_n S_n / L, interleaved for view_as_real; float64) and 2 D^_n / dx = -2i sin(2 pi n / L) S_n,
    with c_n the multiplicity of frequency n in the full spectrum (the rfft keeps n <= L / 2).
    """
    n = torch.arange(length // 2 + 1, device=device, dtype=torch.int64)
    f64, c = torch.float64, math.pi / length  # built in float64, rounded once
    # Reduce K n mod L in integers first: the angle pi K n / L itself would lose digits for large K n.
    num = torch.sin(c * ((k * n) % length).to(f64)).square()
    s_hat = torch.where(n == 0, float(k * k), num / torch.sin(c * n.to(f64)).square().clamp_(min=1e-300))
    mult = torch.full_like(num, 2.0 / length)
    mult[0] = mult[-1] = 1.0 / length  # DC and Nyquist (L is even) appear once
    d2 = torch.complex(torch.zeros_like(s_hat), -2 * torch.sin(2 * c * n.to(f64)) * s_hat)
    cplx = torch.complex128 if dtype == torch.float64 else torch.complex64
    return (s_hat * mult).repeat_interleave(2), d2.to(cplx)


def _cic(c: Tensor, lo: float, inv_dx: float, m: int) -> tuple[Tensor, Tensor]:
    """Cloud-in-cell: left node index, and the fraction f of the weight on the right node (in [0, 1] up to
    rounding at the ends of the grid, which is harmless: the deposited mass (1 - f) + f is 1 regardless)."""
    t = (c - lo).mul_(inv_dx)
    k = t.floor().clamp_(0, m - 2)
    return k.long(), t.sub_(k)


class _Histogram(torch.autograd.Function):
    @staticmethod
    def forward(ctx, theta, w, m, lo, k, conv):
        cdt = theta.dtype if theta.dtype in (torch.float32, torch.float64) else torch.float32
        n, dx = theta.numel(), w / k
        length = _fft_len(m + k + 1) if conv == "fft" else m
        rho = torch.zeros(length, dtype=cdt, device=theta.device)  # zero-padded to the FFT length
        sff = 0  # sum_i f_i (1 - f_i), for the self-energy
        for s in range(0, n, CHUNK):
            idx, f = _cic(theta[s : s + CHUNK].to(cdt), lo, k / w, m)
            g = 1 - f
            rho.scatter_add_(0, idx, g)  # = index_add_, several times faster on CPU
            rho[1:].scatter_add_(0, idx, f)  # right nodes idx + 1
            sff = sff + torch.dot(f, g)
        if conv == "fft":
            rho = torch.fft.rfft(rho)
            pair = torch.view_as_real(rho).square().flatten().mul(_kernels(k, length, cdt, theta.device)[0])
            pair = pair.sum()  # float64: the terms span many decades
        else:  # float64 prefix sums: cheap at O(M), and their differences lose nothing
            # rho becomes C: C[i] = density summed over padded nodes < i; node j sits at padded index j + k
            rho = torch.nn.functional.pad(rho.to(torch.float64), (k + 1, k)).cumsum_(0)
            pair = (rho[k:] - rho[:-k]).square_().sum()  # every window of K consecutive nodes
        ctx.save_for_backward(theta, rho)
        ctx.geom = (w, m, lo, k, length, cdt, conv)
        ctx.cic = (idx, f) if n <= CHUNK else None  # small layers: keep, saves recomputing in backward
        return pair.mul(-dx).add_(sff, alpha=-2 * dx).add_(n * n * w).to(cdt)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        theta, rho = ctx.saved_tensors
        w, m, lo, k, length, cdt, conv = ctx.geom
        if conv == "fft":  # force field 2 (D * rho) at the nodes
            field = torch.fft.irfft(rho * _kernels(k, length, cdt, theta.device)[1], n=length)[:m]
        else:  # with H = (C[i] + C[i+1]) / 2 the mid-node counts, D * rho = 2 H(x) - H(x - w) - H(x + w)
            h = rho[:-1] + rho[1:]
            field = (h[:m] + h[2 * k : 2 * k + m]).sub_(h[k : k + m], alpha=2).neg_().to(cdt)
        field = field.mul_(grad)
        slope = field[1:] - field[:-1]
        if ctx.cic is not None:
            idx, f = ctx.cic
            out = field.index_select(0, idx).addcmul_(f, slope.index_select(0, idx))
            return out.to(theta.dtype), None, None, None, None, None
        out = torch.empty_like(theta)
        for s in range(0, theta.numel(), CHUNK):
            idx, f = _cic(theta[s : s + CHUNK].to(cdt), lo, k / w, m)
            out[s : s + CHUNK] = field.index_select(0, idx).addcmul_(f, slope.index_select(0, idx))
        return out, None, None, None, None, None


def _check_bins(n_bins: int, conv: str) -> None:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 2**6 or n_bins & (n_bins - 1):
        raise ValueError(f"n_bins must be a power of two and >= 2**6 = 64, got {n_bins!r}")
    if conv not in ("fft", "prefix"):
        raise ValueError(f'conv must be "fft" or "prefix", got {conv!r}')


def energy_histogram(theta: Tensor, w: float, *, n_bins: int = 2**14, conv: str = "fft") -> Tensor:
    """E from a cloud-in-cell histogram of n_bins nodes over [min, max] and a convolution (paper's method).

    n_bins: number of grid nodes, a power of two >= 2**6. The grid step is dx = w / K with
    K = min(floor(w (n_bins - 1) / range), n_bins - 1), i.e. dx <= range / (n_bins - 1) unless w > range.
    conv: "fft" (the paper's O(n_bins log n_bins) FFT convolution) or "prefix" (the same convolution by
    prefix sums, O(n_bins); equal to rounding). Energy error is O(dx^2); the force error comes from neighbours
    within ~2 dx of theta_i or of theta_i +- w, which the grid cannot order (see tests). If w < range /
    (n_bins - 1) the grid cannot resolve the well and the exact `energy_sorted` is returned instead.
    Memory: O(n_bins) plus chunks of CHUNK weights. The backward returns the histogram force estimate (not
    the derivative of the piecewise-quadratic energy estimate).
    """
    _check_bins(n_bins, conv)
    theta, w = _check(theta, w, finite=False)
    if theta.numel() < 2:
        return _zero(_check(theta, w)[0])  # the full check: 1 element
    lo, hi = (float(v) for v in torch.aminmax(theta.detach()))  # NaN propagates into min and max
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("theta contains NaN or inf")
    if hi == lo:
        return _zero(theta)  # all weights equal: every pair sits at U(0) = 0
    k = min(math.floor(w * (n_bins - 1) / (hi - lo)), n_bins - 1)
    if k < 1:
        return energy_sorted(theta, w)
    return _Histogram.apply(theta, w, n_bins, lo, k, conv)


def _sorted(theta: Tensor, w: float, acc=torch.float64, cumsum=None) -> tuple[Tensor, Tensor]:
    """Exact (E, force) by sort + searchsorted + prefix sums in dtype `acc` (float32 only to test why not).
    cumsum: prefix-sum function (default torch.cumsum along dim 0); tests swap in a sequential float32 sum."""
    n = theta.numel()
    s, perm = torch.sort(theta)
    if not (math.isfinite(s[0]) and math.isfinite(s[-1])):  # sort puts -inf first, inf and NaN last
        raise ValueError("theta contains NaN or inf")
    # Windows are found on a float64 copy (exact for float32 input), so the window test is
    # theta_j vs fl64(theta_i - w) whatever theta's dtype; w is not rounded to float32 either.
    s = s.to(torch.float64)
    mid = s[n // 2]  # centre the prefix sums on the median: smaller partial sums, less cancellation
    prefix = torch.zeros(n + 1, dtype=acc, device=theta.device)
    prefix[1:] = cumsum((s - mid).to(acc)) if cumsum else torch.cumsum((s - mid).to(acc), 0)
    # Tie groups: value s[i] occupies [lt_i, ge_i) (self included); O(N), unlike two more searchsorteds.
    _, group, size = torch.unique_consecutive(s, return_inverse=True, return_counts=True)
    end = size.cumsum(0)
    start = end - size
    # Lower window ends a_i = #{s_j <= fl(s_i - w)} ('right' skips values equal to s_i - w: open window),
    # never inside i's own tie group (the min guards w < ulp(s_i)/2, where s_i - w rounds back to s_i).
    a = torch.empty(n, dtype=torch.int64, device=theta.device)
    for c in range(0, n, CHUNK):
        lt = start.index_select(0, group[c : c + CHUNK])
        a[c : c + CHUNK] = torch.minimum(torch.searchsorted(s, s[c : c + CHUNK] - w, side="right"), lt)
    # Upper window ends by symmetry: j > i is in i's window iff i is in j's, i.e. a_j <= i (the rule
    # "pair inside iff larger - w rounds below the smaller" is one test per pair, seen alike from both
    # ends, so forces are exactly antisymmetric); a is sorted, so b_i = #{j : a_j <= i} is a count.
    b = torch.bincount(a, minlength=n).cumsum_(0)
    energy = prefix.new_zeros(())
    force = torch.empty(n, dtype=theta.dtype, device=theta.device)
    for c in range(0, n, CHUNK):
        v, g, ac, bc = s[c : c + CHUNK], group[c : c + CHUNK], a[c : c + CHUNK], b[c : c + CHUNK]
        ge = end.index_select(0, g)
        lt = start.index_select(0, g)
        n_left, n_right = lt - ac, bc - ge
        # sum over the window of |v - s_j| (ties add 0), plus w for every pair outside the window
        e = (v - mid).to(acc) * (n_left - n_right) - (prefix[lt] - prefix[ac]) + (prefix[bc] - prefix[ge])
        energy += e.sum() + w * (n * v.numel() - (bc - ac).sum()).to(acc)
        force[c : c + CHUNK] = 2 * (n_left - n_right)
    return energy, torch.empty_like(force).index_copy_(0, perm, force)


def energy_sorted(theta: Tensor, w: float) -> Tensor:
    """Exact E and force in O(N log N) (beyond the papers): sort, open windows by searchsorted, prefix sums.

    energy_i = sum_{|theta_i - theta_j| < w} |theta_i - theta_j| + w (N - #window), E = sum_i energy_i;
    force_i = 2 (#{theta_i - w < theta_j < theta_i} - #{theta_i < theta_j < theta_i + w}), exact integers.
    Window rule: a pair theta_j < theta_i is inside iff theta_j > fl64(theta_i - w) (one test per pair, so
    forces are exactly antisymmetric); energy_exact tests |fl(theta_i - theta_j)| < w: the two agree whenever
    the differences are exact, and can differ only for pairs within rounding of w. One searchsorted finds
    the lower window ends, a count the upper ones. Prefix sums are float64. Memory: ~60 N bytes (sorted
    float64 copy, permutation, prefix sums, tie groups, window ends), unlike the histogram's O(n_bins).
    """
    theta, w = _check(theta, w, finite=theta.numel() < 2)  # N >= 2: checked after the sort, for free
    return _zero(theta) if theta.numel() < 2 else _ClosedForm.apply(theta, _sorted, w)


# ---------------------------------------------------------------------------------------------------------
# All layers at once. A training step needs E_l of every layer l (20 in ResNet-20, 432 to 36,864 weights);
# one call per layer pays a fixed ~0.4 ms of Python and dispatch overhead each time, about half of the cost.
# The *_multi functions take the list of layers, concatenate them (layer l = segment l of one 1-D tensor, see
# landscape/_segments.py) and evaluate every layer in one pass of batched torch ops, returning the vector
# (E_1, ..., E_L). One autograd node holds all layers; the concatenation's backward hands each layer its part.
# ---------------------------------------------------------------------------------------------------------


def _check_multi(thetas: Sequence[Tensor], ws: Sequence[float]) -> tuple[list[Tensor], list[float]]:
    thetas, ws = list(thetas), list(ws)
    if not thetas:
        raise ValueError("no layers given")
    if len(thetas) != len(ws):
        raise ValueError(f"got {len(thetas)} layers but {len(ws)} well widths")
    for t in thetas:
        if not t.is_floating_point():
            raise TypeError(f"theta must be a floating-point tensor, got {t.dtype}")
    return thetas, [_check_w(w) for w in ws]


def _concat(thetas: list[Tensor]) -> Tensor:
    """Flattened layers one after the other, in float64 if any layer is float64 else float32 (exact for
    half/bfloat16). Differentiable: its backward gives every layer its own slice, cast back to its dtype."""
    dtype = torch.float64 if any(t.dtype == torch.float64 for t in thetas) else torch.float32
    return torch.cat([t.reshape(-1).to(dtype) for t in thetas])


class _SortedMulti(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, sizes, ws):
        energy, force = _sorted_multi(x.detach(), sizes, ws)
        ctx.save_for_backward(force)
        ctx.sizes = sizes
        return energy.to(x.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (force,) = ctx.saved_tensors
        seg = _seg.layout(ctx.sizes, force.device).seg
        return force * grad.to(force.dtype).index_select(0, seg), None, None


def _sorted_multi(x: Tensor, sizes: tuple[int, ...], ws: tuple[float, ...]) -> tuple[Tensor, Tensor]:
    """(E_l in float64 for every layer, force like x) of the concatenated layers x: the equations and the
    window rule of `_sorted`, for all layers at once. Per sorted weight i of layer l, with its window
    [a_i, b_i) of sorted positions (self and ties included) and P(q) the sum of s - mid_l over positions < q:

        E_l = sum_i [c_i dd_i + P(a_i) + P(b_i) - P(i) - P(i + 1)] + w_l (N_l^2 - sum_i (b_i - a_i)),

    c_i = s_i - mid_l, dd_i = (i - a_i) - (b_i - i - 1) (mid_l: the layer's median, as in `_sorted`; it
    cancels exactly and keeps the prefix sums small). Ties add |s_i - s_j| = 0 on whichever side they are
    counted, so only the force needs the runs of equal values: F_i = 2 (dd_i - tau_i), tau_i = (#equal
    before i) - (#equal after i), zero but for the few tied weights (`_segments.tie_runs`).
    """
    f64, dev, n = torch.float64, x.device, x.numel()
    off, seg, inner, index = _seg.layout(sizes, dev)
    perm = _seg.sort_segments(x, sizes)
    s = x.index_select(0, perm).to(f64)  # float32 -> float64 is exact; windows are decided in float64
    bounds = off.tolist()
    full = [i for i, nl in enumerate(sizes) if nl]
    picks = [bounds[i] for i in full] + [bounds[i + 1] - 1 for i in full]
    picks += [bounds[i] + sizes[i] // 2 for i in full]
    lo, hi, mid = (v.tolist() for v in s.index_select(0, torch.tensor(picks, device=dev)).chunk(3))
    if not all(map(math.isfinite, lo + hi)):  # the sort puts NaN and inf at the ends of a layer
        raise ValueError("theta contains NaN or inf")
    # Lower window ends a_i = #{s_j <= fl(s_i - w)} (one searchsorted per layer, on its own sorted values);
    # upper ends by symmetry, b_i = #{j : a_j <= i}: a count, as a is non-decreasing (earlier layers count
    # whole, later ones not at all).
    c = torch.empty(n, dtype=f64, device=dev)
    a = torch.empty(n, dtype=torch.int64, device=dev)
    for j, i in enumerate(full):
        v = s[bounds[i] : bounds[i + 1]]
        torch.sub(v, mid[j], out=c[bounds[i] : bounds[i + 1]])
        torch.searchsorted(v, v - ws[i], side="right", out=a[bounds[i] : bounds[i + 1]]).add_(bounds[i])
    runs = _seg.tie_runs(s, inner)
    if any(ws[i] < 2.0**-51 * max(-lo[j], hi[j]) for j, i in enumerate(full)):  # w < ulp/2 possible:
        lt = index[:n].clone()  # the guard of `_sorted`, a_i <= lt_i (the first of i's run)
        if runs is not None:
            lt[runs[0]] = runs[1]
        a = torch.minimum(a, lt, out=a)
    b = torch.bincount(a, minlength=n).cumsum_(0)
    prefix = torch.zeros(n + 1, dtype=f64, device=dev)
    torch.cumsum(c, 0, out=prefix[1:])
    e = prefix.index_select(0, a).add_(prefix.index_select(0, b)).sub_(prefix[:-1]).sub_(prefix[1:])
    dd = torch.add(a, b).neg_().add_(index[:n], alpha=2).add_(1)  # (i - a) - (b - i - 1)
    e.addcmul_(c, dd.to(f64))
    inside = _seg.segment_sums(b.sub_(a), list(sizes))  # b - a, summed per layer exactly (int64)
    energy = _seg.segment_sums(e, list(sizes))
    energy += torch.tensor(ws, dtype=f64, device=dev) * (torch.tensor(sizes, device=dev) ** 2 - inside)
    if runs is not None:
        dd.index_add_(0, runs[0], runs[2], alpha=-1)
    return energy, torch.empty_like(x).index_copy_(0, perm, dd.mul_(2).to(x.dtype))


def energy_sorted_multi(thetas: Sequence[Tensor], ws: Sequence[float]) -> Tensor:
    """Exact E_l = sum_{i != j in layer l} U_{w_l}(theta_i - theta_j) of every layer, in one batched pass.

    thetas: L floating tensors (any shapes; weight units); ws: their well widths w_l > 0. Returns the (L,)
    tensor of energies (float64 if any layer is float64, else float32); its backward gives each layer its
    exact force dE_l/dtheta (times the upstream gradient of E_l). Equal to `energy_sorted` layer by layer: the
    same window rule, so bit-identical forces, and energies to rounding (tested <= 1e-12 relative).
    Per layer a sort of integer keys (a radix sort on CPU) and one searchsorted for the lower window ends;
    for all layers at once a count for the upper ends, float64 prefix sums and the few runs of tied weights.
    Layers with < 2 weights have E = 0 and zero force. Memory: ~100 bytes per weight.
    """
    thetas, ws = _check_multi(thetas, ws)
    x = _concat(thetas)
    if x.numel() == 0:
        return x.new_zeros(len(thetas)) + x.sum()
    return _SortedMulti.apply(x, tuple(t.numel() for t in thetas), tuple(ws))


def _cic_multi(x: Tensor, sizes: tuple[int, ...], los: list[float], inv_dx: list[float], m: int,
               length: int) -> tuple[Tensor, Tensor]:
    """`_cic` on every layer's own grid, layer by layer (same float operations as `_cic`): returns the left
    node's index in the flattened (R, length) array of per-layer rows, and the right-node fraction f."""
    t = torch.empty_like(x)
    start = 0
    for n, lo, inv in zip(sizes, los, inv_dx, strict=True):
        torch.sub(x[start : start + n], lo, out=t[start : start + n]).mul_(inv)
        start += n
    k = t.floor().clamp_(0, m - 2)
    t.sub_(k)
    return k.long().add_(_seg.layout(sizes, x.device).seg, alpha=length), t


@functools.lru_cache(maxsize=4)
def _stacked_kernels(ks: tuple[int, ...], length: int, dtype: torch.dtype, device: torch.device):
    """`_kernels` of every layer's K at the common FFT length, stacked as rows (energy, force)."""
    rows = [_kernels(k, length, dtype, device) for k in ks]
    return torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])


class _HistogramMulti(torch.autograd.Function):
    """`_Histogram` for R layers at once: one (R, length) density, one batched rfft (or prefix sum) along the
    rows, per-row kernels; every layer keeps its own grid lo_l, dx_l = w_l / K_l of n_bins nodes. The FFT
    length is the common _fft_len(n_bins + max K + 1): zero padding >= n_bins + K_l + 1 for every row.
    No chunking (unlike `_Histogram`): temporaries are ~40 bytes per weight, for all layers together."""

    @staticmethod
    def forward(ctx, x, sizes, ws, los, ks, m, conv):
        dev, cdt, r, f64 = x.device, x.dtype, len(sizes), torch.float64
        kmax = max(ks)
        length = _fft_len(m + kmax + 1) if conv == "fft" else m
        node, f = _cic_multi(x.detach(), sizes, los, [k / w for k, w in zip(ks, ws, strict=True)], m, length)
        g = 1 - f
        rho = torch.zeros(r * length, dtype=cdt, device=dev)  # row l: layer l's nodes, zero-padded
        rho.scatter_add_(0, node, g)  # = index_add_, several times faster on CPU
        rho[1:].scatter_add_(0, node, f)  # the right node, node + 1
        sff = _seg.segment_sums(g.mul_(f), list(sizes))  # sum_i f_i (1 - f_i): the self-energy
        kt = torch.tensor(ks, device=dev)
        if conv == "fft":
            rho = torch.fft.rfft(rho.view(r, length))
            kern = _stacked_kernels(tuple(ks), length, cdt, dev)[0]
            pair = torch.view_as_real(rho).square().flatten(1).mul(kern).sum(1)
        else:  # node j of row l at padded index j + K_max + 1; windows of K_l nodes, per row
            rho = torch.nn.functional.pad(rho.view(r, m).to(f64), (kmax + 1, kmax)).cumsum_(1)
            j = torch.arange(m + kmax + 1, device=dev)
            pair = (rho.gather(1, j + kt[:, None]) - rho[:, : m + kmax + 1]).square_().sum(1)
        ctx.save_for_backward(rho, kt, node, f)
        ctx.geom = (ks, m, length, conv, cdt)
        dx = torch.tensor([w / k for k, w in zip(ks, ws, strict=True)], dtype=f64, device=dev)
        n2w = torch.tensor([nl * nl * w for nl, w in zip(sizes, ws, strict=True)], dtype=f64, device=dev)
        return (pair * -dx + sff * (-2 * dx) + n2w).to(cdt)  # as `_Histogram`, row by row

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        rho, kt, node, f = ctx.saved_tensors
        ks, m, length, conv, cdt = ctx.geom
        kmax = max(ks)
        if conv == "fft":  # rows of length `length`: nodes >= m are never read
            field = torch.fft.irfft(rho * _stacked_kernels(tuple(ks), length, cdt, rho.device)[1], n=length)
        else:  # row l of `_Histogram`'s h sits at offset K_max - K_l here
            h = rho[:, :-1] + rho[:, 1:]
            i = torch.arange(m, device=rho.device)
            field = h.gather(1, (kmax - kt)[:, None] + i).add_(h.gather(1, (kmax + kt)[:, None] + i))
            field = field.sub_(h[:, kmax : kmax + m], alpha=2).neg_().to(cdt)
        field = field.mul_(grad[:, None].to(cdt)).flatten()
        slope = field[1:] - field[:-1]
        return field.index_select(0, node).addcmul_(f, slope.index_select(0, node)), *(None,) * 6


def energy_histogram_multi(
    thetas: Sequence[Tensor], ws: Sequence[float], *, n_bins: int = 2**14, conv: str = "fft"
) -> Tensor:
    """`energy_histogram` of every layer in one batched pass: returns the (L,) tensor of E_l estimates
    (float64 if any layer is float64, else float32); the backward gives each layer its histogram force.

    Every layer keeps its own grid (n_bins nodes over its [min, max], dx_l = w_l / K_l), so the numbers are
    `energy_histogram`'s layer by layer, to rounding (float64: <= 1e-12, tested; only the FFT length, shared
    by all layers, differs). One sync reads all layers' ranges. Layers the grid cannot take (< 2 weights, all
    equal, w_l narrower than a bin) are done as `energy_histogram` does them (zero; exact `energy_sorted`).
    """
    _check_bins(n_bins, conv)
    thetas, ws = _check_multi(thetas, ws)
    full = [t.detach() for t in thetas if t.numel()]
    ranges = iter(torch.stack([v for t in full for v in torch.aminmax(t)]).tolist() if full else [])
    batch, ks, los, other = [], [], [], {}
    for i, (theta, w) in enumerate(zip(thetas, ws, strict=True)):
        lo, hi = (next(ranges), next(ranges)) if theta.numel() else (0.0, 0.0)
        if not (math.isfinite(lo) and math.isfinite(hi)):  # NaN propagates into min and max
            raise ValueError("theta contains NaN or inf")
        k = min(math.floor(w * (n_bins - 1) / (hi - lo)), n_bins - 1) if theta.numel() > 1 and hi > lo else 0
        if k >= 1:
            batch.append(i)
            ks.append(k)
            los.append(lo)
        else:  # no pairs, or all equal: E = 0; well narrower than a bin: exact
            other[i] = _zero(theta) if theta.numel() < 2 or hi == lo else energy_sorted(theta, w)
    if batch:
        x = _concat([thetas[i] for i in batch])
        sizes = tuple(thetas[i].numel() for i in batch)
        energies = _HistogramMulti.apply(x, sizes, [ws[i] for i in batch], los, ks, n_bins, conv)
        if not other:
            return energies
        other.update(zip(batch, energies.unbind(), strict=True))
    dtype = torch.float64 if any(t.dtype == torch.float64 for t in thetas) else torch.float32
    return torch.stack([other[i].to(dtype) for i in range(len(thetas))])


ESTIMATORS: dict[str, Callable[..., Tensor]] = {
    "exact": energy_exact,
    "subsampled": energy_subsampled,
    "subset": energy_subset,
    "histogram": energy_histogram,
    "sorted": energy_sorted,
}


def layer_scales(sigma: float, n: int, h: float, w: float, alpha: float = 0.66) -> tuple[float, float]:
    """Per-layer (h_l, w_l) = (h n^-alpha, w sigma) for a layer of n weights with pretrained std sigma.

    h: global coupling strength (loss units per unit energy); w: global well width in units of sigma;
    alpha: layer-size exponent (0.66 in the soft-quantization paper). w_l has the units of the weights.
    """
    if n < 1:
        raise ValueError(f"layer size n must be >= 1, got {n}")
    return h * n ** (-alpha), w * sigma


@dataclasses.dataclass(frozen=True)
class LayerEnergy:
    """One coupled layer's unweighted coupling energy (`layer_energies`)."""

    name: str  # parameter name (state-dict key)
    n: int  # N_l, number of weights
    sigma: float  # σ_l: std of the reference (pretrained) weights, as WeightCoupling.prepare computes it
    w: float  # w_l = w σ_l, weight units
    energy: float  # E_l = Σ_{i≠j} U_{w_l}(θ_i − θ_j), exact (ordered pairs), float64, weight units


def layer_energies(layers, w: float, *, sigmas: Mapping[str, float] | None = None,
                   params: str = "weights") -> list[LayerEnergy]:
    """Exact unweighted energy E_l = Σ_{i≠j} U_{w_l}(θ_i − θ_j) of every coupled layer, w_l = w σ_l, in float64.

    layers: an nn.Module (its coupled parameters, `landscape.params.select_params(model, params)`) or a mapping
    name → tensor, taken as is (the caller has selected the layers, e.g. from a run file's state dict).
    w: global well width in units of σ_l (> 0). sigmas: name → σ_l, the reference std that fixes w_l; default:
    the std of the given weights themselves (right for the pretrained state). During fine-tuning w_l stays what
    the pretrained weights made it, so pass the pretrained σ_l to evaluate a checkpoint, as training does.
    σ_l is `.double().std()` (unbiased), as in `WeightCoupling.prepare`; layers with σ_l = 0 (all weights
    equal, or N_l < 2) are left out, as there. Energies by `energy_sorted_multi` on float64 copies: exact up to
    float64 rounding (no histogram), ~0.1 s for all of ResNet-20 on one core. Order: the layers' order.
    """
    import torch.nn as nn

    w = _check_w(w)
    if isinstance(layers, nn.Module):
        from .params import select_params

        layers = select_params(layers, params)
    chosen: list[tuple[str, Tensor, float]] = []
    for name, p in layers.items():
        theta = p.detach().reshape(-1).to(torch.float64)
        if sigmas is None:
            sigma = theta.std().item() if theta.numel() > 1 else 0.0
        elif name not in sigmas:
            raise ValueError(f"no reference std sigma_l given for layer {name!r}")
        else:
            sigma = float(sigmas[name])
        if not math.isfinite(sigma) or sigma < 0:
            raise ValueError(f"layer {name!r}: sigma_l must be a finite number >= 0, got {sigma!r}")
        if sigma > 0 and theta.numel() > 1:
            chosen.append((name, theta, sigma))
    if not chosen:
        return []
    energies = energy_sorted_multi([t for _, t, _ in chosen], [w * s for _, _, s in chosen]).tolist()
    return [LayerEnergy(name, t.numel(), s, w * s, e) for (name, t, s), e in zip(chosen, energies, strict=True)]
