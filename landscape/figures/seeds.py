"""Different seeds, different clusterings (bottom-of-the-loss-landscape paper, §4.1 and Fig. 1B;
`analyses/fig_seeds.py`).

Claim shown: under fixed hyperparameters, weight–weight compression from the same pretrained model reaches
different clustering configurations with different random seeds ("more than one distinct clustering
configuration is reachable"). Shown: for a few layers (rows) and each run given (columns, the seeds of one
setting), the layer's fine-tuned (compressed) weight distribution and the clamped model's cluster values as
stems (height: weights per cluster). Nothing is re-evaluated: weights and clusters are read from the run files.
The reproduction report's row bl-seeds counts, per pair of seeds, the layers whose clusters differ; this figure
is what that count looks like.

Writes <stem>.png, <stem>_hist.csv (seed, layer, kind = "bin" | "cluster", lo, hi, count: a histogram bin [lo, hi)
and its weights, or a cluster value lo = hi and its members) and <stem>_hist.config.json.

    >>> spec = SeedsFigure(runs=("runs/s0.h5", "runs/s1.h5", "runs/s2.h5"), bins=60)
    >>> spec.name, spec.paths()["_hist.csv"].name
    ('seeds_clusters', 'seeds_clusters_hist.csv')
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import plots
from ..errors import LandscapeError
from ..outputs import write_csv
from ..store import Run
from .base import FigureResult, FigureSpec, maker, run_label, write_config


def default_layers(clusters: dict[str, tuple], sizes: dict[str, int]) -> list[str]:
    """The smallest, the median-size and the largest clustered layer (model order kept)."""
    names = sorted(clusters, key=lambda n: sizes[n])
    picked = {names[0], names[len(names) // 2], names[-1]}
    return [n for n in clusters if n in picked]


@dataclass(frozen=True)
class SeedsFigure(FigureSpec):
    """Fine-tuned weight histograms and clamped clusters of a few layers of `runs` (the seeds of one setting, one
    column each). Reads the run files only: `limit`, `batch_size`, `data` and `device` are not used."""

    runs: tuple[str, ...] = ()  # finished run files (HDF5) of one setting, ≥ 1, with distinct seeds
    layers: tuple[str, ...] | None = None  # layers to show (state-dict names; None: the smallest, median and
    #                                        largest clustered)
    bins: int = 120  # histogram bins per layer, ≥ 1

    STEM = "seeds_clusters"
    SUFFIXES = (".png", "_hist.csv", "_hist.config.json")

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "runs", tuple(str(r) for r in self.runs))
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(self.layers))
            if not self.layers:
                raise ValueError("layers: give at least one layer, or None for the default three")
        if not self.runs:
            raise ValueError("give at least one run file")
        if isinstance(self.bins, bool) or not isinstance(self.bins, int) or self.bins < 1:
            raise ValueError(f"bins must be an integer ≥ 1, got {self.bins!r}")


@maker(SeedsFigure)
def make(spec: SeedsFigure) -> FigureResult:
    """Read every run's compressed weights and clusters, draw the grid, write the PNG, CSV and config JSON."""
    out = spec.outputs()
    runs = [Run(r) for r in spec.runs]
    clusters = {run.seed: run.clusters() for run in runs}
    weights = {run.seed: run.state("compressed") for run in runs}
    if len(clusters) != len(runs):
        raise LandscapeError("two runs have the same seed; give the runs of one setting with distinct seeds")
    first = clusters[runs[0].seed]
    layers = list(spec.layers or default_layers(first, {n: weights[runs[0].seed][n].numel() for n in first}))
    unknown = [n for n in layers if any(n not in c for c in clusters.values())]
    if unknown:
        raise LandscapeError(f"layer(s) {', '.join(unknown)} not clustered in every run; clustered: "
                             f"{', '.join(first)}")
    spec.log(f"{len(layers)} layers × {len(runs)} seeds")

    rows = []
    fig, axes = plots.figure(len(layers), len(runs), width=3.6, height=2.6)
    for i, layer in enumerate(layers):
        values = {s: weights[s][layer].double().flatten().numpy() for s in clusters}
        edges = np.linspace(min(v.min() for v in values.values()), max(v.max() for v in values.values()),
                            spec.bins + 1)
        for j, run in enumerate(runs):
            s = run.seed
            counts, _ = np.histogram(values[s], edges)
            centre, members = clusters[s][layer]
            plots.weight_histograms(axes[i, j], edges, {"compressed": counts}, clusters=(centre, members),
                                    title=f"seed {s}: {layer} (N = {values[s].size:,}), K = {len(centre)}",
                                    legend=i == 0 and j == 0)
            axes[i, j].title.set_fontsize("x-small")
            axes[i, j].sharex(axes[i, 0])
            rows += [{"seed": s, "layer": layer, "kind": "bin", "lo": float(a), "hi": float(b), "count": int(c)}
                     for a, b, c in zip(edges[:-1], edges[1:], counts, strict=True)]
            rows += [{"seed": s, "layer": layer, "kind": "cluster", "lo": float(v), "hi": float(v), "count": int(m)}
                     for v, m in zip(centre, members, strict=True)]
    fig.suptitle(f"One setting, {len(runs)} seeds: fine-tuned weights and clamped cluster values — "
                 f"{run_label(runs[0])}", fontsize="medium")
    plots.save(fig, out[".png"])
    write_csv(out["_hist.csv"], rows)
    write_config(out["_hist.config.json"], spec, seeds=[r.seed for r in runs], layers=layers)  # runs: the spec's
    ks = {s: {layer: len(clusters[s][layer][0]) for layer in layers} for s in clusters}
    lines = [f"seed {s}: clusters " + ", ".join(f"{layer} {n}" for layer, n in k.items()) for s, k in ks.items()]
    return FigureResult({"png": str(out[".png"]), "csv": str(out["_hist.csv"])}, {"clusters": ks},
                       [*lines, f"wrote {out['.png']}, {out['_hist.csv']}, {out['_hist.config.json']}"], flat=True)
