"""Subsampled against exact pair sums (bottom-of-the-loss-landscape paper, §3.1 and App. A.1).

Claim checked: the paper computes the weight–weight loss "by randomly subsampling a fraction O(√N_l) of weights
per layer" (App. A: "N_l of the N_l² pairwise interactions at each training step"), which makes it O(N) and
"additionally serves as a regularizer that discourages overly aggressive clustering". Do subsampled runs reach
what the exact pair sum reaches?

Two panels:
- the runs: clamped test accuracy against mean effective bits, one marker per run of each study given (the
  reproduction report's studies train one setting with estimator = subsampled | subset | sorted | histogram);
- why: the per-step force noise of the two sampling designs on the pretrained layers of the first run, as
  ‖F̂ − F‖ / ‖F‖ per layer against N_l, mean over --draws draws, F the exact force (sorted estimator, float64) at
  the run's w_l = w σ_l. "subsampled" draws N_l independent ordered pairs (about two per weight); "subset" takes
  all pairs among a random ⌈√N_l⌉ of the weights (the paper's wording): same expectation, rarer and larger kicks.

Writes figures/estimators_force.png, estimators_force.csv (kind = "run": study, seed, mean_bits, accuracy_clamped;
kind = "noise": estimator, layer, n_weights, noise) and estimators_force.config.json.

  python analyses/fig_estimators.py --study est-subsampled est-subset est-sorted est-histogram --dir studies
"""

from __future__ import annotations

import math

import common
import numpy as np
import torch

from landscape import cli, coupling, plots
from landscape.errors import LandscapeError
from landscape.store import Run

STEM = "estimators_force"
SAMPLED = {"subsampled": coupling.energy_subsampled, "subset": coupling.energy_subset}


def force_noise(run: Run, draws: int, seed: int = 0) -> list[dict]:
    """Per coupled layer of the run's pretrained state and sampling design: mean ‖F̂ − F‖/‖F‖ over draws."""
    w = float(run.config["compressor"]["w"])
    pre = run.state("pretrained")
    g = torch.Generator().manual_seed(seed)
    rows = []
    for name in run.clusters():  # the coupled layers, in model order
        theta = pre[name].double().flatten()
        w_l = w * theta.std().item()
        _, exact = common.energy_gradient(coupling.energy_sorted, theta, w_l)
        norm = exact.norm().item()
        for est, fn in SAMPLED.items():
            err = [(common.energy_gradient(fn, theta, w_l, generator=g)[1] - exact).norm().item() / norm
                   for _ in range(draws)]
            rows.append({"kind": "noise", "estimator": est, "layer": name, "n_weights": theta.numel(),
                         "noise": float(np.mean(err))})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/fig_estimators.py", __doc__)
    p.add_argument("--study", nargs="+", required=True, help="studies to show (one estimator each)")
    p.add_argument("--dir", default="studies", help="folder of the studies' journals (default: studies/)")
    p.add_argument("--draws", type=cli.positive_int, default=20, help="draws per layer for the force noise")
    args = p.parse_args(argv)
    out = common.outputs(args.out_dir, STEM, [".png", ".csv", ".config.json"], args.force)
    runs = {}
    for name in args.study:
        _, runs[name] = common.study_runs(name, args.dir)
        if not runs[name]:
            raise LandscapeError(f"study {name} has no finished runs yet")
    rows = [{"kind": "run", "study": name, "seed": r["seed"], "mean_bits": r["mean_bits"],
             "accuracy_clamped": r["accuracy_clamped"], "run": r["run"]} for name, rs in runs.items() for r in rs]
    first = Run(rows[0]["run"])
    noise = force_noise(first, args.draws)

    fig, axes = plots.figure(1, 2, width=5.4, height=4.0)
    colors = plots.palette(list(runs))
    for i, (name, rs) in enumerate(runs.items()):
        bits = np.array([r["mean_bits"] for r in rs])
        acc = 100 * np.array([r["accuracy_clamped"] for r in rs])
        axes[0, 0].scatter(bits, acc, s=36, marker=plots.MARKERS[i % len(plots.MARKERS)], color=colors[name],
                           label=f"{name}: {bits.mean():.2f} bits, {acc.mean():.2f}% "
                                 f"({len(rs)} run{'s' * (len(rs) > 1)})")
    axes[0, 0].set(xlabel="mean effective bits", ylabel="clamped test accuracy (%)",
                   title="runs: bits and accuracy by estimator")
    axes[0, 0].legend(fontsize="x-small")
    for est in SAMPLED:  # in the colour of its study on the left, when one is shown
        mine = [r for r in noise if r["estimator"] == est]
        color = next((colors[n] for n in runs if n.endswith(est)), None)
        axes[0, 1].plot([r["n_weights"] for r in mine], [r["noise"] for r in mine], "o", label=est, alpha=0.8,
                        color=color)
    axes[0, 1].axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    axes[0, 1].set(xscale="log", yscale="log", xlabel="layer size N_l (weights)",
                   ylabel="‖F̂ − F‖ / ‖F‖ per step (mean over draws)",
                   title=f"force noise per step, pretrained layers ({args.draws} draws)")
    axes[0, 1].legend(fontsize="x-small")
    fig.suptitle(f"Sampled vs exact pair sums — {common.run_label(first)}", fontsize="medium")
    plots.save(fig, out[".png"])
    common.write_csv(out[".csv"], rows + noise)
    common.write_config(out[".config.json"], args, noise_run=str(first.path))
    summary = {est: float(math.exp(np.mean([math.log(r["noise"]) for r in noise if r["estimator"] == est])))
               for est in SAMPLED}
    if args.json:
        cli.print_json({"png": str(out[".png"]), "csv": str(out[".csv"]), "noise_geomean": summary})
    else:
        print("force noise ‖F̂ − F‖/‖F‖, geometric mean over layers: "
              + ", ".join(f"{k} {v:.1f}" for k, v in summary.items()))
        print(f"wrote {out['.png']}, {out['.csv']}, {out['.config.json']}")
    return 0


if __name__ == "__main__":
    cli.run(main, "fig_estimators")
