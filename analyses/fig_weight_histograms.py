"""Weight histograms during soft quantization (soft-quantization paper, Fig. 1).

Claim reproduced: under weight coupling the smooth pretrained distribution of each layer's weights breaks up
into sharp peaks — already visible after the first epoch — and the final weights sit on a few cluster values
(after the 7-bit binning and the merge of clusters below n_min), so clamping moves them little. Backed by one
run (one seed) per figure; it shows the run it is given, it does not average over seeds.

For each chosen layer (default: first conv, a middle conv, the largest layer and the classifier): histograms
on shared bins of the pretrained weights, the checkpoint nearest one epoch, the final fine-tuned (compressed)
weights and the clamped weights (small clusters merged), log counts, with the final cluster values marked.
Writes figures/weight_histograms.png, .csv (layer, series, bin_left, bin_right, count) and .config.json.

  python analyses/fig_weight_histograms.py --run runs/wc.h5 [--layers all|NAME ...] [--bins 150]
"""

from __future__ import annotations

import common
import numpy as np

from landscape import cli, plots
from landscape.params import select_params
from landscape.store import Run

STEM = "weight_histograms"


def pick_layers(params: dict, wanted: list[str] | None) -> list[str]:
    names = list(params)
    if wanted == ["all"]:
        return names
    if wanted:
        unknown = [w for w in wanted if w not in params]
        if unknown:
            raise ValueError(f"no layer {unknown[0]!r}; the compressed layers are: {', '.join(names)}")
        return wanted
    largest = max(names, key=lambda n: params[n].numel())
    chosen = [names[0], names[len(names) // 2], largest, names[-1]]
    return list(dict.fromkeys(chosen))


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/fig_weight_histograms.py", __doc__)
    p.add_argument("--layers", nargs="+", default=None,
                   help="layer names (e.g. layer2.0.conv1.weight) or 'all' (default: 4 representative "
                        "layers)")
    p.add_argument("--bins", type=cli.positive_int, default=150,
                   help="histogram bins per layer (default: 150)")
    args = p.parse_args(argv)
    out = common.outputs(args.out_dir, STEM, [".png", ".csv", ".config.json"], args.force)
    run = Run(common.resolve_runs(args)[0])

    pre, comp = run.state("pretrained"), run.state("compressed")
    clusters = run.clusters()  # the clamped model's cluster values and sizes, small clusters merged
    epochs = common.checkpoint_epochs(run.path)
    series = {"pretrained": pre}
    if epochs:
        step = min(epochs, key=lambda s: abs(epochs[s] - 1.0))
        if step != max(epochs):  # an intermediate checkpoint, not the final weights again
            series[f"after epoch {epochs[step]:.2g} (step {step})"] = run.state(step)
    series["final (compressed, before clamping)"] = comp
    layers = pick_layers(select_params(run.model("pretrained")), args.layers)

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
        edges = np.linspace(lo, hi, args.bins + 1)
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
    fig.suptitle(f"Weight distributions during soft quantization — {common.run_label(run)}, {run.path.name}",
                 fontsize="medium")
    plots.save(fig, out[".png"])
    common.write_csv(out[".csv"], rows)
    common.write_config(out[".config.json"], args, run=str(run.path), series=list(series), layers=layers,
                        seeds=1)
    result = {"png": str(out[".png"]), "csv": str(out[".csv"]), "layers": layers, "series": list(series)}
    if args.json:
        cli.print_json(result)
    else:
        print(f"wrote {out['.png']}, {out['.csv']}, {out['.config.json']}")
    return 0


if __name__ == "__main__":
    cli.run(main, "fig_weight_histograms")
