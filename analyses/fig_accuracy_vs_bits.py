"""Accuracy vs mean bit-width: soft quantization against histogram-equalized PTQ (soft-quantization paper,
main result; its Pareto figure of accuracy vs bits).

Claim reproduced: the clamped soft-quantization models reach higher test accuracy than HEQ post-training
quantization of the same pretrained model at the same or a lower mean effective bit-width, and the bit-width
they reach differs per layer (mixed precision from two global hyperparameters), while HEQ spends the same
budget on every layer.
Backed by one run (one seed) per soft-quantization point; HEQ is deterministic (one evaluation per bit-width).

Left: test accuracy vs parameter-weighted mean effective bits (log2 K per layer), one marker style per method:
each --run's clamped model, HEQ at --bits, and the full-precision pretrained model as a dashed line. All
models are evaluated here on the same first --limit test images. Right: effective bits per layer of the first
run vs HEQ at the bit-width nearest its mean. Writes figures/accuracy_vs_bits.png, accuracy_vs_bits.csv
(method, label, mean_bits, accuracy, loss, n), accuracy_vs_bits_layers.csv and accuracy_vs_bits.config.json.

  python analyses/fig_accuracy_vs_bits.py --run runs/wc-a.h5 runs/wc-b.h5 [--bits 2 3 4 5 6]
"""

from __future__ import annotations

import sys

import common
import numpy as np

from landscape import cli, plots
from landscape.compress.ptq import quantize_model
from landscape.metrics import evaluate
from landscape.store import Run

STEM = "accuracy_vs_bits"


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/fig_accuracy_vs_bits.py", __doc__, run_nargs="+")
    p.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4, 5, 6],
                   help="HEQ bit-widths (default: 2..6)")
    p.add_argument("--labels", nargs="+", default=None, help="one label per run (default: its settings)")
    args = p.parse_args(argv)
    if any(not 1 <= b <= 16 for b in args.bits):
        raise ValueError(f"--bits must be in 1..16, got {args.bits}")
    out = common.outputs(args.out_dir, STEM, [".png", ".csv", "_layers.csv", ".config.json"], args.force)
    runs = [Run(r) for r in common.resolve_runs(args)]
    labels = args.labels or [f"{common.run_label(r, method=False)} ({r.path.stem})" for r in runs]
    if len(labels) != len(runs):
        raise ValueError(f"{len(labels)} --labels for {len(runs)} runs")
    bits = [r.bits() for r in runs]  # fails now, not after the evaluations, if a run is unfinished
    clamped = [r.model("clamped") for r in runs]
    pretrained = runs[0].model("pretrained")
    batches, dev = common.test_batches(args)

    rows = []
    full = evaluate(pretrained.to(dev), batches)
    rows.append({"method": "full precision", "label": "pretrained", "mean_bits": 32.0, **full})
    for label, b, model in zip(labels, bits, clamped, strict=True):
        result = evaluate(model.to(dev), batches, progress=not args.json, desc=label)
        rows.append({"method": "soft quantization", "label": label, "mean_bits": b["mean_effective"],
                     **result})
    heq = {}
    for n_bits in sorted(args.bits):
        q = quantize_model(pretrained, "heq", n_bits)
        result = evaluate(q.model.to(dev), batches, progress=not args.json, desc=f"HEQ {n_bits} bits")
        heq[n_bits] = q
        rows.append({"method": "HEQ PTQ", "label": f"HEQ {n_bits} bits", "mean_bits": q.mean_bits(),
                     **result})
        if not args.json:
            print(f"HEQ {n_bits} bits: {100 * result['accuracy']:.2f}%", file=sys.stderr)

    soft = sorted((b["mean_effective"], next(r for r in rows if r["label"] == label)["accuracy"], label)
                  for label, b in zip(labels, bits, strict=True))
    points = {"soft quantization (clamped)": (np.array([s[0] for s in soft]), np.array([s[1] for s in soft]))}
    notes = {"soft quantization (clamped)": [s[2] for s in soft]}
    heq_rows = [r for r in rows if r["method"] == "HEQ PTQ"]
    points["HEQ PTQ (per layer, 2^b levels)"] = (np.array([r["mean_bits"] for r in heq_rows]),
                                                 np.array([r["accuracy"] for r in heq_rows]))

    layers = list(bits[0]["effective"])
    nearest = min(heq, key=lambda nb: abs(heq[nb].mean_bits() - bits[0]["mean_effective"]))
    per_layer = {f"soft quantization: {labels[0]}": np.array([bits[0]["effective"][k] for k in layers]),
                 f"HEQ {nearest} bits": np.array([heq[nearest].bits[k] for k in layers])}
    layer_rows = [{"layer": k, **{label: float(v[i]) for label, v in per_layer.items()}} for i,
                  k in enumerate(layers)]

    fig, axes = plots.figure(1, 2, width=6.0, height=4.2)
    plots.pareto(axes[0, 0], points, reference=full["accuracy"], notes=notes,
                 title=f"accuracy vs bits (n = {full['n']} test images)")
    plots.bits_per_layer(axes[0, 1], layers, per_layer, title="effective bits per layer")
    fig.suptitle(f"Soft quantization vs HEQ post-training quantization — {runs[0].arch}", fontsize="medium")
    plots.save(fig, out[".png"])
    common.write_csv(out[".csv"], rows)
    common.write_csv(out["_layers.csv"], layer_rows)
    common.write_config(out[".config.json"], args, runs=[str(r.path) for r in runs], labels=labels, seeds=1,
                        heq_bits_for_layers=nearest)
    if args.json:
        cli.print_json({"png": str(out[".png"]), "csv": str(out[".csv"]), "rows": rows})
    else:
        for r in rows:
            print(f"{r['label']:>40}: {r['mean_bits']:5.2f} bits  accuracy {100 * r['accuracy']:6.2f}%")
        print(f"wrote {out['.png']}, {out['.csv']}, {out['_layers.csv']}, {out['.config.json']}")
    return 0


if __name__ == "__main__":
    cli.run(main, "fig_accuracy_vs_bits")
