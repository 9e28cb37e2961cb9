"""landscape.analysis.surface and python -m landscape.surface: filter normalization, the plane basis, the states at
their exact coordinates, the grid convention (odd, centre and ends, ij order), BN handling, storage, bad inputs."""

import copy
import math
import shutil

import numpy as np
import pytest
import torch
import torch.nn as nn
from conftest import SHARED, assert_one_line_error

from landscape.analysis import directions as dirs
from landscape.analysis.evaluator import StateEvaluator
from landscape.analysis.surface import (
    SurfaceConfig,
    evaluate_surface,
    grid_axis,
    random_plane,
    read_surface,
    states_plane,
)
from landscape.errors import LandscapeError
from landscape.metrics import evaluate
from landscape.models import build_model


def _net() -> nn.Module:
    """Conv + BN + grouped conv + linear with biases: every kind of tensor a direction has to handle."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 8, 3, padding=1, groups=4, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    with torch.no_grad():  # BN statistics and affine parameters away from their defaults
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net.eval()


def _states(net: nn.Module, n: int = 3) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    out = []
    for i in range(n):
        s = {k: v.clone() for k, v in net.state_dict().items()}
        if i:
            for k, v in s.items():
                if v.is_floating_point():
                    v.add_(0.1 * torch.randn(v.shape, generator=g) * (v.abs().mean() + 0.1))
                    if k.endswith("running_var"):
                        v.abs_()
        out.append(s)
    return out


def _batches(n: int = 64, seed: int = 0) -> list:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 8, 8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return [(x[:32], y[:32]), (x[32:], y[32:])]


# ------------------------------------------------------------------------------------------------ directions


def test_filter_normalized_slices_have_the_states_slice_norms():
    net = _net()
    theta = {k: v.double() for k, v in net.named_parameters()}
    d = dirs.filter_normalized(theta, torch.Generator().manual_seed(0))
    for name, t in theta.items():
        if t.dim() <= 1:
            assert torch.count_nonzero(d[name]) == 0, name  # biases and BN affine zeroed (--ignore biasbn)
            continue
        want = torch.linalg.vector_norm(t.reshape(len(t), -1), dim=1)
        got = torch.linalg.vector_norm(d[name].reshape(len(t), -1), dim=1)
        torch.testing.assert_close(got, want, rtol=1e-6, atol=0, msg=name)
    d = dirs.filter_normalized(theta, torch.Generator().manual_seed(0), ignore="none")
    for name, t in theta.items():
        if t.dim() <= 1:  # one slice, scaled to its own norm (never a copy of the weights)
            assert math.isclose(dirs.tensor_norm(d[name]), dirs.tensor_norm(t), rel_tol=1e-6)
            assert not torch.allclose(d[name], t)
    d = dirs.filter_normalized(theta, torch.Generator().manual_seed(0), norm="layer")
    for name, t in theta.items():
        if t.dim() > 1:
            assert math.isclose(dirs.tensor_norm(d[name]), dirs.tensor_norm(t), rel_tol=1e-6)


def test_directions_are_gaussian_and_seeded():
    theta = {"w": torch.ones(200_000, dtype=torch.float64)}
    a = dirs.gaussian(theta, torch.Generator().manual_seed(3))["w"]
    b = dirs.gaussian(theta, torch.Generator().manual_seed(3))["w"]
    assert torch.equal(a, b)
    kurtosis = float(((a - a.mean()) ** 4).mean() / a.var() ** 2)
    assert abs(kurtosis - 3.0) < 0.1  # Gaussian: 3; uniform would be 1.8


def test_random_plane_is_orthogonal_after_normalization():
    net = _net()
    plane = random_plane(net, net.state_dict(), "centre", seed=0)
    d1, d2 = plane.axes
    assert abs(dirs.dot(d1, d2)) < 1e-12 * math.sqrt(dirs.dot(d1, d1) * dirs.dot(d2, d2))
    assert 0 < abs(plane.info["cosine"]) < 0.5
    assert set(d1) == {k for k, _ in net.named_parameters()}  # parameters only: BN buffers stay the centre's


# ------------------------------------------------------------------------------------------------ the planes


def test_states_plane_basis_is_orthonormal_and_reproduces_the_states():
    net = _net()
    states = _states(net)
    plane = states_plane(net, states, ["a", "b", "c"])
    params = [k for k, _ in net.named_parameters()]
    u1, u2 = ({k: ax[k] for k in params} for ax in plane.axes)
    assert math.isclose(dirs.dot(u1, u1), 1, abs_tol=1e-6) and math.isclose(dirs.dot(u2, u2), 1, abs_tol=1e-6)
    assert abs(dirs.dot(u1, u2)) < 1e-6
    for label, (x, y), state in plane.anchors:
        for k, v in state.items():  # origin + x·A1 + y·A2 is the state itself: parameters and BN buffers
            if v.is_floating_point():
                got = plane.origin[k].double() + x * plane.axes[0][k] + y * plane.axes[1][k]
                torch.testing.assert_close(got, v.double(), rtol=1e-6, atol=1e-6, msg=f"{label} {k}")
    # the coordinates are distances: |pretrained→compressed| and the third state's distance from the origin
    d = lambda s, t: math.sqrt(sum(float(((s[k] - t[k]).double() ** 2).sum()) for k in params))  # noqa: E731
    (_, c0, s0), (_, c1, s1), (_, c2, s2) = plane.anchors
    assert math.isclose(c1[0], d(s1, s0), rel_tol=1e-9) and c1[1] == 0
    assert math.isclose(math.hypot(*c2), d(s2, s0), rel_tol=1e-9)
    assert math.isclose(math.hypot(c2[0] - c1[0], c2[1] - c1[1]), d(s2, s1), rel_tol=1e-9)


def test_anchor_losses_equal_the_states_own_losses_exactly():
    net = _net()
    states = _states(net)
    plane = states_plane(net, states, ["a", "b", "c"])
    batches = _batches()
    result = evaluate_surface(net, plane, batches, SurfaceConfig(plane="states", resolution=3, fast=False))
    for (label, _, loss, acc), state in zip(result.anchors, states, strict=True):
        model = copy.deepcopy(net)
        model.load_state_dict(state)
        want = evaluate(model, batches)
        assert loss == want["loss"] and acc == want["accuracy"], label


def test_grid_is_ij_ordered_with_centre_and_ends_on_it():
    x = grid_axis(-0.3, 0.7, 7)
    assert x[0] == -0.3 and x[-1] == 0.7 and x[3] == (-0.3 + 0.7) / 2 and np.all(np.diff(x) > 0)
    assert grid_axis(-1.0, 1.0, 21)[10] == 0.0
    net = _net()
    plane = random_plane(net, net.state_dict(), "centre", seed=1)
    batches = _batches()
    config = SurfaceConfig(resolution=(3, 5), range=((-0.5, 0.5), (-1.0, 0.2)), fast=False)
    result = evaluate_surface(net, plane, batches, config)
    assert result.loss.shape == (3, 5) and len(result.coords[1]) == 5
    assert result.coords[1][2] == (-1.0 + 0.2) / 2  # centre of the y range
    ev = StateEvaluator(net, fast=False)
    for i, j in [(0, 4), (2, 0), (1, 3)]:  # a non-square grid filled in the right order
        ev.load_(plane.origin)
        ev.combine_(plane.origin, [(result.coords[0][i], plane.axes[0]), (result.coords[1][j], plane.axes[1])])
        assert ev.evaluate(batches)["loss"] == result.loss[i, j]


def test_one_dimensional_scan_and_bn_recalibration():
    net = _net()
    plane = random_plane(net, net.state_dict(), "centre", dims=1)
    batches = _batches()
    keep = evaluate_surface(net, plane, batches, SurfaceConfig(dims=1, resolution=5))
    assert keep.loss.shape == (5,) and np.all(np.isfinite(keep.loss))
    assert keep.loss[2] == keep.anchors[0][2]  # the grid's centre is the centre state, exactly
    recal = evaluate_surface(net, plane, batches, SurfaceConfig(dims=1, resolution=5, bn="recalibrate"),
                             bn_data=_batches(seed=1))
    assert not np.allclose(keep.loss, recal.loss)  # the statistics were re-estimated at every point


def test_collinear_states_and_bad_settings_are_errors():
    net = _net()
    a, b = _states(net, 2)
    mid = {k: (a[k] + b[k]) / 2 if v.is_floating_point() else v for k, v in a.items()}
    with pytest.raises(LandscapeError, match="collinear"):
        states_plane(net, [a, b, mid], ["a", "b", "mid"])
    for bad in ({"resolution": 4}, {"resolution": 1}, {"range": ((1.0, 1.0),)}, {"plane": "states", "dims": 1},
                {"norm": "unit"}, {"bn": "train"}):
        with pytest.raises(ValueError):
            SurfaceConfig(**bad)


# ------------------------------------------------------------------------------------------------------ CLI


def test_cli_writes_reads_back_and_draws(tiny_run, tmp_path, run_cli):
    run = tmp_path / "run.h5"
    shutil.copy(tiny_run, run)
    result = run_cli("surface", run, "--plane", "states", "--resolution", "3", "--limit", "100", "--data",
                     SHARED / "data", "--json")
    assert result.code == 0, result.err
    stored, attrs = read_surface(run, "states_pretrained-compressed-clamped")
    assert stored.loss.shape == (3, 3) and attrs["plane"] == "states" and attrs["units"] == "parameter distance"
    assert [a for a, *_ in stored.anchors] == ["pretrained", "compressed", "clamped"]
    from landscape.store import Run

    evals = Run(run).evals()  # the anchors are the saved models (--bn keep), on the same 100 images?
    assert stored.n == 100 and set(evals) >= {"clamped"}
    assert (tmp_path / "run.surface-states_pretrained-compressed-clamped.png").stat().st_size > 10_000
    again = run_cli("surface", run, "--plane", "random", "--dims", "1", "--resolution", "5", "--limit", "100",
                    "--data", SHARED / "data")
    assert again.code == 0, again.err
    assert read_surface(run, "random1d_clamped")[0].loss.shape == (5,)


@pytest.mark.parametrize("args, needle", [
    (["--plane", "states", "--states", "pretrained", "compressed", "nonsense"], "nonsense"),
    (["--plane", "random", "--around", "step:999999"], "999999"),
    (["--plane", "random", "--resolution", "4"], "odd"),
    (["--plane", "random", "--resolution", "1"], "odd"),
    (["--plane", "random", "--range", "0.5:0.5"], "empty"),
    (["--plane", "random", "--range", "1:0,0:1"], "empty"),
    (["--plane", "states", "--dims", "1"], "2-D"),
    (["--plane", "random", "--name", "a/b"], "name"),
])
def test_bad_input_is_one_line_and_writes_nothing(tiny_run, tmp_path, run_cli, args, needle):
    run = tmp_path / "run.h5"
    shutil.copy(tiny_run, run)
    before = run.read_bytes()
    result = run_cli("surface", run, *args, "--limit", "50", "--data", SHARED / "data")
    assert_one_line_error(result, needle)
    assert run.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5"]


def test_the_tiny_model_has_every_tensor_kind_a_plane_needs():
    model = build_model("tiny")
    assert any(p.dim() == 1 for p in model.parameters()) and any(p.dim() == 4 for p in model.parameters())
