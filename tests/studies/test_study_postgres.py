"""The many-machine path of studies: a grid study on a real PostgreSQL server (the throwaway cluster of
tests/postgres.py), worked by two `study run` commands started separately, as two machines would — every run
trained exactly once; and a worker killed mid-trial whose trial Optuna's heartbeat fails and retries, resuming
the run file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from conftest import SHARED
from test_study import tiny_train_args

from landscape.store import Run
from landscape.studies import engine

pytestmark = pytest.mark.postgres
DATA = str(SHARED / "data")


def command(*args, storage):
    return [sys.executable, "-m", "landscape.study", *map(str, args), "--storage", storage]


def env():
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def test_two_commands_share_a_postgres_grid_and_train_each_run_once(postgres_url, tmp_path, tiny_checkpoint, cifar):
    runs = tmp_path / "shared-runs"
    done = subprocess.run(command("create", "pg-grid", "--grid", "h=0.5,1.0", "w=0.3,0.5", "--seeds", "0",
                                  "--runs", runs, *tiny_train_args(tiny_checkpoint), storage=postgres_url),
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env())
    assert done.returncode == 0, done.stderr
    machines = [subprocess.Popen(command("run", "pg-grid", "--threads", "1", "--data", DATA, storage=postgres_url),
                                 cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
                for _ in range(2)]
    outs = [m.communicate(timeout=300) for m in machines]
    assert all(m.returncode == 0 for m in machines), [o[1] for o in outs]
    s, _ = engine.load(engine.open_storage(postgres_url), "pg-grid")
    assert [t.state for t in s.trials] == [optuna.trial.TrialState.COMPLETE] * 4
    assert sorted((t.params["h"], t.params["w"]) for t in s.trials) == [(0.5, 0.3), (0.5, 0.5), (1.0, 0.3),
                                                                      (1.0, 0.5)]
    assert all(t.user_attrs["runs"][0]["trained"] for t in s.trials)
    assert len(list(runs.glob("*.h5"))) == 4


def test_killed_worker_is_retried_by_the_heartbeat_and_resumes(postgres_url, tmp_path, tiny_checkpoint, cifar):
    storage = postgres_url
    done = subprocess.run(command("create", "pg-kill", "--grid", "h=0.5", "w=0.5", "--seeds", "0",
                                  *tiny_train_args(tiny_checkpoint, "--epochs", "6", "--limit-train", "512"),
                                  storage=storage), cwd=tmp_path, capture_output=True, text=True, env=env())
    assert done.returncode == 0, done.stderr
    s, spec = engine.load(engine.open_storage(storage), "pg-kill")
    path = spec.run_path({"h": 0.5, "w": 0.5}, 0)
    # a 1 s heartbeat (grace 4 s) so the test need not wait two minutes for the grace period
    fast = ("--heartbeat", "1", "--threads", "1", "--data", DATA)
    proc = subprocess.Popen(command("run", "pg-kill", *fast, storage=storage),
                            cwd=tmp_path, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (path.exists() and len(Run(path).steps()) >= 3):
        time.sleep(0.02)
    time.sleep(1.5)  # at least one heartbeat recorded (a trial without any is never taken for stale)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert "final" not in Run(path).groups()
    time.sleep(5)  # past the grace period
    rerun = subprocess.run(command("run", "pg-kill", *fast, storage=storage),
                           cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "recovered: 1 trial(s) of dead workers retried" in rerun.stdout
    s, _ = engine.load(engine.open_storage(storage), "pg-kill")
    assert [t.state.name for t in s.trials] == ["FAIL", "COMPLETE"]
    assert s.trials[1].user_attrs["runs"][0]["resumed_at"] > 0
