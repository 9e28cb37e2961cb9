"""Accuracy vs mean bit-width: soft quantization against histogram-equalized PTQ (soft-quantization paper, main
result; its Pareto figure of accuracy vs bits; `analyses/fig_accuracy_vs_bits.py`).

Claim reproduced: the clamped soft-quantization models reach higher test accuracy than HEQ post-training
quantization of the same pretrained model at the same or a lower mean effective bit-width, and the bit-width
they reach differs per layer (mixed precision from two global hyperparameters), while HEQ spends the same
budget on every layer.
Backed by one run (one seed) per soft-quantization point; HEQ is deterministic (one evaluation per bit-width).

Left: test accuracy vs parameter-weighted mean effective bits (log2 K per layer), one marker style per method:
each run's clamped model, HEQ at `bits`, and the full-precision pretrained model (of the first run) as a dashed
line. All models are evaluated here on the same first `limit` test images. Right: effective bits per layer of the
first run vs HEQ at the bit-width nearest its mean. Writes <stem>.png, <stem>.csv (method, label, mean_bits,
accuracy, loss, n), <stem>_layers.csv and <stem>.config.json.

    >>> spec = AccuracyVsBitsFigure(runs=("runs/wc-a.h5", "runs/wc-b.h5"), labels=("h=0.05", "h=0.001"))
    >>> spec.name, spec.bits
    ('accuracy_vs_bits', (2, 3, 4, 5, 6))
    >>> AccuracyVsBitsFigure(runs=("runs/wc.h5",), bits=(2, 17))
    Traceback (most recent call last):
    ...
    ValueError: bits must be in 1..16, got [2, 17]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import plots
from ..outputs import write_csv
from .base import FigureResult, FigureSpec, check_bits, maker, run_label, test_batches, write_config


@dataclass(frozen=True)
class AccuracyVsBitsFigure(FigureSpec):
    """Test accuracy vs mean bits of the clamped models of `runs` (run files) and of HEQ PTQ at `bits` of the
    first run's pretrained model."""

    runs: tuple[str, ...] = ()  # run files (HDF5), ≥ 1; the first one's pretrained model is the PTQ baseline
    bits: tuple[int, ...] = (2, 3, 4, 5, 6)  # HEQ bit-widths, each in 1..16
    labels: tuple[str, ...] | None = None  # one label per run (None: its settings and file name)

    STEM = "accuracy_vs_bits"
    SUFFIXES = (".png", ".csv", "_layers.csv", ".config.json")

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "runs", tuple(str(r) for r in self.runs))
        if not self.runs:
            raise ValueError("give at least one run file")
        object.__setattr__(self, "bits", check_bits(self.bits, "give at least one HEQ bit-width"))
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(str(label) for label in self.labels))
            if len(self.labels) != len(self.runs):
                raise ValueError(f"{len(self.labels)} labels for {len(self.runs)} runs")



@maker(AccuracyVsBitsFigure)
def make(spec: AccuracyVsBitsFigure) -> FigureResult:
    """Evaluate the pretrained, every clamped and every HEQ model, draw both panels, write the PNG, both CSVs and
    the config JSON."""
    from ..compress.ptq import quantize_model
    from ..metrics import evaluate
    from ..store import Run

    out = spec.outputs()
    runs = [Run(r) for r in spec.runs]
    labels = list(spec.labels or [f"{run_label(r, method=False)} ({r.path.stem})" for r in runs])
    bits = [r.bits() for r in runs]  # fails now, not after the evaluations, if a run is unfinished
    clamped = [r.model("clamped") for r in runs]
    pretrained = runs[0].model("pretrained")
    batches, dev = test_batches(spec)

    rows = []
    full = evaluate(pretrained.to(dev), batches)
    rows.append({"method": "full precision", "label": "pretrained", "mean_bits": 32.0, **full})
    for label, b, model in zip(labels, bits, clamped, strict=True):
        result = evaluate(model.to(dev), batches, progress=not spec.quiet, desc=label)
        rows.append({"method": "soft quantization", "label": label, "mean_bits": b["mean_effective"],
                     **result})
    heq = {}
    for n_bits in sorted(spec.bits):
        q = quantize_model(pretrained, "heq", n_bits)
        result = evaluate(q.model.to(dev), batches, progress=not spec.quiet, desc=f"HEQ {n_bits} bits")
        heq[n_bits] = q
        rows.append({"method": "HEQ PTQ", "label": f"HEQ {n_bits} bits", "mean_bits": q.mean_bits(),
                     **result})
        spec.log(f"HEQ {n_bits} bits: {100 * result['accuracy']:.2f}%")

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
    write_csv(out[".csv"], rows)
    write_csv(out["_layers.csv"], layer_rows)
    write_config(out[".config.json"], spec, runs=[str(r.path) for r in runs], labels=labels, seeds=1,
                 heq_bits_for_layers=nearest)
    lines = [f"{r['label']:>40}: {r['mean_bits']:5.2f} bits  accuracy {100 * r['accuracy']:6.2f}%" for r in rows]
    return FigureResult({"png": str(out[".png"]), "csv": str(out[".csv"])}, {"rows": rows},
                        [*lines, f"wrote {out['.png']}, {out['.csv']}, {out['_layers.csv']}, {out['.config.json']}"],
                        flat=True)
