"""A study on a language model (`study create ... --dataset text`): the objective is the clamped model's
validation loss in nats/token (minimized, Optuna's first direction), the report's points, Pareto front, PTQ
baselines and printout are losses with no accuracy anywhere, and `--objective recalibrated` is a one-line error."""

from __future__ import annotations

import json

import numpy as np
from conftest import assert_one_line_error
from test_study import load, result, study


def lm_train_args(gpt, *extra: str) -> list[str]:
    """The train options of a study of the tiny GPT (its text is `--data` of `study run` and `study report`)."""
    checkpoint, _ = gpt
    return ["--dataset", "text", "--arch", "gpt", "--checkpoint", str(checkpoint),
            "--method", "weight-coupling", "--epochs", "1", "--limit-train", "512", "--train-batch-size", "8",
            "--limit-test", "20", "--compile", "off", "--stats-every", "4", *extra]


def test_a_language_models_study_minimizes_the_validation_loss_and_reports_no_accuracy(tmp_path, tiny_gpt):
    study("create", "lm", "--grid", "h=0.05", "w=0.3,3", "--seeds", "0", *lm_train_args(tiny_gpt), cwd=tmp_path)
    s, spec = load(tmp_path, "lm")
    assert spec.metric == "loss" and [d.name for d in s.directions] == ["MINIMIZE", "MINIMIZE"]
    done = study("run", "lm", "-j", "1", "--data", tiny_gpt[1], cwd=tmp_path)
    assert "nats/token" in done.stdout + done.stderr and "accuracy" not in done.stdout + done.stderr
    trials = s.get_trials()
    assert len(trials) == 2 and all(t.values[0] == t.user_attrs["runs"][0]["loss_clamped"] for t in trials)
    assert not any(k.startswith("accuracy") for t in trials for k in t.user_attrs["runs"][0])

    printed = study("report", "lm", "--out-dir", tmp_path / "figs", "--data", tiny_gpt[1], cwd=tmp_path)
    assert "validation loss, nats/token" in printed.stdout and "accuracy" not in printed.stdout
    report = json.loads((tmp_path / "figs" / "study-lm.json").read_text())
    assert report["metric"] == "loss" and (tmp_path / "figs" / "study-lm.png").stat().st_size > 0
    assert "accuracy" not in json.dumps(report)
    points = {p["w"]: p for p in report["points"]}
    assert np.isclose(points[3.0]["loss_clamped"], trials[1].values[0]) or np.isclose(
        points[3.0]["loss_clamped"], trials[0].values[0])
    base = {(b["method"], b["bits"]): b for b in report["ptq_baselines"]}
    full = base[("full precision", 32)]
    # the baselines are evaluated on the runs' own validation windows: full precision is the runs' pretrained loss
    assert full["n_test"] == report["runs"][0]["n_test"] == 20
    assert np.isclose(full["loss_clamped"], report["runs"][0]["loss_pretrained"], rtol=1e-5)
    assert base[("kmeans", 2)]["loss_clamped"] > full["loss_clamped"]
    # every Pareto-front trial has the lowest loss among trials with no more bits
    for r in report["pareto_front"]:
        assert not any(t.values[1] <= r["mean_bits"] and t.values[0] < r["loss"] for t in trials)


def test_a_language_models_study_refuses_the_recalibrated_objective(tmp_path, tiny_gpt):
    done = study("create", "lm", "--grid", "w=0.3", "--seeds", "0", "--objective", "recalibrated",
                 *lm_train_args(tiny_gpt), cwd=tmp_path, check=False)
    assert_one_line_error(result(done), "no BatchNorm")
    assert not (tmp_path / "studies" / "lm" / "journal.log").exists()
