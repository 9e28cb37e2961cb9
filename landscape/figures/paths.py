"""Task loss and accuracy along the linear paths pretrained → compressed → clamped of one or more runs (workshop
paper "quantization near the bottom of the loss landscape", §4.2 and Fig. 2A; `analyses/fig_paths.py`).

Claim reproduced: in a successful compression the fine-tuning segment (pretrained → compressed) climbs the loss a
little and the clamping segment (compressed → clamped) costs almost nothing — the optimizer has reached a clampable
configuration; in a failed one (coupling too weak, e.g. h = 0.001) the compressed model stays close to the
pretrained loss and the degradation happens in the clamping segment. One curve per run (one seed); give runs of
several settings to compare them, several seeds of a setting under one label to see the spread.

One curve per run on two panels (loss, accuracy), `config.points` per segment with both endpoints, on the first
`limit` images of the test split, the training split (unaugmented) or both (both: train dashed, test solid); BN
statistics interpolated (`config.bn` keep) or re-estimated per point (recalibrate). Each curve's label is its
`labels` entry, the run's seed, and its mean effective bits and clamped test accuracy as the run file records them
(its own test evaluation, which may count more images than `limit`), e.g. "h=0.05 (seed 0): 3.90 bits, 85.75%".
Writes <stem>.png, <stem>.csv (run, label, seed, bits, accuracy_clamped, split, alpha, segment, loss, accuracy)
and <stem>.config.json.

    >>> spec = PathsFigure(runs=("runs/good.h5", "runs/failed.h5"), labels=("h=0.05", "h=0.001"))
    >>> spec.name, spec.config.points
    ('paths', 11)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import plots
from ..analysis.paths import PathConfig, evaluate_path
from ..analysis.states import load_state_spec
from ..bn import recalibration_batches
from ..outputs import write_csv
from .base import SPLITS, FigureResult, FigureSpec, eval_batches, maker, run_label, write_config

STATES = ["pretrained", "compressed", "clamped"]
STYLES = {"test": "-", "train": "--"}


@dataclass(frozen=True)
class PathsFigure(FigureSpec):
    """Paths pretrained → compressed → clamped of `runs` (run files), one curve each."""

    runs: tuple[str, ...] = ()  # run files (HDF5), ≥ 1
    labels: tuple[str, ...] | None = None  # one legend label per run (None: its settings and file name)
    config: PathConfig = field(default_factory=PathConfig)  # points per segment, BN mode and batches
    split: str = "test"  # test, train (unaugmented) or both

    STEM = "paths"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "runs", tuple(str(r) for r in self.runs))
        if not self.runs:
            raise ValueError("give at least one run file")
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(self.labels))
            if len(self.labels) != len(self.runs):
                raise ValueError(f"{len(self.labels)} labels for {len(self.runs)} runs")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")


@maker(PathsFigure)
def make(spec: PathsFigure) -> FigureResult:
    """Evaluate every run's path, draw both panels, write the PNG, CSV and config JSON."""
    from ..distributed import usable_device
    from ..store import Run

    out = spec.outputs()
    runs = [Run(r) for r in spec.runs]
    labels = spec.labels or [f"{run_label(r)} ({r.path.stem})" for r in runs]
    # a curve is a run: its label (repeated for the seeds of one setting), seed, bits and clamped accuracy
    facts = {f"{label} (seed {r.seed})": {"run": str(r.path), "label": label, "seed": r.seed,
                                          "bits": r.bits()["mean_effective"],
                                          "accuracy_clamped": float(r.evals()["clamped"]["accuracy"])}
             for label, r in zip(labels, runs, strict=True)}
    if len(facts) != len(runs):
        raise ValueError("two runs have the same label and seed; give distinct labels")
    shown = {k: f"{k}: {f['bits']:.2f} bits, {100 * f['accuracy_clamped']:.2f}%" for k, f in facts.items()}

    dev = usable_device(spec.device)
    config = spec.config
    data, train = eval_batches(spec, spec.split)
    bn_data = recalibration_batches(train, config.bn_batches, spec.batch_size, dev) if config.bn == "recalibrate" \
        else None

    results, rows = {}, []
    for key, run in zip(facts, runs, strict=True):
        spec.log(f"{key}: {2 * config.points - 1} points …")
        r = results[key] = evaluate_path(run.model("pretrained").to(dev), [load_state_spec(run, s) for s in STATES],
                                         data, config, bn_data=bn_data, labels=STATES, progress=not spec.quiet)
        rows += [{**facts[key], "split": split, "alpha": float(a), "segment": int(s), "loss": float(lo),
                  "accuracy": float(ac)}
                 for split in data for a, s, lo, ac in zip(r.alpha, r.segment, r.metrics[split]["loss"],
                                                           r.metrics[split]["accuracy"], strict=True)]

    alpha = next(iter(results.values())).alpha
    fig, axes = plots.figure(1, 2, width=5.8, height=4.0)
    where = {"test": "test", "train": "training", "both": "test (solid), train (dashed)"}[spec.split]
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
    fig.suptitle(f"Linear paths pretrained → compressed → clamped ({config.points} points per segment, "
                 f"BN {config.bn}, n = {n} images)", fontsize="medium")
    plots.save(fig, out[".png"])
    write_csv(out[".csv"], rows)
    knots = [0, config.points - 1, len(alpha) - 1]
    summary = {k: {**facts[k], **{split: {
        "loss": {s: float(r.metrics[split]["loss"][i]) for s, i in zip(STATES, knots, strict=True)},
        "max_loss": float(np.max(r.metrics[split]["loss"])),
        "accuracy": {s: float(r.metrics[split]["accuracy"][i]) for s, i in zip(STATES, knots, strict=True)}}
        for split in data}} for k, r in results.items()}
    write_config(out[".config.json"], spec, labels=list(labels), seeds=len({r.seed for r in runs}), summary=summary)
    lines = [f"{shown[k]} | {split}: accuracy {100 * s[split]['accuracy']['pretrained']:.2f}% → "
             f"{100 * s[split]['accuracy']['compressed']:.2f}% → {100 * s[split]['accuracy']['clamped']:.2f}%  "
             f"(max loss on the path {s[split]['max_loss']:.3f})" for k, s in summary.items() for split in data]
    return FigureResult({"png": str(out[".png"]), "csv": str(out[".csv"])}, summary,
                        [*lines, f"wrote {out['.png']}, {out['.csv']}, {out['.config.json']}"])
