"""Studies (landscape.study) on the tiny model: a grid shared by 2 workers trains every run exactly once; a study
killed mid-trial and rerun resumes the killed run from its checkpoint and ends with the numbers of an
uninterrupted study; a search study's Pareto front is non-empty and non-dominated; bad input is one line, exit 2,
with the study untouched; the report writes its table, figure and JSON."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import optuna
import pytest
import torch
from conftest import REPO, SHARED, assert_one_line_error

from landscape.store import Run
from landscape.studies import engine, nondominated
from landscape.studies.spec import StudySpec

DATA = str(SHARED / "data")


def tiny_train_args(checkpoint, *extra: str) -> list[str]:
    return ["--arch", "tiny", "--checkpoint", str(checkpoint), "--epochs", "1", "--limit-train", "128",
            "--limit-test", "100", "--train-batch-size", "32", "--lr", "0.01", "--checkpoint-every", "2",
            "--stats-every", "2", *extra]


def study(*args: str, cwd, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("LANDSCAPE_DEBUG", None)
    done = subprocess.run([sys.executable, "-m", "landscape.study", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def result(done: subprocess.CompletedProcess):
    """A finished `study` command as conftest.assert_one_line_error reads it."""
    return type("R", (), {"code": done.returncode, "err": done.stderr, "out": done.stdout})()


def load(cwd, name):
    return engine.load(engine.open_storage(str(cwd / "studies" / name / "journal.log")), name)


def test_grid_by_two_workers_trains_every_run_exactly_once(tmp_path, tiny_checkpoint, cifar):
    study("create", "g", "--grid", "h=0.5,1.0", "w=0.3,0.5", "--seeds", "0,1",
          *tiny_train_args(tiny_checkpoint), cwd=tmp_path)
    done = study("run", "g", "-j", "2", "--threads", "1", "--data", DATA, cwd=tmp_path)
    s, spec = load(tmp_path, "g")
    complete = s.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    keys = [(t.params["h"], t.params["w"], t.params["seed"]) for t in complete]
    assert sorted(keys) == sorted((h, w, seed) for h in (0.5, 1.0) for w in (0.3, 0.5) for seed in (0, 1))
    # no failed trial and no duplicate training; a worker that asks for a trial just as the other takes the last
    # queued run gets an empty one, which the engine prunes as a duplicate (engine.work): the race is allowed
    extra = [t for t in s.trials if t not in complete]
    assert all(t.state == optuna.trial.TrialState.PRUNED and t.user_attrs.get("duplicate") == "no grid run was "
               "waiting" for t in extra), [(t.state, t.user_attrs) for t in extra]
    workers = {t.user_attrs["worker"] for t in complete}
    assert len(workers) == 2, f"both workers should have trained: {workers}"
    for t in complete:
        (run,) = t.user_attrs["runs"]
        assert run["trained"] and run["resumed_at"] is None  # trained once, from the start
        r = Run(run["run"])
        assert "final" in r.groups() and "resumed_at" not in r.attrs
        assert r.config["compressor"]["h"] == t.params["h"] and r.seed == t.params["seed"]
        assert t.values[0] == pytest.approx(r.evals()["clamped"]["accuracy"])
        assert t.values[1] == pytest.approx(r.bits()["mean_effective"])
    assert done.stdout.count("trial ") == 8  # one line per finished trial
    # a second `run` finds nothing to do and trains nothing
    again = study("run", "g", "--threads", "1", "--data", DATA, cwd=tmp_path)
    assert "trial " not in again.stdout and len(load(tmp_path, "g")[0].trials) == 8


def test_killed_study_resumes_the_killed_run_and_matches_an_uninterrupted_study(tmp_path, tiny_checkpoint, cifar):
    args = ("--grid", "h=0.5", "w=0.5", "--seeds", "0", *tiny_train_args(
        tiny_checkpoint, "--epochs", "6", "--limit-train", "512", "--estimator", "subsampled"))
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    for d in (ref, killed):
        d.mkdir()
        study("create", "k", *args, cwd=d)
    study("run", "k", "--threads", "1", "--data", DATA, cwd=ref)
    _, spec = load(killed, "k")
    path = spec.run_path({"h": 0.5, "w": 0.5}, 0)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "landscape.study", "run", "k", "--threads", "1", "--data", DATA],
                            cwd=killed, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (path.exists() and len(Run(path).steps()) >= 3):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole study: parent and worker, as a crash would
    proc.wait()
    steps = Run(path).steps()
    assert steps and "final" not in Run(path).groups(), "the kill should land mid-training"
    s, _ = load(killed, "k")
    assert [t.state for t in s.trials] == [optuna.trial.TrialState.RUNNING]  # left behind by the dead worker

    done = study("run", "k", "--threads", "1", "--data", DATA, cwd=killed)
    assert "recovered: 1 trial(s) of dead workers retried" in done.stdout
    s, _ = load(killed, "k")
    states = [t.state for t in s.trials]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    (run,) = s.trials[1].user_attrs["runs"]
    assert run["resumed_at"] == steps[-1]  # continued from its last checkpoint, not restarted
    assert json.loads(Run(path).attrs["resumed_at"]) == [steps[-1]]
    r, _ = load(ref, "k")
    assert s.trials[1].values == r.trials[0].values
    ref_path = Run(r.trials[0].user_attrs["runs"][0]["run"])
    for name, tensor in ref_path.state("clamped").items():
        assert torch.equal(tensor, Run(path).state("clamped")[name]), name


def test_search_study_front_is_nonempty_and_nondominated(tmp_path, tiny_checkpoint, cifar):
    study("create", "s", "--search", "tpe", "--trials", "4", "--space", "h=0.05:2:log", "w=0.2:0.6",
          "--max-bits", "100", *tiny_train_args(tiny_checkpoint), cwd=tmp_path)
    study("run", "s", "--threads", "1", "--data", DATA, cwd=tmp_path)
    s, _ = load(tmp_path, "s")
    for t in s.trials:  # --max-bits is the trials' constraint, which the sampler and best_trials read
        assert t.constraints == {"mean_bits": pytest.approx(t.values[1] - 100)}
    out = study("report", "s", "--json", "--no-ptq", "--out-dir", tmp_path / "fig", cwd=tmp_path)
    report = json.loads(out.stdout)
    assert report["finished"] == 4 and len(report["runs"]) == 4
    front = report["pareto_front"]
    assert front
    trials = [(r["accuracy_clamped"], r["mean_bits"]) for r in report["runs"]]
    for f in front:  # nothing dominates a front point
        assert not any(a >= f["accuracy"] and b <= f["mean_bits"] and (a > f["accuracy"] or b < f["mean_bits"])
                       for a, b in trials)
    for suffix in (".png", "-runs.csv", "-points.csv", ".json"):
        assert (tmp_path / "fig" / f"study-s{suffix}").stat().st_size > 0
    # the figure script draws the same from the study, through the same library call
    script = subprocess.run([sys.executable, str(REPO / "analyses" / "fig_pareto.py"), "--study", "s", "--no-ptq",
                             "--out-dir", tmp_path / "fig", "--json"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert script.returncode == 0, script.stderr
    saved = json.loads((tmp_path / "fig" / "fig2_pareto.json").read_text())
    assert saved["pareto_front"] == front and saved["script"] == "analyses/fig_pareto.py"


def test_nondominated():
    bits = np.array([3.0, 4.0, 3.5, 3.0, 5.0])
    acc = np.array([0.80, 0.85, 0.80, 0.70, 0.85])
    assert nondominated(bits, acc).tolist() == [0, 1]


@pytest.mark.parametrize(("method", "legend"), [("weight-coupling", "soft quantization"), ("dsmm", "dsmm")])
def test_report_figure_names_the_studys_method_in_its_legend(tmp_path, monkeypatch, method, legend):
    """A DSMM study's figure once said "soft quantization: runs"."""
    from landscape import plots
    from landscape.studies import report

    labels = []
    monkeypatch.setattr(plots, "study_front", lambda *a, **kw: labels.append(kw["label"]))
    runs = [{"mean_bits": 2.0 + s, "accuracy_clamped": 0.5} for s in (0, 1)]
    point = {"strength": 0.01, "mean_bits": 2.5, "mean_bits_std": 0.7, "accuracy_clamped": 0.5,
             "accuracy_clamped_std": 0.0}
    report.figure({"spec": {"name": "s", "method": method, "grid": {"strength": [0.01]}, "space": {}},
                   "runs": runs, "points": [point], "ptq_baselines": []}, tmp_path / "s.png")
    assert labels == [legend]


def test_report_with_ptq_baselines_and_recalibration(tmp_path, tiny_checkpoint, cifar):
    study("create", "r", "--grid", "h=0.5", "w=0.5", "--seeds", "0,1", "--objective", "recalibrated",
          *tiny_train_args(tiny_checkpoint, "--recalibrate-bn", "2"), cwd=tmp_path)
    study("run", "r", "--threads", "1", "--data", DATA, cwd=tmp_path)
    out = study("report", "r", "--json", "--out-dir", tmp_path, "--data", DATA, cwd=tmp_path)
    report = json.loads(out.stdout)
    (point,) = report["points"]
    assert point["seeds"] == 2
    accs = [r["accuracy_recalibrated"] for r in report["runs"]]
    assert point["accuracy_recalibrated"] == pytest.approx(np.mean(accs))
    assert point["accuracy_recalibrated_std"] == pytest.approx(np.std(accs, ddof=1))
    methods = {(b["method"], b["bits"]) for b in report["ptq_baselines"]}
    assert {("heq", 2), ("kmeans", 8), ("uniform", 4), ("full precision", 32)} <= methods
    assert all("accuracy_recalibrated" in b for b in report["ptq_baselines"] if b["method"] != "full precision")
    s, _ = load(tmp_path, "r")
    assert s.trials[0].values[0] == pytest.approx(report["runs"][0]["accuracy_recalibrated"])


def test_dead_trial_with_a_free_lock_is_failed_and_retried(tmp_path, monkeypatch):
    spec = StudySpec(name="d", method="weight-coupling", kind="grid", seeds=[0], runs=str(tmp_path / "runs"),
                     grid={"h": [0.1]})
    storage = engine.open_storage(str(tmp_path / "journal.log"))
    s, _ = engine.create(storage, spec)
    trial = s.ask()  # popped from the queue, as a worker does, which then dies holding nothing
    trial.suggest_categorical("h", [0.1])
    trial.suggest_categorical("seed", [0])
    trial.set_user_attr("worker", "elsewhere:1:0")
    with engine.try_lock(spec.lock_path({"h": 0.1, "seed": 0})) as mine:
        assert mine
        assert engine.recover(s, spec) == (0, 0)  # lock held: the worker is alive
    # a second worker that started at the same moment saw the same RUNNING trial (its storage read the journal
    # before the first worker failed the trial): its recover must neither crash nor retry the trial again
    other, _ = engine.load(engine.open_storage(str(tmp_path / "journal.log")), "d")
    seen = other.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert engine.recover(s, spec) == (1, 0)
    listing = other.get_trials
    monkeypatch.setattr(other, "get_trials", lambda deepcopy=True, states=None: seen if states == (
        optuna.trial.TrialState.RUNNING,) else listing(deepcopy=deepcopy, states=states))
    assert engine.recover(other, spec) == (0, 0)
    states = [t.state.name for t in s.get_trials()]
    assert states == ["FAIL", "WAITING"]
    assert s.get_trials()[1].params == {"h": 0.1, "seed": 0}


def test_a_grid_run_half_way_through_its_suggestions_is_not_enqueued_again(tmp_path):
    # a worker suggests a grid run's parameters one at a time; read in between, the trial's params are partial,
    # and recover once took the run for lost and enqueued it again (a point trained twice under -j 2)
    spec = StudySpec(name="p", method="weight-coupling", kind="grid", seeds=[0], runs=str(tmp_path / "runs"),
                     grid={"h": [0.1], "w": [0.3]})
    s, _ = engine.create(engine.open_storage(str(tmp_path / "journal.log")), spec)
    trial = s.ask()
    trial.suggest_categorical("h", [0.1])  # "w" and "seed" not yet suggested
    assert engine.recover(s, spec) == (0, 0)
    assert [t.state.name for t in s.get_trials()] == ["RUNNING"]


@pytest.mark.parametrize("case, needle", [
    (["create", "b", "--grid", "foo=1,2"], "unknown parameter 'foo'"),
    (["create", "b", "--grid", "h="], "empty list"),
    (["create", "b", "--search", "tpe", "--trials", "3", "--space", "h=0.5:0.1"], "lo must be < hi"),
    (["create", "b", "--grid", "h=0.1", "--seeds", "a"], "--seeds"),
    (["create", "b", "--grid", "h=0.1", "--storage", "postgresql://u:secret@127.0.0.1:9/x"], "cannot open storage"),
    (["create", "b", "--grid", "h=0.1", "--storage", "sqlite:///x.db"], "sqlite"),
    (["create", "b", "--grid", "h=-1"], "h must be"),
    (["create", "b", "--grid", "h=0.1", "--seed", "3"], "--seed is set by the study"),
    (["run", "nosuch"], "no study named"),
    (["create", "a", "--grid", "h=0.1,0.2"], "exists with another spec (grid differ)"),
])
def test_bad_input_is_one_line_and_leaves_the_study_untouched(tmp_path, tiny_checkpoint, case, needle):
    study("create", "a", "--grid", "h=0.1", *tiny_train_args(tiny_checkpoint), cwd=tmp_path)
    journal = tmp_path / "studies" / "a" / "journal.log"
    before = journal.read_bytes()
    extra = tiny_train_args(tiny_checkpoint) if case[0] == "create" else []
    done = study(*case, *extra, cwd=tmp_path, check=False)
    assert done.returncode == 2
    assert_one_line_error(result(done), needle)
    assert "secret" not in done.stderr
    assert journal.read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "studies").iterdir()) == ["a"]  # no other study was created


def test_sigterm_to_run_stops_its_workers(tmp_path, tiny_checkpoint, cifar):
    study("create", "t", "--grid", "h=0.5", "w=0.5", "--seeds", "0",
          *tiny_train_args(tiny_checkpoint, "--epochs", "6", "--limit-train", "512"), cwd=tmp_path)
    _, spec = load(tmp_path, "t")
    path = spec.run_path({"h": 0.5, "w": 0.5}, 0)
    proc = subprocess.Popen([sys.executable, "-m", "landscape.study", "run", "t", "--threads", "1", "--data", DATA],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (path.exists() and Run(path).steps()):
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)  # the command only, as `kill PID` does: its worker must stop too
    assert proc.wait(timeout=60) == 130
    deadline = time.time() + 30
    while True:  # the worker's lock is free once the worker is gone
        with engine.try_lock(spec.lock_path({"h": 0.5, "w": 0.5, "seed": 0})) as free:
            if free:
                break
        assert time.time() < deadline, "the worker outlived its command"
        time.sleep(0.1)
    assert "final" not in Run(path).groups()


def test_a_study_of_an_older_landscape_is_refused_in_one_line_until_migrated(tmp_path, tiny_checkpoint):
    # older studies stored their train options as argv (StudySpec.train_args); the library takes a RunSpec now
    train = tiny_train_args(tiny_checkpoint)
    study("create", "old", "--grid", "h=0.5", "--seeds", "0", *train, cwd=tmp_path)
    s, spec = load(tmp_path, "old")
    legacy = json.loads(spec.to_json())
    del legacy["base"]
    s.set_user_attr(engine.SPEC_ATTR, json.dumps({**legacy, "train_args": train}))
    refused = study("report", "old", "--no-ptq", cwd=tmp_path, check=False)
    assert_one_line_error(result(refused), "landscape study migrate old")
    assert "spec migrated" in study("migrate", "old", cwd=tmp_path).stdout
    assert load(tmp_path, "old")[1] == spec  # the same spec as `create` makes today
    assert "nothing to migrate" in study("migrate", "old", cwd=tmp_path).stdout
