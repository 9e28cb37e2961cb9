"""Mixed precision from two global hyperparameters (soft-quantization paper, Mechanism 2 and abstract).

Claim tested: with one global (h, w) — scaled per layer as h_l = h·N_l^(−α), w_l = w·σ_l — soft quantization ends
with layer-dependent effective bit widths b_l = log2 K_l (mixed precision), not one width for all layers. Shown:
each layer's effective bits against its size N_l (log axis), one series per run (seeds of one setting), and the
bits by layer position. Backed by the runs given (the reproduction report passes the headline setting's seeds);
nothing is re-evaluated: clusters and bits are read from the run files.

Writes figures/mixed_precision.png, mixed_precision.csv (run, seed, layer, index, n_weights, clusters, bits,
storage_bits) and mixed_precision.config.json.

  python analyses/fig_mixed_precision.py --run runs/a.h5 runs/b.h5 [--out-dir figures]
"""

from __future__ import annotations

import common
import numpy as np

from landscape import cli, plots
from landscape.store import Run

STEM = "mixed_precision"


def layer_rows(run: Run) -> list[dict]:
    """One row per clustered layer of a finished run file, in model order."""
    bits, clusters = run.bits(), run.clusters()
    state = run.state("pretrained")
    return [{"run": str(run.path), "seed": run.seed, "layer": name, "index": i, "n_weights": int(state[name].numel()),
             "clusters": int(len(clusters[name][0])), "bits": float(bits["effective"][name]),
             "storage_bits": float(bits["storage"][name])} for i, name in enumerate(bits["effective"])]


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/fig_mixed_precision.py", __doc__, run_nargs="+")
    args = p.parse_args(argv)
    out = common.outputs(args.out_dir, STEM, [".png", ".csv", ".config.json"], args.force)
    runs = [Run(r) for r in common.resolve_runs(args)]
    rows = [row for run in runs for row in layer_rows(run)]

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
    fig.suptitle(f"Mixed precision from one global (h, w) — {common.run_label(runs[0])}", fontsize="medium")
    plots.save(fig, out[".png"])
    common.write_csv(out[".csv"], rows)
    common.write_config(out[".config.json"], args, runs=[str(r.path) for r in runs], seeds=[r.seed for r in runs])
    spans = {r.seed: float(np.ptp([x["bits"] for x in rows if x["run"] == str(r.path)])) for r in runs}
    if args.json:
        cli.print_json({"png": str(out[".png"]), "csv": str(out[".csv"]), "bits_span": spans})
    else:
        print("per-layer bits span (max − min) by seed: " + ", ".join(f"{s}: {v:.2f}" for s, v in spans.items()))
        print(f"wrote {out['.png']}, {out['.csv']}, {out['.config.json']}")
    return 0


if __name__ == "__main__":
    cli.run(main, "fig_mixed_precision")
