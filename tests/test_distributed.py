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
