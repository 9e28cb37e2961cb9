"""Weight histograms during soft quantization (soft-quantization paper, Fig. 1; `analyses/fig_weight_histograms.py`).

Claim reproduced: under weight coupling the smooth pretrained distribution of each layer's weights breaks up
into sharp peaks — already visible after the first epoch — and the final weights sit on a few cluster values
(after the 7-bit binning and the merge of clusters below n_min), so clamping moves them little. Backed by one
run (one seed) per figure; it shows the run it is given, it does not average over seeds.

For each chosen layer (default: first conv, a middle conv, the largest layer and the classifier): histograms
on shared bins of the pretrained weights, the checkpoint nearest one epoch, the final fine-tuned (compressed)
weights and the clamped weights (small clusters merged), log counts, with the final cluster values marked. No
images are evaluated (`limit`, `data` and `device` are unused). Writes <stem>.png, <stem>.csv (layer, series,
bin_left, bin_right, count) and <stem>.config.json.

    >>> spec = WeightHistogramsFigure(run="runs/wc.h5", layers=("all",), bins=30)
    >>> spec.name, spec.layers, spec.paths()[".csv"].name
    ('weight_histograms', ('all',), 'weight_histograms.csv')
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import plots
from ..outputs import write_csv
from .base import FigureResult, FigureSpec, checkpoint_epochs, maker, run_label, write_config


@dataclass(frozen=True)
class WeightHistogramsFigure(FigureSpec):
    """Weight histograms of the chosen layers of `run` (a run file): pretrained, after about one epoch, final
    compressed, and the clamped cluster values."""

    run: str = ""  # the run file (HDF5)
    layers: tuple[str, ...] | None = None  # layer names (e.g. layer2.0.conv1.weight) or ("all",) (None: 4 typical ones)
    bins: int = 150  # histogram bins per layer (≥ 1)

    STEM = "weight_histograms"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "run", str(self.run))
        if not self.run:
            raise ValueError("give a run file")
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(str(n) for n in self.layers))
            if not self.layers:
                raise ValueError("layers must name at least one layer (or 'all'), or be None")
        if not isinstance(self.bins, int) or isinstance(self.bins, bool) or self.bins < 1:
            raise ValueError(f"bins must be an integer ≥ 1, got {self.bins!r}")



def pick_layers(params: dict, wanted: list[str] | tuple[str, ...] | None) -> list[str]:
    """The layers to draw: `wanted` checked against `params` (name → tensor), all of them for ["all"], else the
    first, a middle, the largest and the last."""
    names = list(params)
    if wanted is not None and list(wanted) == ["all"]:
        return names
    if wanted:
        unknown = [w for w in wanted if w not in params]
        if unknown:
            raise ValueError(f"no layer {unknown[0]!r}; the compressed layers are: {', '.join(names)}")
        return list(wanted)
    largest = max(names, key=lambda n: params[n].numel())
    chosen = [names[0], names[len(names) // 2], largest, names[-1]]
    return list(dict.fromkeys(chosen))


@maker(WeightHistogramsFigure)
def make(spec: WeightHistogramsFigure) -> FigureResult:
    """Histogram every chosen layer's weights of every series, draw the panels, write the PNG, CSV and config."""
    from ..params import select_params
    from ..store import Run

    out = spec.outputs()
    run = Run(spec.run)

    pre, comp = run.state("pretrained"), run.state("compressed")
    clusters = run.clusters()  # the clamped model's cluster values and sizes, small clusters merged
    epochs = checkpoint_epochs(run.path)
    series = {"pretrained": pre}
    if epochs:
        step = min(epochs, key=lambda s: abs(epochs[s] - 1.0))
        if step != max(epochs):  # an intermediate checkpoint, not the final weights again
            series[f"after epoch {epochs[step]:.2g} (step {step})"] = run.state(step)
    series["final (compressed, before clamping)"] = comp
    layers = pick_layers(select_params(run.model("pretrained")), spec.layers)

    rows = []
    ncols = min(2, len(layers))
    nrows = -(-len(layers) // ncols)
    fig, axes = plots.figure(nrows, ncols, width=6.2, height=3.8)
    for ax in axes.flat[len(layers):]:
        ax.set_visible(False)
    for ax, layer in zip(axes.flat, layers, strict=False):
        values = {label: state[layer].flatten().double().numpy() for label, state in series.items()}
        lo = min(v.min() for v in values.values())
        hi = max(v.max() for v in values.values())
        edges = np.linspace(lo, hi, spec.bins + 1)
        counts = {label: np.histogram(v, edges)[0] for label, v in values.items()}
        cluster_values, members = clusters[layer]
        plots.weight_histograms(ax, edges, counts, clusters=(cluster_values, members),
                                cluster_label="final clamped, small clusters merged", legend=False,
                                title=f"{layer.removesuffix('.weight')}  "
                                      f"({values['pretrained'].size} weights, "
                                      f"K = {len(cluster_values)} clusters)")
        for label, c in counts.items():
            rows += [{"layer": layer, "series": label, "bin_left": edges[j], "bin_right": edges[j + 1],
                      "count": int(c[j])} for j in range(len(c))]
        rows += [{"layer": layer, "series": "clamped cluster", "bin_left": float(v), "bin_right": float(v),
                  "count": int(m)} for v, m in zip(cluster_values, members, strict=True)]
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize="small")
    fig.suptitle(f"Weight distributions during soft quantization — {run_label(run)}, {run.path.name}",
                 fontsize="medium")
    plots.save(fig, out[".png"])
    write_csv(out[".csv"], rows)
    write_config(out[".config.json"], spec, run=str(run.path), series=list(series), layers=layers, seeds=1)
    return FigureResult({"png": str(out[".png"]), "csv": str(out[".csv"])}, {"layers": layers, "series": list(series)},
                       [f"wrote {out['.png']}, {out['.csv']}, {out['.config.json']}"], flat=True)
