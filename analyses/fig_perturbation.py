"""Soft quantization's displacement against random perturbations of the same norm (soft-quantization paper,
Mechanism 3 and Fig. 3).

Claim reproduced: the step from the pretrained to the compressed / clamped weights costs far less task loss
per unit of weight-space distance (ΔL/‖Δθ‖) than random Gaussian steps of the same norm — it lies below the
random distribution (low percentile, negative z-score) — whereas a PTQ step (HEQ) of similar size lies closer
to it. Backed by one training run (one seed) and M random directions (one direction seed) per target; the
spread of the random distribution is the only uncertainty shown.

For each target (default: compressed, clamped, ptq:heq:4) one panel: histogram of ΔL/‖Δθ‖ over the M random
directions with the real displacement as a vertical line; below it the 1-D scans (loss vs step size α) along
the real displacement and along random direction 0. Every perturbed state, real or random, gets its BN
statistics re-estimated on the same training batches (--bn recalibrate, default) and keeps the pretrained BN
parameters and biases (landscape/analysis/perturbation.py explains why; --bn keep shows the biased alternative).
Writes figures/perturbation.png, perturbation.csv (target, kind, direction, delta_loss, slope, accuracy),
perturbation_scan.csv and perturbation.config.json.

  python analyses/fig_perturbation.py --run runs/wc.h5 [--targets compressed clamped ptq:heq:4] \\
      [--directions 20]
"""

from __future__ import annotations

import sys

import common

from landscape import cli, plots
from landscape.analysis.perturbation import NORMS, PerturbConfig, perturbation_test
from landscape.analysis.states import load_state_spec
from landscape.store import Run

STEM = "perturbation"


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/fig_perturbation.py", __doc__)
    p.add_argument("--targets", nargs="+", default=["compressed", "clamped", "ptq:heq:4"],
                   help="displacement ends: compressed, clamped, ptq:METHOD:BITS (default: compressed "
                        "clamped ptq:heq:4)")
    p.add_argument("--directions", type=cli.positive_int, default=20, help="random directions M per target "
                   "(default: 20)")
    p.add_argument("--norm", default="global", choices=NORMS,
                   help="global (default) or per-layer norm matching")
    p.add_argument("--alphas", type=float, nargs="*", default=[-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0],
                   help="1-D scan positions in units of the step (default: -1 … 2 in steps of 0.5; none: "
                        "no scan)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random directions (default: 0)")
    p.add_argument("--bn", default="recalibrate", choices=["keep", "recalibrate"],
                   help="BN statistics of every state: re-estimated (recalibrate, default) or pretrained "
                        "(keep)")
    p.add_argument("--bn-batches", type=cli.positive_int, default=4,
                   help="--bn recalibrate: training batches of --batch-size images per state (default: 4)")
    args = p.parse_args(argv)
    out = common.outputs(args.out_dir, STEM, [".png", ".csv", "_scan.csv", ".config.json"], args.force)
    run = Run(common.resolve_runs(args)[0])
    targets = {t: load_state_spec(run, t) for t in args.targets}  # all input errors before any evaluation
    batches, dev = common.test_batches(args)
    model = run.model("pretrained").to(dev)
    config = PerturbConfig(directions=args.directions, norm=args.norm, seed=args.seed,
                           alphas=tuple(args.alphas),
                           bn=args.bn)
    bn_data = common.bn_batches(args, args.bn_batches) if args.bn == "recalibrate" else None

    results = {}
    for t, state in targets.items():
        if not args.json:
            print(f"{t}: {args.directions} random directions + real displacement …", file=sys.stderr)
        results[t] = perturbation_test(model, state, batches, config, bn_data=bn_data, progress=not args.json)

    scans = bool(args.alphas)
    fig, axes = plots.figure(2 if scans else 1, len(targets), width=4.8, height=3.6)
    rows, scan_rows, summary = [], [], {}
    for i, (t, r) in enumerate(results.items()):
        label = f"{t}: {r.percentile:.0f}th pct, z = {r.zscore:+.1f}"
        plots.perturbation_distribution(axes[0, i], r.random_slope, {label: r.real["slope"]},
                                        bins=min(20, max(5, args.directions // 2)),  # ~2 directions per bin
                                        title=f"{t}  (‖Δθ‖ = {r.displacement_norm:.2f})")
        rows.append({"target": t, "kind": "real", "direction": -1, "delta_loss": r.real["delta_loss"],
                     "slope": r.real["slope"], "accuracy": r.real["accuracy"]})
        rows.append({"target": t, "kind": "target_full_state", "direction": -1,
                     "delta_loss": r.target["loss"] - r.base["loss"],
                     "slope": (r.target["loss"] - r.base["loss"]) / r.displacement_norm,
                     "accuracy": r.target["accuracy"]})
        rows += [{"target": t, "kind": "random", "direction": j, "delta_loss": float(dl), "slope": float(s),
                  "accuracy": float(a)}
                 for j, (dl, s, a) in enumerate(zip(r.random_delta_loss, r.random_slope, r.random_accuracy,
                                                    strict=True))]
        if scans:
            plots.scan_curves(axes[1, i], r.scan.alpha, {f"along Δθ ({t})": r.scan.real["loss"],
                                                          "along random direction 0": r.scan.random["loss"]},
                              title=f"1-D scans, {t}", ylabel="test loss (nats)")
            scan_rows += [{"target": t, "alpha": float(a), "real_loss": float(lr), "random_loss": float(lx)}
                          for a, lr, lx in zip(r.scan.alpha, r.scan.real["loss"], r.scan.random["loss"],
                                               strict=True)]
        summary[t] = {k: v for k, v in r.summary().items() if k not in ("random_slope", "random_delta_loss",
                                                                        "scan")}
    fig.suptitle(f"ΔL/‖Δθ‖ of the real displacement vs {args.directions} random directions of equal norm "
                 f"({args.norm}, BN {args.bn}) — {common.run_label(run)}, "
                 f"n = {len(batches.split)} test images",
                 fontsize="medium")
    plots.save(fig, out[".png"])
    common.write_csv(out[".csv"], rows)
    if scans:
        common.write_csv(out["_scan.csv"], scan_rows)
    common.write_config(out[".config.json"], args, run=str(run.path), seeds=1, summary=summary)
    if args.json:
        cli.print_json({"png": str(out[".png"]), "csv": str(out[".csv"]), "summary": summary})
    else:
        for t, s in summary.items():
            print(f"{t:>12}: real ΔL/‖Δθ‖ {s['real_slope']:+.4f}  random mean "
                  f"{s['random_delta_loss_mean'] / s['displacement_norm']:+.4f}  "
                  f"percentile {s['percentile']:.0f}  "
                  f"z {s['zscore']:+.2f}")
        print(f"wrote {out['.png']}, {out['.csv']}, {out['.config.json']}")
    return 0


if __name__ == "__main__":
    cli.run(main, "fig_perturbation")
