"""Benchmark the coupling-energy estimators of landscape.coupling (energy + gradient, on --device: default the CPU).

For N in {4096, 16384, 65536} (Gaussian float32 weights, w = 0.3 std) each estimator is timed against the
exact pairwise sum (median of repeats; speed-up = exact / estimator) and compared with it (energy |dE|/|E|,
force ||dF||_2/||F||_2). The histogram and sorted estimators are also timed alone at larger N (up to 1e7);
there the exact columns are null and errors are relative to the sorted estimator run in float64 on the same
values (it is exact, see tests/test_coupling.py): `"reference": "sorted-float64"`. The peak extra memory of
the histogram estimator on a 1e7-weight float32 tensor is measured in a fresh process (CPU: peak RSS) or, on CUDA,
in this one (torch.cuda.max_memory_allocated); on other devices it is null.

Training-step costs on ResNet-20 (`step_overhead`, at torch's default thread count): the coupling penalty of
all 20 coupled layers per estimator, batched (`energy_*_multi`, what `WeightCoupling.penalty` runs) and as a
per-layer loop ("resnet20_layers"), and one soft-quant SGD step vs one plain step, batch 128 (interleaved,
medians). "step_overhead" is the ratio for the default estimator; "step_overhead_by_estimator" has both.

On --device cuda every timed tensor and model lives on the GPU and every timing synchronizes the device before
reading the clock, at start and at end. The weights are drawn on the CPU (the same values on every device) and
the float64 references are computed on the CPU, as on a CPU run. --threads / --step-threads set torch's CPU
threads only; the 1-thread coupling-penalty row is CPU only (skipped on other devices).

    python bench/coupling.py [--quick] [--json] [--out FILE.json] [--threads T] [--step-threads T] [--device D]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from functools import partial
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_THREADS = torch.get_num_threads()  # torch's default, read before main() applies --threads
from landscape import cli  # noqa: E402
from landscape.coupling import energy_exact, energy_histogram, energy_sorted  # noqa: E402
from landscape.errors import LandscapeError  # noqa: E402

CPU = torch.device("cpu")
# ResNet-20 (CIFAR) conv + fc weight counts: what the trainer couples every SGD step
RESNET20 = [432] + [2304] * 6 + [4608] + [9216] * 5 + [18432] + [36864] * 5 + [640]


def sync(dev: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read after it times the work, not its launch."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def layer(n: int, seed: int = 0, dev: torch.device = CPU) -> tuple[torch.Tensor, float]:
    """n Gaussian weights on `dev` (drawn on the CPU: the same values on every device) and w = 0.3 std."""
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(n, generator=g)
    return theta.to(dev), 0.3 * theta.std().item()


def run(fn, theta, w):
    """One energy + gradient evaluation; returns (E as float, dE/dtheta as float64)."""
    t = theta.detach().requires_grad_(True)
    e = fn(t, w)
    e.backward()
    return e.item(), t.grad.double()


def timed(fn, theta, w, repeats: int, budget_s: float, warm: bool = True):
    """Median wall time of up to `repeats` runs (at least 1; stops early once `budget_s` is spent)."""
    out = run(fn, theta, w) if warm else None  # warm-up (and the result)
    times = []
    while len(times) < repeats and (not times or sum(times) < budget_s):
        sync(theta.device)
        t0 = time.perf_counter()
        run(fn, theta, w)
        sync(theta.device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(times), out


def exact_reference(theta, w):
    """Exact energy and force of the same float32 values evaluated in float64 (pair distances then exact, so
    the window test does not depend on float32 rounding of theta_i - theta_j or of w). On the CPU whatever
    --device is: the reference is the truth the device's float32 is judged against, computed as before."""
    return run(partial(energy_exact, chunk=max(1, 2**18 // theta.numel())), theta.cpu().double(), w)


def errors(est, ref):
    (e, f), (e0, f0) = est, ref
    return abs(e - e0) / abs(e0), float((f.to(f0.device) - f0).norm() / f0.norm())


def row(name, n, t, reps, exact_t=None, errs=(None, None), reference=None):
    return {
        "estimator": name,
        "n": n,
        "time_s": t,
        "exact_time_s": exact_t,
        "speedup": exact_t / t if exact_t else None,
        "energy_rel_err": errs[0],
        "force_rel_err": errs[1],
        "repeats": reps,
        "reference": reference,
    }


def coupling_rows(quick: bool, dev: torch.device):
    fast = {"histogram": energy_histogram, "sorted": energy_sorted}
    extra = {"histogram-prefix": partial(energy_histogram, conv="prefix")}
    rows, prefix_rows = [], []
    reps, budget = (3, 2.0) if quick else (7, 20.0)
    for n in [4096, 16384] + ([] if quick else [65536]):
        theta, w = layer(n, dev=dev)
        # ~2^18 differences per block: cache-sized, ~5x faster here than the default 2048 rows at these N
        exact = partial(energy_exact, chunk=max(1, 2**18 // n))
        t_ex = timed(exact, theta, w, reps, budget, warm=False)[0]  # O(N^2) loop: nothing to warm up
        ref = exact_reference(theta, w)
        for name, fn in {**fast, **extra}.items():
            t, k, out = timed(fn, theta, w, reps, budget)
            (prefix_rows if name in extra else rows).append(
                row(name, n, t, k, t_ex, errors(out, ref), "exact")
            )
    for n in [2**18, 10**6] + ([] if quick else [10**7]):
        theta, w = layer(n, dev=dev)
        # exact (tested equal to energy_exact), float64, on the CPU as exact_reference
        ref = run(energy_sorted, theta.cpu().double(), w)
        for name, fn in {**fast, **extra}.items():
            t, k, out = timed(fn, theta, w, reps, budget)
            (prefix_rows if name in extra else rows).append(
                row(name, n, t, k, errs=errors(out, ref), reference="sorted-float64")
            )
    return rows, prefix_rows


def layer_timings(quick: bool, dev: torch.device):
    """Per-layer energy + gradient time (min of repeats: the machine's noise only adds) for the trainer."""
    fns = {
        "histogram": energy_histogram,
        "histogram-prefix": partial(energy_histogram, conv="prefix"),
        "sorted": energy_sorted,
    }
    reps = 10 if quick else 30
    out = {}
    for name, fn in fns.items():
        per = {}
        for n in sorted(set(RESNET20)) + [10000]:
            theta, w = layer(n, seed=n, dev=dev)
            run(fn, theta, w)
            ts = []
            for _ in range(reps):
                sync(dev)
                t0 = time.perf_counter()
                run(fn, theta, w)
                sync(dev)
                ts.append(time.perf_counter() - t0)
            per[n] = min(ts)
        out[name] = {"per_layer_s": per, "resnet20_step_s": sum(per[n] for n in RESNET20)}
    return out


PEAK_SCRIPT = textwrap.dedent("""
    import json, sys, torch
    sys.path.insert(0, sys.argv[2])
    from landscape.coupling import energy_histogram
    n = int(sys.argv[1])
    energy_histogram(torch.randn(1000, requires_grad=True), 0.3).backward()  # load FFT/autograd code first
    theta = torch.empty(n).normal_(generator=torch.Generator().manual_seed(0))  # no temporaries
    w = 0.3 * theta.std().item()
    theta.requires_grad_(True)
    def status(key):
        return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key))
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM (peak RSS) to the current RSS
    base = status("VmRSS:")
    energy_histogram(theta, w).backward()  # the gradient is kept alive in theta.grad and counted
    print(json.dumps({"peak_extra_bytes": status("VmHWM:") - base, "tensor_bytes": theta.numel() * 4}))
""")


PEAK_MEASURE = {"cpu": "peak RSS (VmHWM), fresh process", "cuda": "torch.cuda.max_memory_allocated"}


def peak_mem_ratio(dev: torch.device, n: int = 10**7) -> float | None:
    """Peak extra memory of histogram energy + backward (gradient included) / the tensor's bytes.

    CPU: measured in a fresh Python process as the kernel's peak RSS (VmHWM, reset via /proc/self/clear_refs just
    before the call) minus the RSS right before it, so every page touched by torch's allocator counts, whether
    or not it is freed before the end. Linux only; None elsewhere. CUDA: in this process, the peak of
    torch.cuda.max_memory_allocated over the call minus the memory allocated right before it (what torch's
    caching allocator hands out, not what it reserves). None on other devices."""
    if dev.type == "cuda":
        energy_histogram(torch.randn(1000, device=dev, requires_grad=True), 0.3).backward()  # load kernels first
        theta = torch.empty(n, device=dev).normal_(generator=torch.Generator(dev).manual_seed(0))
        w = 0.3 * theta.std().item()
        theta.requires_grad_(True)
        sync(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        energy_histogram(theta, w).backward()  # the gradient is kept alive in theta.grad and counted
        sync(dev)
        return (torch.cuda.max_memory_allocated(dev) - base) / (theta.numel() * 4)
    if dev.type != "cpu" or not os.path.exists("/proc/self/clear_refs"):
        return None
    res = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, str(n), str(Path(__file__).resolve().parents[1])],
        capture_output=True,
        text=True,
        check=True,
    )
    out = json.loads(res.stdout.strip().splitlines()[-1])
    return out["peak_extra_bytes"] / out["tensor_bytes"]


def resnet20():
    """The adapted ResNet-20 (../shared/models/resnet20-cifar10jpeg.pt) if present, else a random init."""
    from landscape.models import build_model, load_model

    ckpt = ROOT.parent / "shared" / "models" / "resnet20-cifar10jpeg.pt"
    return load_model("resnet20", ckpt) if ckpt.exists() else build_model("resnet20")


def interleaved(fns: dict, dev: torch.device, rounds: int, budget_s: float, warm: int = 1, min_rounds: int = 3):
    """Median wall time of each fn (its work on `dev` synchronized), run in rounds (every fn once per round, the
    order rotated each round so none is always first), after `warm` untimed rounds; stops after `rounds` rounds,
    or once `budget_s` is spent and `min_rounds` are done. Returns (medians, rounds done)."""
    names, times = list(fns), {k: [] for k in fns}
    t_start, r = time.perf_counter(), 0
    while r < warm + rounds and (r < warm + min_rounds or time.perf_counter() - t_start < budget_s):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            sync(dev)
            t0 = time.perf_counter()
            fns[name]()
            sync(dev)
            if r >= warm:
                times[name].append(time.perf_counter() - t0)
        r += 1
    return {k: statistics.median(v) for k, v in times.items()}, r - warm


def step_overhead(quick: bool, dev: torch.device, threads: int = 0) -> dict:
    """One soft-quant training step vs one plain step on ResNet-20 (batch 128 of random CIFAR-sized inputs),
    and the coupling penalty alone (forward + backward, all coupled layers) per estimator.

    A step is what `landscape.trainer.Trainer.train_step` does: forward, cross-entropy (+ h-weighted coupling
    penalty, `WeightCoupling.penalty`: the batched estimators), finiteness check, zero_grad, backward,
    SGD Nesterov step (lr 1e-3, momentum 0.9). Each variant trains its own copy of the model. Steps are
    interleaved (median of many rounds), at `threads` torch threads (0: torch's default, as training runs;
    not --threads). The coupling-only timings are taken at that count and at 1 thread, batched and as the
    per-layer loop (`WeightCoupling.layer_energy` on every layer). On an oversubscribed machine (more runnable
    threads than cores, see "loadavg") multi-threaded timings are dominated by threads waiting for each other.
    Model and batch live on `dev`; off the CPU the 1-thread coupling row is skipped ("one_thread": None).
    """
    import copy

    import torch.nn.functional as F

    from landscape.compress import WeightCoupling, WeightCouplingConfig

    saved, threads = torch.get_num_threads(), threads or DEFAULT_THREADS
    torch.set_num_threads(threads)
    try:
        base = resnet20().to(dev)
        g = torch.Generator().manual_seed(0)  # drawn on the CPU: the same batch on every device
        x, y = torch.randn(128, 3, 32, 32, generator=g).to(dev), torch.randint(0, 10, (128,), generator=g).to(dev)
        runs = {}
        for name in ("plain", "histogram", "sorted"):
            model = copy.deepcopy(base).train()
            comp = None if name == "plain" else WeightCoupling(WeightCouplingConfig(estimator=name))
            if comp is not None:
                comp.prepare(model)
            opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
            runs[name] = (model, comp, opt)

        def step(model, comp, opt):
            task = F.cross_entropy(model(x), y)
            loss = task if comp is None else task + comp.penalty(model)
            if not torch.isfinite(loss):
                raise RuntimeError(f"loss is {loss.item()}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        steps, step_rounds = interleaved(
            {k: partial(step, *v) for k, v in runs.items()},
            dev,
            rounds=6 if quick else 30,
            budget_s=10 if quick else 150,
            warm=0 if quick else 1,  # quick: no warm-up round, and as few as 2 rounds on a slow machine
            min_rounds=2 if quick else 3,
        )

        def coupling_only(model, comp, per_layer):
            params = comp.selected(model)
            if per_layer:
                e = sum(sc.h * comp.layer_energy(k, params[k].flatten()) for k, sc in comp.scales.items())
            else:
                e = comp.penalty(model)
            e.backward()
            for p in params.values():
                p.grad = None

        layers = {}
        # the 1-thread row is about torch's CPU threads: CPU only
        for n_threads in sorted({threads, 1} if dev.type == "cpu" else {threads}, reverse=True):
            torch.set_num_threads(n_threads)
            times, rounds = interleaved(
                {
                    f"{est}{suffix}": partial(coupling_only, runs[est][0], runs[est][1], suffix != "")
                    for est in ("histogram", "sorted")
                    for suffix in ("", "_per_layer")
                },
                dev,
                rounds=10 if quick else 40,
                budget_s=3 if quick else 30,
                min_rounds=3 if quick else 5,
            )
            layers[n_threads] = {
                "histogram_s": times["histogram"],
                "sorted_s": times["sorted"],
                "sorted_over_histogram": times["sorted"] / times["histogram"],
                "histogram_per_layer_s": times["histogram_per_layer"],
                "sorted_per_layer_s": times["sorted_per_layer"],
                "threads": n_threads,
                "rounds": rounds,
            }
    finally:
        torch.set_num_threads(saved)
    plain = steps["plain"]
    scales = runs["sorted"][1].scales
    return {
        "default_estimator": WeightCouplingConfig().estimator,
        "threads": threads,
        "loadavg": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "cpus": os.cpu_count(),
        "step_rounds": step_rounds,
        "plain_step_s": plain,
        "histogram_step_s": steps["histogram"],
        "sorted_step_s": steps["sorted"],
        "ratio": {"histogram": steps["histogram"] / plain, "sorted": steps["sorted"] / plain},
        "resnet20_layers": {
            "n_layers": len(scales),
            "n_weights": sum(sc.n for sc in scales.values()),
            **layers[threads],
            "one_thread": layers.get(1),
        },
    }


def fmt(v, spec):
    return format("-", f">{spec.split('.')[0]}") if v is None else format(v, spec)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, fewer repeats (< 60 s)")
    ap.add_argument("--device", default="cpu",
                    help="torch device the timed work runs on, e.g. cpu, cuda, cuda:1 (default: cpu)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    ap.add_argument("--out", default=None, help="also write the JSON object to this file")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: per-core timings, robust on a shared machine; "
        "0 keeps torch's default)",
    )
    ap.add_argument(
        "--step-threads",
        type=int,
        default=0,
        help=f"torch threads for the ResNet-20 training-step comparison (default 0: torch's default, "
        f"{DEFAULT_THREADS} here, as training runs)",
    )
    args = ap.parse_args(argv)
    try:
        dev = cli.device(args.device)
    except LandscapeError as e:
        ap.error(str(e))
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    rows, prefix_rows = coupling_rows(args.quick, dev)
    result = {
        "coupling": rows,
        "peak_mem_ratio": peak_mem_ratio(dev),
        "peak_mem_measure": PEAK_MEASURE.get(dev.type),
        "histogram_prefix": prefix_rows,
        "layers": layer_timings(args.quick, dev),
        "threads": torch.get_num_threads(),
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type,
    }
    step = step_overhead(args.quick, dev, args.step_threads)
    result["step_overhead"] = step["ratio"][step["default_estimator"]]  # the issue's schema: one number
    result["resnet20_layers"] = step.pop("resnet20_layers")
    result["step_overhead_by_estimator"] = step
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    if args.json:
        print(json.dumps(result))
        return
    print(f"device: {result['device']} ({result['device_name']})")
    print(f"coupling energy + gradient, float32, w = 0.3 std, torch threads = {result['threads']}")
    head = f"{'estimator':<17}{'n':>10}{'time_s':>11}{'exact_s':>10}{'speedup':>10}"
    head += f"{'E rel err':>11}{'F rel err':>11}"
    print(head + "  reference")
    for r in rows + prefix_rows:
        print(
            f"{r['estimator']:<17}{r['n']:>10}{r['time_s']:>11.5f}{fmt(r['exact_time_s'], '10.3f')}"
            f"{fmt(r['speedup'], '10.1f')}{fmt(r['energy_rel_err'], '11.2e')}"
            f"{fmt(r['force_rel_err'], '11.2e')}"
            f"  {r['reference'] or '-'}"
        )
    print(
        "(median of up to 3 (--quick) or 7 runs within a 2 s / 20 s budget per cell, at least 1; errors vs "
        "exact in float64 on the same float32 values, or vs sorted in float64 where exact is infeasible)"
    )
    print(
        f"\nhistogram peak extra memory at n = 1e7 (incl. the returned gradient): "
        f"{fmt(result['peak_mem_ratio'], '.2f')} x the tensor's bytes "
        f"({result['peak_mem_measure'] or 'measured on CPU and CUDA only'})"
    )
    print("\nper-layer energy + gradient, min over repeats [ms]:")
    sizes = list(next(iter(result["layers"].values()))["per_layer_s"])
    print(f"{'estimator':<17}" + "".join(f"{n:>9}" for n in sizes) + f"{'ResNet-20 step':>16}")
    for name, v in result["layers"].items():
        print(
            f"{name:<17}"
            + "".join(f"{v['per_layer_s'][n] * 1e3:>9.3f}" for n in sizes)
            + f"{v['resnet20_step_s'] * 1e3:>16.2f}"
        )
    lay = result["resnet20_layers"]
    print(
        f"\ncoupling penalty alone, all {lay['n_layers']} coupled ResNet-20 layers "
        f"({lay['n_weights']} weights), energy + gradient per training step [ms]:"
    )
    print(f"{'threads':<9}{'estimator':<11}{'batched':>9}{'per-layer loop':>16}{'median of':>11}")
    one = lay["one_thread"]
    for row in [lay] + ([one] if one is not None and one["threads"] != lay["threads"] else []):
        for est in ("histogram", "sorted"):
            print(
                f"{row['threads']:<9}{est:<11}{row[est + '_s'] * 1e3:>9.2f}"
                f"{row[est + '_per_layer_s'] * 1e3:>16.2f}{row['rounds']:>11}"
            )
        print(f"{row['threads']:<9}sorted / histogram (batched): {row['sorted_over_histogram']:.2f}")
    if one is None:
        print(f"1 thread: skipped on {result['device']} (torch's thread count is a CPU setting: CPU only)")
    print(
        f"\none training step, ResNet-20, batch 128, torch threads = {step['threads']} "
        f"({step['cpus']} cpus, load average {fmt(step['loadavg'], '.1f')}), "
        f"median of {step['step_rounds']} interleaved rounds:"
    )
    print(f"{'plain':<11}{step['plain_step_s'] * 1e3:>10.1f} ms")
    for est in ("histogram", "sorted"):
        mark = "  (default)" if est == step["default_estimator"] else ""
        print(f"{est:<11}{step[est + '_step_s'] * 1e3:>10.1f} ms   {step['ratio'][est]:.3f} x plain{mark}")


if __name__ == "__main__":
    main()
