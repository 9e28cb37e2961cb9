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


# ------------------------------------------------------- long analysis jobs: interpolate, perturb, surface

ANALYSIS_ARGS = {  # small, but long enough (≈ 20 evaluations) to be killed in the middle
    "interpolate": ["--points", "10", "--limit", "300", "--batch-size", "100", "--out", "{dir}/path.h5"],
    "perturb": ["--directions", "14", "--alphas", "-1", "0", "1", "--bn", "keep", "--limit", "300", "--batch-size",
                "100"],
    "surface": ["--plane", "random", "--resolution", "5", "--limit", "300", "--batch-size", "100"],
}
UNSTABLE = {"file", "png", "run", "group"}  # paths that differ between the trials' folders


def analysis_command(tool, run, folder):
    args = [a.replace("{dir}", str(folder)) for a in ANALYSIS_ARGS[tool]]
    return [sys.executable, "-m", f"landscape.{tool}", str(run), *args, "--data", str(SHARED / "data"), "--json"]


def journals(folder):
    return list(folder.glob(".*.journal.json"))


@pytest.mark.parametrize("tool", ["interpolate", "perturb", "surface"])
def test_killed_analysis_resumes_finished_points_and_numbers(tool, tiny_run, tmp_path):
    """SIGKILL at random moments after the first journaled evaluation, then the same command again: it says how
    many evaluations it skips, and its numbers equal an uninterrupted run's exactly (CPU)."""
    import shutil

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    shutil.copy(tiny_run, ref_dir / "run.h5")
    start = time.perf_counter()
    done = subprocess.run(analysis_command(tool, ref_dir / "run.h5", ref_dir), capture_output=True, text=True,
                          timeout=300, env=env)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    reference = {k: v for k, v in json.loads(done.stdout).items() if k not in UNSTABLE}
    assert not journals(ref_dir)  # removed once the result is stored
    rng = random.Random(99)
    resumed_trials = 0
    for trial in range(3):
        folder = tmp_path / f"trial{trial}"
        folder.mkdir()
        shutil.copy(tiny_run, folder / "run.h5")
        command = analysis_command(tool, folder / "run.h5", folder)
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        while proc.poll() is None and not journals(folder):
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3) * seconds)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert Run(folder / "run.h5").steps()  # the run file still opens (results land by atomic rename)
        if not journals(folder):
            continue  # finished before the kill
        finished = len(json.loads(journals(folder)[0].read_text())["done"])  # a whole journal, never torn
        resumed_trials += 1
        again = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
        assert again.returncode == 0, again.stderr
        assert f"resuming: {finished} " in again.stderr
        assert {k: v for k, v in json.loads(again.stdout).items() if k not in UNSTABLE} == reference, trial
        assert not journals(folder) and not list(folder.glob(".*tmp*"))
    assert resumed_trials >= 1, "no trial was killed mid-job: widen the kill window"


def test_journal_of_another_command_is_refused_then_discarded_with_force(tiny_run, tmp_path, run_cli):
    """A leftover journal of different settings is never mixed in: a one-line error naming the setting, and
    --force discards it."""
    import shutil

    from conftest import assert_one_line_error

    from landscape.analysis.sweep import Journal

    shutil.copy(tiny_run, tmp_path / "run.h5")
    args = [tmp_path / "run.h5", "--points", "2", "--limit", "100", "--data", SHARED / "data", "--name", "p"]
    stale = tmp_path / ".run.h5.paths-p.journal.json"
    Journal(stale, {"tool": "interpolate", "points": 7}).record({"0": {"test": {"loss": 1.0}}})
    before = stale.read_bytes()
    assert_one_line_error(run_cli("interpolate", *args), "different command", "points", "--force")
    assert stale.read_bytes() == before
    result = run_cli("interpolate", *args, "--force")
    assert result.code == 0, result.err
    assert not stale.exists()
