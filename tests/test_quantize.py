import math
import warnings

import numpy as np
import pytest
import torch
from scipy.cluster.vq import kmeans2

from landscape.quantize import (
    QUANTIZERS,
    Codebook,
    _kmeans_inits,
    _lloyd,
    _split_to,
    heq,
    kmeans,
    nearest,
    refine_clusters,
    uniform,
)

BITS = [1, 2, 3, 4, 8]


def gaussian(n=5000, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=g, dtype=torch.float64).to(dtype)


def member_means(cb: Codebook, theta: torch.Tensor) -> torch.Tensor:
    sums = torch.zeros(cb.k, dtype=torch.float64).index_add_(0, cb.index, theta.double())
    return sums / cb.counts


def check_codebook(cb: Codebook, theta: torch.Tensor):
    assert cb.values.dtype == theta.dtype and cb.index.dtype == torch.long and cb.counts.dtype == torch.long
    assert cb.index.shape == theta.shape
    assert bool((cb.values[1:] > cb.values[:-1]).all())
    assert bool((cb.counts > 0).all()) and int(cb.counts.sum()) == theta.numel()
    assert torch.equal(cb.counts, torch.bincount(cb.index, minlength=cb.k))
    out = cb.apply()
    assert out.shape == theta.shape and out.data_ptr() != theta.data_ptr()
    assert torch.unique(out).numel() == cb.k


# ------------------------------------------------------------------------------------------- all PTQ methods


@pytest.mark.parametrize("method", sorted(QUANTIZERS))
@pytest.mark.parametrize("bits", BITS)
def test_ptq_codebook_contract(method, bits):
    theta = gaussian()
    before = theta.clone()
    cb = QUANTIZERS[method](theta, bits)
    assert torch.equal(theta, before)
    check_codebook(cb, theta)
    assert cb.k <= 2**bits
    assert cb.bits == pytest.approx(math.log2(cb.k)) and cb.storage_bits == math.ceil(math.log2(cb.k))
    if bits <= 4:  # 5000 Gaussian weights fill every level
        assert cb.k == 2**bits


@pytest.mark.parametrize("method", sorted(QUANTIZERS))
def test_ptq_constant_layer(method):
    theta = torch.full((50,), 0.3)
    cb = QUANTIZERS[method](theta, 3)
    assert cb.k == 1 and cb.bits == 0.0 and cb.storage_bits == 0
    assert torch.equal(cb.apply(), theta)


@pytest.mark.parametrize("method", sorted(QUANTIZERS))
def test_ptq_few_distinct_values(method):
    theta = torch.tensor([0.0, 1.0, 1.0, 2.5, 0.0, 2.5, 2.5])
    cb = QUANTIZERS[method](theta, 2)
    assert cb.k <= 3
    if method != "uniform":  # uniform maps {0, 1, 2.5} to the grid {0, 5/6, 5/3, 2.5}: 3 levels, 1.0 -> 5/6
        assert cb.k == 3 and torch.equal(cb.apply(), theta)


def test_single_weight():
    theta = torch.tensor([1.5])
    for f in [*QUANTIZERS.values()]:
        cb = f(theta, 4)
        assert cb.k == 1 and torch.equal(cb.apply(), theta)
    assert refine_clusters(theta).k == 1


def test_float64_and_float16():
    for dtype in (torch.float64, torch.float16):
        theta = gaussian(2000, dtype=dtype)
        for f in QUANTIZERS.values():
            check_codebook(f(theta, 8), theta)
        check_codebook(refine_clusters(theta), theta)


# ------------------------------------------------------------------------------------------- uniform


@pytest.mark.parametrize("bits", BITS)
def test_uniform_levels_on_grid(bits):
    theta = gaussian()
    cb = uniform(theta, bits)
    lo, hi = theta.double().min(), theta.double().max()
    step = (hi - lo) / (2**bits - 1)
    pos = (cb.values.double() - lo) / step
    assert torch.allclose(pos, pos.round(), atol=1e-4)  # every value is a grid level
    assert float(cb.values[0]) == float(theta.min()) and float(cb.values[-1]) == float(theta.max())
    err = (cb.apply().double() - theta.double()).abs()
    assert float(err.max()) <= float(step) / 2 * (1 + 1e-5)  # nearest level


# ------------------------------------------------------------------------------------------- heq


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("n", [5000, 4099])
def test_heq_equal_population_without_ties(bits, n):
    theta = gaussian(n, dtype=torch.float64)
    assert torch.unique(theta).numel() == n
    cb = heq(theta, bits)
    assert cb.k == min(2**bits, n)
    assert int(cb.counts.max() - cb.counts.min()) <= 1
    assert torch.allclose(cb.values.double(), member_means(cb, theta))
    # bins are contiguous in sorted order: cluster index is non-decreasing along the sorted weights
    order = torch.argsort(theta)
    assert bool((cb.index[order].diff() >= 0).all())


def test_heq_ties_keep_equal_weights_equal():
    g = torch.Generator().manual_seed(1)
    theta = torch.cat([torch.zeros(300), torch.full((100,), 0.5), torch.randn(600, generator=g)])
    theta = theta[torch.randperm(theta.numel(), generator=g)]
    for bits in BITS:
        cb = heq(theta, bits)
        check_codebook(cb, theta)
        assert cb.k <= 2**bits
        out = cb.apply()
        for v in (0.0, 0.5):
            assert torch.unique(out[theta == v]).numel() == 1
        # general check: same weight value -> same cluster
        uniq, inv = torch.unique(theta, return_inverse=True)
        first = torch.zeros(uniq.numel(), dtype=torch.long).scatter_(0, inv, cb.index)
        assert torch.equal(first[inv], cb.index)


def test_heq_tie_group_goes_to_bin_of_first_rank():
    # sorted: [-2, -1, 0, 0, 0, 0, 1, 2]; 4 bins of 2 by rank; the zeros (ranks 2..5) take their first rank 2
    # -> bin 1; bin 2 is left empty and dropped
    theta = torch.tensor([0.0, 2.0, -1.0, 0.0, 1.0, 0.0, -2.0, 0.0])
    cb = heq(theta, 2)
    assert cb.values.tolist() == [-1.5, 0.0, 1.5]
    assert cb.counts.tolist() == [2, 4, 2]


# ------------------------------------------------------------------------------------------- kmeans


@pytest.mark.parametrize("bits", BITS)
def test_kmeans_deterministic_and_means(bits):
    theta = gaussian()
    a, b = kmeans(theta, bits, seed=3), kmeans(theta, bits, seed=3)
    assert torch.equal(a.values, b.values) and torch.equal(a.index, b.index)
    assert torch.allclose(a.values.double(), member_means(a, theta), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_lloyd_matches_scipy_kmeans2_from_same_init(bits):
    theta = gaussian(3000, seed=2, dtype=torch.float64)
    s = torch.sort(theta).values
    for init in _kmeans_inits(s, 2**bits):
        runs = _lloyd(s, init, 500)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # empty-cluster warning of missing="warn"
            code, label = kmeans2(s.numpy(), init.numpy(), minit="matrix", iter=500, missing="warn")
        used = np.bincount(label, minlength=len(code)) > 0
        assert runs[runs > 0].tolist() == np.bincount(label)[used].tolist()  # same partition of sorted s
        ref = np.sort(code[used])
        ours = torch.stack([c.mean() for c in torch.split(s, runs[runs > 0].tolist())]).numpy()
        assert np.allclose(ours, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
@pytest.mark.parametrize("n", [300, 2000, 20000])
def test_kmeans_converged_is_lloyd_fixed_point_and_beats_baselines(bits, n):
    theta = gaussian(n, seed=n)
    cb = kmeans(theta, bits)
    mse = {
        name: float(((f(theta, bits).apply() - theta).double() ** 2).mean()) for name, f in QUANTIZERS.items()
    }
    assert mse["kmeans"] <= min(mse["uniform"], mse["heq"]) * (1 + 1e-6)
    if bits <= 4:  # converged within max_iter: a Lloyd fixed point
        assert torch.equal(nearest(theta, cb.values).index, cb.index)


def test_kmeans_inits_inside_data_range():
    g = torch.Generator().manual_seed(0)
    s = torch.sort(torch.cat([torch.zeros(500), torch.randn(500, generator=g)])).values.double()
    for c in _kmeans_inits(s, 16):
        assert c.numel() <= 16 and bool((c.diff() > 0).all()) and s[0] <= c[0] and c[-1] <= s[-1]


# ------------------------------------------------------------------------------------------- refine_clusters


def blobs():
    # range [-6.4, 6.4] set by outliers: 128 bins of width 0.1 with edges at multiples of 0.1, blob centres at
    # bin centres, std 0.005 (10 std from an edge), so every blob falls in one bin
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([-2.05, -1.05, 0.05, 1.05, 2.05], dtype=torch.float64)
    pts = (centres[:, None] + 0.005 * torch.randn(5, 200, generator=g, dtype=torch.float64)).flatten()
    outliers = torch.tensor([-6.4, 4.0, 6.4], dtype=torch.float64)
    theta = torch.cat([pts, outliers])
    return theta[torch.randperm(theta.numel(), generator=g)], centres


def test_refine_clusters_blobs_outliers_merged():
    theta, centres = blobs()
    before = theta.clone()
    cb = refine_clusters(theta)
    assert torch.equal(theta, before)
    check_codebook(cb, theta)
    assert cb.k == 5
    assert cb.counts.tolist() == [201, 200, 200, 200, 202]  # -6.4 -> first blob, 4.0 and 6.4 -> last
    assert torch.allclose(cb.values, member_means(cb, theta))
    assert cb.bits == pytest.approx(math.log2(5)) and cb.storage_bits == 3


@pytest.mark.parametrize("n_min", [1, 10, 50, 400])
@pytest.mark.parametrize("resolution_bits", [3, 7])
def test_refine_clusters_invariants(n_min, resolution_bits):
    theta = gaussian(2000, seed=5)
    before = theta.clone()
    cb = refine_clusters(theta, resolution_bits=resolution_bits, n_min=n_min)
    assert torch.equal(theta, before)
    check_codebook(cb, theta)
    assert cb.k <= 2**resolution_bits
    assert cb.k == 1 or bool((cb.counts >= n_min).all())
    assert torch.allclose(cb.values.double(), member_means(cb, theta), rtol=1e-6, atol=1e-6)
    if n_min == 1:  # no merging: the clusters are the non-empty bins
        lo, hi = theta.double().min(), theta.double().max()
        b = ((theta.double() - lo) / (hi - lo) * 2**resolution_bits).floor().clamp(max=2**resolution_bits - 1)
        assert cb.k == torch.unique(b).numel()


def test_refine_clusters_merges_into_nearer_neighbour():
    # bins of width 1 over [0, 8]: clusters at ~0.5 (20 pts), 3.9 (3 pts), 5.5 (20 pts), and 8 (20 pts);
    # the 3-point cluster at 3.9 is nearer to 5.5 than to 0.5
    theta = torch.cat(
        [
            torch.full((20,), 0.5),
            torch.full((3,), 3.9),
            torch.full((20,), 5.5),
            torch.full((20,), 8.0),
            torch.tensor([0.0]),
        ]
    )
    cb = refine_clusters(theta, resolution_bits=3, n_min=10)
    assert cb.counts.tolist() == [21, 23, 20]
    assert cb.values[1].item() == pytest.approx((3 * 3.9 + 20 * 5.5) / 23)


def test_refine_clusters_all_merge_to_one():
    cb = refine_clusters(gaussian(30), n_min=100)
    assert cb.k == 1 and cb.bits == 0.0 and cb.storage_bits == 0


def test_refine_clusters_constant_layer():
    theta = torch.full((1000,), -0.25)
    cb = refine_clusters(theta)
    assert cb.k == 1 and cb.bits == 0.0 and torch.equal(cb.apply(), theta)


# ------------------------------------------------------------------------------------------- nearest


def test_nearest():
    theta = torch.tensor([-1.0, 0.1, 0.5, 0.9, 3.0])
    cb = nearest(theta, torch.tensor([1.0, 0.0, 10.0, -5.0]))  # unsorted; -5 and 10 unused
    assert cb.values.tolist() == [0.0, 1.0]
    assert cb.apply().tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]  # 0.5 is a tie -> lower
    assert cb.counts.tolist() == [3, 2]


# ------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize("f", [uniform, heq, kmeans])
@pytest.mark.parametrize("bits", [0, 17, -1, 2.0, True, "4", None])
def test_bad_bits(f, bits):
    with pytest.raises(ValueError, match="bits"):
        f(gaussian(100), bits)


BAD_THETA = [
    (torch.tensor([1.0, float("nan")]), "NaN"),
    (torch.tensor([1.0, float("inf")]), "inf"),
    (torch.tensor([]), "empty"),
    (torch.zeros(3, 3), "1-D"),
    (torch.arange(5), "floating"),
    ([1.0, 2.0], "theta"),
]


@pytest.mark.parametrize("theta,msg", BAD_THETA)
def test_bad_theta(theta, msg):
    for call in (
        lambda t: uniform(t, 2),
        lambda t: heq(t, 2),
        lambda t: kmeans(t, 2),
        lambda t: refine_clusters(t),
        lambda t: nearest(t, torch.tensor([0.0])),
    ):
        with pytest.raises(ValueError, match=msg) as info:
            call(theta)
        assert "theta" in str(info.value)


def test_bad_other_args():
    theta = gaussian(100)
    for kwargs, name in [
        ({"n_min": 0}, "n_min"),
        ({"n_min": 2.5}, "n_min"),
        ({"resolution_bits": 0}, "resolution_bits"),
        ({"resolution_bits": 17}, "resolution_bits"),
    ]:
        with pytest.raises(ValueError, match=name):
            refine_clusters(theta, **kwargs)
    with pytest.raises(ValueError, match="max_iter"):
        kmeans(theta, 2, max_iter=0)
    with pytest.raises(ValueError, match="seed"):
        kmeans(theta, 2, seed=-1)
    for c in (torch.tensor([]), torch.tensor([float("nan")]), torch.zeros(2, 2), [0.0]):
        with pytest.raises(ValueError, match="centroids"):
            nearest(theta, c)


# ------------------------------------------------------------------------------------------- levels (any K)


def heavy_tailed(n=432, seed=2):
    """Gaussian / uniform^0.7: heavy tails, where Lloyd at 2^bits leaves clusters empty (9 of 16 at 4 bits)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(n, generator=g, dtype=torch.float64)
    u = torch.rand(n, generator=g, dtype=torch.float64)
    return (t / u**0.7).float()


def sse(cb: Codebook, theta: torch.Tensor) -> float:
    return float(((cb.apply().double() - theta.double()) ** 2).sum())


@pytest.mark.parametrize("method", sorted(QUANTIZERS))
@pytest.mark.parametrize("bits", BITS)
def test_levels_two_to_the_bits_is_bits(method, bits):
    """levels=2^b gives the codebook of bits=b (k-means: wherever Lloyd left no cluster empty, as here)."""
    for theta in (gaussian(), gaussian(300, seed=1, dtype=torch.float64)):
        a, b = QUANTIZERS[method](theta, bits), QUANTIZERS[method](theta, levels=2**bits)
        if method == "kmeans" and a.k < min(2**bits, torch.unique(theta).numel()):
            continue  # 8 bits on 300 weights: k-means' bits path drops empty clusters, levels fills them
        assert torch.equal(a.values, b.values) and torch.equal(a.index, b.index) and torch.equal(a.counts, b.counts)


@pytest.mark.parametrize("method", sorted(QUANTIZERS))
@pytest.mark.parametrize("levels", [1, 3, 5, 6, 7, 12, 100])
def test_levels_not_a_power_of_two(method, levels):
    theta = gaussian()
    cb = QUANTIZERS[method](theta, levels=levels)
    check_codebook(cb, theta)
    assert cb.k <= levels
    if method != "uniform":  # uniform keeps only the grid levels in use (the sparse tails may leave some empty)
        assert cb.k == levels  # 5000 distinct Gaussian weights: every k-means cluster and every HEQ bin filled
    if method == "heq":
        assert int(cb.counts.max() - cb.counts.min()) <= 1
    if method == "uniform" and levels > 1:
        lo, hi = theta.double().min(), theta.double().max()
        pos = (cb.values.double() - lo) / ((hi - lo) / (levels - 1))
        assert torch.allclose(pos, pos.round(), atol=1e-4)  # on the grid of `levels` levels


def test_one_level():
    theta = gaussian(1000, dtype=torch.float64)
    assert kmeans(theta, levels=1).values.tolist() == pytest.approx([float(theta.mean())])
    assert heq(theta, levels=1).values.tolist() == pytest.approx([float(theta.mean())])
    assert uniform(theta, levels=1).values.tolist() == pytest.approx([float(theta.min() + theta.max()) / 2])
    for f in QUANTIZERS.values():
        cb = f(theta, levels=1)
        assert cb.k == 1 and cb.bits == 0.0 and cb.counts.tolist() == [1000]


@pytest.mark.parametrize("levels", [3, 5, 6, 12, 100])
@pytest.mark.parametrize("n", [300, 2000])
def test_kmeans_levels_beats_uniform_and_heq_at_the_same_levels(levels, n):
    theta = gaussian(n, seed=n + levels)
    err = {name: sse(f(theta, levels=levels), theta) for name, f in QUANTIZERS.items()}
    assert err["kmeans"] <= min(err["uniform"], err["heq"]) * (1 + 1e-6)


@pytest.mark.parametrize("bits", [3, 4, 5])
def test_kmeans_levels_fills_clusters_bits_drops(bits):
    """Heavy tails: Lloyd at 2^bits ends with empty clusters, which bits= drops (unchanged behaviour) and
    levels= refills, with exactly 2^bits clusters and no larger error."""
    theta = heavy_tailed()
    dropped, filled = kmeans(theta, bits), kmeans(theta, levels=2**bits)
    if bits >= 4:
        assert dropped.k < 2**bits  # the case this test is about (9 of 16 at 4 bits, 11 of 32 at 5)
    check_codebook(filled, theta)
    assert filled.k == 2**bits
    assert sse(filled, theta) <= sse(dropped, theta) * (1 + 1e-9)
    assert torch.allclose(filled.values.double(), member_means(filled, theta), rtol=1e-6, atol=1e-6)
    # a function of the weight value: clusters are contiguous in sorted order
    order = torch.argsort(theta)
    assert bool((filled.index[order].diff() >= 0).all())


@pytest.mark.parametrize("levels", [2, 3, 7, 20, 64, 200])
def test_kmeans_levels_count_is_exact_on_a_real_layer_size(levels):
    """K = min(levels, distinct values) for any K (432 weights: the size of ResNet-20's first conv)."""
    for theta in (heavy_tailed(), gaussian(432, seed=7)):
        cb = kmeans(theta, levels=levels)
        check_codebook(cb, theta)
        assert cb.k == min(levels, torch.unique(theta).numel())


def test_kmeans_levels_with_ties_and_few_distinct_values():
    g = torch.Generator().manual_seed(3)
    theta = torch.cat([torch.zeros(300), torch.full((100,), 0.5), torch.randn(60, generator=g)])
    distinct = torch.unique(theta).numel()
    for levels in (3, 10, 40, distinct, distinct + 5):
        cb = kmeans(theta, levels=levels)
        check_codebook(cb, theta)
        assert cb.k == min(levels, distinct)
        out = cb.apply()
        assert torch.unique(out[theta == 0.0]).numel() == 1 and torch.unique(out[theta == 0.5]).numel() == 1
    assert torch.equal(kmeans(theta, levels=distinct).apply(), theta)  # one cluster per value: exact


@pytest.mark.parametrize("k", [3, 5, 6, 7, 12, 100])
def test_kmeans_inits_any_k(k):
    s = torch.sort(gaussian(2000, seed=k, dtype=torch.float64)).values
    inits = _kmeans_inits(s, k)
    assert len(inits) == 3
    eps = 1e-12 * float(s[-1] - s[0])  # the grid's ends are lo + (hi − lo)·j/(k − 1), hi to an ulp
    for c in inits:
        assert c.numel() <= k and bool((c.diff() > 0).all()) and s[0] - eps <= c[0] and c[-1] <= s[-1] + eps
        assert bool(torch.isfinite(c).all())
    assert inits[0].numel() == k and inits[1].numel() == k  # the cube-root quantiles and the uniform grid


def test_split_to_takes_the_largest_error_drop_between_distinct_values():
    s = torch.tensor([0.0, 0.0, 0.1, 5.0, 5.0, 5.0, 10.0, 10.1], dtype=torch.float64)
    # one run of everything → split at the largest gap in the error sense: before 5.0 or before 10.0
    runs = _split_to(s, torch.tensor([8]), 2)
    assert runs.tolist() == [3, 5]  # {0, 0, 0.1} | {5, 5, 5, 10, 10.1}: a drop of 3·5/8·(0.033 − 7.02)² beats 6·2/8·…
    runs = _split_to(s, torch.tensor([0, 3, 0, 5]), 3)  # zeros dropped; the second run splits before 10.0
    assert runs.tolist() == [3, 3, 2]
    runs = _split_to(s, torch.tensor([8]), 5)  # the zeros and the fives stay together
    assert runs.tolist() == [2, 1, 3, 1, 1]


@pytest.mark.parametrize("f", [uniform, heq, kmeans])
def test_bad_levels(f):
    theta = gaussian(100)
    for levels in (0, -1, 2**16 + 1, 2.0, True, "4"):
        with pytest.raises(ValueError, match="levels"):
            f(theta, levels=levels)
    with pytest.raises(ValueError, match="not both"):
        f(theta, 2, levels=4)
    with pytest.raises(ValueError, match="bits"):
        f(theta)
    assert f(theta, levels=np.int64(3)).k <= 3  # numpy integers (e.g. read from a run file) are fine
