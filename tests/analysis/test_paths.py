"""landscape.analysis.paths: point convention, exact endpoints, agreement with a plain reference loop, BN modes, no
mutation of the inputs, storage."""

import copy

import numpy as np
import pytest
import torch

from landscape.analysis.evaluator import StateEvaluator
from landscape.analysis.paths import PathConfig, evaluate_path, path_positions, read_path, write_path
from landscape.bn import recalibrate_bn_
from landscape.data import Batches
from landscape.errors import LandscapeError
from landscape.metrics import evaluate
from landscape.models import build_model, load_state


def _states(n: int, seed: int = 0) -> list[dict]:
    """n random-init tiny states whose BN statistics and affine parameters differ too."""
    g = torch.Generator().manual_seed(seed)
    states = []
    for _ in range(n):
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))
        model = build_model("tiny")
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.normal_(0, 0.1)
                m.num_batches_tracked.fill_(int(torch.randint(0, 100, (1,))))
        states.append({k: v.clone() for k, v in model.state_dict().items()})
    return states


@pytest.fixture(scope="module")
def test_batches(cifar):
    return Batches(cifar[1].subset(120), 40, train=False)


@pytest.fixture(scope="module")
def bn_batches(cifar):
    return list(Batches(cifar[0].subset(80), 40, train=False))


def _fresh(state):
    return load_state(build_model("tiny"), state).eval()


def test_positions_share_interior_knots():
    alpha, segment, steps = path_positions(4, 5)
    assert len(alpha) == 3 * 4 + 1
    assert alpha[0] == 0 and alpha[-1] == 3 and list(alpha[[4, 8, 12]]) == [1.0, 2.0, 3.0]
    assert np.all(np.diff(alpha) > 0)
    np.testing.assert_allclose(np.diff(alpha), 0.25)
    assert list(segment) == [0] * 5 + [1] * 4 + [2] * 4
    assert steps[4] == (0, 4) and steps[5] == (1, 1)
    with pytest.raises(ValueError, match="at least 2"):
        path_positions(1, 5)


@pytest.mark.parametrize("bad,match", [({"points": 1}, "≥ 2"), ({"bn": "freeze"}, "bn must be"),
                                       ({"bn_batches": 0}, "bn_batches")])
def test_config_rejects(bad, match):
    with pytest.raises(ValueError, match=match):
        PathConfig(**bad)


def test_endpoints_reproduce_the_models_exactly(test_batches):
    states = _states(3)
    result = evaluate_path(build_model("tiny"), states, {"test": test_batches}, PathConfig(points=4,
                                                                                           fast=False))
    at_knots = result.metrics["test"]["loss"][[0, 3, 6]]
    expected = [evaluate(_fresh(s), test_batches)["loss"] for s in states]
    assert list(at_knots) == expected  # bit-identical, not approximately
    acc = result.metrics["test"]["accuracy"][[0, 3, 6]]
    assert list(acc) == [evaluate(_fresh(s), test_batches)["accuracy"] for s in states]


def _reference(states, points, batches, bn_data=None):
    """A fresh model per point, the interpolated state dict loaded into it, model(x)."""
    losses = []
    for k in range(len(states) - 1):
        for j in range(0 if k == 0 else 1, points):
            w = j / (points - 1)
            a, b = states[k], states[k + 1]
            sd = {n: (a[n] * (1 - w) + b[n] * w if a[n].is_floating_point() else (a[n] if w < 0.5 else b[n]))
                  for n in a}
            model = _fresh(sd)
            if bn_data is not None:
                recalibrate_bn_(model, bn_data)
            losses.append(evaluate(model, batches)["loss"])
    return np.array(losses)


@pytest.mark.parametrize("fast", [True, False])
def test_matches_a_plain_reference_loop(test_batches, fast):
    states = _states(3, seed=1)
    result = evaluate_path(build_model("tiny"), states, {"test": test_batches}, PathConfig(points=5,
                                                                                           fast=fast))
    ref = _reference(states, 5, test_batches)
    assert np.max(np.abs(result.metrics["test"]["loss"] - ref)) <= 1e-5
    # the path is not flat: the check above would catch a path that evaluated one state everywhere
    assert np.ptp(ref) > 1e-2


def test_recalibrate_matches_reference_and_differs_from_keep(test_batches, bn_batches):
    states = _states(2, seed=2)
    cfg = PathConfig(points=3, bn="recalibrate")
    result = evaluate_path(build_model("tiny"), states, {"test": test_batches}, cfg, bn_data=bn_batches)
    ref = _reference(states, 3, test_batches, bn_data=bn_batches)
    assert np.max(np.abs(result.metrics["test"]["loss"] - ref)) <= 1e-5
    keep = evaluate_path(build_model("tiny"), states, {"test": test_batches}, PathConfig(points=3))
    assert np.max(np.abs(keep.metrics["test"]["loss"] - result.metrics["test"]["loss"])) > 1e-3


def test_keep_interpolates_running_stats_but_not_the_counter():
    a, b = _states(2, seed=3)
    ev = StateEvaluator(build_model("tiny"), fast=False)
    ev.lerp_(a, b, 0.25)
    torch.testing.assert_close(ev.live["bn1.running_mean"],
                               0.75 * a["bn1.running_mean"] + 0.25 * b["bn1.running_mean"])
    torch.testing.assert_close(ev.live["bn1.running_var"],
                               0.75 * a["bn1.running_var"] + 0.25 * b["bn1.running_var"])
    assert ev.live["bn1.num_batches_tracked"] == a["bn1.num_batches_tracked"]
    ev.lerp_(a, b, 0.75)
    assert ev.live["bn1.num_batches_tracked"] == b["bn1.num_batches_tracked"]


def test_inputs_are_not_modified(test_batches, bn_batches):
    states = _states(3, seed=4)
    before = copy.deepcopy(states)
    model = build_model("tiny")
    model_before = copy.deepcopy(model.state_dict())
    for cfg in (PathConfig(points=2), PathConfig(points=2, bn="recalibrate", fast=False)):
        evaluate_path(model, states, {"test": test_batches}, cfg, bn_data=bn_batches)
    for s, b in zip(states, before, strict=True):
        for k in s:
            assert torch.equal(s[k], b[k]), k
    for k, v in model.state_dict().items():
        assert torch.equal(v, model_before[k]), k
    assert model.training  # a fresh model is in train mode; the evaluation did not switch it


def test_fast_evaluator_folds_bn_without_touching_the_model(test_batches):
    (state,) = _states(1, seed=5)
    fast = StateEvaluator(build_model("tiny"), fast=True)
    plain = StateEvaluator(build_model("tiny"), fast=False)
    assert fast.folded is not None and len(fast.folded.pairs) == 7  # every conv of the tiny ResNet has a BN
    for ev in (fast, plain):
        ev.load_(state)
    a, b = fast.evaluate(test_batches), plain.evaluate(test_batches)
    assert abs(a["loss"] - b["loss"]) <= 1e-5 and a["n"] == b["n"] == 120
    # the working model itself still has its BN layers and its unfolded weights
    assert torch.equal(fast.work.conv1.weight, state["conv1.weight"])
    assert abs(evaluate(fast.work, test_batches)["loss"] - b["loss"]) <= 1e-5


def test_mismatched_states_are_rejected(test_batches):
    tiny = _states(1)[0]
    big = build_model("resnet20").state_dict()
    with pytest.raises(LandscapeError, match="wrong shape"):
        evaluate_path(build_model("tiny"), [tiny, big], {"test": test_batches}, labels=["a", "b.pt"])
    missing = {k: v for k, v in tiny.items() if k != "linear.bias"}
    with pytest.raises(LandscapeError, match="missing: linear.bias"):
        evaluate_path(build_model("tiny"), [tiny, missing], {"test": test_batches})
    with pytest.raises(ValueError, match="at least 2"):
        evaluate_path(build_model("tiny"), [tiny], {"test": test_batches})


def test_write_read_round_trip(tmp_path, test_batches):
    states = _states(2, seed=6)
    result = evaluate_path(build_model("tiny"), states, {"test": test_batches}, PathConfig(points=3))
    path = tmp_path / "out.h5"
    write_path(path, "p", result, {"states": ["a", "b"], "points": 3})
    back, attrs = read_path(path, "p")
    np.testing.assert_array_equal(back.alpha, result.alpha)
    np.testing.assert_array_equal(back.metrics["test"]["loss"], result.metrics["test"]["loss"])
    assert attrs["points"] == 3 and back.n == {"test": 120}
    with pytest.raises(LandscapeError, match="--force"):
        write_path(path, "p", result, {})
    write_path(path, "p", result, {"points": 4}, force=True)
    assert read_path(path, "p")[1]["points"] == 4
    with pytest.raises(ValueError, match="without '/'"):
        write_path(path, "a/b", result, {})


def test_any_loss_function_and_non_classifier_outputs():
    """A regression model with a mean-squared-error loss: the loss is the batch-size-weighted mean of the batch
    means (batches of unequal size), accuracy is NaN (not a classifier), and the fast path agrees."""
    import math

    import torch.nn.functional as F

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    x, y = torch.randn(50, 5), torch.randn(50, 2)
    batches = [(x[:30], y[:30]), (x[30:], y[30:])]
    with torch.no_grad():
        want = F.mse_loss(model(x), y).item()
    for fast in (False, True):
        got = StateEvaluator(model, fast=fast, loss_fn=F.mse_loss).evaluate(batches)
        assert math.isclose(got["loss"], want, rel_tol=1e-6) and math.isnan(got["accuracy"]) and got["n"] == 50
    assert math.isnan(evaluate(model, batches, loss_fn=F.mse_loss)["accuracy"])
