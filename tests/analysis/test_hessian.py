"""Hessian spectra (landscape/analysis/hessian.py, lanczos.py, python -m landscape.hessian): on a tiny float64 conv
net with BatchNorm the operator, its blocks, eigenvalues, trace, SLQ and the clamp-cost prediction against the dense
Hessian from torch.autograd; then the CLI on a tiny run file."""

import gc
import json
import shutil
import warnings

import h5py
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import SHARED, assert_one_line_error
from torch.func import functional_call

from landscape.analysis import lanczos
from landscape.analysis.evaluator import StateEvaluator
from landscape.analysis.hessian import (
    HessianConfig,
    HessianOperator,
    analyze,
    clamp_cost,
    lerp_state,
    read_hessian,
    sweep_keys,
    write_hessian,
)
from landscape.analysis.sweep import Journal
from landscape.errors import LandscapeError


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: one thread (two threads on two busy cores made each product ~30× slower here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Net(nn.Module):
    """conv → BN → tanh → conv → BN → ReLU → mean pool → linear: 228 weights, 247 parameters."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(4)
        self.linear = nn.Linear(4, 3)

    def forward(self, x):
        x = torch.tanh(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.linear(x.mean((2, 3)))


def _net(seed=0):
    torch.manual_seed(seed)
    model = Net().double()
    with torch.no_grad():
        for bn in (model.bn1, model.bn2):
            bn.running_mean.normal_(0, 0.1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.normal_(1, 0.2)
            bn.bias.normal_(0, 0.2)
            bn.num_batches_tracked.fill_(7)
    return model.eval()


def _data(n=10, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, 5, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def _batches(x, y, sizes=(7, 3)):
    return list(zip(x.split(list(sizes)), y.split(list(sizes)), strict=True))


def _dense(model, x, y, names, state=None):
    """(gradient, Hessian) of the mean loss over (x, y) with respect to `names`, flattened in that order."""
    state = {k: v.detach() for k, v in (state or model.state_dict()).items()}
    shapes = [state[n].shape for n in names]
    flat = torch.cat([state[n].reshape(-1) for n in names])

    def f(w):
        parts = dict(zip(names, (p.view(s) for p, s in zip(w.split([s.numel() for s in shapes]), shapes,
                                                              strict=True)), strict=True))
        return F.cross_entropy(functional_call(model, {**state, **parts}, (x,)), y)

    return torch.autograd.functional.jacobian(f, flat), torch.autograd.functional.hessian(f, flat, vectorize=True)


@pytest.fixture(scope="module")
def dense():
    model, (x, y) = _net(), _data()
    names = ["conv1.weight", "conv2.weight", "linear.weight"]
    g, h = _dense(model, x, y, names)
    return model, x, y, names, g, h


def test_operator_is_the_dense_hessian_batch_weighted_and_split_independent(dense):
    model, x, y, names, _, h = dense
    v = torch.randn(h.shape[0], dtype=torch.float64)
    for sizes in ((7, 3), (10,), (1, 4, 5)):  # unequal batches: weights n_b / N
        op = HessianOperator(model.train(), _batches(x, y, sizes))  # eval mode inside, whatever the model's
        assert model.training and op.names == names and op.dim == 228
        torch.testing.assert_close(op(v), h @ v, rtol=1e-10, atol=1e-12)
    model.eval()
    kept = HessianOperator(model, _batches(x, y), keep_graph=True)
    for _ in range(2):  # the second product reuses the first one's gradient graphs
        torch.testing.assert_close(kept(v), h @ v, rtol=1e-10, atol=1e-12)
    assert kept._graphs is not None and kept.at(model.state_dict())._graphs is None


def test_top_and_bottom_eigenvalues_match_dense_eigh(dense):
    model, x, y, _, _, h = dense
    exact = torch.linalg.eigvalsh(h).numpy()
    op = HessianOperator(model, _batches(x, y))
    top = lanczos.top_eigenvalues(op, op.dim, 3)  # default tol 1e-3
    np.testing.assert_allclose(top.values, exact[::-1][:3], rtol=1e-4)
    assert top.products == op.products > 3
    bottom = lanczos.top_eigenvalues(op, op.dim, 2, which="SA", tol=1e-6)
    assert bottom.values[0] < 0  # a saddle: the largest-magnitude eigenvalue is not the largest one
    np.testing.assert_allclose(bottom.values, exact[:2], rtol=1e-4)
    again = lanczos.top_eigenvalues(op, op.dim, 3)
    assert again == top  # seeded start vector: deterministic


def test_params_all_and_the_per_layer_blocks_equal_the_dense_blocks():
    model, (x, y) = _net(), _data()
    op = HessianOperator(model, _batches(x, y), params="all")
    names = list(dict(model.named_parameters()))
    assert op.names == names and op.dim == 247
    _, h = _dense(model, x, y, names)
    top = lanczos.top_eigenvalues(op, op.dim, 1, tol=1e-8)
    assert top.values[0] == pytest.approx(float(torch.linalg.eigvalsh(h)[-1]), rel=1e-6)
    start = 0
    for name in names:
        n = model.state_dict()[name].numel()
        block = op.block([name])
        assert block.dim == n
        torch.testing.assert_close(lanczos.dense(block, n), h[start:start + n, start:start + n], rtol=1e-9,
                                   atol=1e-12)
        start += n


def test_hutchinson_trace_within_three_standard_errors(dense):
    model, x, y, _, _, h = dense
    op = HessianOperator(model, _batches(x, y))
    t = lanczos.hutchinson(op, op.dim, 200, seed=3)
    exact = float(torch.trace(h))
    assert not t.exact and t.se > 0 and len(t.samples) == 200
    assert abs(t.mean - exact) <= 3 * t.se
    few = lanczos.hutchinson(op, op.dim, 20, seed=3)
    assert few.samples == t.samples[:20]  # prefix stable
    split = lanczos.hutchinson(op, op.dim, 200, seed=3, split=op.sizes)  # block traces from the same products
    assert split.samples == t.samples and len(split.parts) == 3
    np.testing.assert_allclose(np.sum([p.samples for p in split.parts], axis=0), t.samples, rtol=1e-12)
    start = 0
    for part, n in zip(split.parts, op.sizes, strict=True):
        assert abs(part.mean - float(torch.trace(h[start:start + n, start:start + n]))) <= 3 * part.se
        start += n
    small = lanczos.hutchinson(op.block(["linear.weight"]), 12, 20)  # n ≤ samples: exact
    assert small.exact and small.se == 0 and small.mean == pytest.approx(float(torch.trace(h[-12:, -12:])))


def test_slq_weights_are_squared_first_components(dense):
    model, x, y, _, _, h = dense
    op = HessianOperator(model, _batches(x, y))
    nodes, weights = lanczos.slq(op, op.dim, 12, 3, seed=5)
    g = torch.Generator().manual_seed(5)
    for theta, w in zip(np.array(nodes), np.array(weights), strict=True):
        v = lanczos.rademacher(op.dim, g)
        v = v / torch.linalg.vector_norm(v)
        assert w.sum() == pytest.approx(1, abs=1e-12)
        for p in (1, 2, 3, 5):  # Gauss quadrature is exact for degree < 2m: Σ w θ^p = vᵀ H^p v
            exact = float(v @ torch.linalg.matrix_power(h, p) @ v)
            assert float(w @ theta**p) == pytest.approx(exact, rel=1e-8, abs=1e-14)
    # the first moment averaged over many vectors estimates tr(H)/n
    nodes, weights = lanczos.slq(op, op.dim, 4, 100, seed=0)
    first = (np.array(nodes) * np.array(weights)).sum(1)
    assert abs(first.mean() - float(torch.trace(h)) / op.dim) <= 3 * first.std(ddof=1) / 10
    grid, phi, sigma = lanczos.density(nodes, weights)
    assert np.trapezoid(phi, grid) == pytest.approx(1, abs=1e-3) and sigma > 0


def test_lanczos_to_full_dimension_finds_the_eigenvalues():
    torch.manual_seed(0)
    a = torch.randn(40, 40, dtype=torch.float64)
    a = a + a.T
    alpha, beta = lanczos.lanczos(lambda v: a @ v, torch.randn(40, dtype=torch.float64), 40)
    theta, w = lanczos.quadrature(alpha, beta)
    np.testing.assert_allclose(theta, torch.linalg.eigvalsh(a).numpy(), atol=1e-9)
    # an invariant subspace stops it early: diagonal matrix, start vector in a 3-dimensional eigenspace span
    d = torch.diag(torch.arange(1.0, 11.0, dtype=torch.float64))
    v = torch.zeros(10, dtype=torch.float64)
    v[[1, 4, 7]] = 1
    alpha, beta = lanczos.lanczos(lambda u: d @ u, v, 10)
    assert len(alpha) == 3
    np.testing.assert_allclose(np.sort(lanczos.quadrature(alpha, beta)[0]), [2, 5, 8], atol=1e-12)


def test_clamp_cost_is_the_exact_quadratic_form(dense):
    model, x, y, names, g, h = dense
    compressed = {k: v.clone() for k, v in model.state_dict().items()}
    clamped = {k: (torch.round(v * 20) / 20 if k in names else v.clone()) for k, v in compressed.items()}
    delta = torch.cat([(clamped[n] - compressed[n]).reshape(-1) for n in names])
    op = HessianOperator(model, _batches(x, y))
    out = clamp_cost(op, clamped)
    assert out["linear"] == pytest.approx(float(g @ delta), rel=1e-10)
    assert out["quadratic"] == pytest.approx(0.5 * float(delta @ h @ delta), rel=1e-10)
    assert out["predicted"] == pytest.approx(out["linear"] + out["quadratic"])

    def loss(state):
        with torch.no_grad():
            return float(F.cross_entropy(functional_call(model, state, (x,)), y))

    assert out["measured"] == pytest.approx(loss(clamped) - loss(compressed), rel=1e-9, abs=1e-14)
    assert out["predicted"] == pytest.approx(out["measured"], rel=0.2)  # second order holds for a small step
    start = 0
    for name in names:  # per layer: g_l δ_l + ½ δ_l H_ll δ_l, measured with only that layer clamped
        n = compressed[name].numel()
        d, sl = delta[start:start + n], slice(start, start + n)
        one = clamp_cost(op, clamped, [name])
        assert one["predicted"] == pytest.approx(float(g[sl] @ d) + 0.5 * float(d @ h[sl, sl] @ d), rel=1e-10)
        assert one["measured"] == pytest.approx(loss({**compressed, name: clamped[name]}) - loss(compressed),
                                                rel=1e-9, abs=1e-14)
        start += n


def _tensors():
    with warnings.catch_warnings():  # isinstance on some deprecated torch objects warns
        warnings.simplefilter("ignore")
        return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))


def test_analyze_leaves_inputs_alone_and_leaks_no_graph(tmp_path):
    model, (x, y) = _net(), _data()
    model.train()
    other = _net(seed=2).state_dict()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {k: p.requires_grad for k, p in model.named_parameters()}
    config = HessianConfig(top_k=2, smallest=True, trace=True, samples=8, density=True, steps=6, vectors=2,
                           per_layer=True, layers=("conv2.weight", "linear.weight"), points=2)
    states = {"a": model.state_dict(), "b": other}
    clamped = {**other, "bn1.running_mean": other["bn1.running_mean"] + 1}
    result = analyze(model, _batches(x, y), states, config, path=[model.state_dict(), other], clamp=(other, clamped))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert model.training and all(p.grad is None and p.requires_grad == flags[k]
                                  for k, p in model.named_parameters())
    assert set(result.states) == {"a", "b"} and result.layers == ["conv2.weight", "linear.weight"]
    a = result.states["a"]
    assert len(a["top"]) == 2 and len(a["bottom"]) == 2 and a["dim"] == 228 and set(a["layers"]) == set(result.layers)
    assert len(a["density_nodes"]) == 2 and len(a["density_nodes"][0]) == 6 and len(a["density"]) == 1000
    assert not a["layers"]["linear.weight"]["trace_exact"]  # 12 weights > 8 samples: Hutchinson
    assert result.clamp_cost["other_changed"] == ["bn1.running_mean"]
    assert result.clamp_cost["loss_clamped"] != result.clamp_cost["loss_clamped_weights"]
    assert set(result.clamp_cost["layers"]) == set(result.layers)
    p = result.path
    assert p["alpha"] == [0.0, 1.0] and p["lambda_max"][1] == pytest.approx(result.states["b"]["top"][0], rel=1e-3)
    assert p["loss"][0] == pytest.approx(a["loss"], rel=1e-12)
    json.dumps(result.to_dict())  # JSON-ready
    # no graph survives a product: the number of live tensors does not grow with the number of products
    op = HessianOperator(model, _batches(x, y))
    v = torch.randn(op.dim, dtype=torch.float64)
    hv = op(v)
    assert hv.grad_fn is None and not hv.requires_grad
    gc.collect()
    start = _tensors()
    for _ in range(5):
        op(v)
    gc.collect()
    assert _tensors() <= start


def test_kept_graphs_give_the_same_spectra():
    model, (x, y) = _net(), _data()
    config = HessianConfig(top_k=2, trace=True, samples=6, per_layer=True, layers=("conv1.weight",))
    states = {"a": model.state_dict(), "b": _net(1).state_dict()}
    fresh = analyze(model, _batches(x, y), states, config, clamp=(states["a"], states["b"]))
    kept = analyze(model, _batches(x, y), states, config, clamp=(states["a"], states["b"]), keep_graph=True)
    for label in states:
        assert kept.states[label]["top"] == pytest.approx(fresh.states[label]["top"], rel=1e-12)
        assert kept.states[label]["trace_samples"] == pytest.approx(fresh.states[label]["trace_samples"], rel=1e-12)
    assert kept.clamp_cost["predicted"] == pytest.approx(fresh.clamp_cost["predicted"], rel=1e-12)


def test_path_interpolates_like_the_evaluator():
    a, b = _net(0), _net(1)
    evaluator = StateEvaluator(a, fast=False)
    for w in (0.0, 0.25, 0.5, 0.75, 1.0):
        evaluator.lerp_(a.state_dict(), b.state_dict(), w)
        mine = lerp_state(a.state_dict(), b.state_dict(), w)
        for k, v in evaluator.live.items():
            assert torch.equal(mine[k], v), (w, k)


def test_journal_resume_gives_the_same_numbers(tmp_path):
    model, (x, y) = _net(), _data()
    config = HessianConfig(trace=True, samples=4, per_layer=True)
    journal_file = tmp_path / "j.json"
    first = analyze(model, _batches(x, y), {"s": model.state_dict()}, config,
                    journal=Journal.open(journal_file, {"x": 1}))
    stored = json.loads(journal_file.read_text())
    assert "s/layer/conv1.weight/trace" in stored["done"]
    del stored["done"]["s/model/top"]
    stored["done"]["s/layer/conv1.weight/top"]["top"] = [123.0]  # a journaled value is taken, not recomputed
    journal_file.write_text(json.dumps(stored))
    second = analyze(model, _batches(x, y), {"s": model.state_dict()}, config,
                     journal=Journal.open(journal_file, {"x": 1}))
    assert second.states["s"]["top"] == first.states["s"]["top"]
    assert second.states["s"]["layers"]["conv1.weight"]["top"] == [123.0]


@pytest.mark.parametrize("bad,match", [({"top_k": 0}, "--top-k"), ({"samples": 1}, "--samples"),
                                       ({"points": 1}, "--points"), ({"tol": 0.0}, "--tol"),
                                       ({"params": "some"}, "parameter selection"),
                                       ({"layer_trace": "x"}, "--layer-trace"), ({"sigma": -1.0}, "--sigma")])
def test_config_rejects(bad, match):
    with pytest.raises(ValueError, match=match):
        HessianConfig(**bad)


def test_bad_library_inputs():
    model, (x, y) = _net(), _data()
    with pytest.raises(LandscapeError, match="nope"):
        analyze(model, _batches(x, y), {"s": model.state_dict()}, HessianConfig(per_layer=True, layers=("nope",)))
    with pytest.raises(LandscapeError, match="not usable"):
        analyze(model, _batches(x, y), {"path": model.state_dict()})
    with pytest.raises(LandscapeError, match="missing"):
        HessianOperator(model, _batches(x, y), state={"conv1.weight": model.conv1.weight})
    with pytest.raises(ValueError, match="empty"):
        HessianOperator(model, [])


def test_write_read_round_trip(tmp_path):
    model, (x, y) = _net(), _data()
    config = HessianConfig(trace=True, samples=4, density=True, steps=4, vectors=2, per_layer=True, points=2,
                           layer_trace="split")
    assert not any(k.endswith("/trace") and "/layer/" in k for k in sweep_keys(["s"], ["conv1.weight"], config))
    result = analyze(model, _batches(x, y), {"s": model.state_dict()}, config,
                     path=[model.state_dict(), _net(1).state_dict()], clamp=(model.state_dict(), _net(1).state_dict()))
    path = tmp_path / "r.h5"
    write_hessian(path, "s", result, {"states": ["s"], "limit": None})
    layers = result.states["s"]["layers"]
    assert sum(layers[n]["trace_samples"][0] for n in result.layers) == pytest.approx(
        result.states["s"]["trace_samples"][0], rel=1e-12)  # the whole model's products, split by layer
    back, attrs = read_hessian(path, "s")
    assert back.to_dict() == json.loads(json.dumps(result.to_dict()))
    assert json.loads(attrs["states"]) == ["s"] and "limit" not in attrs and attrs["n"] == 10
    with pytest.raises(LandscapeError, match="--force"):
        write_hessian(path, "s", result, {})


# ------------------------------------------------------------------------------------------------------- CLI

DATA = ["--data", str(SHARED / "data"), "--batch-size", "10", "--limit", "20"]


@pytest.fixture
def run(tiny_run, tmp_path):
    return shutil.copy(tiny_run, tmp_path / "run.h5")


def test_cli_stores_prints_and_draws(run_cli, run):
    r = run_cli("hessian", run, "--state", "compressed", "clamped", "--top-k", 2, "--trace", "--samples", 2,
                "--density", "--steps", 3, "--vectors", 1, "--layers", "linear.weight", "conv1.weight", "--path",
                "--points", 2, "--json", *DATA)
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["group"] == "/analysis/hessian/compressed-clamped" and out["n"] == 20
    result, attrs = read_hessian(run, "compressed-clamped")
    assert result.to_dict() == json.loads(json.dumps({k: out[k] for k in ("n", "layers", "states", "path",
                                                                           "clamp_cost")}))
    assert result.layers == ["linear.weight", "conv1.weight"] and json.loads(attrs["labels"]) == ["compressed",
                                                                                                  "clamped"]
    assert len(result.states["clamped"]["top"]) == 2 and result.path["alpha"] == [0.0, 1.0, 2.0]
    assert set(result.clamp_cost["layers"]) == {"linear.weight", "conv1.weight"}
    assert result.clamp_cost["other_changed"] == []  # clamping changes the compressed weights only
    png = run.parent / "run.hessian-compressed-clamped.png"
    assert png.is_file() and png.stat().st_size > 5000 and out["png"] == str(png)
    assert not list(run.parent.glob(".*journal*"))
    r = run_cli("hessian", run, "--no-clamp-cost", "--keep-graph", *DATA)  # the table
    assert r.code == 0, r.err
    assert "clamped: loss" in r.out and "whole model" in r.out and "wrote" in r.out


@pytest.mark.parametrize("args,needles", [
    (["--state", "nonsense"], ["nonsense", "no such file"]),
    (["--state", "step:999"], ["no complete checkpoint at step 999"]),
    (["--state", "clamped", "clamped"], ["repeat"]),
    (["--layers", "conv9.weight"], ["conv9.weight"]),
    (["--top-k", "0"], ["--top-k", "≥ 1"]),
    (["--points", "1", "--path"], ["--points"]),
    (["--samples", "1"], ["--samples"]),
    (["--tol", "2"], ["--tol"]),
    (["--split", "valid"], ["--split"]),
    (["--name", "a/b"], ["result name"]),
])
def test_cli_bad_input(run_cli, run, args, needles):
    before, files = run.read_bytes(), sorted(run.parent.iterdir())
    assert_one_line_error(run_cli("hessian", run, *args, *DATA), *needles)
    assert run.read_bytes() == before and sorted(run.parent.iterdir()) == files


def test_cli_refuses_to_replace_without_force(run_cli, run):
    assert run_cli("hessian", run, "--no-clamp-cost", *DATA).code == 0
    before, files = run.read_bytes(), sorted(run.parent.iterdir())
    assert_one_line_error(run_cli("hessian", run, *DATA), "--force")
    assert run.read_bytes() == before and sorted(run.parent.iterdir()) == files
    assert run_cli("hessian", run, "--force", *DATA).code == 0
    assert read_hessian(run, "clamped")[0].clamp_cost is not None
    with h5py.File(run, "r") as f:
        assert list(f["analysis/hessian"]) == ["clamped"]


def test_figure_script_help():
    import importlib
    import sys

    from conftest import REPO

    sys.path.insert(0, str(REPO / "analyses"))
    try:
        script = importlib.import_module("fig_hessian")
    finally:
        sys.path.remove(str(REPO / "analyses"))
    with pytest.raises(SystemExit) as e:
        script.main(["--help"])
    assert e.value.code == 0
