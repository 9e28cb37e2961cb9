"""Task loss and accuracy along the linear paths pretrained → compressed → clamped (workshop paper
"quantization near the bottom of the loss landscape", §4.2 and Fig. 2A).

Claim reproduced: in a successful compression the fine-tuning segment (pretrained → compressed) climbs the
loss a little and the clamping segment (compressed → clamped) costs almost nothing — the optimizer has reached
a clampable configuration; in a failed one (coupling too weak, e.g. h = 0.001) the compressed model stays
close to the pretrained loss and the degradation happens in the clamping segment. One curve per run (one seed);
give runs of several settings to compare them, several seeds of a setting under one --label to see the spread.

One curve per run on two panels (loss, accuracy), --points per segment with both endpoints included, on the
first --limit images (class-balanced prefix) of the test split, the training split (unaugmented), or both
(--split, as `python -m landscape.interpolate`; both: train dashed, test solid); BN statistics interpolated
(--bn keep) or re-estimated per point (--bn recalibrate). Each curve's legend label is the given --label, the
run's seed, and its mean effective bits and clamped test accuracy as the run file records them (its own test
evaluation, which may count more images than --limit), e.g. "h=0.05 (seed 0): 3.90 bits, 85.75%". Writes
figures/STEM.png, STEM.csv (run, label, seed, bits, accuracy_clamped, split, alpha, segment, loss, accuracy) and
STEM.config.json, STEM = --stem (default: paths), so one can write several variants side by side.

  python analyses/fig_paths.py --run runs/good.h5 runs/failed.h5 --labels "h=0.05" "h=0.001" [--points 11] \
      [--split both] [--stem paths-both]
"""

from __future__ import annotations

import sys

import common
import numpy as np

from landscape import cli, plots
from landscape.analysis.paths import PathConfig, evaluate_path
from landscape.analysis.states import load_state_spec
from landscape.bn import recalibration_batches
from landscape.store import Run

STEM = "paths"
STATES = ["pretrained", "compressed", "clamped"]
STYLES = {"test": "-", "train": "--"}


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/fig_paths.py", __doc__, run_nargs="+")
    p.add_argument("--labels", nargs="+", default=None,
                   help="one legend label per run (default: its settings)")
    p.add_argument("--points", type=cli.positive_int, default=11,
                   help="points per segment, endpoints included, "
                   "≥ 2 (default: 11)")
    p.add_argument("--bn", default="keep", choices=["keep", "recalibrate"],
                   help="BN statistics: interpolate (keep, default) or re-estimate per point (recalibrate)")
    p.add_argument("--bn-batches", type=cli.positive_int, default=PathConfig.bn_batches,
                   help=f"--bn recalibrate: training batches per point (default: {PathConfig.bn_batches})")
    p.add_argument("--split", default="test", choices=common.SPLITS,
                   help="images to evaluate on, the first --limit of each: test (default), train (unaugmented) "
                        "or both")
    p.add_argument("--stem", default=STEM, help=f"output file names STEM.png/.csv/.config.json (default: {STEM})")
    args = p.parse_args(argv)
    config = PathConfig(points=args.points, bn=args.bn, bn_batches=args.bn_batches)
    out = common.outputs(args.out_dir, args.stem, [".png", ".csv", ".config.json"], args.force)
    runs = [Run(r) for r in common.resolve_runs(args)]
    labels = args.labels or [f"{common.run_label(r)} ({r.path.stem})" for r in runs]
    if len(labels) != len(runs):
        raise ValueError(f"{len(labels)} --labels for {len(runs)} runs")
    # a curve is a run: its label (repeated for the seeds of one setting), seed, bits and clamped accuracy
    facts = {f"{label} (seed {r.seed})": {"run": str(r.path), "label": label, "seed": r.seed,
                                          "bits": r.bits()["mean_effective"],
                                          "accuracy_clamped": float(r.evals()["clamped"]["accuracy"])}
             for label, r in zip(labels, runs, strict=True)}
    if len(facts) != len(runs):
        raise ValueError("two runs have the same label and seed; give distinct --labels")
    shown = {k: f"{k}: {f['bits']:.2f} bits, {100 * f['accuracy_clamped']:.2f}%" for k, f in facts.items()}

    dev = cli.device(args.device)
    data, train = common.eval_batches(args, args.split)
    bn_data = recalibration_batches(train, args.bn_batches, args.batch_size, dev) if args.bn == "recalibrate" \
        else None

    results, rows = {}, []
    for key, run in zip(facts, runs, strict=True):
        if not args.json:
            print(f"{key}: {2 * args.points - 1} points …", file=sys.stderr)
        r = results[key] = evaluate_path(run.model("pretrained").to(dev), [load_state_spec(run, s) for s in STATES],
                                         data, config, bn_data=bn_data, labels=STATES, progress=not args.json)
        rows += [{**facts[key], "split": split, "alpha": float(a), "segment": int(s), "loss": float(lo),
                  "accuracy": float(ac)}
                 for split in data for a, s, lo, ac in zip(r.alpha, r.segment, r.metrics[split]["loss"],
                                                           r.metrics[split]["accuracy"], strict=True)]

    alpha = next(iter(results.values())).alpha
    fig, axes = plots.figure(1, 2, width=5.8, height=4.0)
    where = {"test": "test", "train": "training", "both": "test (solid), train (dashed)"}[args.split]
    colors = plots.palette(list(shown.values()))
    for ax, metric, title in ((axes[0, 0], "loss", "task loss"), (axes[0, 1], "accuracy", "accuracy")):
        first, *more = list(data)
        plots.path_curves(ax, alpha, {shown[k]: r.metrics[first][metric] for k, r in results.items()}, knots=STATES,
                          ylabel=f"{where} {'accuracy (%)' if metric == 'accuracy' else 'loss (cross-entropy, nats)'}",
                          title=f"{title} along the path", percent=metric == "accuracy")
        for split in more:  # path_curves drew the first split solid; the other in the same colours, dashed
            for k, r in results.items():
                ax.plot(alpha, np.asarray(r.metrics[split][metric]) * (100 if metric == "accuracy" else 1),
                        linestyle=STYLES[split], marker="o", markersize=2, linewidth=1.2, color=colors[shown[k]])
    axes[0, 0].legend(list(shown.values()), fontsize="x-small")
    n = ", ".join(f"{next(iter(results.values())).n[s]} {s}" for s in data)
    fig.suptitle(f"Linear paths pretrained → compressed → clamped ({args.points} points per segment, "
                 f"BN {args.bn}, n = {n} images)", fontsize="medium")
    plots.save(fig, out[".png"])
    common.write_csv(out[".csv"], rows)
    knots = [0, args.points - 1, len(alpha) - 1]
    summary = {k: {**facts[k], **{split: {
        "loss": {s: float(r.metrics[split]["loss"][i]) for s, i in zip(STATES, knots, strict=True)},
        "max_loss": float(np.max(r.metrics[split]["loss"])),
        "accuracy": {s: float(r.metrics[split]["accuracy"][i]) for s, i in zip(STATES, knots, strict=True)}}
        for split in data}} for k, r in results.items()}
    common.write_config(out[".config.json"], args, runs=[str(r.path) for r in runs], labels=labels,
                        seeds=len({r.seed for r in runs}), summary=summary)
    if args.json:
        cli.print_json({"png": str(out[".png"]), "csv": str(out[".csv"]), "summary": summary})
    else:
        for k, s in summary.items():
            for split in data:
                acc = s[split]["accuracy"]
                print(f"{shown[k]} | {split}: accuracy {100 * acc['pretrained']:.2f}% → "
                      f"{100 * acc['compressed']:.2f}% → {100 * acc['clamped']:.2f}%  (max loss on the path "
                      f"{s[split]['max_loss']:.3f})")
        print(f"wrote {out['.png']}, {out['.csv']}, {out['.config.json']}")
    return 0

if __name__ == "__main__":
    cli.run(main, "fig_paths")
