"""torchrun with 2 processes (gloo, localhost) trains the tiny model like one process does.

The reference is one process with --micro-batches 2: DDP gives each rank a contiguous half of every batch and
averages the gradients; BatchNorm on CPU sees only the rank's half (SyncBatchNorm is GPU-only), which is what
micro-batches reproduce in one process. Without coupling (h = 0) the two runs are bit-identical (checked by hand:
max difference 0.0 after 8 steps). With coupling, float summation order differs (all-reduce of task + penalty
gradients vs accumulation) by ~1e-7, and the exact coupling force is a pair count that jumps when such a
difference moves a pair across a window edge, so the runs drift apart chaotically after a few steps. The test
therefore compares the first two steps, to 1e-6 absolute on every parameter: a rank that computed the coupling
differently (other pairs, counted twice, left out) would differ by ~lr·force ≈ 1e-3 already at step 1.
BN running statistics are rank 0's under DDP and both halves' in one process, so they are not compared."""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import SHARED

from landscape.store import Run

ARGS = ["--arch", "tiny", "--data", str(SHARED / "data"), "--method", "weight-coupling", "--h", "0.5", "--w", "0.5",
        "--estimator", "sorted", "--epochs", "1", "--lr", "0.01", "--train-batch-size", "32", "--limit-train", "256",
        "--limit-test", "100", "--checkpoint-every", "1", "--json"]



def test_two_processes_match_one(tiny_checkpoint, tmp_path, cifar):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                          "29517", "-m", "landscape.train", *ARGS, "--checkpoint", str(tiny_checkpoint), "--out",
                          str(tmp_path / "ddp.h5")], capture_output=True, text=True, timeout=600, env=env)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = subprocess.run([sys.executable, "-m", "landscape.train", *ARGS, "--micro-batches", "2", "--checkpoint",
                             str(tiny_checkpoint), "--out", str(tmp_path / "one.h5")],
                            capture_output=True, text=True, timeout=600, env=env)
    assert single.returncode == 0, single.stderr[-3000:]
    summary = json.loads([line for line in ddp.stdout.splitlines() if line.startswith("{")][0])
    assert summary["world_size"] == 2 and summary["steps"] == 8
    a, b = Run(tmp_path / "ddp.h5"), Run(tmp_path / "one.h5")
    pre = a.state("pretrained")
    sa = a.state("compressed")
    params = [k for k in sa if "running" not in k and "num_batches" not in k]
    moved = max((sa[k] - pre[k]).abs().max().item() for k in params)
    assert moved > 1e-3  # training really moved the weights
    assert a.steps() == b.steps() == list(range(1, 9))
    for step in (1, 2):
        xa, xb = a.state(step), b.state(step)
        for k in params:
            torch.testing.assert_close(xa[k], xb[k], atol=1e-6, rtol=0, msg=f"step {step}: {k}")
    assert sum((a.state(1)[k] - pre[k]).abs().max().item() for k in params) > 1e-3  # step 1 moved the weights


# Every method whose compressor trains tensors of its own (Compressor.learnable) or a module around the model
# (input-bitwise's quantizer), with the option that makes them move in 2 steps. Their gradients come through each
# rank's half of the batch (VQ codebooks, input levels) or the penalty (centroids, DSMM temperatures): without
# averaging them over the ranks, VQ's codebooks differed after step 1 and its weights by 0.016 after step 2.
LEARNABLE = {
    "vq": ["--codebook-bits", "4", "--dim", "2", "--codebook-lr", "0.05"],
    "input-bitwise": ["--input-bits", "2"],
    "centroid": ["--bits", "2", "--centroid-lr", "0.05"],
    "dsmm": ["--bits", "4", "--alpha-lr", "0.5"],
}
STEP_ARGS = ["--arch", "tiny", "--data", str(SHARED / "data"), "--epochs", "1", "--lr", "0.01", "--train-batch-size",
             "32", "--limit-train", "64", "--limit-test", "50", "--checkpoint-every", "1", "--json"]


@pytest.mark.parametrize("method", sorted(LEARNABLE))
def test_learnable_compressor_state_trains_alike_on_two_processes(method, tiny_checkpoint, tmp_path):
    """2 gloo ranks vs one process with --micro-batches 2, 2 SGD steps: weights *and* the compressor's own
    tensors (codebooks, levels and thresholds, centroids, temperatures) equal to 1e-6 at both steps."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [*STEP_ARGS, "--method", method, *LEARNABLE[method], "--checkpoint", str(tiny_checkpoint)]
    port = 29530 + sorted(LEARNABLE).index(method)
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                          str(port), "-m", "landscape.train", *args, "--out", str(tmp_path / "ddp.h5")],
                         capture_output=True, text=True, timeout=600, env=env)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = subprocess.run([sys.executable, "-m", "landscape.train", *args, "--micro-batches", "2", "--out",
                             str(tmp_path / "one.h5")], capture_output=True, text=True, timeout=600, env=env)
    assert single.returncode == 0, single.stderr[-3000:]
    a, b = Run(tmp_path / "ddp.h5"), Run(tmp_path / "one.h5")
    assert a.steps() == b.steps() == [1, 2]
    pre, moved = a.state("pretrained"), 0.0
    for step in (1, 2):
        xa, xb = a.state(step), b.state(step)
        keys = [k for k in xa if "running" not in k and "num_batches" not in k]
        ca, cb = a.compressor_state(step), b.compressor_state(step)
        assert sorted(ca) == sorted(cb)
        for k in keys:
            torch.testing.assert_close(xa[k], xb[k], atol=1e-6, rtol=0, msg=f"{method} step {step}: {k}")
        for k in ca:
            torch.testing.assert_close(ca[k], cb[k], atol=1e-6, rtol=0, msg=f"{method} step {step}: {k}")
        moved = max(moved, *((xa[k] - pre[k]).abs().max().item() for k in keys))
    assert moved > 1e-4  # training really moved the weights
    learned = a.compressor_state(2) or {k: v for k, v in a.state(2).items() if k.startswith("quantizer.")}
    start = a.compressor_state(1) if method != "input-bitwise" else {k: pre[k] for k in learned}
    assert learned and max((learned[k] - start[k]).abs().max().item() for k in learned) > 0  # and the state moved


PATH_ARGS = ["--points", "4", "--limit", "200", "--batch-size", "100", "--bn", "recalibrate", "--bn-batches", "1"]
PERTURB_ARGS = ["--directions", "5", "--alphas", "-1", "0.5", "--limit", "200", "--batch-size", "100"]


@pytest.fixture
def one_thread():
    """One CPU thread, as every torchrun rank has (OMP_NUM_THREADS=1): CPU kernels sum in another order with
    another thread count (≈1e-6 relative in these losses), which is not what the tests below are about."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def torchrun(module, *args, port):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                           str(port), "-m", f"landscape.{module}", *map(str, args), "--data", str(SHARED / "data"),
                           "--json"], capture_output=True, text=True, timeout=600, env=env)


def numbers(stdout):
    out = json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])
    return {k: v for k, v in out.items() if k not in {"file", "png", "run", "group", "world_size"}}, out


def test_interpolate_shards_points_over_two_processes(tiny_run, tmp_path, run_cli, one_thread):
    """Points dealt out over 2 gloo ranks, gathered on rank 0: the same numbers as one process. Every point
    writes the whole state before it is evaluated, so nothing but the device decides a value: the test asks for
    exact equality with one single-threaded process (a rank that evaluated another point or kept a stale BN state
    would differ by far more than float noise)."""
    single = run_cli("interpolate", tiny_run, *PATH_ARGS, "--out", tmp_path / "one.h5", "--data", SHARED / "data",
                     "--json")
    assert single.code == 0, single.err
    ddp = torchrun("interpolate", tiny_run, *PATH_ARGS, "--out", tmp_path / "two.h5", port=29518)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    (expected, _), (got, raw) = numbers(single.out), numbers(ddp.stdout)
    assert raw["world_size"] == 2 and len(got["alpha"]) == 7
    assert got == expected
    assert not list(tmp_path.glob(".*journal*"))


def test_perturb_resumes_a_one_process_journal_on_two_processes(tiny_run, tmp_path, run_cli, monkeypatch,
                                                                 one_thread):
    """A job half done by one process (its journal keeps every other evaluation) is finished by 2 ranks: they
    skip the journaled evaluations, share out the rest, and rank 0 writes the same numbers as the one process."""
    import shutil

    from landscape.analysis.sweep import Journal

    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        shutil.copy(tiny_run, tmp_path / folder / "run.h5")
    monkeypatch.setattr(Journal, "remove", lambda self: None)  # keep the whole job's journal
    single = run_cli("perturb", tmp_path / "one" / "run.h5", *PERTURB_ARGS, "--data", SHARED / "data", "--json")
    assert single.code == 0, single.err
    [whole] = (tmp_path / "one").glob(".*journal.json")
    journal = json.loads(whole.read_text())
    keys = sorted(journal["done"])
    journal["done"] = {k: journal["done"][k] for k in keys[::2]}
    (tmp_path / "two" / whole.name).write_text(json.dumps(journal))

    ddp = torchrun("perturb", tmp_path / "two" / "run.h5", *PERTURB_ARGS, port=29519)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert f"resuming: {len(journal['done'])} evaluations" in ddp.stderr
    (expected, _), (got, raw) = numbers(single.out), numbers(ddp.stdout)
    assert raw["world_size"] == 2 and len(got["random_delta_loss"]) == 5
    assert got == expected
    assert not list((tmp_path / "two").glob(".*journal*"))


def test_surface_shards_points_over_two_processes(tiny_run, tmp_path, run_cli, one_thread):
    """A states-plane surface (3 anchors + 3 × 5 grid points, BN recalibrated at every point) over 2 gloo ranks:
    the same numbers as one single-threaded process, to the last bit."""
    import shutil

    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        shutil.copy(tiny_run, tmp_path / folder / "run.h5")
    args = ["--plane", "states", "--resolution", "3,5", "--limit", "200", "--batch-size", "100", "--bn",
            "recalibrate", "--bn-batches", "1"]
    single = run_cli("surface", tmp_path / "one" / "run.h5", *args, "--data", SHARED / "data", "--json")
    assert single.code == 0, single.err
    ddp = torchrun("surface", tmp_path / "two" / "run.h5", *args, port=29520)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    (expected, _), (got, raw) = numbers(single.out), numbers(ddp.stdout)
    assert raw["world_size"] == 2 and len(got["loss"]) == 3 and len(got["loss"][0]) == 5
    assert got == expected
    assert not list((tmp_path / "two").glob(".*journal*"))
