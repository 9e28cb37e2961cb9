"""Different seeds, different clusterings (bottom-of-the-loss-landscape paper, §4.1 and Fig. 1B).

Claim shown: under fixed hyperparameters, weight–weight compression from the same pretrained model reaches
different clustering configurations with different random seeds ("more than one distinct clustering
configuration is reachable"). Shown: for a few layers (rows) and each run given (columns, the seeds of one
setting), the layer's fine-tuned (compressed) weight distribution and the clamped model's cluster values as
stems (height: weights per cluster). Nothing is re-evaluated: weights and clusters are read from the run files.
The reproduction report's row bl-seeds counts, per pair of seeds, the layers whose clusters differ; this figure
is what that count looks like.

Writes figures/seeds_clusters.png, seeds_clusters_hist.csv (seed, layer, kind = "bin" | "cluster", lo, hi, count:
a histogram bin [lo, hi) and its weights, or a cluster value lo = hi and its members) and
seeds_clusters_hist.config.json.

  python analyses/fig_seeds.py --run runs/s0.h5 runs/s1.h5 runs/s2.h5 [--layers NAME ...] [--bins 120]
"""

from __future__ import annotations

import common
import numpy as np

from landscape import cli, plots
from landscape.errors import LandscapeError
from landscape.store import Run

STEM = "seeds_clusters"


def default_layers(clusters: dict[str, tuple], sizes: dict[str, int]) -> list[str]:
    """The smallest, the median-size and the largest clustered layer (model order kept)."""
    names = sorted(clusters, key=lambda n: sizes[n])
    picked = {names[0], names[len(names) // 2], names[-1]}
    return [n for n in clusters if n in picked]


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/fig_seeds.py", __doc__, run_nargs="+")
    p.add_argument("--layers", nargs="+", default=None,
                   help="layers to show (state-dict names; default: the smallest, median and largest clustered)")
    p.add_argument("--bins", type=cli.positive_int, default=120, help="histogram bins per layer (default: 120)")
    args = p.parse_args(argv)
    out = common.outputs(args.out_dir, STEM, [".png", "_hist.csv", "_hist.config.json"], args.force)
    runs = [Run(r) for r in common.resolve_runs(args)]
    clusters = {run.seed: run.clusters() for run in runs}
    weights = {run.seed: run.state("compressed") for run in runs}
    if len(clusters) != len(runs):
        raise LandscapeError("two runs have the same seed; give the runs of one setting with distinct seeds")
    first = clusters[runs[0].seed]
    layers = args.layers or default_layers(first, {n: weights[runs[0].seed][n].numel() for n in first})
    unknown = [n for n in layers if any(n not in c for c in clusters.values())]
    if unknown:
        raise LandscapeError(f"layer(s) {', '.join(unknown)} not clustered in every run; clustered: "
                             f"{', '.join(first)}")

    rows = []
    fig, axes = plots.figure(len(layers), len(runs), width=3.6, height=2.6)
    for i, layer in enumerate(layers):
        values = {s: weights[s][layer].double().flatten().numpy() for s in clusters}
        edges = np.linspace(min(v.min() for v in values.values()), max(v.max() for v in values.values()),
                            args.bins + 1)
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
                 f"{common.run_label(runs[0])}", fontsize="medium")
    plots.save(fig, out[".png"])
    common.write_csv(out["_hist.csv"], rows)
    common.write_config(out["_hist.config.json"], args, runs=[str(r.path) for r in runs],
                        seeds=[r.seed for r in runs], layers=layers)
    ks = {s: {layer: len(clusters[s][layer][0]) for layer in layers} for s in clusters}
    if args.json:
        cli.print_json({"png": str(out[".png"]), "csv": str(out["_hist.csv"]), "clusters": ks})
    else:
        for s, k in ks.items():
            print(f"seed {s}: clusters " + ", ".join(f"{layer} {n}" for layer, n in k.items()))
        print(f"wrote {out['.png']}, {out['_hist.csv']}, {out['_hist.config.json']}")
    return 0


if __name__ == "__main__":
    cli.run(main, "fig_seeds")
