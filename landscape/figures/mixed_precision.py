"""Mixed precision from two global hyperparameters (soft-quantization paper, Mechanism 2 and abstract;
`analyses/fig_mixed_precision.py`).

Claim tested: with one global (h, w) — scaled per layer as h_l = h·N_l^(−α), w_l = w·σ_l — soft quantization ends
with layer-dependent effective bit widths b_l = log2 K_l (mixed precision), not one width for all layers. Shown:
each layer's effective bits against its size N_l (log axis), one series per run (seeds of one setting), and the
bits by layer position. Backed by the runs given (the reproduction report passes the headline setting's seeds);
nothing is re-evaluated: clusters and bits are read from the run files.

Writes <stem>.png, <stem>.csv (run, seed, layer, index, n_weights, clusters, bits, storage_bits) and
<stem>.config.json.

    >>> spec = MixedPrecisionFigure(runs=("runs/s0.h5", "runs/s1.h5"), out_dir="figures")
    >>> spec.name, spec.paths()[".csv"].as_posix()
    ('mixed_precision', 'figures/mixed_precision.csv')
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import plots
from ..outputs import write_csv
from ..store import Run
from .base import FigureResult, FigureSpec, maker, run_label, write_config


def layer_rows(run: Run) -> list[dict]:
    """One row per clustered layer of a finished run file, in model order."""
    bits, clusters = run.bits(), run.clusters()
    state = run.state("pretrained")
    return [{"run": str(run.path), "seed": run.seed, "layer": name, "index": i, "n_weights": int(state[name].numel()),
             "clusters": int(len(clusters[name][0])), "bits": float(bits["effective"][name]),
             "storage_bits": float(bits["storage"][name])} for i, name in enumerate(bits["effective"])]


@dataclass(frozen=True)
class MixedPrecisionFigure(FigureSpec):
    """Per-layer effective bits of `runs` (finished run files of one setting, one series each). Reads the run files
    only: `limit`, `batch_size`, `data` and `device` are not used."""

    runs: tuple[str, ...] = ()  # finished run files (HDF5), ≥ 1: the seeds of one setting

    STEM = "mixed_precision"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "runs", tuple(str(r) for r in self.runs))
        if not self.runs:
            raise ValueError("give at least one run file")


@maker(MixedPrecisionFigure)
def make(spec: MixedPrecisionFigure) -> FigureResult:
    """Read every run's per-layer bits, draw both panels, write the PNG, CSV and config JSON."""
    out = spec.outputs()
    runs = [Run(r) for r in spec.runs]
    rows = [row for run in runs for row in layer_rows(run)]
    spec.log(f"{len(rows)} layers of {len(runs)} runs")

    fig, axes = plots.figure(1, 2, width=5.5, height=4.0)
    for run in runs:
        mine = [r for r in rows if r["run"] == str(run.path)]
        n = np.array([r["n_weights"] for r in mine])
        b = np.array([r["bits"] for r in mine])
        label = f"seed {run.seed}: mean {run.bits()['mean_effective']:.2f} bits"
        axes[0, 0].scatter(n, b, s=18, label=label, alpha=0.8)
        axes[0, 1].plot(np.arange(len(b)), b, marker="o", ms=3, label=label)
    axes[0, 0].set(xscale="log", xlabel="layer size N_l (weights)", ylabel="effective bits log2 K_l",
                   title="bits vs layer size")
    axes[0, 1].set(xlabel="layer (model order)", ylabel="effective bits log2 K_l", title="bits by layer")
    for ax in axes[0]:
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(f"Mixed precision from one global (h, w) — {run_label(runs[0])}", fontsize="medium")
    plots.save(fig, out[".png"])
    write_csv(out[".csv"], rows)
    write_config(out[".config.json"], spec, seeds=[r.seed for r in runs])  # the runs: the spec's `runs`
    spans = {r.seed: float(np.ptp([x["bits"] for x in rows if x["run"] == str(r.path)])) for r in runs}
    return FigureResult({"png": str(out[".png"]), "csv": str(out[".csv"])}, {"bits_span": spans},
                       ["per-layer bits span (max − min) by seed: " + ", ".join(f"{s}: {v:.2f}"
                                                                                for s, v in spans.items()),
                        f"wrote {out['.png']}, {out['.csv']}, {out['.config.json']}"], flat=True)
