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
`energy_exact` (O(N^2) reference), `energy_subsampled` (workshop paper: random pairs, unbiased),
`energy_histogram` (soft-quantization paper: cloud-in-cell histogram + FFT convolution,
O(N + n_bins log n_bins); conv="prefix" does the same convolution by prefix sums in O(N + n_bins)) and
`energy_sorted` (beyond the papers: exact, O(N log N), sort + searchsorted + prefix sums).

Why `energy_sorted` accumulates prefix sums in float64: E is assembled from differences of prefix sums, so
their rounding error enters in full. In float64 the result agrees with the exact sum to 1e-9 (tested). With a
float32 running sum the total E (Gaussian weights, w = 0.3 std) loses 1e-6 relative agreement between
N = 2**18 (1.6e-7) and N = 2**20 (1.9e-6; 1.0e-5 at 2**21); see test_sorted_float32_breakdown in the tests.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
from torch import Tensor

CHUNK = 2**18  # weights handled at a time by the histogram/sorted estimators: bounds temporary memory


def _check(theta: Tensor, w: float, finite: bool = True) -> tuple[Tensor, float]:
    """Validate and flatten; returns (theta as 1-D, w as float). finite=False: the caller checks theta."""
    w = float(w)
    if not (math.isfinite(w) and w > 0):  # also rejects NaN
        raise ValueError(f"well width w must be a finite number > 0, got {w!r}")
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
            rho.index_add_(0, idx, g).index_add_(0, idx + 1, f)
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
            return torch.addcmul(field[idx], f, slope[idx]).to(theta.dtype), None, None, None, None, None
        out = torch.empty_like(theta)
        for s in range(0, theta.numel(), CHUNK):
            idx, f = _cic(theta[s : s + CHUNK].to(cdt), lo, k / w, m)
            out[s : s + CHUNK] = torch.addcmul(field[idx], f, slope[idx])
        return out, None, None, None, None, None


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
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 2**6 or n_bins & (n_bins - 1):
        raise ValueError(f"n_bins must be a power of two and >= 2**6 = 64, got {n_bins!r}")
    if conv not in ("fft", "prefix"):
        raise ValueError(f'conv must be "fft" or "prefix", got {conv!r}')
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
    # Windows are found on a float64 copy (exact for float32 input), so the open-window test is
    # theta_j vs fl64(theta_i +- w) whatever theta's dtype; w is not rounded to float32 either.
    s = s.to(torch.float64)
    mid = s[n // 2]  # centre the prefix sums on the median: smaller partial sums, less cancellation
    prefix = torch.zeros(n + 1, dtype=acc, device=theta.device)
    prefix[1:] = cumsum((s - mid).to(acc)) if cumsum else torch.cumsum((s - mid).to(acc), 0)
    # Tie groups: value s[i] occupies [lt_i, ge_i) (self included); O(N), unlike two more searchsorteds.
    _, group, size = torch.unique_consecutive(s, return_inverse=True, return_counts=True)
    end = size.cumsum(0)
    energy = prefix.new_zeros(())
    force = torch.empty(n, dtype=theta.dtype, device=theta.device)
    for c in range(0, n, CHUNK):
        v, g = s[c : c + CHUNK], group[c : c + CHUNK]
        ge = end[g]
        lt = ge - size[g]
        # Open window (v - w, v + w): 'right' skips values equal to v - w, 'left' stops before v + w.
        # min/max guard the case w < ulp(v)/2, where v +- w rounds back to v.
        a = torch.minimum(torch.searchsorted(s, v - w, side="right"), lt)
        b = torch.maximum(torch.searchsorted(s, v + w, side="left"), ge)
        n_left, n_right = lt - a, b - ge
        # sum over the window of |v - s_j| (ties add 0), plus w for every pair outside the window
        e = (v - mid).to(acc) * (n_left - n_right) - (prefix[lt] - prefix[a]) + (prefix[b] - prefix[ge])
        energy += e.sum() + w * (n * v.numel() - (b - a).sum()).to(acc)
        force[c : c + CHUNK] = 2 * (n_left - n_right)
    return energy, torch.empty_like(force).index_copy_(0, perm, force)


def energy_sorted(theta: Tensor, w: float) -> Tensor:
    """Exact E and force in O(N log N) (beyond the papers): sort, open windows by searchsorted, prefix sums.

    energy_i = sum_{|theta_i - theta_j| < w} |theta_i - theta_j| + w (N - #window), E = sum_i energy_i;
    force_i = 2 (#{theta_i - w < theta_j < theta_i} - #{theta_i < theta_j < theta_i + w}), exact integers.
    The window edge is decided as theta_j vs fl64(theta_i +- w), where energy_exact tests
    |fl(theta_i - theta_j)| < w: the two agree whenever the differences are exact, and can differ only for
    pairs within rounding of w. Prefix sums are float64. Memory: ~50 N bytes (sorted float64 copy,
    permutation, prefix sums, tie groups), unlike the histogram's O(n_bins) plus chunks.
    """
    theta, w = _check(theta, w, finite=theta.numel() < 2)  # N >= 2: checked after the sort, for free
    return _zero(theta) if theta.numel() < 2 else _ClosedForm.apply(theta, _sorted, w)


ESTIMATORS: dict[str, Callable[..., Tensor]] = {
    "exact": energy_exact,
    "subsampled": energy_subsampled,
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
