"""Optuna's RDB storage on a real PostgreSQL server (tests/postgres.py starts and stops it): two worker processes
share one study, and a worker killed in the middle of a trial leaves a stale trial that the heartbeat fails and
RetryHeartbeatStaleTrialCallback re-enqueues. About 8 s on 2 cores (the cluster's start, the workers' start, the
grace period); 13 s with both cores busy."""

from __future__ import annotations

import subprocess
import sys
import time

import optuna
import pytest
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # heartbeat, retry

HEARTBEAT, GRACE = 1, 2  # seconds; both must be positive integers in Optuna 5.0

# One worker process: load the study and run `n` trials of a trivial objective, or ("die") start one trial and
# SIGKILL itself in its middle, after the heartbeat thread has recorded a beat or two.
WORKER = f"""
import os, signal, sys, time
import optuna
url, name, n, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
optuna.logging.set_verbosity(optuna.logging.WARNING)
storage = optuna.storages.RDBStorage(url, heartbeat_interval={HEARTBEAT}, grace_period={GRACE})
study = optuna.load_study(study_name=name, storage=storage)

def objective(trial):
    x = trial.suggest_float("x", -10.0, 10.0)
    trial.set_user_attr("pid", os.getpid())
    if mode == "die":
        time.sleep(2 * {HEARTBEAT})
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.05)
    return x * x

study.optimize(objective, n_trials=n)
"""


def objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -10.0, 10.0)
    return x * x


def start_worker(url: str, name: str, n: int, mode: str = "work") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WORKER, url, name, str(n), mode], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait(proc: subprocess.Popen, timeout: float = 60) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"worker still running after {timeout} s:\n{out}")
    return proc.returncode, out


def storage(url: str, **kwargs) -> RDBStorage:
    return RDBStorage(url, heartbeat_interval=HEARTBEAT, grace_period=GRACE, **kwargs)


@pytest.mark.postgres
def test_two_worker_processes_share_a_study(postgres_url):
    study = optuna.create_study(study_name="two-workers", storage=storage(postgres_url))
    workers = [start_worker(postgres_url, "two-workers", 5) for _ in range(2)]
    for proc in workers:
        code, out = wait(proc)
        assert code == 0, out
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 10
    assert all(t.state == TrialState.COMPLETE for t in trials), [t.state for t in trials]
    assert sorted(t.number for t in trials) == list(range(10))
    assert {t.user_attrs["pid"] for t in trials} == {proc.pid for proc in workers}
    assert study.best_value == min(t.value for t in trials)


@pytest.mark.postgres
def test_killed_worker_trial_goes_stale_fails_and_is_retried(postgres_url):
    retry = RetryHeartbeatStaleTrialCallback(max_retry=1)
    study = optuna.create_study(study_name="stale", storage=storage(postgres_url, heartbeat_stale_trial_callback=retry))
    code, out = wait(start_worker(postgres_url, "stale", 1, mode="die"))
    assert code == -9, out  # SIGKILL
    [dead] = study.get_trials()
    assert dead.state == TrialState.RUNNING  # nobody marked it: the process died mid-trial

    deadline = time.monotonic() + 30  # stale once its last heartbeat is more than GRACE s old (server clock)
    while study.get_trials(deepcopy=False)[0].state == TrialState.RUNNING:
        assert time.monotonic() < deadline, "the killed worker's trial never went stale"
        optuna.storages.fail_stale_trials(study)  # Study.optimize also calls it before each new trial
        time.sleep(0.5)

    failed, waiting = study.get_trials()
    assert failed.number == dead.number and failed.state == TrialState.FAIL
    # The callback re-enqueued it as a new WAITING trial with the same params; the link lives in system_attrs.
    assert waiting.state == TrialState.WAITING and waiting.params == dead.params
    assert RetryHeartbeatStaleTrialCallback.retried_trial_number(waiting) == dead.number
    assert RetryHeartbeatStaleTrialCallback.retry_history(waiting) == [dead.number]
    assert waiting.system_attrs["failed_trial"] == dead.number

    study.optimize(objective, n_trials=1)  # the next worker takes the waiting trial first
    failed, retried = study.get_trials()
    assert retried.number == waiting.number and retried.state == TrialState.COMPLETE
    assert retried.params == dead.params and retried.value == dead.params["x"] * dead.params["x"]
    assert RetryHeartbeatStaleTrialCallback.retried_trial_number(retried) == dead.number


def test_retry_failed_trial_callback_is_a_deprecated_alias():
    # Optuna 4.9 renamed it (removal planned for 6.0); both names work in 5.0.
    with pytest.warns(FutureWarning):
        old = optuna.storages.RetryFailedTrialCallback(max_retry=1)
    assert isinstance(old, RetryHeartbeatStaleTrialCallback)
