"""Crash safety and resume: a training subprocess killed with SIGKILL at random moments leaves a run file whose
complete checkpoints all read back, and `--resume` finishes it with final weights bit-identical to an
uninterrupted run (CPU). Also: the same command with the same seed gives identical numbers."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import h5py
import pytest
import torch
from conftest import SHARED

from landscape.store import Run


def train_args(checkpoint, out):
    return ["--arch", "tiny", "--checkpoint", str(checkpoint), "--data", str(SHARED / "data"), "--method",
            "weight-coupling", "--h", "0.5", "--w", "0.5", "--estimator", "subsampled", "--epochs", "4", "--lr", "0.01",
            "--train-batch-size", "32", "--limit-train", "256", "--limit-test", "100", "--checkpoint-every", "3",
            "--stats-every", "4", "--out", str(out), "--json"]


def run_train(args, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "landscape.train", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_checkpoint, cifar):
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    start = time.perf_counter()
    done = run_train(train_args(tiny_checkpoint, out))
    assert done.returncode == 0, done.stderr
    return out, json.loads(done.stdout), time.perf_counter() - start


def test_sigkill_then_resume_is_bit_identical(reference, tiny_checkpoint, tmp_path):
    ref_path, ref_summary, seconds = reference
    ref_state = Run(ref_path).state("compressed")
    rng = random.Random(1234)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    resumed_trials = 0
    for trial in range(3):
        out = tmp_path / f"killed{trial}.h5"
        proc = subprocess.Popen([sys.executable, "-m", "landscape.train", *train_args(tiny_checkpoint, out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        # wait until training has written its first checkpoint, then kill at a random moment of the rest
        while proc.poll() is None and not (out.exists() and Run(out).steps()):
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.5) * seconds * 0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not out.exists():  # killed before the run file was created: nothing to lose, nothing to resume
            continue
        run = Run(out)  # opens: the file is never torn
        for step in run.steps():
            assert len(run.state(step)) == len(ref_state)
        if "final" in run.groups():
            continue  # it finished before the kill
        resumed_trials += 1
        resumed = run_train(["--resume", str(out), "--data", str(SHARED / "data"), "--json"])
        assert resumed.returncode == 0, resumed.stderr
        summary = json.loads(resumed.stdout)
        state = Run(out).state("compressed")
        assert all(torch.equal(state[k], ref_state[k]) for k in ref_state), f"trial {trial} differs"
        assert summary["accuracy_clamped"] == ref_summary["accuracy_clamped"]
        scalars = Run(out).scalars()
        assert scalars["step"].tolist() == list(range(1, 33))
        assert not list(tmp_path.glob(".*.tmp-*"))
    assert resumed_trials >= 1, "no trial was killed mid-training: widen the kill window"


def test_resume_of_a_finished_run_is_refused(reference, run_cli):
    from conftest import assert_one_line_error

    assert_one_line_error(run_cli("train", "--resume", reference[0]), "finished")


def test_same_seed_same_numbers(reference, tiny_checkpoint, tmp_path):
    again = run_train(train_args(tiny_checkpoint, tmp_path / "again.h5"))
    assert again.returncode == 0, again.stderr
    first, second = reference[1], json.loads(again.stdout)
    for key in ("accuracy_compressed", "accuracy_clamped", "loss_compressed", "loss_clamped", "mean_bits"):
        assert first[key] == second[key], key
    with h5py.File(reference[0], "r") as a, h5py.File(tmp_path / "again.h5", "r") as b:
        assert (a["scalars/task_loss"][:] == b["scalars/task_loss"][:]).all()
