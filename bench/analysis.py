"""Benchmark the analysis layer on the adapted ResNet-20 and CIFAR-10 test images.

Rows (best of `repeats` interleaved timings; rates in path points per second, every point one pass over the
same N test images):
  path_vs_bare
      landscape.analysis.paths.evaluate_path (defaults: BN keep, fast forward) vs bare `model(x)` + cross-entropy over
      the same points and data in a model that never changes (target ≥ 0.9×). Also shown: evaluate_path with
      fast=False (the pure overhead of writing each state into the model).
  path_vs_loss_landscapes
      vs loss_landscapes.linear_interpolation (PyPI `loss-landscapes`) on the same model, data, batches and
      number of forward passes (target ≥ 1.5×). Its values are not a BN-correct path: it moves parameters only
      (never BN running statistics) and evaluates at α = k/P, k = 1…P (never α = 0: it steps off our α grid);
      both are shown on the path public ResNet-20 → adapted checkpoint.
  max_abs_loss_diff
      our path's losses vs a plain reference loop (interpolated state dict loaded into a fresh model,
      model(x)) on the same points (target ≤ 1e-5).
  perturb_cost_per_direction
      marginal cost of one more random direction in landscape.analysis.perturbation.perturbation_test,
      (T(M₂) − T(M₁)) / (M₂ − M₁) (draw, scale, write into the model, evaluate), relative to one evaluation
      pass of the same forward, BN keep (target ≤ 1.1×). The default BN recalibrate adds a forward pass over
      the recalibration images per state by design; that cost is shown too.

    python bench/analysis.py [--quick] [--json] [--device cpu]

--device: models, batches and the reference loop run there, loss-landscapes' copy of the model too (it follows
the model's device); every timing synchronizes the device before reading the clock, at start and at end.

`--quick` (N = 200 images in one batch, 4 points, M 1 → 4, best of 3, no recalibration row) takes under a minute
on 2 CPU cores; the full run (N = 1000 in batches of 500, 11 points, M 2 → 10, best of 3) about 10 minutes.
Timings on a shared machine are noisy: every row is the best of interleaved repeats, so background load makes
the ratios noisier, not systematically better.
loss-landscapes is installed only for the benchmarks (`pip install -e '.[bench]'`); without it
that row is skipped with a message and its JSON value is null.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from landscape import cli  # noqa: E402
from landscape.analysis.evaluator import StateEvaluator  # noqa: E402
from landscape.analysis.paths import PathConfig, evaluate_path  # noqa: E402
from landscape.analysis.perturbation import PerturbConfig, perturbation_test  # noqa: E402
from landscape.data import Batches, load_cifar10  # noqa: E402
from landscape.metrics import evaluate  # noqa: E402
from landscape.models import build_model, load_model, load_state  # noqa: E402

SHARED = REPO.parent / "shared"
START = SHARED / "models" / "resnet20-12fca82f.th"  # public ResNet-20
END = SHARED / "models" / "resnet20-cifar10jpeg.pt"  # the same fine-tuned on the JPEG copy


def sync(dev: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read after it times the work, not its launch."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn, dev: torch.device) -> tuple[float, object]:
    """(wall seconds, result) of fn(), its work on `dev` synchronized before the clock is read at start and end."""
    sync(dev)
    t0 = time.perf_counter()
    out = fn()
    sync(dev)
    return time.perf_counter() - t0, out


def bare(model, batches: list, points: int) -> list[float]:
    """`points` passes of model(x) + cross-entropy over the batches, the model never changing."""
    losses = []
    with torch.no_grad():
        for _ in range(points):
            total, n = 0.0, 0
            for x, y in batches:
                total += F.cross_entropy(model(x), y, reduction="sum").item()
                n += len(y)
            losses.append(total / n)
    return losses


def reference(states: list[dict], points: int, batches: list, device) -> np.ndarray:
    """A fresh model per point, the interpolated state dict loaded into it, model(x)."""
    a, b = states
    out = []
    for j in range(points):
        w = j / (points - 1)
        sd = {k: (a[k] * (1 - w) + b[k] * w if a[k].is_floating_point() else (a[k] if w < 0.5 else b[k]))
              for k in a}
        model = load_state(build_model("resnet20"), sd).to(device).eval()
        out.append(evaluate(model, batches)["loss"])
    return np.array(out)


def loss_landscapes_path(start, end, batches: list, points: int):
    """(losses, alphas) of loss_landscapes.linear_interpolation with `points` steps over the same batches;
    None when the package is missing."""
    try:
        import loss_landscapes
        from loss_landscapes.metrics import Metric
    except ImportError:
        return None

    class BatchedLoss(Metric):  # the package's Loss takes one tensor; this one walks our batches
        def __call__(self, model_wrapper) -> float:
            total, n = 0.0, 0
            for x, y in batches:
                total += F.cross_entropy(model_wrapper.forward(x), y, reduction="sum").item()
                n += len(y)
            return total / n

    with torch.no_grad():
        losses = loss_landscapes.linear_interpolation(start, end, BatchedLoss(), steps=points,
                                                      deepcopy_model=True)
    return np.asarray(losses), np.arange(1, points + 1) / points


def main(argv: list[str] | None = None) -> int:
    p = cli.Parser("bench/analysis.py", __doc__)
    p.add_argument("--quick", action="store_true", help="N=200 images, 4 points, M 1 → 4, 3 repeats (< 1 min)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the four ratios and the device")
    p.add_argument("--device", default="cpu",
                   help="torch device the timed work runs on, e.g. cpu, cuda, cuda:1 (default: cpu)")
    p.add_argument("--data", default=None, help="CIFAR-10 folder (default: see landscape.data)")
    args = p.parse_args(argv)
    quick = (200, 200, 4, (1, 4), 3)  # images, batch size, points, (M₁, M₂), repeats
    n_images, batch, points, (m1, m2), repeats = quick if args.quick else (1000, 500, 11, (2, 10), 3)
    dev = cli.device(args.device)
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type
    log = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))

    start = load_model("resnet20", START).to(dev).eval()
    end = load_model("resnet20", END).to(dev).eval()
    states = [{k: v.clone() for k, v in m.state_dict().items()} for m in (start, end)]
    train, test = load_cifar10(args.data)
    # normalized once and reused by every row, so no row pays for data preparation
    batches = list(Batches(test.subset(n_images), batch, train=False, device=dev))
    bn_data = list(Batches(train.subset(2 * batch), batch, train=False, device=dev))
    log(f"{n_images} test images, {points} points, directions {m1} → {m2}, best of {repeats}, device {dev}")

    def path(fast: bool):
        return evaluate_path(start, states, {"test": batches}, PathConfig(points=points, fast=fast))

    def perturb(m: int, bn: str):
        data = bn_data if bn == "recalibrate" else None
        return perturbation_test(start, states[1], batches, PerturbConfig(directions=m, bn=bn), bn_data=data)

    times: dict[str, list[float]] = {k: [] for k in ("path", "path_plain", "bare", "ll", "eval", "m1", "m2",
                                                      "r1", "r2")}
    path_losses = ll = None
    ev = StateEvaluator(start)
    ev.evaluate(batches)  # warm-up of the folded forward
    for r in range(repeats):
        log(f"repeat {r + 1}/{repeats}")
        t, res = timed(lambda: path(True), dev)
        times["path"].append(t)
        path_losses = res.metrics["test"]["loss"]
        times["path_plain"].append(timed(lambda: path(False), dev)[0])
        times["bare"].append(timed(lambda: bare(start, batches, points), dev)[0])
        t, ll = timed(lambda: loss_landscapes_path(start, end, batches, points), dev)
        if ll is not None:
            times["ll"].append(t)
        times["eval"].append(timed(lambda: ev.evaluate(batches), dev)[0])
        times["m1"].append(timed(lambda: perturb(m1, "keep"), dev)[0])
        times["m2"].append(timed(lambda: perturb(m2, "keep"), dev)[0])
        if not args.quick:  # the recalibrating default, for the record (not a target)
            times["r1"].append(timed(lambda: perturb(m1, "recalibrate"), dev)[0])
            times["r2"].append(timed(lambda: perturb(m2, "recalibrate"), dev)[0])
    ref = reference(states, points, batches, dev)
    best = {k: min(v) if v else None for k, v in times.items()}

    rate = {k: points / best[k] for k in ("path", "path_plain", "bare")}
    max_diff = float(np.max(np.abs(path_losses - ref)))
    per_direction = max(best["m2"] - best["m1"], 0.0) / (m2 - m1)
    per_direction_recal = None if args.quick else max(best["r2"] - best["r1"], 0.0) / (m2 - m1)
    result = {"path_vs_bare": rate["path"] / rate["bare"],
              "path_vs_loss_landscapes": (best["ll"] / best["path"]) if ll is not None else None,
              "max_abs_loss_diff": max_diff,
              "perturb_cost_per_direction": per_direction / best["eval"],
              "device": str(dev), "device_name": device_name}
    if args.json:
        cli.print_json(result)
        return 0

    def row(name, value, target, note=""):
        shown = "skipped" if value is None else (f"{value:.3g}" if abs(value) < 1e-2 else f"{value:.2f}")
        print(f"| {name} | {shown} | {target} | {note} |")

    print(f"\nResNet-20 public → adapted, {n_images} CIFAR-10 test images (batches of {batch}), "
          f"{points} points, "
          f"device: {dev} ({device_name}) (best of {repeats}; wall times in s)\n")
    print("| quantity | value | target | detail |\n|---|---|---|---|")
    row("path_vs_bare", result["path_vs_bare"], "≥ 0.9",
        f"path {rate['path']:.2f} pts/s (fast forward), bare "
        f"model(x) {rate['bare']:.2f} pts/s; path with fast=False {rate['path_plain']:.2f} pts/s "
        f"({rate['path_plain'] / rate['bare']:.2f}× bare)")
    if ll is not None:
        row("path_vs_loss_landscapes", result["path_vs_loss_landscapes"], "≥ 1.5",
            f"loss-landscapes {points / best['ll']:.2f} pts/s, same batches and forward passes")
    else:
        row("path_vs_loss_landscapes", None, "≥ 1.5", "loss-landscapes not installed: "
            "`pip install -e '.[bench]'` to run this row")
    row("max_abs_loss_diff", max_diff, "≤ 1e-5", "vs fresh model + interpolated state dict per point")
    recal = ("not measured with --quick" if per_direction_recal is None else
             f"{per_direction_recal:.3f} s = {per_direction_recal / best['eval']:.2f}× a pass")
    row("perturb_cost_per_direction", result["perturb_cost_per_direction"], "≤ 1.1",
        f"BN keep: {per_direction:.3f} s per extra direction vs {best['eval']:.3f} s per evaluation pass; "
        f"BN recalibrate (the default; + {sum(len(y) for _, y in bn_data)} training images forwarded per "
        f"state, by design): {recal}")
    if ll is not None:
        ll_losses, ll_alpha = ll
        ours_alpha = np.linspace(0, 1, points)
        print("\nValues along the path (test loss, nats). loss-landscapes moves the parameters only, keeps "
              "the start model's BN running statistics, and evaluates at α = k/P, k = 1…P:")
        print("| ours α | ours (BN keep) | reference loop | loss-landscapes α | loss-landscapes |\n"
              "|---|---|---|---|---|")
        for i in range(points):
            print(f"| {ours_alpha[i]:.3f} | {path_losses[i]:.4f} | {ref[i]:.4f} | {ll_alpha[i]:.3f} | "
                  f"{ll_losses[i]:.4f} |")
        print(f"\nAt α = 1 the true endpoint (adapted checkpoint) has loss {path_losses[-1]:.4f}; "
              f"loss-landscapes reports "
              f"{ll_losses[-1]:.4f} there (its weights with the public model's BN statistics).")
    return 0


if __name__ == "__main__":
    cli.run(main, "bench/analysis.py")
