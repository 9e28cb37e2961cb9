"""Curvature of the loss at the pretrained, compressed and clamped states, per layer, and how well a second-order
model predicts what clamping costs (soft-quantization paper, Mechanism 2: the compressed model sits where the loss
is flat in the directions clamping moves it).

Claims checked: (1) fine-tuning with the coupling loss does not sharpen the loss — λ_max and the trace of the whole
model and of each layer's diagonal block at the compressed and clamped states are of the order of the pretrained
ones; (2) clamping is a small step in a flat region, so ΔL ≈ gᵀδ + ½ δᵀHδ (δ = clamped − compressed) agrees with
the measured ΔL, for the whole model and for each layer clamped alone. Backed by one training run (seed 0 of the
headline setting: adapted ResNet-20, h = 0.05, w = 0.3) and one seed of the start and Rademacher vectors
(--seed); the trace's standard errors are drawn, λ_max is to --tol relative.

The Hessian is that of the mean test cross-entropy on the first --limit images, eval mode, with respect to the
conv/linear weights (landscape/analysis/hessian.py). Four panels: per-layer λ_max at the three states (log scale),
per-layer trace (± SE), whole-model λ_max and trace per state, clamp cost predicted vs measured. Writes
figures/hessian.png, hessian.csv (state, layer — "model" for the whole model —, lambda_max, products, trace,
trace_se), hessian_clamp.csv (layer, measured, predicted, linear, quadratic, delta_norm) and hessian.config.json.
Every quantity is journaled beside the outputs (.hessian.journal.json): rerun the same command after a crash.

Cost: per state ≈ 10 Hessian-vector products for λ_max + --samples for the trace, the same per layer and state,
+ 21 for the clamp cost: ≈ 1,700 products for ResNet-20 (20 weight tensors) at --samples 16, each ≈ 4 gradient
passes over --limit images (≈ 3 with --keep-graph, which holds ≈ 5 GB for 1,000 images): an estimated 2–4 hours on
the README's 2 idle cores. --layer-trace split takes the layers' traces from the whole model's vectors instead
(z_lᵀ(Hz)_l, unbiased for the block's trace, no products of its own, ≈ 900 products in all) at the price of much
larger standard errors for small layers (on the tiny test model some came out negative, ± more than their value).

  python analyses/fig_hessian.py --run runs/headline-histogram.h5 [--limit 1000] [--samples 16] [--keep-graph]
"""

from __future__ import annotations

import sys
from pathlib import Path

import common

from landscape import cli, plots
from landscape.analysis.hessian import HessianConfig, analyze
from landscape.analysis.states import load_state_spec
from landscape.analysis.sweep import Journal, state_digest
from landscape.store import Run

STEM = "hessian"
STATES = ["pretrained", "compressed", "clamped"]


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/fig_hessian.py", __doc__)
    p.add_argument("--samples", type=cli.positive_int, default=16,
                   help="Rademacher vectors per trace (default: 16)")
    p.add_argument("--layer-trace", default="block", choices=["block", "split"],
                   help="layers' traces by Hutchinson on each block (block, default) or from the whole model's "
                        "vectors (split: cheaper, noisier)")
    p.add_argument("--tol", type=float, default=HessianConfig.tol,
                   help=f"relative tolerance of λ_max (default: {HessianConfig.tol})")
    p.add_argument("--seed", type=int, default=0, help="seed of the start and Rademacher vectors (default: 0)")
    p.add_argument("--keep-graph", action="store_true", help="keep the gradient graphs between the products of one "
                   "quantity (≈30%% faster, ≈5 MB per image for ResNet-20)")
    args = p.parse_args(argv)
    config = HessianConfig(top_k=1, trace=True, samples=args.samples, tol=args.tol, per_layer=True, seed=args.seed,
                           layer_trace=args.layer_trace)
    out = common.outputs(args.out_dir, STEM, [".png", ".csv", "_clamp.csv", ".config.json"], args.force)
    run = Run(common.resolve_runs(args)[0])
    states = {s: load_state_spec(run, s) for s in STATES}  # all input errors before any evaluation
    batches, dev = common.test_batches(args)
    model = run.model("pretrained").to(dev)
    fingerprint = {"script": STEM, "limit": args.limit, "batch_size": args.batch_size, "samples": args.samples,
                   "layer_trace": args.layer_trace,
                   "tol": args.tol, "seed": args.seed, "device": dev.type,
                   "state_sha256": [state_digest(s) for s in states.values()]}
    journal = Journal.open(Path(args.out_dir) / f".{STEM}.journal.json", fingerprint, discard_other=args.force)
    if not args.json:
        print(f"Hessian spectra of {run.path} at {', '.join(STATES)} on {args.limit} test images …", file=sys.stderr)
    result = analyze(model, list(batches), states, config, clamp=(states["compressed"], states["clamped"]),
                     keep_graph=args.keep_graph, progress=not args.json, journal=journal)

    rows = []
    for state, entry in result.states.items():
        blocks = [("model", entry)] + [(name, entry["layers"][name]) for name in result.layers]
        rows += [{"state": state, "layer": name, "lambda_max": e["top"][0], "products": e["top_products"],
                  "trace": e["trace"], "trace_se": e["trace_se"], "dim": e["dim"]} for name, e in blocks]
    c = result.clamp_cost
    clamp_rows = [{"layer": name, **{k: r[k] for k in ("measured", "predicted", "linear", "quadratic", "delta_norm")}}
                  for name, r in [("model", c), *c["layers"].items()]]

    fig, axes = plots.figure(2, 2, width=6.4, height=4.2)
    layers, entries = result.layers, result.states
    plots.hessian_bars(axes[0, 0], layers, {s: [e["layers"][n]["top"][0] for n in layers] for s, e in entries.items()},
                       title="λ_max of each layer's diagonal block", ylabel="λ_max (log scale)", log=True)
    plots.hessian_bars(axes[0, 1], layers, {s: [e["layers"][n]["trace"] for n in layers] for s, e in entries.items()},
                       errors={s: [e["layers"][n]["trace_se"] for n in layers] for s, e in entries.items()},
                       title=f"trace of each layer's diagonal block (± SE, {args.samples} vectors)", ylabel="trace")
    plots.hessian_bars(axes[1, 0], ["λ_max", "trace"], {s: [e["top"][0], e["trace"]] for s, e in entries.items()},
                       errors={s: [0.0, e["trace_se"]] for s, e in entries.items()}, title="whole model (± SE)",
                       ylabel="eigenvalue units (log scale)", xlabel="", log=True)
    plots.clamp_cost(axes[1, 1], {n: (c["layers"][n]["predicted"], c["layers"][n]["measured"]) for n in layers},
                     whole=(c["predicted"], c["measured"]),
                     title="clamp cost: predicted gᵀδ + ½δᵀHδ vs measured ΔL")
    fig.suptitle(f"Hessian of the test loss — {common.run_label(run)}, n = {result.n} test images", fontsize="medium")
    plots.save(fig, out[".png"])
    common.write_csv(out[".csv"], rows)
    common.write_csv(out["_clamp.csv"], clamp_rows)
    summary = {s: {"lambda_max": e["top"][0], "trace": e["trace"], "trace_se": e["trace_se"], "loss": e["loss"]}
               for s, e in entries.items()}
    summary["clamp_cost"] = {k: c[k] for k in ("measured", "predicted", "linear", "quadratic", "other_changed")}
    common.write_config(out[".config.json"], args, run=str(run.path), seeds=1, n=result.n, summary=summary)
    journal.remove()
    if args.json:
        cli.print_json({"png": str(out[".png"]), "csv": str(out[".csv"]), "summary": summary})
    else:
        for s, v in summary.items():
            if s != "clamp_cost":
                print(f"{s:>11}: λ_max {v['lambda_max']:.4g}  trace {v['trace']:.4g} ± {v['trace_se']:.2g}  "
                      f"loss {v['loss']:.4f}")
        cc = summary["clamp_cost"]
        print(f" clamp cost: measured ΔL {cc['measured']:+.4g}, predicted {cc['predicted']:+.4g} "
              f"(gᵀδ {cc['linear']:+.4g}, ½δᵀHδ {cc['quadratic']:+.4g})")
        print(f"wrote {out['.png']}, {out['.csv']}, {out['_clamp.csv']}, {out['.config.json']}")
    return 0


if __name__ == "__main__":
    cli.run(main, "fig_hessian")
