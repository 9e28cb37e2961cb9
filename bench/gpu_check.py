"""The GPU check: everything that can differ between the CPU and an accelerator, in one go, as one table.

  python bench/gpu_check.py --device cuda [--quick] [--json] [--out FILE]      (make gpu-check DEVICE=cuda)

Rows (each with its result, its target and ok / FAIL / n/a):
  coupling     energy and force of every estimator on the device vs the CPU (float32, one layer of N weights);
               the random-draw estimators (subsampled, subset) draw on the device's own generator, so they are
               judged by their mean over draws against the exact energy instead (within 4 standard errors)
  train step   one soft-quant step of the reference ResNet-20 (batch 128) on the device vs the CPU, under
               --deterministic (TF32 off): task loss and every gradient
  speed        soft-quant training images/s on the device: eager fp32, torch.compile, bf16 autocast, deterministic
               (medians of timed steps after warm-up, synchronized); on --quick, compile is skipped
  host syncs   (CUDA) a plain training step and its next batch under torch.cuda.set_sync_debug_mode("error");
               the syncs each method's penalty makes, counted under "warn"
  methods      a short run of every method (`landscape.compress_model`): finite, clamped accuracy, mean bits
  evaluate     the reference model on the whole test set: accuracy 0.881 ± 0.001
  analyses     a path, an equal-norm perturbation, a states-plane surface and the top Hessian eigenvalue on the
               device vs the CPU (the eigenvalue within 1%)
  resume       4 steps straight vs 2 + resume from the trainer's state: bit-identical (deterministic)
  study -j 2   a 2-point grid study run by 2 workers on the device

On --device cpu (what CI runs, through tests/scripts/test_gpu_check.py) every check that compares the device with
the CPU says n/a and the others run, so the script itself is tested. Exit status 1 when a check fails. Needs the
reference model and CIFAR-10 from ../shared (or --data). The README's "GPU" section holds the table of the last
run on a GPU, with the card's name.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

import landscape as ls  # noqa: E402
from landscape import cli, coupling  # noqa: E402
from landscape.compress import METHODS, WeightCoupling, WeightCouplingConfig, make_compressor  # noqa: E402
from landscape.data import Batches, load_cifar10  # noqa: E402
from landscape.models import load_model  # noqa: E402
from landscape.trainer import TrainConfig, Trainer  # noqa: E402

REFERENCE = REPO.parent / "shared" / "models" / "resnet20-cifar10jpeg.pt"
REFERENCE_ACCURACY = 0.881  # README: `python -m landscape.evaluate` on the whole test set
# the short run of every method: settings that make each one train and clamp at a few bits
METHOD_SETTINGS = {"weight-coupling": {"h": 0.05, "w": 0.3}, "ptq": {"bits": 4}, "centroid": {"bits": 3},
                   "dsmm": {"bits": 4}, "vq": {"codebook_bits": 6, "dim": 2}, "input-bitwise": {"input_bits": 4},
                   "lsq": {"bits": 4}, "parq": {"bits": 4}, "binaryrelax": {"bits": 4}, "dkm": {"bits": 4},
                   "gptq": {"bits": 4}, "vq-nas": {"budget_bits": 3.0, "size_penalty": 0.1, "search_steps": 20}}


class Table:
    def __init__(self):
        self.rows: list[dict] = []

    def add(self, check: str, result: str, target: str, ok: bool | None, **numbers) -> None:
        self.rows.append({"check": check, "result": result, "target": target,
                          "ok": None if ok is None else bool(ok), **numbers})
        mark = "n/a" if ok is None else ("ok" if ok else "FAIL")
        print(f"  {check}: {result} [{mark}]", file=sys.stderr, flush=True)

    def markdown(self) -> str:
        lines = ["| check | result | target | |", "|---|---|---|---|"]
        for r in self.rows:
            mark = "n/a" if r["ok"] is None else ("ok" if r["ok"] else "**FAIL**")
            lines.append(f"| {r['check']} | {r['result']} | {r['target']} | {mark} |")
        return "\n".join(lines)


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def energy_and_force(fn, theta: torch.Tensor, w: float, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    t = theta.clone().requires_grad_(True)
    energy = fn(t, w, **kw)
    energy.backward()
    return energy.detach(), t.grad


# ------------------------------------------------------------------------------------------------------- checks


def check_coupling(table: Table, dev: torch.device, n: int) -> None:
    theta = torch.randn(n, generator=torch.Generator().manual_seed(0))
    w = 0.3 * float(theta.std())
    for name in ("exact", "sorted", "histogram"):
        fn = coupling.ESTIMATORS[name]
        e_cpu, f_cpu = energy_and_force(fn, theta, w)
        e_dev, f_dev = energy_and_force(fn, theta.to(dev), w)
        if dev.type == "cpu":
            table.add(f"coupling {name}", f"E = {float(e_dev):.6g} (N = {n})", "device vs CPU", None)
            continue
        de, df = abs(float(e_dev) - float(e_cpu)) / abs(float(e_cpu)), rel(f_dev, f_cpu)
        table.add(f"coupling {name}", f"energy rel. diff {de:.1e}, force {df:.1e}", "≤ 1e-4 each (float32)",
                  de <= 1e-4 and df <= 1e-4, energy_rel_diff=de, force_rel_diff=df)
    exact = float(coupling.energy_exact(theta.double(), w))
    for name, kw in (("subsampled", {"n_pairs": n}), ("subset", {})):
        g = torch.Generator(device=dev).manual_seed(0)
        draws = torch.stack([coupling.ESTIMATORS[name](theta.to(dev), w, generator=g, **kw).double().cpu()
                             for _ in range(100)])
        mean, se = float(draws.mean()), float(draws.std() / len(draws) ** 0.5)
        z = (mean - exact) / se
        table.add(f"coupling {name} on {dev.type}", f"mean of 100 draws {mean:.6g} vs exact {exact:.6g} "
                  f"(z = {z:+.1f})", "z within ±4", abs(z) <= 4, z=z)


def soft_quant_trainer(model, train, dev, **config) -> Trainer:
    cfg = TrainConfig(**{"epochs": 1, "batch_size": 128, "stats_every": 10**6, "compile": "off",
                         "device": str(dev), **config})
    return Trainer(model, train, cfg, WeightCoupling(WeightCouplingConfig(h=0.05, w=0.3)))


def check_train_step(table: Table, dev: torch.device, model, train) -> None:
    if dev.type == "cpu":
        table.add("train step", "device is the CPU", "device vs CPU", None)
        return
    results = {}
    for where in ("cpu", dev):
        t = soft_quant_trainer(model, train, where, deterministic=True)
        x, y = next(iter(t.batches))
        scalars = t.train_step(x, y)
        results[str(where)] = (scalars, {n: p.grad.detach().cpu() for n, p in t.model.named_parameters()})
    (a, ga), (b, gb) = results["cpu"], results[str(dev)]
    dl = abs(b["task_loss"] - a["task_loss"]) / abs(a["task_loss"])
    dp = abs(b["compression_loss"] - a["compression_loss"]) / max(abs(a["compression_loss"]), 1e-30)
    dg = max(rel(gb[n], ga[n]) for n in ga)
    table.add("train step", f"task loss rel. diff {dl:.1e}, penalty {dp:.1e}, worst gradient {dg:.1e}",
              "≤ 1e-4, ≤ 1e-4, ≤ 1e-3", dl <= 1e-4 and dp <= 1e-4 and dg <= 1e-3, loss_rel_diff=dl,
              penalty_rel_diff=dp, grad_rel_diff=dg)


def images_per_second(trainer: Trainer, dev: torch.device, steps: int) -> float:
    batches = iter(trainer.batches)
    x, y = next(batches)
    for _ in range(2):  # warm-up (a compile happens here)
        trainer.step_scalars(x, y)
    times = []
    for _ in range(steps):
        sync(dev)
        t0 = time.perf_counter()
        trainer.step_scalars(x, y)
        sync(dev)
        times.append(time.perf_counter() - t0)
    return len(x) / statistics.median(times)


def check_speed(table: Table, dev: torch.device, model, train, steps: int, quick: bool) -> None:
    options = {"eager fp32": {}, "bf16 autocast": {"precision": "bf16"}, "deterministic": {"deterministic": True}}
    if not quick:
        options["torch.compile"] = {"compile": "on"}
    rates = {}
    for label, config in options.items():
        rates[label] = images_per_second(soft_quant_trainer(model, train, dev, **config), dev, steps)
    base = rates["eager fp32"]
    text = ", ".join(f"{k} {v:,.0f} ({v / base:.2f}×)" for k, v in rates.items())
    table.add("speed (soft-quant images/s)", text + ("; compile skipped (--quick)" if quick else ""), "report",
              None, images_per_second=rates)


def check_host_syncs(table: Table, dev: torch.device, model, train) -> None:
    if dev.type != "cuda":
        table.add("host syncs", f"not measurable on {dev.type}", "0 in a plain step (CUDA)", None)
        return
    cfg = TrainConfig(epochs=1, batch_size=128, stats_every=10**6, compile="off", device=str(dev))
    plain = Trainer(model, train, cfg)
    batches = plain.batches.iterate()
    x, y = next(batches)
    plain.step_scalars(x, y)  # warm-up: cuDNN autotuning, allocator
    sync(dev)
    try:
        torch.cuda.set_sync_debug_mode("error")
        plain.step_scalars(x, y)
        x, y = next(batches)
        ok, what = True, "none in a step and its next batch"
    except RuntimeError as e:
        ok, what = False, str(e).splitlines()[0]
    finally:
        torch.cuda.set_sync_debug_mode(0)
    table.add("host syncs: plain step", what, "0", ok)
    counts = {}
    for method, settings in METHOD_SETTINGS.items():
        t = Trainer(model, train, cfg, make_compressor(method, settings))
        t.step_scalars(x, y)
        sync(dev)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                t.step_scalars(x, y)
            finally:
                torch.cuda.set_sync_debug_mode(0)
        counts[method] = sum("synchroniz" in str(w.message) for w in caught)
    table.add("host syncs per step, by method", ", ".join(f"{k} {v}" for k, v in counts.items()), "report", None,
              syncs=counts)


def check_methods(table: Table, dev: torch.device, model, train, test, folder: Path) -> Path:
    missing = sorted(set(METHODS) - set(METHOD_SETTINGS))
    if missing:  # a method added to the registry must be added here too
        raise ValueError(f"gpu_check has no settings for method(s) {', '.join(missing)} (METHOD_SETTINGS)")
    train_batches = Batches(train, 64, train=True, device=dev, drop_last=True)
    runs = {}
    for method, settings in METHOD_SETTINGS.items():
        out = folder / f"{method}.h5"
        run = ls.compress_model(model, train_batches, test, out=out, method=method, epochs=1, device=dev,
                                progress=False, checkpoint_every=1000, **settings)
        clamped = run.evals()["clamped"]
        bits = _mean_bits(run)
        ok = all(torch.isfinite(v.float()).all() for v in run.state("compressed").values())
        table.add(f"method {method}", f"{len(train_batches)} steps, clamped accuracy "
                  f"{100 * clamped['accuracy']:.2f}% on {clamped['n']}, {bits:.2f} bits", "finite, runs", ok,
                  accuracy=clamped["accuracy"], bits=bits)
        runs[method] = out
    return runs["weight-coupling"]


def _mean_bits(run) -> float:
    import h5py

    with h5py.File(run.path, "r") as f:
        return float(f["final/bits"].attrs["mean_effective"])


def check_evaluate(table: Table, dev: torch.device, model, test_full) -> None:
    result = ls.evaluate_model(model.to(dev), Batches(test_full, 500, train=False, device=dev))
    acc = result["accuracy"]
    table.add("evaluate reference model", f"accuracy {acc:.4f}, loss {result['loss']:.4f} on {result['n']}",
              f"{REFERENCE_ACCURACY} ± 0.001", abs(acc - REFERENCE_ACCURACY) <= 0.001 and result["n"] == 10000,
              accuracy=acc, loss=result["loss"])


def check_analyses(table: Table, dev: torch.device, template, run_path: Path, test, limit_hessian: int) -> None:
    run = ls.open_run(run_path)
    pre, clamped = run.state("pretrained"), run.state("clamped")
    data = list(test)
    out = {}
    for where in ("cpu", dev) if dev.type != "cpu" else (dev,):
        model = run.model("pretrained", template=template).to(where)
        path = ls.loss_path(model, [pre, clamped], data, points=3)
        perturb = ls.perturbation_test(model, clamped, data, directions=2, bn="keep")
        surface = ls.loss_surface(model, data, plane="states", states=[pre, run.state("compressed"), clamped],
                                  resolution=3)
        hessian = ls.hessian_spectrum(model, data[: max(1, limit_hessian // len(data[0][1]))], top_k=1)
        top = next(iter(hessian.states.values()))["top"]
        out[str(where)] = {"path": torch.as_tensor(path.metrics["test"]["loss"]),
                           "perturb": torch.as_tensor(perturb.random_delta_loss),
                           "surface": torch.as_tensor(surface.loss), "top": float(top[0] if isinstance(top, list)
                                                                                 else top)}
    if dev.type == "cpu":
        got = out[str(dev)]
        table.add("analyses", f"path, perturbation, surface ran; λ_max {got['top']:.4g}", "device vs CPU", None)
        return
    a, b = out["cpu"], out[str(dev)]
    diffs = {k: float((b[k] - a[k]).abs().max()) for k in ("path", "perturb", "surface")}
    dtop = abs(b["top"] - a["top"]) / abs(a["top"])
    table.add("analyses: path / perturbation / surface", ", ".join(f"{k} max abs. Δloss {v:.1e}" for k, v in
                                                                   diffs.items()), "≤ 1e-3 nats each",
              all(v <= 1e-3 for v in diffs.values()), **{f"{k}_max_diff": v for k, v in diffs.items()})
    table.add("analyses: top Hessian eigenvalue", f"{b['top']:.4g} vs CPU {a['top']:.4g} ({100 * dtop:.2f}%)",
              "within 1%", dtop <= 0.01, top_rel_diff=dtop)


def check_resume(table: Table, dev: torch.device, model, train) -> None:
    sub = train.subset(4 * 64)
    config = {"batch_size": 64, "deterministic": True}
    straight = soft_quant_trainer(model, sub, dev, **config)
    straight.fit()
    first = soft_quant_trainer(model, sub, dev, **config)
    for x, y in first.batches.iterate():
        first.step_scalars(x, y)
        if first.step == 2:
            break
    resumed = soft_quant_trainer(model, sub, dev, **config)
    resumed.load_state_dict(copy.deepcopy(first.state_dict()))
    resumed.fit()
    diff = max(float((a - b).abs().max()) for a, b in zip(straight.model.state_dict().values(),
                                                         resumed.model.state_dict().values(), strict=True))
    table.add("resume", f"4 steps straight vs 2 + resume: max abs. difference {diff:.1e}", "0 (bit-identical)",
              diff == 0, max_diff=diff)


def check_study(table: Table, dev: torch.device, folder: Path, data: str | None) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    data_args = ["--data", data] if data else []
    base = [sys.executable, "-m", "landscape.study"]
    create = [*base, "create", "gpu-check", "--dir", str(folder), "--grid", "h=0.01,0.05", "--seeds", "0",
              "--arch", "resnet20", "--checkpoint", str(REFERENCE), "--epochs", "1", "--limit-train", "128",
              "--train-batch-size", "64", "--limit-test", "200"]
    t0 = time.perf_counter()
    made = subprocess.run(create, capture_output=True, text=True, env=env)
    ran = made if made.returncode else subprocess.run(
        [*base, "run", "gpu-check", "--dir", str(folder), "-j", "2", "--device", str(dev), *data_args],
        capture_output=True, text=True, env=env)
    runs = sorted((folder / "gpu-check" / "runs").glob("*.h5")) if not ran.returncode else []
    devices = sorted({ls.open_run(p).config["train"]["device"] for p in runs})
    ok = ran.returncode == 0 and len(runs) == 2
    result = (f"2 runs in {time.perf_counter() - t0:.0f} s on {', '.join(devices)}" if ok else
              f"failed: {(ran.stderr or made.stderr).strip().splitlines()[-1:]}")
    table.add("study -j 2", result, "both points done", ok)


# --------------------------------------------------------------------------------------------------------- main


def parser() -> argparse.ArgumentParser:
    p = cli.Parser("bench/gpu_check.py", __doc__)
    p.add_argument("--device", default="cuda", help="the device to check against the CPU (default: cuda)")
    p.add_argument("--quick", action="store_true", help="small sizes, no torch.compile (what CI runs on CPU)")
    p.add_argument("--data", default=None, help="CIFAR-10 folder (default: see landscape.data)")
    p.add_argument("--json", action="store_true", help="print the rows as one JSON object instead of the table")
    p.add_argument("--out", default=None, help="also write the JSON to this file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    dev = cli.device(args.device)
    if args.out:
        cli.check_out(args.out, force=True)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type
    print(f"gpu check on {name} (torch {torch.__version__}){' --quick' if args.quick else ''}", file=sys.stderr)
    started = time.perf_counter()
    train_split, test_split = load_cifar10(args.data)
    model = load_model("resnet20", str(REFERENCE))
    n_test = 256 if args.quick else 2000
    test = Batches(test_split.subset(n_test), 128 if args.quick else 500, train=False, device=dev)
    train = train_split.subset(512 if args.quick else 5120)
    table = Table()
    torch.manual_seed(0)
    check_coupling(table, dev, 4096 if args.quick else 20_000)
    check_train_step(table, dev, model, train)
    check_speed(table, dev, model, train, 3 if args.quick else 20, args.quick)
    check_host_syncs(table, dev, model, train)
    with tempfile.TemporaryDirectory() as tmp:
        wc_run = check_methods(table, dev, model, train.subset(128 if args.quick else 1280), test, Path(tmp))
        check_evaluate(table, dev, copy.deepcopy(model), test_split)
        check_analyses(table, dev, model, wc_run, test, 128 if args.quick else 1000)
        check_resume(table, dev, model, train)
        check_study(table, dev, Path(tmp) / "studies", args.data)
    seconds = time.perf_counter() - started
    failed = [r["check"] for r in table.rows if r["ok"] is False]
    report = {"device": str(dev), "name": name, "torch": torch.__version__, "quick": args.quick,
              "seconds": round(seconds, 1), "failed": failed, "rows": table.rows}
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    if args.json:
        cli.print_json(report)
    else:
        print(f"\ndevice: {name}; torch {torch.__version__}; {seconds:.0f} s\n")
        print(table.markdown())
        print(f"\n{len(failed)} failed" + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    cli.run(main, "gpu_check")
