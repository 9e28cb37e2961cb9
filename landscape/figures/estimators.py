"""Subsampled against exact pair sums (bottom-of-the-loss-landscape paper, §3.1 and App. A.1;
`analyses/fig_estimators.py`).

Claim checked: the paper computes the weight–weight loss "by randomly subsampling a fraction O(√N_l) of weights
per layer" (App. A: "N_l of the N_l² pairwise interactions at each training step"), which makes it O(N) and
"additionally serves as a regularizer that discourages overly aggressive clustering". Do subsampled runs reach
what the exact pair sum reaches?

Two panels:
- the runs: clamped test accuracy against mean effective bits, one marker per run of each study given (the
  reproduction report's studies train one setting with estimator = subsampled | subset | sorted | histogram);
- why: the per-step force noise of the two sampling designs on the pretrained layers of the first run, as
  ‖F̂ − F‖ / ‖F‖ per layer against N_l, mean over `draws` draws, F the exact force (sorted estimator, float64) at
  the run's w_l = w σ_l. "subsampled" draws N_l independent ordered pairs (about two per weight); "subset" takes
  all pairs among a random ⌈√N_l⌉ of the weights (the paper's wording): same expectation, rarer and larger kicks.

Writes <stem>.png, <stem>.csv (kind = "run": study, seed, mean_bits, accuracy_clamped; kind = "noise":
estimator, layer, n_weights, noise) and <stem>.config.json (stem: estimators_force).

    >>> spec = EstimatorsFigure(studies=["est-subsampled", "est-sorted"], dir="studies/repro-quick", draws=5)
    >>> spec.name, spec.studies, spec.paths()[".csv"].name
    ('estimators_force', ('est-subsampled', 'est-sorted'), 'estimators_force.csv')
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .. import coupling, plots
from ..outputs import write_csv
from .base import FigureResult, FigureSpec, energy_gradient, maker, run_label, study_runs, write_config

STEM = "estimators_force"
SAMPLED = {"subsampled": coupling.energy_subsampled, "subset": coupling.energy_subset}


@dataclass(frozen=True)
class EstimatorsFigure(FigureSpec):
    """Bits and accuracy of the runs of `studies` (one estimator each), and the force noise of both sampling
    designs on the first run's pretrained layers."""

    studies: tuple[str, ...] = ()  # names of the studies to show (one estimator each), ≥ 1
    dir: str = "studies"  # folder of the studies' journals (<dir>/<study>/journal.log)
    draws: int = 20  # random draws per layer and sampling design for the force noise

    STEM = STEM

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "studies", tuple(str(s) for s in self.studies))
        object.__setattr__(self, "dir", str(self.dir))
        if not self.studies:
            raise ValueError("give at least one study")
        if not isinstance(self.draws, int) or self.draws < 1:
            raise ValueError(f"draws must be an integer ≥ 1, got {self.draws!r}")


def force_noise(run, draws: int, seed: int = 0) -> list[dict]:
    """Per coupled layer of the run's pretrained state and sampling design: mean ‖F̂ − F‖/‖F‖ over draws."""
    w = float(run.config["compressor"]["w"])
    pre = run.state("pretrained")
    g = torch.Generator().manual_seed(seed)
    rows = []
    for name in run.clusters():  # the coupled layers, in model order
        theta = pre[name].double().flatten()
        w_l = w * theta.std().item()
        _, exact = energy_gradient(coupling.energy_sorted, theta, w_l)
        norm = exact.norm().item()
        for est, fn in SAMPLED.items():
            err = [(energy_gradient(fn, theta, w_l, generator=g)[1] - exact).norm().item() / norm
                   for _ in range(draws)]
            rows.append({"kind": "noise", "estimator": est, "layer": name, "n_weights": theta.numel(),
                         "noise": float(np.mean(err))})
    return rows


@maker(EstimatorsFigure)
def make(spec: EstimatorsFigure) -> FigureResult:
    """Read the studies' runs, measure the force noise, draw both panels, write the PNG, CSV and config JSON."""
    from ..store import Run

    out = spec.outputs()
    runs = {}
    for name in spec.studies:
        _, runs[name] = study_runs(name, spec.dir, finished=True)
    rows = [{"kind": "run", "study": name, "seed": r["seed"], "mean_bits": r["mean_bits"],
             "accuracy_clamped": r["accuracy_clamped"], "run": r["run"]} for name, rs in runs.items() for r in rs]
    first = Run(rows[0]["run"])
    spec.log(f"force noise of {first.path}: {spec.draws} draws per layer …")
    noise = force_noise(first, spec.draws)

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
                   title=f"force noise per step, pretrained layers ({spec.draws} draws)")
    axes[0, 1].legend(fontsize="x-small")
    fig.suptitle(f"Sampled vs exact pair sums — {run_label(first)}", fontsize="medium")
    plots.save(fig, out[".png"])
    write_csv(out[".csv"], rows + noise)
    write_config(out[".config.json"], spec, noise_run=str(first.path))
    summary = {est: float(math.exp(np.mean([math.log(r["noise"]) for r in noise if r["estimator"] == est])))
               for est in SAMPLED}
    lines = ["force noise ‖F̂ − F‖/‖F‖, geometric mean over layers: "
             + ", ".join(f"{k} {v:.1f}" for k, v in summary.items()),
             f"wrote {out['.png']}, {out['.csv']}, {out['.config.json']}"]
    return FigureResult({"png": str(out[".png"]), "csv": str(out[".csv"])}, {"noise_geomean": summary}, lines,
                        flat=True)
