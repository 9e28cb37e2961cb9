"""landscape.analysis.perturbation: equal norms (global and per layer), seeding, agreement with plain evaluations, no
mutation of the inputs, percentile/z-score, storage."""

import copy
import math

import numpy as np
import pytest
import torch

from landscape.analysis.directions import displacement, global_norm, random_direction, random_directions
from landscape.analysis.perturbation import PerturbConfig, PerturbResult, perturbation_test, read_perturb, write_perturb
from landscape.bn import recalibrate_bn_
from landscape.data import Batches
from landscape.errors import LandscapeError
from landscape.metrics import evaluate
from landscape.models import build_model
from landscape.params import select_params, with_params


@pytest.fixture(scope="module")
def batches(cifar):
    return Batches(cifar[1].subset(100), 50, train=False)


@pytest.fixture(scope="module")
def bn_data(cifar):
    return list(Batches(cifar[0].subset(100), 50, train=False))


def _pair(seed=0, scale=0.05):
    """A tiny 'pretrained' model and a target state whose weights moved by a per-layer-varying amount."""
    torch.manual_seed(seed)
    model = build_model("tiny").eval()
    target = {k: v.clone() for k, v in model.state_dict().items()}
    for i, name in enumerate(select_params(model)):
        target[name] += scale * (i + 1) * torch.randn_like(target[name])
    target["bn1.running_mean"] += 0.3  # a non-weight entry that the displacement must ignore
    return model, target


def _delta(model, target):
    pre = model.state_dict()
    return displacement(pre, target, list(select_params(model)))


@pytest.mark.parametrize("norm", ["global", "per-layer"])
def test_directions_have_the_displacements_norm(norm):
    model, target = _pair()
    delta = _delta(model, target)
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        d = random_direction(delta, g, norm)
        assert set(d) == set(delta)
        assert abs(global_norm(d) - global_norm(delta)) <= 1e-6 * global_norm(delta)
        if norm == "per-layer":
            for name in delta:
                a = torch.linalg.vector_norm(d[name].double())
                b = torch.linalg.vector_norm(delta[name].double())
                assert abs(a - b) <= 1e-6 * b, name
    # global scaling does not preserve the per-layer split (so the test above is not vacuous)
    d = random_direction(delta, torch.Generator().manual_seed(3), "global")
    ratios = [float(torch.linalg.vector_norm(d[n]) / torch.linalg.vector_norm(delta[n])) for n in delta]
    assert max(ratios) / min(ratios) > 2


def test_a_layer_that_did_not_move_gets_no_random_step():
    model, target = _pair()
    target["conv1.weight"] = model.state_dict()["conv1.weight"].clone()
    delta = _delta(model, target)
    d = random_direction(delta, torch.Generator().manual_seed(0), "per-layer")
    assert torch.count_nonzero(d["conv1.weight"]) == 0
    assert torch.count_nonzero(d["linear.weight"]) > 0


def test_same_seed_same_directions_and_prefix_stable():
    model, target = _pair()
    delta = _delta(model, target)
    a = list(random_directions(delta, 3, seed=7))
    b = list(random_directions(delta, 5, seed=7))[:3]
    c = list(random_directions(delta, 3, seed=8))
    for x, y, z in zip(a, b, c, strict=True):
        for name in delta:
            assert torch.equal(x[name], y[name])
            assert not torch.equal(x[name], z[name])
    assert not torch.equal(a[0]["linear.weight"], a[1]["linear.weight"])


@pytest.mark.parametrize("bad,match", [({"directions": 0}, "M must be"), ({"norm": "l1"}, "norm must be"),
                                       ({"bn": "x"}, "bn must be"), ({"alphas": (0.0, float("nan"))},
                                                                     "finite")])
def test_config_rejects(bad, match):
    with pytest.raises(ValueError, match=match):
        PerturbConfig(**bad)


def test_results_match_plain_evaluations_and_inputs_are_unchanged(batches):
    model, target = _pair()
    model_before, target_before = copy.deepcopy(model.state_dict()), copy.deepcopy(target)
    config = PerturbConfig(directions=3, seed=1, bn="keep", alphas=(0.0, 1.0))
    r = perturbation_test(model, target, batches, config)
    for k, v in model.state_dict().items():
        assert torch.equal(v, model_before[k]), k
    for k, v in target.items():
        assert torch.equal(v, target_before[k]), k

    names = list(select_params(model))
    base = evaluate(model, batches)
    real = evaluate(with_params(model, {n: target[n] for n in names}), batches)  # weights only, BN pretrained
    full = evaluate(with_params(model, target), batches)
    assert abs(r.base["loss"] - base["loss"]) <= 1e-5
    assert abs(r.real["delta_loss"] - (real["loss"] - base["loss"])) <= 1e-5
    assert abs(r.target["loss"] - full["loss"]) <= 1e-5 and abs(r.target["loss"] - real["loss"]) > 1e-4
    assert r.real["slope"] == pytest.approx(r.real["delta_loss"] / r.displacement_norm)

    pre = model.state_dict()
    delta = _delta(model, target)
    for i, d in enumerate(random_directions(delta, 3, seed=1)):
        moved = evaluate(with_params(model, {n: pre[n] + d[n] for n in names}), batches)
        # float32 round-off of a mean loss grows with its size (these random steps reach losses ~90 nats)
        assert r.random_delta_loss[i] == pytest.approx(moved["loss"] - base["loss"], rel=1e-6, abs=1e-5)
    np.testing.assert_allclose(r.random_slope, r.random_delta_loss / r.displacement_norm)
    assert r.scan.real["loss"][0] == pytest.approx(r.base["loss"], abs=1e-6)
    assert r.scan.real["loss"][1] == pytest.approx(r.real["loss"], abs=1e-6)
    assert r.scan.random["loss"][1] == pytest.approx(r.base["loss"] + r.random_delta_loss[0], abs=1e-6)


def test_recalibrate_treats_every_state_alike(batches, bn_data):
    model, target = _pair(seed=1)
    r = perturbation_test(model, target, batches, PerturbConfig(directions=2, seed=0), bn_data=bn_data)
    names = list(select_params(model))

    def recal_loss(state):
        m = with_params(model, state)
        return evaluate(recalibrate_bn_(m, bn_data), batches)["loss"]

    base = recal_loss({})
    assert abs(r.base["loss"] - base) <= 1e-5
    assert abs(r.real["loss"] - recal_loss({n: target[n] for n in names})) <= 1e-5
    with pytest.raises(ValueError, match="needs training batches"):
        perturbation_test(model, target, batches, PerturbConfig(directions=1))


def test_percentile_and_zscore():
    def result(random, real):
        return PerturbResult(displacement_norm=2.0, layer_norms={}, base={"loss": 1.0, "accuracy": 0.5,
                                                                          "n": 10},
                             real={"loss": 1 + real, "accuracy": 0.5, "delta_loss": real, "slope": real / 2},
                             target={"loss": 1.0, "accuracy": 0.5}, random_delta_loss=np.array(random),
                             random_accuracy=np.zeros(len(random)))

    r = result([0.1, 0.2, 0.3, 0.4], 0.05)
    assert r.percentile == 0 and r.zscore == pytest.approx((0.05 - 0.25) / np.std([0.1, 0.2, 0.3, 0.4],
                                                                                  ddof=1))
    assert result([0.1, 0.2, 0.3, 0.4], 0.35).percentile == 75
    assert result([0.1, 0.2], 0.2).percentile == 75  # a tie counts half
    assert math.isnan(result([0.1], 0.0).zscore)


def test_bad_targets(batches):
    model, target = _pair()
    with pytest.raises(LandscapeError, match="wrong shape"):
        perturbation_test(model, build_model("resnet20").state_dict(), batches, PerturbConfig(directions=1,
                                                                                              bn="keep"))
    with pytest.raises(LandscapeError, match="‖Δθ‖ = 0"):
        perturbation_test(model, model.state_dict(), batches, PerturbConfig(directions=1, bn="keep"))


def test_write_read_round_trip(tmp_path, batches):
    model, target = _pair()
    r = perturbation_test(model, target, batches, PerturbConfig(directions=2, bn="keep", alphas=(-1.0, 1.0)))
    path = tmp_path / "run.h5"
    write_perturb(path, "clamped_global", r, {"target": "clamped", "norm": "global"})
    data, attrs = read_perturb(path, "clamped_global")
    np.testing.assert_array_equal(data["random_delta_loss"], r.random_delta_loss)
    np.testing.assert_array_equal(data["scan_real_loss"], r.scan.real["loss"])
    assert attrs["target"] == "clamped" and attrs["percentile"] == r.percentile
    with pytest.raises(LandscapeError, match="--force"):
        write_perturb(path, "clamped_global", r, {})


def test_cli_split_train_is_stored_apart_from_test(run_cli, tiny_run, tmp_path, cifar):
    """python -m landscape.perturb --split train: evaluated on the unaugmented training prefix, recorded in the
    stored attrs, the JSON and the text, under a default name that cannot replace the test-split result."""
    import json
    import shutil

    from conftest import SHARED

    from landscape.store import Run

    run = shutil.copy(tiny_run, tmp_path / "run.h5")
    common = ["--directions", 2, "--target", "compressed", "--limit", 40, "--bn", "keep", "--data", SHARED / "data",
              "--batch-size", 20]
    r = run_cli("perturb", run, *common, "--split", "train", "--json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["group"] == "/analysis/perturb/compressed_global_train" and out["split"] == "train"
    r = run_cli("perturb", run, *common)  # default split: test, the name results had before --split
    assert r.code == 0, r.err
    assert "on 40 test images" in r.out and "compressed_global\n" in r.out
    train_data, train_attrs = read_perturb(run, "compressed_global_train")
    _, test_attrs = read_perturb(run, "compressed_global")
    assert train_attrs["split"] == "train" and test_attrs["split"] == "test" and train_attrs["n"] == 40
    assert train_attrs["base_loss"] != test_attrs["base_loss"]
    # the stored base loss is the pretrained model's on the first 40 unaugmented training images
    tiny = Run(run)
    base = evaluate(tiny.model("pretrained"), Batches(cifar[0].subset(40), 20, train=False))
    assert train_attrs["base_loss"] == pytest.approx(base["loss"], rel=1e-5)
    r = run_cli("perturb", run, *common, "--split", "train", "--name", "mine")
    assert r.code == 0, r.err
    assert "on 40 train images" in r.out
