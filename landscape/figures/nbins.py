"""Histogram resolution N_b of the coupling estimator against accuracy, effective bits and time (the
soft-quantization paper's "Next Checks" 2: N_b ∈ {2^10, 2^12, 2^14, 2^16}; `analyses/table_nbins.py`).

Claim checked: the paper computes the coupling energy from a cloud-in-cell histogram of N_b = 2^14 bins and says
N_b = 2^14 "balances approximation quality vs. memory": fewer bins should cost accuracy or bits, more bins cost
memory and time without a gain.

Input: a study whose grid varies n_bins (read-only; the runs are trained by `python -m landscape.study`):
  python -m landscape.study create nbins --grid n_bins=1024,4096,16384,65536 h=0.05 w=0.3 --seeds 0,1 \\
      --arch resnet20 --checkpoint ../shared/models/resnet20-cifar10jpeg.pt --epochs 1
  python -m landscape.study run nbins
  python analyses/table_nbins.py --study nbins [--repeats 20]   (or make(NbinsTable(study="nbins")))

Per point of the grid (N_b, with the other varied settings if any), one CSV row:
- from the study's finished runs: clamped and compressed test accuracy (fractions) and mean effective bits,
  mean and std over the study's seeds (ddof 1; std 0 with one seed; `seeds` = runs averaged).
- measured here on the study's model (its arch/checkpoint, pretrained weights) with the study's
  coupling settings at that N_b, on `device` at `threads` torch threads:
  penalty_s: the coupling penalty Σ_l h_l E_l forward + backward over all coupled layers (`WeightCoupling.penalty`,
  the batched histogram estimator training runs); step_s: one whole training step (`Trainer.train_step`:
  forward, loss + penalty, backward, SGD) on the first unaugmented training images, one batch of the study's
  train batch size, eager (runs of ≥ 100 steps train the model's forward compiled; the penalty is never
  compiled); plain_step_s the same step without coupling. Medians of `repeats` interleaved rounds (every N_b
  and the plain step once per round, the order rotated each round) after one untimed round.
  energy_rel_err, force_rel_err: the histogram estimator on the float32 pretrained layers against the exact
  sorted estimator (float64, same values), for the whole penalty: |ΔE|/|E| and ‖ΔF‖/‖F‖ with F its gradient
  over every coupled weight; *_max_layer: the worst layer's |ΔE_l|/|E_l| and ‖ΔF_l‖/‖F_l‖.
  grid_bytes: the histogram's density rows (layers × zero-padded FFT length × 4 bytes), computed, not measured.
Timings and errors do not depend on the seed (pretrained weights, one fixed batch). Timings are measurements
only when the machine is otherwise idle (check `loadavg` in the config JSON); on a shared machine they are
indications.

Writes <stem>.png (accuracy and bits vs N_b on a log2 axis; step and penalty time; estimator error),
<stem>.csv and <stem>.config.json (stem: nbins).

    >>> spec = NbinsTable(study="nbins", dir="studies/repro-quick", repeats=5, threads=1)
    >>> spec.name, spec.storage, spec.paths()[".png"].name
    ('nbins', None, 'nbins.png')
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch

from .. import coupling, plots
from ..errors import LandscapeError
from ..outputs import write_csv
from .base import FigureResult, FigureSpec, energy_gradient, maker, study_runs, write_config

STEM = "nbins"


@dataclass(frozen=True)
class NbinsTable(FigureSpec):
    """Accuracy, bits, timings and estimator errors per N_b of the study `study` (a weight-coupling grid over
    n_bins)."""

    study: str = ""  # the study's name (its grid varies n_bins); required
    storage: str | None = None  # the study's Optuna storage URL (None: <dir>/<study>/journal.log)
    dir: str = "studies"  # folder of the default journal storage
    repeats: int = 20  # timed interleaved rounds per N_b, after one untimed
    threads: int = 0  # torch threads for the timings (0: torch's default, left as it is)

    STEM = STEM

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "dir", str(self.dir))
        if not self.study:
            raise ValueError("give the study's name (study=...)")
        if not isinstance(self.repeats, int) or self.repeats < 1:
            raise ValueError(f"repeats must be an integer ≥ 1, got {self.repeats!r}")
        if not isinstance(self.threads, int) or self.threads < 0:
            raise ValueError(f"threads must be an integer ≥ 0, got {self.threads!r}")


def study_settings(spec, point: dict, device: str) -> dict:
    """The run settings of a grid point (as the study's runs were trained; seed: the study's first)."""
    return spec.base.at(point, seed=spec.seeds[0], device=device).to_settings()


def coupled_layers(compressor, model) -> tuple[list[torch.Tensor], list[float], list[float]]:
    """(weights, w_l, h_l) of the layers a prepared WeightCoupling couples."""
    params = compressor.selected(model)
    return ([params[n].detach() for n in compressor.scales], [s.w for s in compressor.scales.values()],
            [s.h for s in compressor.scales.values()])


def _energy_force(fn, thetas, ws, **kw) -> tuple[np.ndarray, list[np.ndarray]]:
    e, grads = energy_gradient(fn, list(thetas), ws, **kw)
    return e.double().cpu().numpy(), [g.double().flatten().cpu().numpy() for g in grads]


def estimator_errors(thetas, ws, hs, n_bins: int) -> dict[str, float]:
    """The histogram estimator (batched, as training runs it, in the layers' dtype) against the exact sorted
    estimator in float64 on the same values: whole penalty Σ h_l E_l and its gradient, and the worst layer."""
    e, f = _energy_force(coupling.energy_histogram_multi, thetas, ws, n_bins=n_bins)
    e0, f0 = _energy_force(coupling.energy_sorted_multi, [t.double() for t in thetas], ws)
    h = np.asarray(hs)
    pen, pen0 = float(h @ e), float(h @ e0)
    df = math.sqrt(sum(hl**2 * np.sum((a - b) ** 2) for hl, a, b in zip(hs, f, f0, strict=True)))
    norm = math.sqrt(sum(hl**2 * np.sum(b**2) for hl, b in zip(hs, f0, strict=True)))
    return {"energy_rel_err": abs(pen - pen0) / abs(pen0), "force_rel_err": df / norm,
            "energy_rel_err_max_layer": float(np.max(np.abs(e - e0) / np.abs(e0))),
            "force_rel_err_max_layer": max(float(np.linalg.norm(a - b) / np.linalg.norm(b))
                                           for a, b in zip(f, f0, strict=True) if np.any(b))}


def grid_bytes(thetas, ws, n_bins: int) -> int:
    """Bytes of the float32 density rows `energy_histogram_multi` allocates (FFT length shared by all rows)."""
    ks = [min(math.floor(w * (n_bins - 1) / float(t.max() - t.min())), n_bins - 1) for t, w in zip(thetas, ws,
                                                                                                 strict=True)]
    return len(ks) * coupling._fft_len(n_bins + max(ks) + 1) * 4


def interleaved(fns: dict, rounds: int, sync) -> dict[str, float]:
    """Median seconds of each fn over `rounds` rounds (each fn once per round, order rotated) after one untimed."""
    names, times = list(fns), {k: [] for k in fns}
    for r in range(rounds + 1):
        for name in names[r % len(names):] + names[: r % len(names)]:
            t0 = time.perf_counter()
            fns[name]()
            sync()
            if r:
                times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def measure(spec, points: list[dict], figure: NbinsTable, dev) -> tuple[list[dict], dict]:
    """Timings and estimator errors per point (see the module docstring), and facts for the config; `spec` is the
    study's spec, `figure` the table's (its data source and repeats)."""
    from ..bn import recalibration_batches
    from ..compress import make_compressor
    from ..datasets import load_recorded
    from ..models import load_model
    from ..trainer import TrainConfig, Trainer

    settings = [study_settings(spec, p, str(dev)) for p in points]
    s0 = settings[0]
    model = load_model(s0["arch"], s0["checkpoint"], s0.get("arch_kwargs")).to(dev)
    train_split, _, _ = load_recorded(figure.data.recorded(s0.get("data")), figure.data.folder,
                                      download=figure.data.download)
    batch = recalibration_batches(train_split, 1, s0["train"]["batch_size"], dev)[0]

    def config(s):  # eager, one step per epoch over the one batch
        return TrainConfig(**{**s["train"], "device": str(dev), "compile": "off", "epochs": 1})

    trainers = {"plain": Trainer(model, [batch], config(s0))}
    measured = []
    for point, s in zip(points, settings, strict=True):
        comp = make_compressor(s["method"], s["compressor"], seed=s["seed"])
        key = repr(sorted(point.items()))
        trainers[key] = Trainer(model, [batch], config(s), comp)
        thetas, ws, hs = coupled_layers(comp, trainers[key].model)
        measured.append({**estimator_errors(thetas, ws, hs, point["n_bins"]),
                         "grid_bytes": grid_bytes(thetas, ws, point["n_bins"]), "coupled_layers": len(thetas),
                         "coupled_weights": sum(t.numel() for t in thetas)})

    def step(t):
        return lambda: t.train_step(*batch)

    def penalty(t):
        def run():
            params = t.compressor.selected(t.model)
            t.compressor.penalty(t.model).backward()
            for p in params.values():
                p.grad = None
        return run

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    steps = interleaved({k: step(t) for k, t in trainers.items()}, figure.repeats, sync)
    pens = interleaved({k: penalty(t) for k, t in trainers.items() if k != "plain"}, figure.repeats, sync)
    for point, m in zip(points, measured, strict=True):
        key = repr(sorted(point.items()))
        m.update(penalty_s=pens[key], step_s=steps[key], plain_step_s=steps["plain"],
                 step_over_plain=steps[key] / steps["plain"])
    facts = {"arch": s0["arch"], "checkpoint": s0["checkpoint"], "train_batch_size": s0["train"]["batch_size"],
             "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
             "loadavg": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    return measured, facts


def draw(rows: list[dict], varied: list[str], path, title: str):
    """Accuracy (left axis) and bits (right) vs N_b; step and penalty time; estimator errors. One curve per
    combination of the `varied` settings other than n_bins."""
    fig, axes = plots.figure(1, 3, width=4.6, height=3.8)
    ax, ax_t, ax_e = axes[0]
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(" ".join(f"{n}={r[n]:g}" for n in varied), []).append(r)
    bits_ax = ax.twinx()
    for name, g in groups.items():
        nb = np.array([r["n_bins"] for r in g])
        tag = f" ({name})" if name else ""
        for kind, marker in (("clamped", "o"), ("compressed", "s")):
            ax.errorbar(nb, [100 * r[f"accuracy_{kind}"] for r in g], [100 * r[f"accuracy_{kind}_std"] for r in g],
                        marker=marker, capsize=3, label=f"{kind} accuracy{tag}")
        bits_ax.errorbar(nb, [r["mean_bits"] for r in g], [r["mean_bits_std"] for r in g], marker="^",
                         linestyle=":", color="gray", capsize=3, label=f"mean bits{tag}")
        ax_t.plot(nb, [1e3 * r["step_s"] for r in g], marker="o", label=f"training step{tag}")
        ax_t.plot(nb, [1e3 * r["penalty_s"] for r in g], marker="s", label=f"coupling penalty{tag}")
        ax_e.plot(nb, [r["energy_rel_err"] for r in g], marker="o", label=f"energy |ΔE|/|E|{tag}")
        ax_e.plot(nb, [r["force_rel_err"] for r in g], marker="s", label=f"gradient ‖ΔF‖/‖F‖{tag}")
    ax_t.axhline(1e3 * rows[0]["plain_step_s"], color="black", linestyle="--", linewidth=0.8,
                 label="step without coupling")
    ax.set(title="accuracy and bits", ylabel="test accuracy (%)")
    bits_ax.set_ylabel("mean effective bits")
    bits_ax.grid(False)
    ax_t.set(title="time (forward + backward, median)", ylabel="ms", ylim=(0, None))
    ax_e.set(title="histogram vs exact, pretrained layers", ylabel="relative error", yscale="log")
    for a in (ax, ax_t, ax_e):
        a.set_xscale("log", base=2)
        a.set_xlabel("histogram bins N_b")
    handles = [h for a in (ax, bits_ax) for h in a.get_legend_handles_labels()[0]]
    ax.legend(handles, [h.get_label() for h in handles], fontsize="x-small")
    ax_t.legend(fontsize="x-small")
    ax_e.legend(fontsize="x-small")
    fig.suptitle(title, fontsize="medium")
    return plots.save(fig, path)


@maker(NbinsTable)
def make(fig: NbinsTable) -> FigureResult:
    """Read the study's points, time and check the estimator at every N_b, draw, write the PNG, CSV and config."""
    from ..distributed import usable_device
    from ..studies import report

    out = fig.outputs()
    spec, runs = study_runs(fig.study, fig.dir, storage=fig.storage)
    if spec.method != "weight-coupling" or "n_bins" not in spec.grid:
        raise LandscapeError(f"study {spec.name!r} is not a weight-coupling grid over n_bins "
                             f"(method {spec.method}, grid {sorted(spec.grid) or 'none'})")
    if not runs:
        raise LandscapeError(f"study {spec.name!r} has no finished runs yet (run it with `study run {spec.name}`)")
    dev = usable_device(fig.device)
    points = report.point_rows(runs, spec)
    others = [n for n in spec.parameters if n != "n_bins"]
    varied = [n for n in others if len(spec.grid[n]) > 1]  # one curve per combination of these
    fixed = " ".join(f"{n}={spec.grid[n][0]:g}" for n in others if n not in varied)
    keys = ["accuracy_clamped", "accuracy_clamped_std", "accuracy_compressed", "accuracy_compressed_std",
            "mean_bits", "mean_bits_std"]
    fig.log(f"{spec.name}: {len(runs)} runs at {len(points)} points; timing {fig.repeats} rounds …")
    threads = torch.get_num_threads()
    if fig.threads:
        torch.set_num_threads(fig.threads)
    try:
        measured, facts = measure(spec, [{n: pt[n] for n in spec.parameters} for pt in points], fig, dev)
    finally:  # the caller's thread count back (a script's process ends here anyway)
        torch.set_num_threads(threads)
    rows = [{"n_bins": pt["n_bins"], "log2_n_bins": int(math.log2(pt["n_bins"])), **{n: pt[n] for n in others},
             "seeds": pt["seeds"], **{k: pt[k] for k in keys},
             **{k: pt[k] for k in ("accuracy_recalibrated", "accuracy_recalibrated_std") if k in pt}, **m}
            for pt, m in zip(points, measured, strict=True)]
    load = "" if facts["loadavg"] is None else f", load {facts['loadavg']:.1f}"
    draw(rows, varied, out[".png"], f"{spec.name}: histogram bins N_b ({facts['arch']} {fixed}, seeds {spec.seeds}; "
         f"timings: medians of {fig.repeats} rounds, threads={facts['threads']}{load})")
    write_csv(out[".csv"], rows)
    write_config(out[".config.json"], fig, spec=json.loads(spec.to_json()), seeds=spec.seeds, runs=runs, **facts,
                  note="timings are measurements only if the machine was otherwise idle (loadavg)")
    lines = [f"N_b 2^{r['log2_n_bins']}: clamped {100 * r['accuracy_clamped']:.2f} ± "
             f"{100 * r['accuracy_clamped_std']:.2f}%, {r['mean_bits']:.2f} bits, step "
             f"{1e3 * r['step_s']:.1f} ms ({r['step_over_plain']:.3f}x plain), penalty "
             f"{1e3 * r['penalty_s']:.2f} ms, errors E {r['energy_rel_err']:.1e} F {r['force_rel_err']:.1e}"
             for r in rows]
    return FigureResult({"png": str(out[".png"]), "csv": str(out[".csv"])}, {"rows": rows, **facts},
                       [*lines, f"wrote {out['.png']}, {out['.csv']}, {out['.config.json']}"], flat=True)
