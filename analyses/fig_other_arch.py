"""A model this project did not write, end to end: soft quantization of torchvision's MobileNetV2 on CIFAR-10
(the soft-quantization paper's "architecture generalization" check).

Claim tested: the paper's (h, w) = (0.05, 0.3) gives ≈ 3.8 mean effective bits at a small accuracy loss on
ResNet-20 (here: 3.90 bits, 85.74% clamped against 88.10% full precision, the README's headline run). Does the
same setting carry over to MobileNetV2, an architecture with depthwise convolutions (9 weights per output channel),
pointwise 1×1 convolutions, inverted residuals and ReLU6, 2.2M parameters in 53 compressed layers (17 of them
depthwise) instead of 0.27M in 20 — same bits, same small loss, ahead of PTQ at the nearest bit-width?

Steps (each cached in --work-dir, so a rerun after a crash or a kill continues where it stopped and reuses every
finished file; a changed setting gets new files, never a stale one — --limit included, which is recorded in the
run files, so a new --limit trains the soft-quantization runs again):
  1. full precision: torchvision.models:mobilenet_v2 {"num_classes": 10} (the ImageNet layout, total stride
     32, on the 32×32 images as they are: a 1×1 map before pooling) trained from its own initialisation with
     the recipe of `python -m landscape.pretrain` (SGD + Nesterov 0.9, batch 128, weight decay 1e-4, one-cycle
     with 15% warm-up, crop + flip), --pretrain-epochs (10) at peak --pretrain-lr (0.05) on --limit-train images
     (all 50,000); test accuracy on --limit images after every epoch; the trainer state is saved after every
     epoch and a rerun continues from the last one. Or --checkpoint PATH: that model, no pretraining.
  2. soft quantization (weight coupling, histogram estimator, the paper's A.1 fine-tuning: lr 1e-3 constant,
     Nesterov 0.9, batch 128, no weight decay) for --epochs (2) at (0.05, 0.3) and at --setting (default
     0.1,0.45), through the library call behind `python -m landscape.train` (run files, resumed from their last
     checkpoint after a crash), each clamped and also BN-recalibrated on 20 × 128 training images
     (--recalibrate-bn). Why (0.1, 0.45): the next point of the README's Fig. 2 grid towards fewer bits, a
     deeper well (2h) and a wider one (w = 0.45 pulls weights from farther away) — on ResNet-20 after one epoch
     3.63 bits at 81.10% against (0.05, 0.3)'s 4.14 bits at 85.72%; whether MobileNetV2 moves the same way, or
     needs the stronger pull to get near 4 bits at all, is the second half of the question.
  3. PTQ baselines of the full-precision model: uniform, HEQ and k-means at 3 and 4 bits per layer (conv/linear
     weights), as they come and BN-recalibrated on the same 20 × 128 training images.
  4. the linear path pretrained → compressed → clamped of each soft-quantization run (--points per segment,
     BN statistics interpolated) and the equal-norm perturbation baseline of its clamped state (--directions M
     Gaussian directions of the real displacement's global norm, BN re-estimated for every state on --bn-batches
     training batches; analysis/perturbation.py explains why).
  5. figures/other_arch.png: accuracy vs mean bits (soft-quant points, PTQ lines, full precision dashed) as they
     come and BN-recalibrated; loss and accuracy along both paths; the perturbation histograms (ΔL/‖Δθ‖) with
     the real displacement. other_arch.csv (one row per model: kind, setting, mean_bits, mean_storage_bits,
     accuracy and loss as evaluated — clamped for soft quantization, quantized for PTQ, the model itself for full
     precision — and the same BN-recalibrated, accuracy_finetuned of the unclamped soft-quant model, n, source),
     other_arch_paths.csv (setting, alpha, segment, state, loss, accuracy), other_arch_perturb.csv (setting, kind
     real | target_full_state | random, direction, delta_loss, slope, accuracy) and other_arch.config.json
     (budget, seeds, seconds per step, the checkpoint and run files). Prints a verdict line: bits and accuracy at
     (0.05, 0.3) against the best PTQ at the nearest integer bit-width.

Seeds: --seed (0) seeds the initialisation and data order of pretraining, the data order of both soft-quant runs,
and the perturbation directions: one seed per result, so the perturbation spread is the only uncertainty shown
(the README's Fig. 2 study puts the seed-to-seed spread of ResNet-20 at 0.04–0.99 pt and ≤ 0.01 bit). All
evaluations use the same first --limit test images (10,000: the whole test split).

Full budget (estimated from MobileNetV2 steps and evaluations measured on a loaded machine, scaled by ResNet-20's
idle timings: about 1.5 h on 2 idle cores — pretraining ≈ 20 min, soft quantization ≈ 13, PTQ ≈ 9, paths and
perturbation baseline ≈ 40, the last two on the whole test split; 3–5 h at load average 4–6):
  python analyses/fig_other_arch.py
Any other model: --arch package.module:factory --arch-kwargs JSON (--checkpoint to skip pretraining), e.g. the
CIFAR-style MobileNetV2 (the 24-channel stage at stride 1, total stride 16): --arch-kwargs '{"num_classes": 10,
"inverted_residual_setting": [[1,16,1,1],[6,24,2,1],[6,32,3,2],[6,64,4,2],[6,96,3,1],[6,160,3,2],[6,320,1,1]]}'.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import common
import numpy as np
import torch

import landscape as ls
from landscape import cli, plots
from landscape.bn import recalibrate_bn_, recalibration_batches
from landscape.compress.ptq import quantize_model
from landscape.data import Batches
from landscape.models import build_model, load_model, read_checkpoint, resolve_checkpoint, save_checkpoint
from landscape.specs import RunSpec
from landscape.store import Run
from landscape.trainer import Callback, ProgressBar, TrainConfig, Trainer
from landscape.training import run_training

STEM = "other_arch"
PAPER = (0.05, 0.3)
PTQ_METHODS = {"uniform": "uniform PTQ", "heq": "HEQ PTQ", "kmeans": "k-means PTQ"}
PTQ_BITS = (3, 4)
STATES = ["pretrained", "compressed", "clamped"]
RESNET20 = {"bits": 3.90, "accuracy": 0.8574, "full_precision": 0.8810}  # README: the headline run, 4 epochs
# the recipe of python -m landscape.pretrain (its parser's defaults), lr and epochs aside
PRETRAIN = {"batch_size": 128, "momentum": 0.9, "weight_decay": 1e-4, "schedule": "onecycle", "warmup": 0.15}


def setting_arg(text: str) -> tuple[float, float]:
    try:
        h, w = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be H,W (two numbers), got {text!r}") from None
    if not (math.isfinite(h) and math.isfinite(w) and h > 0 and w > 0):
        raise argparse.ArgumentTypeError(f"h and w must be finite and > 0, got {text!r}")
    return h, w


def parser() -> argparse.ArgumentParser:
    p = cli.Parser("analyses/fig_other_arch.py", __doc__)
    p.add_argument("--out-dir", default=str(common.FIGURES),
                   help="where the PNG, CSVs and config JSON go (default: figures/)")
    p.add_argument("--work-dir", default=str(common.REPO / "runs" / STEM),
                   help="where the checkpoint, run files and cached results go (default: runs/other_arch/)")
    p.add_argument("--limit", type=cli.positive_int, default=10_000,
                   help="first N test images for every evaluation (default: 10000, the whole test split)")
    p.add_argument("--force", action="store_true", help="overwrite this script's existing outputs (cached work in "
                   "--work-dir is reused either way)")
    p.add_argument("--json", action="store_true", help="print the output paths and numbers as one JSON object")
    cli.add_data_args(p)
    p.add_argument("--arch", default="torchvision.models:mobilenet_v2",
                   help="package.module:factory (or a CIFAR ResNet name) (default: torchvision.models:mobilenet_v2)")
    p.add_argument("--arch-kwargs", type=cli.json_object, default={"num_classes": 10}, metavar="JSON",
                   help='keyword arguments of the factory (default: \'{"num_classes": 10}\')')
    p.add_argument("--checkpoint", default=None, help="the full-precision model (path, or a public arch name); "
                   "default: train one from scratch into --work-dir")
    p.add_argument("--pretrain-epochs", type=cli.positive_int, default=10,
                   help="epochs of training from scratch (default: 10)")
    p.add_argument("--pretrain-lr", type=float, default=0.05,
                   help="peak learning rate of the one-cycle schedule from scratch (default: 0.05)")
    p.add_argument("--limit-train", type=cli.positive_int, default=None,
                   help="first N training images, for pretraining, soft quantization and BN recalibration "
                        "(default: all 50,000)")
    p.add_argument("--epochs", type=cli.positive_int, default=2, help="soft-quantization epochs (default: 2)")
    p.add_argument("--setting", type=setting_arg, default=(0.1, 0.45), metavar="H,W",
                   help="the second soft-quantization setting, besides the paper's 0.05,0.3 (default: 0.1,0.45)")
    p.add_argument("--recalibrate-bn", type=cli.positive_int, default=20, metavar="BATCHES",
                   help="BN recalibration of every clamped / quantized model on this many unaugmented training "
                        "batches of 128 images (default: 20)")
    p.add_argument("--directions", type=cli.positive_int, default=20,
                   help="random directions M of the perturbation baseline (default: 20)")
    p.add_argument("--bn-batches", type=cli.positive_int, default=4,
                   help="perturbation baseline: training batches of --batch-size images each state's BN "
                        "statistics are re-estimated on (default: 4)")
    p.add_argument("--points", type=cli.positive_int, default=11,
                   help="points per path segment, endpoints included, ≥ 2 (default: 11)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of initialisation, data order and perturbation directions (default: 0)")
    return p


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=_json_default).encode()).hexdigest()[:12]


def _json_default(obj):
    return obj.tolist() if hasattr(obj, "tolist") else str(obj)  # numpy scalars and arrays; anything else as text


def _plain(obj):
    """`obj` as it reads back from JSON (tuples → lists, numpy → lists and numbers), for storing and comparing."""
    return json.loads(json.dumps(obj, default=_json_default))


class Steps:
    """Seconds per step in this invocation, and whether the step's result was found finished."""

    def __init__(self, quiet: bool):
        self.quiet, self.timings = quiet, {}

    def say(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    def record(self, name: str, start: float, *, cached: bool, computed_seconds: float | None = None) -> None:
        self.timings[name] = {"seconds": round(time.perf_counter() - start, 2), "cached": cached,
                              "computed_seconds": None if computed_seconds is None else round(computed_seconds, 2)}


def cached(path: Path, key: dict, compute, steps: Steps, name: str):
    """compute()'s JSON-able value, stored in `path` with its key and seconds; a stored value with the same key is
    read back instead of computing it again."""
    start = time.perf_counter()
    key = _plain(key)
    if path.is_file():
        record = json.loads(path.read_text())
        if record.get("key") == key:
            steps.say(f"{name}: finished earlier, reusing {path}")
            steps.record(name, start, cached=True, computed_seconds=record.get("seconds"))
            return record["value"]
    value = _plain(compute())
    seconds = time.perf_counter() - start
    common.write_json(path, {"key": key, "seconds": seconds, "value": value})
    steps.record(name, start, cached=False, computed_seconds=seconds)
    return value


# -------------------------------------------------------------------------------------- 1. full precision


class EpochEnd(Callback):
    """After every epoch: test accuracy, and the trainer state saved to `partial` (what a rerun continues)."""

    def __init__(self, batches, partial: Path, key: dict, steps: Steps, history: list, seconds: float):
        self.batches, self.partial, self.key, self.steps = batches, partial, key, steps
        self.history, self.seconds, self.start = history, seconds, time.perf_counter()

    def elapsed(self) -> float:
        return self.seconds + time.perf_counter() - self.start

    def on_epoch_end(self, trainer: Trainer) -> None:
        result = ls.evaluate_model(trainer.model, self.batches)
        self.history.append(result)
        self.steps.say(f"pretrain epoch {len(self.history)}: test accuracy {100 * result['accuracy']:.2f}%  "
                       f"loss {result['loss']:.4f}")
        tmp = self.partial.with_name(self.partial.name + ".tmp")
        torch.save({"key": self.key, "trainer": trainer.state_dict(), "history": self.history,
                    "seconds": self.elapsed()}, tmp)
        os.replace(tmp, self.partial)


def full_precision(args, dev, work: Path, train_split, test_batches, steps: Steps) -> tuple[Path, dict]:
    """(checkpoint path, facts about it): --checkpoint, or the model trained from scratch (resumed, or reused)."""
    start = time.perf_counter()
    if args.checkpoint is not None:
        path = resolve_checkpoint(args.checkpoint)
        load_model(args.arch, path, args.arch_kwargs)  # a wrong arch or a broken file: one line, before any work
        steps.record("pretrain", start, cached=True)
        return path, {"source": "--checkpoint"}
    config = TrainConfig(epochs=args.pretrain_epochs, lr=args.pretrain_lr, seed=args.seed, device=str(dev),
                         **PRETRAIN)
    key = _plain({"arch": args.arch, "arch_kwargs": args.arch_kwargs, "limit_train": args.limit_train,
                  "data": cli.data_spec(args), "train": {**dataclasses.asdict(config), "device": None}})
    name = args.arch.rpartition(":")[2] or args.arch
    path = work / f"pretrain-{digest(key)}-{name}.pt"  # not NAME-HEX.pt: models.read_checkpoint takes that hex
    partial = path.with_name(path.stem + ".partial.pt")  # for a sha256 prefix of the file
    if path.is_file():
        ckpt = read_checkpoint(path)
        if ckpt.get("key") == key:
            steps.say(f"pretrain: finished earlier, reusing {path}")
            steps.record("pretrain", start, cached=True, computed_seconds=ckpt.get("seconds"))
            return path, {"source": "trained here", "test_accuracy_per_epoch": ckpt.get("test_accuracy_per_epoch"),
                          "config": ckpt.get("config")}
    torch.manual_seed(args.seed)  # the initialisation
    model = load_model(args.arch, None, args.arch_kwargs)
    history, seconds, state = [], 0.0, None
    if partial.is_file():
        saved = torch.load(partial, map_location="cpu", weights_only=False)
        if saved.get("key") == key:
            state, history, seconds = saved["trainer"], saved["history"], saved["seconds"]
    callback = EpochEnd(test_batches, partial, key, steps, history, seconds)
    trainer = Trainer(model, train_split, config, callbacks=[callback] + ([] if steps.quiet else [ProgressBar()]))
    if state is not None:
        trainer.load_state_dict(state)
        steps.say(f"pretrain: continuing {partial} from epoch {len(history)} (step {trainer.step})")
    else:
        steps.say(f"pretrain: {args.arch} {json.dumps(args.arch_kwargs)} from its own initialisation, "
                  f"{args.pretrain_epochs} epoch(s) × {trainer.steps_per_epoch} steps → {path}")
    trained = trainer.fit()
    accuracy = [h["accuracy"] for h in history]
    save_checkpoint(trained.cpu(), path, arch=args.arch, arch_kwargs=args.arch_kwargs, best_prec1=100 * accuracy[-1],
                    config=dataclasses.asdict(config), source=None, test_accuracy_per_epoch=accuracy,
                    test_images=history[-1]["n"], key=key, seconds=callback.elapsed())
    partial.unlink(missing_ok=True)
    steps.record("pretrain", start, cached=False, computed_seconds=callback.elapsed())
    return path, {"source": "trained here", "test_accuracy_per_epoch": accuracy, "config": dataclasses.asdict(config)}


# ------------------------------------------------------------------------------------ 2. soft quantization


def soft_quant(args, dev, work: Path, checkpoint: Path, hw: tuple[float, float], steps: Steps) -> Path:
    """The finished run file of weight coupling at (h, w): reused, continued, or trained."""
    h, w = hw
    name = f"soft-quant h={h:g} w={w:g}"
    start = time.perf_counter()
    spec = RunSpec.resolved(str(checkpoint), arch=args.arch, arch_kwargs=args.arch_kwargs or {},
                            method="weight-coupling", compressor={"h": h, "w": w},
                            train=TrainConfig(epochs=args.epochs, seed=args.seed, device=str(dev)),
                            data=cli.data_spec(args), limit_train=args.limit_train or None, limit_test=args.limit,
                            recalibrate_bn=args.recalibrate_bn)
    settings = spec.to_settings()
    key = {**settings, "train": {**settings["train"], "device": None}, "checkpoint": None}  # the file, by sha256
    out = work / f"wc-h{h:g}-w{w:g}-{digest(key)}.h5"
    timing = out.with_suffix(".timing.json")
    common_kwargs = {"data": args.data, "download": args.download, "device": dev, "eval_batch_size": args.batch_size,
                     "progress": not steps.quiet}
    if out.is_file() and "final" in Run(out).groups():
        steps.say(f"{name}: finished earlier, reusing {out}")
        done = json.loads(timing.read_text()).get("seconds") if timing.is_file() else None
        steps.record(name, start, cached=True, computed_seconds=done)
        return out
    if out.is_file():
        steps.say(f"{name}: continuing the unfinished {out} from its last checkpoint")
        run_training(out, None, **common_kwargs)
    else:
        steps.say(f"{name}: {args.epochs} epoch(s) of weight coupling → {out}")
        run_training(out, spec, **common_kwargs)
    seconds = time.perf_counter() - start
    common.write_json(timing, {"seconds": seconds, "note": "the invocation that finished the run"})
    steps.record(name, start, cached=False, computed_seconds=seconds)
    return out


def soft_row(run: Run, label: str) -> dict:
    evals, bits = run.evals(), run.bits()
    recal = evals.get("recalibrated", {})
    return {"kind": "soft quantization", "setting": label, "mean_bits": bits["mean_effective"],
            "mean_storage_bits": bits["mean_storage"], "accuracy": evals["clamped"]["accuracy"],
            "loss": evals["clamped"]["loss"], "accuracy_recalibrated": recal.get("accuracy", math.nan),
            "loss_recalibrated": recal.get("loss", math.nan), "accuracy_finetuned": evals["compressed"]["accuracy"],
            "n": int(evals["clamped"]["n"]), "source": str(run.path)}


# ----------------------------------------------------------------------------------------------- 3. PTQ


def ptq_rows(model, checkpoint: Path, test_batches, bn_data) -> list[dict]:
    """Full precision and PTQ at PTQ_BITS, each as it comes and BN-recalibrated on `bn_data`."""
    def both(m):
        before = ls.evaluate_model(m, test_batches)
        after = ls.evaluate_model(recalibrate_bn_(m, bn_data), test_batches)  # in place: m is a copy
        return {"accuracy": before["accuracy"], "loss": before["loss"], "accuracy_recalibrated": after["accuracy"],
                "loss_recalibrated": after["loss"], "n": before["n"]}

    import copy

    rows = [{"kind": "full precision", "setting": "full precision", "mean_bits": 32.0, "mean_storage_bits": 32.0,
             **both(copy.deepcopy(model)), "source": str(checkpoint)}]
    for method, kind in PTQ_METHODS.items():
        for bits in PTQ_BITS:
            q = quantize_model(model, method, bits)
            rows.append({"kind": kind, "setting": f"{method} {bits} bits", "mean_bits": q.mean_bits(),
                         "mean_storage_bits": q.mean_bits(storage=True), **both(q.model), "source": str(checkpoint)})
    return rows


# --------------------------------------------------------------------------------------- 5. figure, verdict


def verdict(rows: list[dict], paper_label: str) -> tuple[str, dict]:
    fp = next(r for r in rows if r["kind"] == "full precision")
    soft = next(r for r in rows if r["setting"] == paper_label)
    nearest = min(PTQ_BITS, key=lambda b: (abs(b - soft["mean_bits"]), -b))
    ptq = [r for r in rows if r["kind"] in PTQ_METHODS.values() and r["setting"].endswith(f" {nearest} bits")]
    best = max(ptq, key=lambda r: r["accuracy"])
    best_recal = max(ptq, key=lambda r: r["accuracy_recalibrated"])
    gap = soft["accuracy"] - best["accuracy"]
    gap_recal = soft["accuracy_recalibrated"] - best_recal["accuracy_recalibrated"]
    facts = {"mean_bits": soft["mean_bits"], "accuracy": soft["accuracy"],
             "accuracy_recalibrated": soft["accuracy_recalibrated"], "full_precision": fp["accuracy"],
             "drop_pt": 100 * (fp["accuracy"] - soft["accuracy"]), "ptq_bits": nearest,
             "best_ptq": best["setting"], "best_ptq_accuracy": best["accuracy"],
             "best_ptq_recalibrated": best_recal["setting"],
             "best_ptq_accuracy_recalibrated": best_recal["accuracy_recalibrated"],
             "ahead_pt": 100 * gap, "ahead_pt_recalibrated": 100 * gap_recal, "resnet20": RESNET20}
    pct = lambda x: f"{100 * x:.2f}%"  # noqa: E731
    side = lambda g: ("level" if abs(g) < 5e-5 else  # noqa: E731
                      f"{'ahead' if g > 0 else 'behind'} by {abs(100 * g):.2f} pt")
    text = (f"verdict: ({PAPER[0]}, {PAPER[1]}) on this model: {soft['mean_bits']:.2f} bits, {pct(soft['accuracy'])} "
            f"clamped ({pct(soft['accuracy_recalibrated'])} BN-recalibrated) vs full precision "
            f"{pct(fp['accuracy'])} (−{facts['drop_pt']:.2f} pt; ResNet-20: {RESNET20['bits']:.2f} bits, "
            f"−{100 * (RESNET20['full_precision'] - RESNET20['accuracy']):.2f} pt); best PTQ at {nearest} bits: "
            f"{best['setting']} {pct(best['accuracy'])} → soft quantization {side(gap)}; both BN-recalibrated: "
            f"{best_recal['setting']} {pct(best_recal['accuracy_recalibrated'])} → {side(gap_recal)}")
    return text, facts


def draw(path: Path, rows, paths, perturbs, arch_text: str, args) -> None:
    fig, axes = plots.figure(2, 3, width=5.2, height=4.0)
    fp = next(r for r in rows if r["kind"] == "full precision")
    soft = [r for r in rows if r["kind"] == "soft quantization"]
    for ax, column, title in ((axes[0, 0], "accuracy", "accuracy vs bits (BN statistics as they come)"),
                              (axes[0, 1], "accuracy_recalibrated", "accuracy vs bits, BN recalibrated")):
        points = {f"soft quantization {r['setting']}": (np.array([r["mean_bits"]]), np.array([r[column]]))
                  for r in soft}  # one series per setting: the two may land on top of each other
        for kind in PTQ_METHODS.values():
            ptq = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["mean_bits"])
            points[kind] = (np.array([r["mean_bits"] for r in ptq]), np.array([r[column] for r in ptq]))
        plots.pareto(ax, points, reference=fp["accuracy"], title=title)
    alpha = np.array(next(iter(paths.values()))["alpha"])
    plots.path_curves(axes[0, 2], alpha, {k: np.array(v["loss"]) for k, v in paths.items()}, knots=STATES,
                      ylabel="test loss (nats)", title="loss along the path")
    plots.path_curves(axes[1, 0], alpha, {k: np.array(v["accuracy"]) for k, v in paths.items()}, knots=STATES,
                      ylabel="test accuracy (%)", title="accuracy along the path", percent=True)
    for ax, (label, s) in zip((axes[1, 1], axes[1, 2]), perturbs.items(), strict=True):
        plots.perturbation_distribution(
            ax, np.array(s["random_slope"]),
            {f"clamped: {s['percentile']:.0f}th pct, z = {s['zscore']:+.1f}": s["real_slope"]},
            bins=min(20, max(5, len(s["random_slope"]) // 2)),
            title=f"perturbation, {label} (‖Δθ‖ = {s['displacement_norm']:.3g})")
    fig.suptitle(f"{arch_text}: soft quantization at (0.05, 0.3) and ({args.setting[0]:g}, {args.setting[1]:g}) vs "
                 f"PTQ; n = {fp['n']} test images, seed {args.seed}", fontsize="medium")
    plots.save(fig, path)


# ------------------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if tuple(args.setting) == PAPER:
        raise ValueError(f"--setting {args.setting[0]},{args.setting[1]} is the paper's own; choose another")
    if args.points < 2:
        raise ValueError(f"--points must be ≥ 2, got {args.points}")
    out = common.outputs(args.out_dir, STEM, [".png", ".csv", "_paths.csv", "_perturb.csv", ".config.json"],
                         args.force)
    work = Path(args.work_dir)
    cli.check_out(work / ".probe", True)  # the work folder exists (created) and is writable
    steps = Steps(args.json)
    load = {"before": os.getloadavg()}
    dev = cli.device(args.device)
    build_model(args.arch, args.arch_kwargs)  # a wrong arch or kwargs: one line, before any data or work
    train_split, test = cli.load_data(args)
    train_split = train_split.subset(args.limit_train)
    test_batches = Batches(test.subset(args.limit), args.batch_size, train=False, device=dev)
    arch_text = f"{args.arch.rpartition(':')[2]} {json.dumps(args.arch_kwargs)}"

    # 1. full precision
    checkpoint, fp_facts = full_precision(args, dev, work, train_split, test_batches, steps)
    sha = digest({"file": hashlib.sha256(checkpoint.read_bytes()).hexdigest()})
    model = load_model(args.arch, checkpoint, args.arch_kwargs).to(dev)

    # 2. soft quantization
    settings = {f"h={h:g} w={w:g}": (h, w) for h, w in (PAPER, tuple(args.setting))}
    runs = {label: soft_quant(args, dev, work, checkpoint, hw, steps) for label, hw in settings.items()}

    # 3. PTQ baselines
    recal_data = recalibration_batches(train_split, args.recalibrate_bn, 128, dev)
    ptq_key = {"checkpoint": sha, "limit": args.limit, "limit_train": args.limit_train, "bits": PTQ_BITS,
               "methods": list(PTQ_METHODS), "recalibrate_bn": args.recalibrate_bn, "data": cli.data_spec(args)}
    steps.say(f"PTQ: {', '.join(PTQ_METHODS)} at {PTQ_BITS} bits on {args.limit} test images …")
    rows = cached(work / f"ptq-{digest(ptq_key)}.json", ptq_key,
                  lambda: ptq_rows(model, checkpoint, test_batches, recal_data), steps, "ptq")
    rows = rows[:1] + [soft_row(Run(runs[label]), label) for label in settings] + rows[1:]

    # 4. paths and the perturbation baseline (the public API)
    template = build_model(args.arch, args.arch_kwargs).to(dev)
    bn_data = recalibration_batches(train_split, args.bn_batches, args.batch_size, dev)
    paths, perturbs = {}, {}
    for label, run_path in runs.items():
        run_id = {"run": run_path.name, "created": str(Run(run_path).attrs.get("created")), "limit": args.limit}
        key = {**run_id, "points": args.points, "bn": "keep"}
        steps.say(f"path {label}: {2 * args.points - 1} points …")

        def path_now(run_path=run_path):
            r = ls.loss_path(run_path, STATES, test_batches, points=args.points, template=template,
                             progress=not args.json)
            return {"alpha": r.alpha, "segment": r.segment, "loss": r.metrics["test"]["loss"],
                    "accuracy": r.metrics["test"]["accuracy"], "n": r.n["test"]}

        paths[label] = cached(work / f"path-{run_path.stem}-{digest(key)}.json", key,
                              path_now, steps, f"path {label}")
        key = {**run_id, "directions": args.directions, "seed": args.seed, "bn_batches": args.bn_batches,
               "batch_size": args.batch_size, "norm": "global", "bn": "recalibrate"}
        steps.say(f"perturbation {label}: {args.directions} random directions + the real displacement …")

        def perturb_now(run_path=run_path):
            r = ls.perturbation_test(run_path, "clamped", test_batches, directions=args.directions, seed=args.seed,
                                     bn_data=bn_data, template=template, progress=not args.json)
            return {**r.summary(), "random_accuracy": r.random_accuracy.tolist()}

        perturbs[label] = cached(work / f"perturb-{run_path.stem}-{digest(key)}.json", key, perturb_now, steps,
                                 f"perturbation {label}")

    # 5. outputs
    paper_label = next(iter(settings))
    text, facts = verdict(rows, paper_label)
    draw(out[".png"], rows, paths, perturbs, arch_text, args)
    common.write_csv(out[".csv"], rows)
    common.write_csv(out["_paths.csv"], [
        {"setting": label, "alpha": a, "segment": s, "state": STATES[int(a)] if float(a).is_integer() else "",
         "loss": lo, "accuracy": ac}
        for label, p in paths.items()
        for a, s, lo, ac in zip(p["alpha"], p["segment"], p["loss"], p["accuracy"], strict=True)])
    perturb_rows = []
    for label, s in perturbs.items():
        perturb_rows.append({"setting": label, "kind": "real", "direction": -1, "delta_loss": s["real_delta_loss"],
                             "slope": s["real_slope"], "accuracy": s["real_accuracy"]})
        perturb_rows.append({"setting": label, "kind": "target_full_state", "direction": -1,
                             "delta_loss": s["target_loss"] - s["base_loss"],
                             "slope": (s["target_loss"] - s["base_loss"]) / s["displacement_norm"],
                             "accuracy": s["target_accuracy"]})
        perturb_rows += [{"setting": label, "kind": "random", "direction": j, "delta_loss": dl, "slope": sl,
                          "accuracy": ac}
                         for j, (dl, sl, ac) in enumerate(zip(s["random_delta_loss"], s["random_slope"],
                                                              s["random_accuracy"], strict=True))]
    common.write_csv(out["_perturb.csv"], perturb_rows)
    load["after"] = os.getloadavg()
    summary = {"verdict": facts, "perturbation": {k: {m: v for m, v in s.items() if not isinstance(v, list)}
                                                  for k, s in perturbs.items()}}
    common.write_config(
        out[".config.json"], args, claim="(h, w) = (0.05, 0.3) gives ≈3.8 mean bits at a small accuracy loss on "
        "ResNet-20: does it carry over to this architecture?",
        budget={"pretrain": None if args.checkpoint else {"epochs": args.pretrain_epochs, "peak_lr": args.pretrain_lr,
                                                           **PRETRAIN, "limit_train": args.limit_train},
                "soft_quantization": {"epochs": args.epochs, "lr": 1e-3, "batch_size": 128, "method": "weight-coupling",
                                      "estimator": "histogram", "limit_train": args.limit_train,
                                      "recalibrate_bn_batches": args.recalibrate_bn},
                "test_images": rows[0]["n"], "points": args.points, "directions": args.directions},
        seeds={"training": args.seed, "directions": args.seed, "runs_per_setting": 1},
        timings=steps.timings, loadavg=load, device=str(dev), checkpoint=str(checkpoint), full_precision=fp_facts,
        run_files={label: str(p) for label, p in runs.items()}, verdict_text=text, summary=summary)
    if args.json:
        cli.print_json({"outputs": {k: str(v) for k, v in out.items()}, "rows": rows, "verdict": facts,
                        "verdict_text": text, "run_files": {k: str(v) for k, v in runs.items()},
                        "checkpoint": str(checkpoint), "timings": steps.timings})
    else:
        for r in rows:
            print(f"{r['setting']:>22}: {r['mean_bits']:5.2f} bits  accuracy {100 * r['accuracy']:6.2f}%  "
                  f"(BN recalibrated {100 * r['accuracy_recalibrated']:6.2f}%)")
        for label, s in perturbs.items():
            print(f"{label:>22}: clamped displacement at the {s['percentile']:.0f}th percentile of {args.directions} "
                  f"random ones (z {s['zscore']:+.2f})")
        print(text)
        print(f"wrote {out['.png']}, {out['.csv']}, {out['_paths.csv']}, {out['_perturb.csv']}, "
              f"{out['.config.json']}")
    return 0


if __name__ == "__main__":
    cli.run(main, "fig_other_arch")
