"""landscape/analysis/sweep.py: journaled sweeps skip what is done and give the same numbers as an uninterrupted sweep;
journals of another job are refused by name; path and perturbation evaluations read finished values from the
journal instead of recomputing them."""

import json
import math

import pytest
import torch

from landscape.analysis.directions import Directions, random_directions
from landscape.analysis.paths import PathConfig, evaluate_path
from landscape.analysis.perturbation import PerturbConfig, perturbation_test, sweep_keys
from landscape.analysis.sweep import Journal, journal_path, run_sweep, state_digest
from landscape.errors import LandscapeError
from landscape.models import build_model

FINGERPRINT = {"tool": "test", "points": 5, "states": ["a", "b"]}


def value(key: str) -> dict:
    x = int(key)
    return {"loss": 1 / (x + 3), "accuracy": 0.1 + 0.2 * x, "n": x}  # floats that need all 17 digits


class Crash(Exception):
    pass


def test_interrupted_sweep_resumes_with_identical_values(tmp_path):
    keys = [str(i) for i in range(7)]
    path = tmp_path / "j.json"
    calls = []

    def crashing(key):
        if key == "4":
            raise Crash
        calls.append(key)
        return value(key)

    with pytest.raises(Crash):
        run_sweep(keys, crashing, journal=Journal.open(path, FINGERPRINT))
    assert sorted(json.loads(path.read_text())["done"]) == ["0", "1", "2", "3"]

    calls.clear()
    resumed = run_sweep(keys, lambda k: calls.append(k) or value(k), journal=Journal.open(path, FINGERPRINT))
    assert calls == ["4", "5", "6"]  # the finished keys were not evaluated again
    assert resumed == {k: value(k) for k in keys}  # bit-identical: JSON keeps float64 exactly
    assert list(resumed) == keys


def test_sweep_without_journal_and_unique_keys():
    assert run_sweep(["2", "0"], value) == {"2": value("2"), "0": value("0")}
    with pytest.raises(ValueError, match="unique"):
        run_sweep(["1", "1"], value)


def test_journal_of_another_job_is_refused_by_name_or_discarded(tmp_path):
    path = tmp_path / "j.json"
    Journal.open(path, FINGERPRINT).record({"0": value("0")})
    other = {**FINGERPRINT, "points": 6}
    with pytest.raises(LandscapeError, match=r"differs in: points\).*--force"):
        Journal.open(path, other)
    assert Journal.open(path, other, discard_other=True).done == {}
    assert Journal.open(path, FINGERPRINT).done == {"0": value("0")}  # refusing left it as it was

    path.write_text('{"version": 1, "finger')  # not what Journal writes (it renames whole files into place)
    with pytest.raises(LandscapeError, match="not a readable journal"):
        Journal.open(path, FINGERPRINT)
    assert Journal.open(path, FINGERPRINT, discard_other=True).done == {}


def test_journal_keeps_special_floats_and_leaves_no_temporary(tmp_path):
    j = Journal.open(tmp_path / "j.json", FINGERPRINT)
    j.record({"a": {"loss": math.inf, "accuracy": 0.30000000000000004}, "b": {"loss": math.nan}})
    back = Journal.open(tmp_path / "j.json", FINGERPRINT).done
    assert back["a"] == {"loss": math.inf, "accuracy": 0.30000000000000004} and math.isnan(back["b"]["loss"])
    assert [p.name for p in tmp_path.iterdir()] == ["j.json"]
    j.remove()
    assert not list(tmp_path.iterdir())


def test_journal_path_is_hidden_beside_the_result(tmp_path):
    assert journal_path(tmp_path / "run.h5", "paths", "x") == tmp_path / ".run.h5.paths-x.journal.json"


def test_state_digest_sees_every_bit():
    state = build_model("tiny").state_dict()
    same = {k: v.clone() for k, v in state.items()}
    assert state_digest(state) == state_digest(same)
    name = next(k for k, v in state.items() if v.is_floating_point())
    same[name].view(-1)[0] = torch.nextafter(same[name].view(-1)[0], torch.tensor(math.inf))
    assert state_digest(state) != state_digest(same)


def test_directions_on_demand_equal_the_sequence():
    delta = {"a": torch.randn(4, 3), "b": torch.randn(7)}
    seq = list(random_directions(delta, 5, seed=3, norm="per-layer"))
    on_demand = Directions(delta, 3, "per-layer")
    for i in (1, 4, 4, 0, 2):  # forwards, repeated and backwards
        assert all(torch.equal(on_demand(i)[k], seq[i][k]) for k in delta)


def tiny_states():
    torch.manual_seed(1)
    a, b = build_model("tiny").state_dict(), build_model("tiny").state_dict()
    return a, b


def test_path_points_come_from_the_journal_when_there(tmp_path, cifar):
    from landscape.data import Batches

    batches = Batches(cifar[1].subset(60), 30, train=False)
    a, b = tiny_states()
    config = PathConfig(points=3)
    full = evaluate_path(build_model("tiny"), [a, b], {"test": batches}, config)
    journal = Journal.open(tmp_path / "j.json", FINGERPRINT)
    planted = {"test": {"loss": 123.0, "accuracy": 0.5, "n": 60}}  # no real point has this loss
    journal.record({"1": planted})
    resumed = evaluate_path(build_model("tiny"), [a, b], {"test": batches}, config, journal=journal)
    assert resumed.metrics["test"]["loss"][1] == 123.0  # read, not recomputed
    for i in (0, 2):
        assert resumed.metrics["test"]["loss"][i] == full.metrics["test"]["loss"][i]
        assert resumed.metrics["test"]["accuracy"][i] == full.metrics["test"]["accuracy"][i]
    assert sorted(journal.done) == ["0", "1", "2"]


def test_perturbation_evaluations_are_independent_of_order_and_journal(tmp_path, cifar):
    from landscape.data import Batches

    batches = Batches(cifar[1].subset(60), 30, train=False)
    a, b = tiny_states()
    model = build_model("tiny")
    model.load_state_dict(a)
    config = PerturbConfig(directions=3, bn="keep", alphas=(-1.0, 0.0, 0.5))
    assert sweep_keys(config) == ["base", "target", "real", "random/0", "random/1", "random/2", "scan/real/0",
                                  "scan/real/2", "scan/random/0", "scan/random/2"]
    full = perturbation_test(model, b, batches, config)
    journal = Journal.open(tmp_path / "j.json", FINGERPRINT)
    perturbation_test(model, b, batches, config, journal=journal)
    assert sorted(journal.done) == sorted(sweep_keys(config))
    # a journal holding only the later keys: the earlier ones are evaluated in another order, same numbers
    partial = Journal.open(tmp_path / "k.json", FINGERPRINT)
    partial.record({k: v for k, v in journal.done.items() if k.startswith(("random/2", "scan"))})
    resumed = perturbation_test(model, b, batches, config, journal=partial)
    assert resumed.random_delta_loss.tolist() == full.random_delta_loss.tolist()
    assert resumed.real == full.real and resumed.target == full.target
    assert resumed.scan.random["loss"].tolist() == full.scan.random["loss"].tolist()
    assert resumed.scan.real["loss"][1] == full.base["loss"]  # α = 0 is θ_pre, not evaluated again
