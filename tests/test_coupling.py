"""Tests for landscape.coupling: the coupling energy E = sum_{i != j} U_w(theta_i - theta_j) and its force.

Error metrics used throughout: energy |E_est - E| / |E|; force ||F_est - F||_2 / ||F||_2 over all weights
(and, where stated, a per-weight bound).
"""

import math
from functools import partial

import numpy as np
import pytest
import torch

import landscape.coupling as coupling
from landscape import _segments
from landscape.coupling import (
    ESTIMATORS,
    energy_exact,
    energy_histogram,
    energy_histogram_multi,
    energy_sorted,
    energy_sorted_multi,
    energy_subsampled,
    energy_subset,
    layer_scales,
    triangular_well,
)

F64 = torch.float64


def gaussian(n, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=g, dtype=F64).to(dtype)


def energy_force(fn, theta, w, **kw):
    """(E, dE/dtheta) as float64, through autograd."""
    t = theta.detach().clone().requires_grad_(True)
    e = fn(t, w, **kw)
    e.backward()
    return e.detach().to(F64), t.grad.to(F64)


def rel(a, b):
    return float((a - b).norm() / b.norm())


def brute(theta, w):
    """Plain autograd over the full N x N matrix: an independent reference for small N."""
    t = theta.detach().clone().requires_grad_(True)
    e = triangular_well(t[:, None] - t[None, :], w).sum()  # the diagonal is U(0) = 0
    e.backward()
    return e.detach(), t.grad


# --- U_w -------------------------------------------------------------------------------------------------


def test_triangular_well_closed_form_and_gradient():
    w = 0.5
    x = torch.tensor([0.0, 0.1, -0.1, 0.25, -0.49, 0.5, -0.5, 0.7, -3.0], dtype=F64, requires_grad=True)
    u = triangular_well(x, w)
    assert u.tolist() == pytest.approx([0.0, 0.1, 0.1, 0.25, 0.49, 0.5, 0.5, 0.5, 0.5], abs=0)
    u.sum().backward()
    # sign inside, 0 at x = 0 (ties), 0 at |x| = w (open window) and outside
    assert x.grad.tolist() == [0.0, 1.0, -1.0, 1.0, -1.0, 0.0, 0.0, 0.0, 0.0]


def test_hand_computed_layer_with_tie_and_edge_pairs():
    # pairs: {0,0'}: 0 (tie), {0,1} twice: |1| = w -> w, {0,2} twice: w, {1,2}: |1| = w -> w; E = 2 * 5 w
    theta = torch.tensor([0.0, 0.0, 1.0, 2.0], dtype=F64)
    for fn in (energy_exact, energy_sorted):
        e, f = energy_force(fn, theta, 1.0)
        assert e.item() == 10.0 and f.tolist() == [0.0, 0.0, 0.0, 0.0], fn.__name__
    # Widen the well a hair: the unit-distance pairs {0,1}, {0',1}, {1,2} now sit inside (U = 1) and attract;
    # {0,2}, {0',2} stay outside (U = w). E = 2 (3 + 2 w).
    for fn in (energy_exact, energy_sorted):
        e, f = energy_force(fn, theta, 1.0 + 1e-9)
        assert f.tolist() == [-2.0, -2.0, 2.0, 2.0], fn.__name__
        assert e.item() == pytest.approx(2 * (3 + 2 * (1 + 1e-9)), rel=1e-15), fn.__name__


# --- exact ----------------------------------------------------------------------------------------------


def test_exact_gradcheck_float64():
    theta = (torch.arange(11, dtype=F64) * 0.37 + gaussian(11, 1) * 0.05).requires_grad_(True)
    # w = 1.0: pairs inside and outside; no pair within 1e-3 of a kink (0 or w): finite differences are valid
    d = (theta[:, None] - theta[None, :]).detach().abs()
    assert ((d - 1.0).abs().min() > 1e-3) and (d + torch.eye(11, dtype=F64)).min() > 1e-3
    assert torch.autograd.gradcheck(lambda t: energy_exact(t, 1.0, chunk=4), (theta,), eps=1e-6, atol=1e-7)


def test_exact_equals_plain_autograd_and_is_chunk_invariant():
    theta = gaussian(300, 2)
    e0, f0 = brute(theta, 0.4)
    for chunk in (1, 7, 300, 2048):
        e, f = energy_force(energy_exact, theta, 0.4, chunk=chunk)
        assert e.item() == pytest.approx(e0.item(), rel=1e-13)
        assert torch.equal(f, f0)


# --- subsampled ------------------------------------------------------------------------------------------


def test_subsampled_is_unbiased_within_4_standard_errors():
    theta, w = gaussian(400, 3), 0.3
    exact = energy_exact(theta, w).item()
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([energy_subsampled(theta, w, generator=g) for _ in range(400)])
    se = draws.std().item() / math.sqrt(len(draws))
    assert se > 0 and abs(draws.mean().item() - exact) < 4 * se
    # the gradient is the autograd one of the estimate, and unbiased for the force as well (norm of the error
    # of the mean over 400 draws; its expectation is sqrt(sum of per-weight variances / 400))
    grads = []
    for _ in range(400):
        t = theta.clone().requires_grad_(True)
        energy_subsampled(t, w, generator=g).backward()
        grads.append(t.grad)
    grads = torch.stack(grads)
    err = (grads.mean(0) - energy_force(energy_exact, theta, w)[1]).norm().item()
    assert err < 2 * math.sqrt(grads.var(0).sum().item() / len(grads))


def test_subsampled_draws_distinct_uniform_pairs():
    # theta = e_k one-hot: the estimate is N(N-1) * (fraction of pairs touching k) * 1 (with w = 2 > 1)
    n, g = 5, torch.Generator().manual_seed(1)
    theta = torch.zeros(n, dtype=F64)
    theta[2] = 1.0
    e = energy_subsampled(theta, 2.0, n_pairs=200_000, generator=g).item()
    assert e == pytest.approx(2 * (n - 1), rel=0.02)  # exact: ordered pairs touching weight 2
    assert (
        energy_subsampled(torch.tensor([0.0, 1.0], dtype=F64), 5.0, n_pairs=7).item() == 2.0
    )  # i != j always


def test_subset_is_unbiased_and_only_the_drawn_weights_feel_a_force():
    """All pairs among a random ceil(sqrt(N))-subset, rescaled by N(N-1)/(m(m-1)): the mean over draws is the
    exact energy and force (within 4 standard errors), and each draw moves exactly m weights."""
    theta, w = gaussian(400, 4), 0.3
    exact_e, exact_f = energy_exact(theta, w).item(), energy_force(energy_exact, theta, w)[1]
    g = torch.Generator().manual_seed(0)
    energies, grads = [], []
    for _ in range(600):
        t = theta.clone().requires_grad_(True)
        e = energy_subset(t, w, generator=g)
        e.backward()
        energies.append(e.detach())
        grads.append(t.grad)
    energies, grads = torch.stack(energies), torch.stack(grads)
    se = energies.std().item() / math.sqrt(len(energies))
    assert se > 0 and abs(energies.mean().item() - exact_e) < 4 * se
    err = (grads.mean(0) - exact_f).norm().item()
    assert err < 2 * math.sqrt(grads.var(0).sum().item() / len(grads))
    assert ((grads != 0).sum(1) <= math.ceil(math.sqrt(400))).all()  # 20 drawn weights (fewer if forces cancel)


def test_subset_of_everything_is_exact_and_sizes_are_checked():
    theta = gaussian(50, 5)
    assert energy_subset(theta, 0.5, n_weights=50).item() == pytest.approx(energy_exact(theta, 0.5).item(),
                                                                         rel=1e-12)
    assert energy_subset(theta, 0.5, n_weights=10_000).item() == pytest.approx(energy_exact(theta, 0.5).item(),
                                                                             rel=1e-12)  # capped at N
    assert energy_subset(theta[:1], 0.5).item() == 0.0  # no pairs
    with pytest.raises(ValueError, match="n_weights"):
        energy_subset(theta, 0.5, n_weights=1)


# --- histogram -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def layers():
    """Gaussian layers N = 2000, 20000 (w = 0.3 std) with exact float64 energy and force: energy_exact at
    N = 2000; at N = 20000 energy_sorted (4e8 pairs take ~15 s here), which reproduces energy_exact's forces
    bit for bit and its energy to 1e-9 (test_sorted_equals_exact, test_sorted_float64_...); checked again
    on the first 5000 weights below."""
    out = {}
    for n, fn in ((2000, energy_exact), (20000, energy_sorted)):
        theta = gaussian(n, n)
        w = 0.3 * theta.std().item()
        out[n] = (theta, w, *energy_force(fn, theta, w))
    theta, w = out[20000][:2]
    e0, f0 = energy_force(energy_exact, theta[:5000], w, chunk=256)
    e1, f1 = energy_force(energy_sorted, theta[:5000], w)
    assert torch.equal(f0, f1) and abs(e1 - e0) <= 1e-9 * e0
    return out


@pytest.mark.parametrize("n", [2000, 20000])
@pytest.mark.parametrize("dtype", [F64, torch.float32])
def test_histogram_energy_matches_exact(layers, n, dtype):
    """Energy: |dE|/|E| <= 1e-3 requested; measured 3.4e-9 / 1.4e-9 (float64) and 5.6e-8 / 2.0e-8 (float32:
    the rounding of E to float32) at N = 2000 / 20000, so the tighter 1e-6 is what is asserted."""
    theta, w, e0, _ = layers[n]
    for conv in ("fft", "prefix"):
        e, _ = energy_force(energy_histogram, theta.to(dtype), w, conv=conv)
        assert abs(e.item() - e0.item()) / e0.item() < 1e-6


# Force, norm metric ||dF||/||F|| at n_bins = 2**14, measured (float64 and float32 alike): N = 2000: 1.40e-2,
# N = 20000: 5.7e-3. The requested 1e-3 is NOT reached: the error comes from neighbours closer than
# ~2 dx to theta_i (or to theta_i +- w), whose order the grid cannot see (the bound is tested below), and it
# falls only as n_bins^-1/2: 1e-3 needs ~2**19 bins at N = 20000 and ~2**22 at N = 2000.
FORCE_NORM_MEASURED = {2000: 0.0140, 20000: 0.0057}


@pytest.mark.parametrize("n", [2000, 20000])
@pytest.mark.parametrize("dtype", [F64, torch.float32])
def test_histogram_force_norm_error_regression(layers, n, dtype):
    theta, w, _, f0 = layers[n]
    _, f = energy_force(energy_histogram, theta.to(dtype), w)
    assert rel(f, f0) < 1.2 * FORCE_NORM_MEASURED[n]


@pytest.mark.xfail(strict=True, reason="requested 1e-3 force-norm accuracy is not reachable with 2**14 bins")
@pytest.mark.parametrize("n", [2000, 20000])
def test_histogram_force_norm_error_requested_1e_3(layers, n):
    theta, w, _, f0 = layers[n]
    assert rel(energy_force(energy_histogram, theta, w)[1], f0) <= 1e-3


@pytest.mark.parametrize("n", [2000, 20000])
def test_histogram_force_error_shrinks_as_sqrt_bins(layers, n):
    theta, w, _, f0 = layers[n]
    coarse = rel(energy_force(energy_histogram, theta, w, n_bins=2**14)[1], f0)
    fine = rel(energy_force(energy_histogram, theta, w, n_bins=2**18, conv="prefix")[1], f0)
    assert fine < coarse / 3  # n_bins^-1/2 predicts 4; measured 4.1 (N=2000) and 4.0 (N=20000)
    if n == 20000:
        assert fine < 1.5e-3  # 1.4e-3 measured


def binning_bound(theta, w, n_bins):
    """Per-weight bound on |F_hist - F| implied by the grid step dx (see test below); float64 theta."""
    lo, hi = theta.min().item(), theta.max().item()
    k = min(math.floor(w * (n_bins - 1) / (hi - lo)), n_bins - 1)
    dx = w / k
    assert k >= 4
    s = theta.sort().values

    def count(a, b):  # number of weights in the closed interval [a, b], elementwise
        return torch.searchsorted(s, b, side="right") - torch.searchsorted(s, a, side="left")

    near0 = count(theta - 2 * dx, theta + 2 * dx) - count(theta, theta)  # exact ties read back exactly (0)
    near_edge = count(theta + w - 2 * dx, theta + w + 2 * dx) + count(theta - w - 2 * dx, theta - w + 2 * dx)
    return 2 * (2 * near0 + near_edge).to(F64)


@pytest.mark.parametrize(
    "kind, n, n_bins",
    [
        ("gaussian", 5000, 2**14),
        ("gaussian", 20000, 2**14),
        ("lattice", 5000, 2**14),
        ("lattice", 5000, 2**10),
    ],
)
def test_sorted_force_equals_histogram_force_within_binning_error(kind, n, n_bins):
    """Per weight: the histogram's pair force, the sum over the 2x2 CIC node pairs of D(offset), equals
    sign(d)[|d| < w] exactly unless 0 < |d| < 2 dx or ||d| - w| < 2 dx (d = theta_i - theta_j), where it is
    off by at most 2 (resp. 1); exact ties read back 0 by symmetry. Hence
    |F_hist_i - F_i| <= 2 (2 #near_0 + #near_edge), checked against the exact sorted force. On a lattice
    layer (values k/16, w = 0.28: no distance within 2 dx of 0 or w) the bound is 0, i.e. the histogram force
    must be exact there despite the huge tie groups."""
    theta = gaussian(n, 7)
    w = 0.3 * theta.std().item()
    if kind == "lattice":
        theta, w = (theta * 16).round() / 16, 0.28
    _, f_sorted = energy_force(energy_sorted, theta, w)
    bound = binning_bound(theta, w, n_bins)
    for conv in ("fft", "prefix"):
        _, f_hist = energy_force(energy_histogram, theta, w, n_bins=n_bins, conv=conv)
        excess = (f_hist - f_sorted).abs() - bound
        assert excess.max().item() < 1e-6 * f_sorted.abs().max().item(), conv
    if kind == "lattice":
        assert bound.max() == 0
    else:  # the bound is informative: 11% (N = 5000) and 17% (N = 20000) of the mean |force|
        assert bound.mean() < 0.25 * f_sorted.abs().mean()


@pytest.mark.parametrize("conv", ["fft", "prefix"])
def test_histogram_is_exact_away_from_kinks(conv):
    """U is linear between the kinks at 0 and +-w, and CIC deposit + linear read-out reproduce a linear
    function exactly, so a layer whose pair distances all stay > 2 dx from 0 and w (distinct values on a
    0.37-lattice, w = 2.5 * 0.37) must come out exact, energy and force. This checks the self-energy
    subtraction (4.4e-4 of E here) and the self-force cancellation, too small for the Gaussian tests."""
    g = torch.Generator().manual_seed(5)
    theta = torch.randperm(200, generator=g)[:60].to(F64) * 0.37
    w = 2.5 * 0.37
    e0, f0 = energy_force(energy_exact, theta, w)
    e, f = energy_force(energy_histogram, theta, w, n_bins=2**10, conv=conv)
    assert e.item() == pytest.approx(e0.item(), rel=1e-12) and torch.allclose(f, f0, rtol=0, atol=1e-9)
    assert f0.abs().max() > 0


def test_histogram_fft_equals_prefix_and_chunking_is_invisible(monkeypatch):
    theta = gaussian(3001, 4)
    e1, f1 = energy_force(energy_histogram, theta, 0.25)
    e2, f2 = energy_force(energy_histogram, theta, 0.25, conv="prefix")
    assert e1.item() == pytest.approx(e2.item(), rel=1e-13) and rel(f2, f1) < 1e-12
    monkeypatch.setattr(
        coupling, "CHUNK", 1000
    )  # deposit / read-out in 4 chunks, recomputing CIC in backward
    for conv, e0, f0 in (("fft", e1, f1), ("prefix", e2, f2)):
        e, f = energy_force(energy_histogram, theta, 0.25, conv=conv)
        assert e.item() == pytest.approx(e0.item(), rel=1e-13) and rel(f, f0) < 1e-13


def test_histogram_edge_geometries():
    # window wider than the range: K is capped at n_bins - 1 and every pair is in the linear part
    theta = gaussian(60, 5)
    e0, f0 = energy_force(energy_exact, theta, 100.0)
    e, f = energy_force(energy_histogram, theta, 100.0)
    assert abs(e.item() - e0.item()) / e0.item() < 1e-6 and rel(f, f0) < 0.05
    # window narrower than one bin: the grid cannot resolve it, the exact sorted result is returned
    theta = torch.tensor([0.0, 1e-9, 1.0, 2.0], dtype=F64)
    e, f = energy_force(energy_histogram, theta, 1e-6, n_bins=64)
    e0, f0 = energy_force(energy_exact, theta, 1e-6)
    assert e.item() == pytest.approx(e0.item(), rel=1e-12) and torch.equal(f, f0)
    # a shaped (conv-weight-like) tensor and a scaled upstream gradient
    theta = gaussian(4 * 3 * 3 * 3, 6).reshape(4, 3, 3, 3).requires_grad_(True)
    (2.5 * energy_histogram(theta, 0.3)).backward()
    _, f0 = energy_force(energy_histogram, theta.detach().flatten(), 0.3)
    assert theta.grad.shape == theta.shape and torch.allclose(theta.grad.flatten(), 2.5 * f0, rtol=1e-12)


# --- sorted ----------------------------------------------------------------------------------------------


def sorted_cases():
    yield "gaussian", gaussian(3000, 8), 0.3
    for w in (0.25, 0.3):  # dyadic grid, ~100 distinct values: huge tie groups; w = 0.25: pairs w apart
        yield f"ties-w{w}", (gaussian(3000, 9) * 16).round() / 16, w
    for w in (1.0, 2.0):  # integers: many pairs exactly w apart (no force) and many ties
        yield f"integers-w{w}", (gaussian(3000, 10) * 3).round(), w
    yield "two-values", torch.tensor([0.0, 1.0] * 50, dtype=F64), 1.0


@pytest.mark.parametrize("case", list(sorted_cases()), ids=lambda c: c[0])
def test_sorted_equals_exact(case):
    """float64: energy to 1e-9 relative and every force equal (forces are even integers: exact)."""
    _, theta, w = case
    e0, f0 = energy_force(energy_exact, theta, w, chunk=256)
    e, f = energy_force(energy_sorted, theta, w)
    assert abs(e.item() - e0.item()) <= 1e-9 * abs(e0.item())
    assert torch.equal(f, f0)
    if theta.abs().max() < 2**20:  # float32 input (exactly representable values): same answer
        e32, f32 = energy_force(energy_sorted, theta.float(), w)
        assert torch.equal(f32, f0) and abs(e32.item() - e0.item()) <= 1e-6 * abs(e0.item())


def test_sorted_and_subsampled_gradcheck_float64():
    theta = (torch.arange(11, dtype=F64) * 0.37 + gaussian(11, 1) * 0.05).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: energy_sorted(t, 1.0), (theta,), eps=1e-6, atol=1e-7)
    draw = partial(energy_subsampled, w=1.0, n_pairs=40)  # same pairs on every call: reseeded generator
    assert torch.autograd.gradcheck(
        lambda t: draw(t, generator=torch.Generator().manual_seed(3)), (theta,), eps=1e-6, atol=1e-7
    )


def test_sorted_float64_prefix_sums_hold_1e_9_at_8k():
    theta = gaussian(2**13, 11) + 3.0  # off-centre, so the prefix sums grow large
    w = 0.3 * theta.std().item()
    e0, f0 = energy_force(energy_exact, theta, w, chunk=256)
    e, f = energy_force(energy_sorted, theta, w)
    assert abs(e - e0) <= 1e-9 * e0 and torch.equal(f, f0)


def sequential_float32_cumsum(x):
    """A running sum accumulated in float32 (numpy's cumsum adds sequentially), like a naive scan."""
    return torch.from_numpy(np.cumsum(x.numpy().astype(np.float32), dtype=np.float32))


def test_sorted_float32_breakdown():
    """Why prefix sums are float64: with float32 running sums the total E (Gaussian, w = 0.3 std) loses 1e-6
    relative agreement between N = 2**18 (1.6e-7 measured) and N = 2**20 (1.9e-6; 1.0e-5 at 2**21). The
    reference is the float64 estimator (equal to exact to 1e-9, tested above). torch's CPU float32 cumsum
    accumulates in float64 internally and only rounds the stored sums; that stays within 1e-6 (4e-8 here), but
    is an implementation detail (CUDA accumulates float32 in float32), so the code does not rely on it."""
    errs = {}
    for p in (18, 20):
        theta = gaussian(2**p, p, torch.float32)
        w = 0.3 * theta.double().std().item()
        ref = coupling._sorted(theta, w)[0].item()
        seq = coupling._sorted(theta, w, acc=torch.float32, cumsum=sequential_float32_cumsum)[0].item()
        stored = coupling._sorted(theta, w, acc=torch.float32)[0].item()
        errs[p] = abs(seq - ref) / ref, abs(stored - ref) / ref
    assert errs[18][0] < 1e-6 < errs[20][0]
    assert errs[20][1] < 1e-6


def test_sorted_window_rule_is_one_test_per_pair():
    """A pair is inside the window iff (larger - w) rounds below the smaller: one test, seen alike from both
    ends. Here fl(hi - w) < lo but fl(lo + w) == hi, so testing hi < fl(lo + w) from lo's side would leave the
    pair out there while hi's side counts it (forces not antisymmetric). energy_exact counts it too."""
    w, lo, hi = 0.5850265009032766, 0.7911478921803037, 1.3761743930835801
    assert lo > hi - w and not hi < lo + w  # the two one-sided float tests disagree
    theta = torch.tensor([lo, hi], dtype=F64)
    e0, f0 = energy_force(energy_exact, theta, w)
    assert f0.tolist() == [-2.0, 2.0]
    for fn in (energy_sorted, lambda t, w: energy_sorted_multi([t], [w])[0]):
        e, f = energy_force(fn, theta, w)
        assert torch.equal(f, f0) and e.item() == pytest.approx(e0.item(), rel=1e-15)


# --- all layers at once: energy_sorted_multi, energy_histogram_multi --------------------------------------


def multi_layers(dtype=F64):
    """Layers of different sizes and kinds, each with its own w: Gaussian at several scales (one off-centre,
    one conv-shaped), dyadic values with w = 0.25 (big tie groups, many pairs exactly w apart), integers with
    w = 1 (the same), a pair exactly w apart (E = 2 w, no force), a single weight (E = 0) and a well
    narrower than half an ulp (only exact ties inside)."""
    layers = [
        (gaussian(3000, 20) * 0.05, 0.015),
        (gaussian(4 * 3 * 3 * 3, 21).reshape(4, 3, 3, 3), 0.3),
        ((gaussian(2000, 22) * 16).round() / 16, 0.25),
        ((gaussian(1500, 23) * 3).round(), 1.0),
        (gaussian(700, 24) + 3.0, 0.2),
        (torch.tensor([0.0, 0.5], dtype=F64), 0.5),
        (torch.tensor([0.7], dtype=F64), 0.1),
        (gaussian(5000, 25) * 0.01, 0.003),
        (torch.tensor([3.0, 1.0, 1.0 + 2**-52, 3.0, 1.0, 3.0], dtype=F64), 1e-17),  # w < ulp/2: s - w == s
    ]
    return [(t.to(dtype), w) for t, w in layers]


def multi_energy_force(fn, layers, **kw):
    """(E vector, per-layer gradients) with upstream gradient l + 1 on E_l: misrouted forces would show."""
    ts = [t.detach().clone().requires_grad_(True) for t, _ in layers]
    e = fn(ts, [w for _, w in layers], **kw)
    (e * torch.arange(1, len(ts) + 1, dtype=e.dtype)).sum().backward()
    return e.detach(), [t.grad for t in ts]


@pytest.mark.parametrize("dtype", [F64, torch.float32])
def test_sorted_multi_equals_per_layer(dtype):
    """Forces bit-identical to energy_sorted's, layer by layer (and routed to the right layer, in its shape
    and dtype); energies to 1e-12 relative in float64 (the float32 result is the float64 one rounded)."""
    layers = multi_layers(dtype)
    e, grads = multi_energy_force(energy_sorted_multi, layers)
    assert e.dtype == dtype and e.shape == (len(layers),)
    for i, (theta, w) in enumerate(layers):
        e0, f0 = energy_force(energy_sorted, theta, w)
        assert grads[i].dtype == dtype and grads[i].shape == theta.shape
        assert torch.equal(grads[i].flatten().to(F64), (i + 1) * f0.flatten()), i
        assert abs(e[i].item() - e0.item()) <= (1e-12 if dtype == F64 else 1e-6) * abs(e0.item()), i
        assert grads[i].sum() == 0  # one test per pair: the forces are exactly antisymmetric
    assert e[5].item() == 1.0 and e[6].item() == 0.0  # the pair exactly w apart (2 w), the single weight


def test_sorted_multi_equals_exact_with_ties_and_edge_pairs():
    layers = multi_layers()
    e, grads = multi_energy_force(energy_sorted_multi, layers)
    for i, (theta, w) in enumerate(layers):
        e0, f0 = energy_force(energy_exact, theta.flatten(), w, chunk=256)
        assert torch.equal(grads[i].flatten(), (i + 1) * f0), i
        assert abs(e[i].item() - e0.item()) <= 1e-9 * abs(e0.item()), i


@pytest.mark.parametrize("conv", ["fft", "prefix"])
def test_histogram_multi_equals_per_layer(conv):
    """float64: energies and forces equal energy_histogram's to 1e-12 (relative; forces are O(N)), including
    layers the grid cannot take: all equal (E = 0) and a well narrower than a bin (exact fallback). float32:
    to 1e-6 (the shared FFT length rounds differently)."""
    extra = [(torch.full((30,), 0.2, dtype=F64), 0.1), (torch.tensor([0.0, 1e-9, 1.0, 2.0], dtype=F64), 1e-6)]
    for dtype, tol in ((F64, 1e-12), (torch.float32, 1e-6)):
        layers = multi_layers(dtype) + [(t.to(dtype), w) for t, w in extra]
        e, grads = multi_energy_force(energy_histogram_multi, layers, conv=conv)
        assert e.dtype == dtype
        for i, (theta, w) in enumerate(layers):
            e0, f0 = energy_force(energy_histogram, theta, w, conv=conv)
            assert abs(e[i].item() - e0.item()) <= tol * abs(e0.item()), (dtype, i)
            assert grads[i].shape == theta.shape
            err = (grads[i].flatten().to(F64) - (i + 1) * f0.flatten()).abs().max().item()
            assert err <= tol * (i + 1) * theta.numel(), (dtype, i, err)


@pytest.mark.parametrize("fn", [energy_sorted_multi, energy_histogram_multi], ids=lambda f: f.__name__)
def test_multi_routes_gradients_and_mixes_dtypes(fn):
    per_layer = energy_sorted if fn is energy_sorted_multi else energy_histogram
    layers = [(gaussian(50, 30), 0.3), (gaussian(400, 31), 0.3), (gaussian(3000, 32).float(), 0.2)]
    ts = [t.clone().requires_grad_(i != 1) for i, (t, _) in enumerate(layers)]
    e = fn(ts + [torch.zeros(0, requires_grad=True)], [0.3, 0.3, 0.2, 0.1])
    assert e.dtype == F64 and e[3].item() == 0.0  # float64 if any layer is; an empty layer has E = 0
    e[2].backward()
    assert torch.equal(ts[0].grad, torch.zeros_like(ts[0])) and ts[1].grad is None  # only E_2 is used
    _, f2 = energy_force(per_layer, layers[2][0].double(), 0.2)
    assert ts[2].grad.dtype == torch.float32  # computed in float64 with the other layers, rounded
    assert torch.allclose(ts[2].grad.double(), f2, rtol=0, atol=1e-6 * f2.abs().max().item())


@pytest.mark.parametrize("fn", [energy_sorted_multi, energy_histogram_multi], ids=lambda f: f.__name__)
def test_multi_bad_input_raises(fn):
    good = [gaussian(100, 40), gaussian(50, 41)]
    with pytest.raises(ValueError, match="well width"):
        fn(good, [0.3, 0.0])
    with pytest.raises(ValueError, match="2 layers but 1 well widths"):
        fn(good, [0.3])
    with pytest.raises(ValueError, match="no layers"):
        fn([], [])
    with pytest.raises(TypeError):
        fn([good[0], torch.arange(5)], [0.3, 0.3])
    for bad in (float("nan"), -float("nan"), float("inf"), -float("inf")):
        for pos in (0, 25, 49):
            t = good[1].clone()
            t[pos] = bad
            for dtype in (F64, torch.float32):
                with pytest.raises(ValueError, match="NaN or inf"):
                    fn([good[0].to(dtype), t.to(dtype)], [0.3, 0.3])


def test_segment_primitives():
    """sort_segments sorts within segments (empty ones included, -0.0 next to 0.0, float32 and float64);
    tie_runs finds the runs of equal values without crossing segments."""
    pieces = [[0.5, -0.0, 0.0, -2.0, 0.5], [], [3.0, 3.0, -1e-30, 1e30, -1e30, 0.0, -0.0], [7.0]]
    pieces.append([3.0, 3.0, 3.0, 0.0])
    sizes, x = tuple(map(len, pieces)), torch.tensor(sum(pieces, []))
    for dtype in (torch.float32, F64):
        xd = x.to(dtype)
        perm = _segments.sort_segments(xd, sizes)
        for piece, ref in zip(xd[perm].split(sizes), xd.split(sizes), strict=True):
            assert torch.equal(piece, ref.sort().values)
    lay = _segments.layout(sizes, x.device)
    assert lay.off.tolist() == [0, 5, 5, 12, 13, 17] and lay.seg.tolist() == [0] * 5 + [2] * 7 + [3] + [4] * 4
    # sorted: [-2, -0, 0, .5, .5 | -1e30, -1e-30, -0, 0, 3, 3, 1e30 | 7 | 0, 3, 3, 3]
    s = x.to(F64)[_segments.sort_segments(x.to(F64), sizes)]
    members, start, tau = _segments.tie_runs(s, lay.inner)
    assert members.tolist() == [1, 2, 3, 4, 7, 8, 9, 10, 14, 15, 16]
    assert start.tolist() == [1, 1, 3, 3, 7, 7, 9, 9, 14, 14, 14]
    assert tau.tolist() == [-1, 1, -1, 1, -1, 1, -1, 1, -2, 0, 2]  # (#equal before) - (#equal after)
    assert _segments.tie_runs(torch.arange(6.0, dtype=F64), _segments.layout((3, 3), x.device).inner) is None


# --- shared behaviour, bad input -------------------------------------------------------------------------


ALL = list(ESTIMATORS.values())


def test_registry_and_layer_scales():
    assert set(ESTIMATORS) == {"exact", "subsampled", "subset", "histogram", "sorted"}
    h, w = layer_scales(sigma=0.02, n=36864, h=0.05, w=0.3)
    assert h == pytest.approx(0.05 * 36864**-0.66) and w == pytest.approx(0.006)
    assert layer_scales(1.0, 1, 2.0, 3.0, alpha=0.5) == (2.0, 3.0)
    with pytest.raises(ValueError):
        layer_scales(1.0, 0, 0.05, 0.3)


@pytest.mark.parametrize("fn", ALL, ids=lambda f: f.__name__)
def test_degenerate_layers(fn):
    for theta in (
        torch.zeros(0, dtype=F64),
        torch.tensor([0.7], dtype=F64),
        torch.full((50,), 0.3, dtype=F64),
    ):
        e, f = energy_force(fn, theta, 0.1)  # no pairs, or all pairs at U(0) = 0
        assert e.item() == 0.0 and torch.equal(f, torch.zeros_like(theta)), theta.numel()


@pytest.mark.parametrize("fn", ALL, ids=lambda f: f.__name__)
def test_bad_input_raises(fn):
    theta = gaussian(100, 12)
    for w in (0.0, -0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="well width"):
            fn(theta, w)
    for bad in (float("nan"), float("inf"), -float("inf")):
        for pos in (0, 57, 99):
            t = theta.clone()
            t[pos] = bad
            with pytest.raises(ValueError, match="NaN or inf"):
                fn(t, 0.3)
    with pytest.raises(ValueError, match="NaN or inf"):
        fn(torch.tensor([float("nan")]), 0.3)
    with pytest.raises(TypeError):
        fn(torch.arange(10), 0.3)


def test_bad_options():
    theta = gaussian(100, 13)
    for n_bins in (100, 32, 2**14 + 1, 2.0**14, True, 0, -64):
        with pytest.raises(ValueError, match=r"n_bins must be a power of two and >= 2\*\*6 = 64"):
            energy_histogram(theta, 0.3, n_bins=n_bins)
    assert energy_histogram(theta, 0.3, n_bins=64).item() > 0
    with pytest.raises(ValueError, match="conv"):
        energy_histogram(theta, 0.3, conv="direct")
    with pytest.raises(ValueError, match="n_pairs"):
        energy_subsampled(theta, 0.3, n_pairs=0)
    with pytest.raises(ValueError, match="chunk"):
        energy_exact(theta, 0.3, chunk=0)
