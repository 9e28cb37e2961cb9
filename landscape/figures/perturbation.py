"""Soft quantization's displacement against random perturbations of the same norm (soft-quantization paper,
Mechanism 3 and Fig. 3; `analyses/fig_perturbation.py`).

Claim reproduced: the step from the pretrained to the compressed / clamped weights costs far less task loss
per unit of weight-space distance (ΔL/‖Δθ‖) than random Gaussian steps of the same norm — it lies below the
random distribution (low percentile, negative z-score) — whereas a PTQ step (HEQ) of similar size lies closer
to it. Backed by one training run (one seed) and M random directions (one direction seed) per target; the
spread of the random distribution is the only uncertainty shown.

For each target (default: compressed, clamped, ptq:heq:4) one panel: histogram of ΔL/‖Δθ‖ over the
`config.directions` random directions with the real displacement as a vertical line; below it the 1-D scans (loss
vs step size α, `config.alphas`; none: no scan) along the real displacement and along random direction 0, on the
first `limit` test images. Every perturbed state, real or random, gets its BN statistics re-estimated on the same
`config.bn_batches` training batches (`config.bn` recalibrate, default) and keeps the pretrained BN parameters and
biases (landscape/analysis/perturbation.py explains why; keep shows the biased alternative). Writes <stem>.png,
<stem>.csv (target, kind, direction, delta_loss, slope, accuracy), <stem>_scan.csv and <stem>.config.json.

    >>> spec = PerturbationFigure(run="runs/wc.h5", targets=("clamped", "ptq:heq:2"))
    >>> spec.name, spec.config.directions, spec.config.alphas
    ('perturbation', 20, (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0))
    >>> sorted(p.name for p in spec.paths().values())
    ['perturbation.config.json', 'perturbation.csv', 'perturbation.png', 'perturbation_scan.csv']
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import plots
from ..analysis.perturbation import PerturbConfig, perturbation_test
from ..analysis.states import load_state_spec
from ..outputs import write_csv
from .base import FigureResult, FigureSpec, bn_batches, maker, run_label, test_batches, write_config

TARGETS = ("compressed", "clamped", "ptq:heq:4")
ALPHAS = (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)


@dataclass(frozen=True)
class PerturbationFigure(FigureSpec):
    """The real displacements pretrained → each of `targets` of `run` (a run file) against random directions of
    the same norm."""

    run: str = ""  # the run file (HDF5)
    targets: tuple[str, ...] = TARGETS  # displacement ends: compressed, clamped, ptq:METHOD:BITS (state specs), ≥ 1
    # random directions M, norm matching (global | per-layer), direction seed, 1-D scan positions (units of the
    # step), BN mode and recalibration batches (of batch_size training images) per state
    config: PerturbConfig = field(default_factory=lambda: PerturbConfig(alphas=ALPHAS))

    STEM = "perturbation"
    SUFFIXES = (".png", ".csv", "_scan.csv", ".config.json")

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "run", str(self.run))
        if not self.run:
            raise ValueError("give a run file")
        object.__setattr__(self, "targets", tuple(str(t) for t in self.targets))
        if not self.targets:
            raise ValueError("give at least one target state")
        if not isinstance(self.config, PerturbConfig):
            raise ValueError(f"config must be an analysis.perturbation.PerturbConfig, got {type(self.config).__name__}")


@maker(PerturbationFigure)
def make(spec: PerturbationFigure) -> FigureResult:
    """Run the perturbation test of every target, draw the panels, write the PNG, both CSVs and the config."""
    from ..store import Run

    out = spec.outputs()
    run = Run(spec.run)
    config = spec.config
    targets = {t: load_state_spec(run, t) for t in spec.targets}  # all input errors before any evaluation
    batches, dev = test_batches(spec)
    model = run.model("pretrained").to(dev)
    bn_data = bn_batches(spec, config.bn_batches) if config.bn == "recalibrate" else None

    results = {}
    for t, state in targets.items():
        spec.log(f"{t}: {config.directions} random directions + real displacement …")
        results[t] = perturbation_test(model, state, batches, config, bn_data=bn_data, progress=not spec.quiet)

    scans = bool(config.alphas)
    fig, axes = plots.figure(2 if scans else 1, len(targets), width=4.8, height=3.6)
    rows, scan_rows, summary = [], [], {}
    for i, (t, r) in enumerate(results.items()):
        label = f"{t}: {r.percentile:.0f}th pct, z = {r.zscore:+.1f}"
        plots.perturbation_distribution(axes[0, i], r.random_slope, {label: r.real["slope"]},
                                        bins=min(20, max(5, config.directions // 2)),  # ~2 directions per bin
                                        title=f"{t}  (‖Δθ‖ = {r.displacement_norm:.2f})")
        rows.append({"target": t, "kind": "real", "direction": -1, "delta_loss": r.real["delta_loss"],
                     "slope": r.real["slope"], "accuracy": r.real["accuracy"]})
        rows.append({"target": t, "kind": "target_full_state", "direction": -1,
                     "delta_loss": r.target["loss"] - r.base["loss"],
                     "slope": (r.target["loss"] - r.base["loss"]) / r.displacement_norm,
                     "accuracy": r.target["accuracy"]})
        rows += [{"target": t, "kind": "random", "direction": j, "delta_loss": float(dl), "slope": float(s),
                  "accuracy": float(a)}
                 for j, (dl, s, a) in enumerate(zip(r.random_delta_loss, r.random_slope, r.random_accuracy,
                                                    strict=True))]
        if scans:
            plots.scan_curves(axes[1, i], r.scan.alpha, {f"along Δθ ({t})": r.scan.real["loss"],
                                                          "along random direction 0": r.scan.random["loss"]},
                              title=f"1-D scans, {t}", ylabel="test loss (nats)")
            scan_rows += [{"target": t, "alpha": float(a), "real_loss": float(lr), "random_loss": float(lx)}
                          for a, lr, lx in zip(r.scan.alpha, r.scan.real["loss"], r.scan.random["loss"],
                                               strict=True)]
        summary[t] = {k: v for k, v in r.summary().items() if k not in ("random_slope", "random_delta_loss",
                                                                        "scan")}
    fig.suptitle(f"ΔL/‖Δθ‖ of the real displacement vs {config.directions} random directions of equal norm "
                 f"({config.norm}, BN {config.bn}) — {run_label(run)}, "
                 f"n = {len(batches.split)} test images",
                 fontsize="medium")
    plots.save(fig, out[".png"])
    write_csv(out[".csv"], rows)
    if scans:
        write_csv(out["_scan.csv"], scan_rows)
    write_config(out[".config.json"], spec, run=str(run.path), seeds=1, summary=summary)
    lines = [f"{t:>12}: real ΔL/‖Δθ‖ {s['real_slope']:+.4f}  random mean "
             f"{s['random_delta_loss_mean'] / s['displacement_norm']:+.4f}  "
             f"percentile {s['percentile']:.0f}  "
             f"z {s['zscore']:+.2f}" for t, s in summary.items()]
    return FigureResult({"png": str(out[".png"]), "csv": str(out[".csv"])}, summary,
                        [*lines, f"wrote {out['.png']}, {out['.csv']}, {out['.config.json']}"])
