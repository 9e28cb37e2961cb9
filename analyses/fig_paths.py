"""Task loss and accuracy along the linear paths pretrained → compressed → clamped (workshop paper
"quantization near the bottom of the loss landscape", §4.2 and Fig. 2A).

Claim reproduced: in a successful compression the fine-tuning segment (pretrained → compressed) climbs the
loss a little and the clamping segment (compressed → clamped) costs almost nothing — the optimizer has reached
a clampable configuration; in a failed one (coupling too weak, e.g. h = 0.001) the compressed model stays
close to the pretrained loss and the degradation happens in the clamping segment. Backed by one run (one seed)
per curve; give one --run per compression setting to compare them.

One curve per run on two panels (loss, accuracy), --points per segment with both endpoints included, on the
first --limit test images; BN statistics interpolated (--bn keep) or re-estimated per point (--bn
recalibrate). Writes figures/paths.png, paths.csv (run, label, alpha, segment, loss, accuracy) and
paths.config.json.

  python analyses/fig_paths.py --run runs/good.h5 runs/failed.h5 --labels "h=0.05" "h=0.001" [--points 11]
"""

from __future__ import annotations

import sys

import common
import numpy as np

from landscape import cli, plots
from landscape.analysis.paths import PathConfig, evaluate_path
from landscape.analysis.states import load_state_spec
from landscape.bn import recalibration_batches
from landscape.data import Batches, load_cifar10
from landscape.store import Run

STEM = "paths"
STATES = ["pretrained", "compressed", "clamped"]


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
    args = p.parse_args(argv)
    config = PathConfig(points=args.points, bn=args.bn, bn_batches=args.bn_batches)
    out = common.outputs(args.out_dir, STEM, [".png", ".csv", ".config.json"], args.force)
    runs = [Run(r) for r in common.resolve_runs(args)]
    labels = args.labels or [f"{common.run_label(r)} ({r.path.stem})" for r in runs]
    if len(labels) != len(runs):
        raise ValueError(f"{len(labels)} --labels for {len(runs)} runs")
    if len(set(labels)) != len(labels):
        raise ValueError("two runs have the same label; give distinct --labels")
    states = {label: [load_state_spec(r, s) for s in STATES] for label, r in zip(labels, runs, strict=True)}

    dev = cli.device(args.device)
    train, test = load_cifar10(args.data, download=args.download)
    data = {"test": Batches(test.subset(args.limit), args.batch_size, train=False, device=dev)}
    bn_data = recalibration_batches(train, args.bn_batches, args.batch_size, dev) if args.bn == "recalibrate" \
        else None

    results, rows = {}, []
    for (label, st), run in zip(states.items(), runs, strict=True):
        if not args.json:
            print(f"{label}: {2 * args.points - 1} points …", file=sys.stderr)
        r = evaluate_path(run.model("pretrained").to(dev), st, data, config, bn_data=bn_data, labels=STATES,
                          progress=not args.json)
        results[label] = r
        rows += [{"run": str(run.path), "label": label, "alpha": float(a), "segment": int(s),
                  "loss": float(lo), "accuracy": float(ac)}
                 for a, s, lo, ac in zip(r.alpha, r.segment, r.metrics["test"]["loss"],
                                         r.metrics["test"]["accuracy"],
                                         strict=True)]

    alpha = next(iter(results.values())).alpha
    fig, axes = plots.figure(1, 2, width=5.8, height=4.0)
    plots.path_curves(axes[0, 0], alpha, {k: r.metrics["test"]["loss"] for k, r in results.items()},
                      knots=STATES,
                      ylabel="test loss (cross-entropy, nats)", title="task loss along the path")
    plots.path_curves(axes[0, 1], alpha, {k: r.metrics["test"]["accuracy"] for k, r in results.items()},
                      knots=STATES, ylabel="test accuracy (%)", title="accuracy along the path", percent=True)
    if len(results) == 1:
        axes[0, 0].legend(list(results), fontsize="x-small")
    n = next(iter(results.values())).n["test"]
    fig.suptitle(f"Linear paths pretrained → compressed → clamped ({args.points} points per segment, "
                 f"BN {args.bn}, "
                 f"n = {n} test images)", fontsize="medium")
    plots.save(fig, out[".png"])
    common.write_csv(out[".csv"], rows)
    summary = {label: {"loss": {s: float(r.metrics["test"]["loss"][i]) for s, i in
                                zip(STATES, [0, args.points - 1, len(alpha) - 1], strict=True)},
                       "max_loss": float(np.max(r.metrics["test"]["loss"])),
                       "accuracy": {s: float(r.metrics["test"]["accuracy"][i]) for s, i in
                                    zip(STATES, [0, args.points - 1, len(alpha) - 1], strict=True)}}
               for label, r in results.items()}
    common.write_config(out[".config.json"], args, runs=[str(r.path) for r in runs], labels=labels, seeds=1,
                        summary=summary)
    if args.json:
        cli.print_json({"png": str(out[".png"]), "csv": str(out[".csv"]), "summary": summary})
    else:
        for label, s in summary.items():
            acc = s["accuracy"]
            print(f"{label}: accuracy {100 * acc['pretrained']:.2f}% → {100 * acc['compressed']:.2f}% → "
                  f"{100 * acc['clamped']:.2f}%  (max loss on the path {s['max_loss']:.3f})")
        print(f"wrote {out['.png']}, {out['.csv']}, {out['.config.json']}")
    return 0


if __name__ == "__main__":
    cli.run(main, "fig_paths")
