"""Benchmark: wall time of `python -m landscape.interpolate` in one process vs the same job shared out over
torchrun ranks on this machine (landscape/analysis/sweep.py).

The job: the path public ResNet-20 → adapted ResNet-20 (../shared/models), --points P, on the first N test
images, BN keep. A throw-away run file holding the public weights as its pretrained state is made in a temporary
folder; the second state is the adapted checkpoint file. Each configuration runs as a fresh command (interpreter
start, imports, data loading included — what a user waits for), R times interleaved; the table shows medians:
  one process, all threads     python -m landscape.interpolate …   (torch's default thread count)
  one process, 1 thread        OMP_NUM_THREADS=1 python -m landscape.interpolate …
  torchrun × W, 1 thread each  torchrun --nproc-per-node W -m landscape.interpolate …
and checks that every configuration stored the same numbers (exactly for the 1-thread ones; the all-threads
process may differ by float noise, ≈1e-6 relative, which is printed).

    python bench/sharding.py [--quick] [--json] [--ranks 2] [--repeats 3] [--device cpu]

--quick: P = 5, N = 500, 1 repeat (about a minute on 2 cores); default: P = 21, N = 2000, 3 repeats (≈ 10 min).
On a machine with C cores, W ranks of 1 thread can beat one process of C threads only where the forward does not
already use the cores well (small batches, Python overhead); the point of sharding is more machines, not this one.

--device is passed to every command (`--device D`): under torchrun each rank maps `cuda` (or `cuda:N`) to
cuda:LOCAL_RANK, so --ranks W on CUDA needs W visible GPUs (CUDA_VISIBLE_DEVICES chooses them). Each timing is the
wall time of a whole child process, whose exit means its device work is done: this process queues no device work,
so there is nothing for it to synchronize. OMP_NUM_THREADS (the "all threads" / "1 thread" rows) sets CPU threads:
on CUDA it only changes the host's share of the work.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from landscape import cli  # noqa: E402
from landscape.analysis.paths import read_path  # noqa: E402
from landscape.errors import LandscapeError  # noqa: E402
from landscape.models import load_model  # noqa: E402
from landscape.store import create_run  # noqa: E402

SHARED = REPO.parent / "shared"
START = SHARED / "models" / "resnet20-12fca82f.th"
END = SHARED / "models" / "resnet20-cifar10jpeg.pt"


def commands(run: Path, out: Path, points: int, limit: int, ranks: int,
             device: str = "cpu") -> dict[str, tuple[list[str], dict]]:
    job = [str(run), "pretrained", str(END), "--points", str(points), "--limit", str(limit), "--name", "bench",
           "--data", str(SHARED / "data"), "--device", device, "--force", "--json"]
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    one_thread = {**env, "OMP_NUM_THREADS": "1"}
    module = ["-m", "landscape.interpolate"]
    return {
        "one process, all threads": ([sys.executable, *module, *job, "--out", str(out / "all.h5")], env),
        "one process, 1 thread": ([sys.executable, *module, *job, "--out", str(out / "one.h5")], one_thread),
        f"torchrun × {ranks}, 1 thread each": (
            [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks), "--master-port", "29531",
             *module, *job, "--out", str(out / "ranks.h5")], one_thread),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.add_argument("--ranks", type=int, default=2, help="torchrun processes (default: 2)")
    p.add_argument("--repeats", type=int, default=None, help="timings per configuration (default: 3, quick: 1)")
    p.add_argument("--device", default="cpu",
                   help="torch device the timed work runs on, e.g. cpu, cuda, cuda:1 (default: cpu)")
    args = p.parse_args()
    try:
        dev = cli.device(args.device)
    except LandscapeError as e:
        p.error(str(e))
    if dev.type == "cuda" and args.ranks > torch.cuda.device_count():
        p.error(f"--ranks {args.ranks} on {args.device}: every torchrun rank takes its own GPU "
                f"(cuda:LOCAL_RANK), and {torch.cuda.device_count()} are visible")
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type
    points, limit = (5, 500) if args.quick else (21, 2000)
    repeats = args.repeats or (1 if args.quick else 3)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = create_run(tmp / "run.h5", config={"bench": "sharding"}, seed=0, method="none", arch="resnet20",
                         pretrained=load_model("resnet20", START).state_dict())
        configs = commands(run, tmp, points, limit, args.ranks, args.device)
        seconds: dict[str, list[float]] = {name: [] for name in configs}
        for _ in range(repeats):
            for name, (cmd, env) in configs.items():  # interleaved, so slow drifts in load hit all alike
                # the child's exit is the end of its device work: no device to synchronize in this process
                t0 = time.perf_counter()
                done = subprocess.run(cmd, capture_output=True, text=True, env=env)
                seconds[name].append(time.perf_counter() - t0)
                if done.returncode != 0:
                    sys.exit(f"{name} failed:\n{done.stderr[-2000:]}")
        losses = {name: read_path(cmd[cmd.index("--out") + 1], "bench")[0].metrics["test"]["loss"]
                  for name, (cmd, _) in configs.items()}

    names = list(configs)
    base = statistics.median(seconds[names[0]])
    rows = [{"configuration": n, "median_s": statistics.median(seconds[n]), "runs_s": seconds[n],
             "speedup_vs_all_threads": base / statistics.median(seconds[n]),
             "max_rel_loss_diff_vs_1_thread": float(np.max(np.abs(losses[n] - losses[names[1]])
                                                           / np.abs(losses[names[1]])))} for n in names]
    result = {"points": points, "test_images": limit, "repeats": repeats,
              "ranks": args.ranks, "cpu_count": os.cpu_count(), "device": args.device, "device_name": device_name,
              "rows": rows}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"device: {args.device} ({device_name})")
    print(f"interpolate public → adapted ResNet-20: {points} points × {limit} test images, median of {repeats}, "
          f"{os.cpu_count()} CPUs")
    print("| configuration | median wall s | speed-up vs all threads | max rel. loss diff vs 1 thread |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['configuration']} | {r['median_s']:.1f} | {r['speedup_vs_all_threads']:.2f}× | "
              f"{r['max_rel_loss_diff_vs_1_thread']:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
