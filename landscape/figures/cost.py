"""Cost and error of the coupling estimators against layer size (soft-quantization paper, §3 complexity;
`analyses/fig_cost.py`).

Claim shown: the histogram estimator costs O(N + N_b log N_b) per layer instead of the exact pair sum's O(N²),
at a small error. Drawn from a benchmark's JSON (`python bench/coupling.py --json --out FILE`; nothing is timed
here): time per energy + force evaluation against N for the exact sum, the histogram (FFT and prefix-sum
convolutions) and the sorted estimator, with N and N² reference slopes; and the histogram's relative energy
and force errors against the exact (N ≤ 16,384) or float64 sorted sum (larger N). The benchmark's timings are
measurements only if it ran alone on the machine (its JSON records threads and the load average).

Writes <stem>.png, <stem>.csv (estimator, n, time_s, energy_rel_err, force_rel_err, reference) and
<stem>.config.json (stem: coupling_cost).

    >>> spec = CostFigure(bench="figures/bench_coupling.json", out_dir="figures")
    >>> spec.name, spec.paths()[".png"].as_posix()
    ('coupling_cost', 'figures/coupling_cost.png')
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import plots
from ..errors import LandscapeError
from ..outputs import write_csv
from .base import FigureResult, FigureSpec, maker, write_config

STEM = "coupling_cost"


@dataclass(frozen=True)
class CostFigure(FigureSpec):
    """The coupling estimators' cost and error, from the JSON `bench/coupling.py --json --out FILE` wrote."""

    bench: str = ""  # bench/coupling.py's JSON output (--json --out FILE); required

    STEM = STEM

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "bench", str(self.bench))
        if not self.bench:
            raise ValueError("give the benchmark's JSON file (bench=...)")


def cost_rows(bench: dict) -> list[dict]:
    """One row per (estimator, N) of the benchmark, the exact pair sum's own timings included."""
    rows = [{k: r[k] for k in ("estimator", "n", "time_s", "energy_rel_err", "force_rel_err", "reference")}
            for r in bench["coupling"] + bench.get("histogram_prefix", [])]
    exact = {r["n"]: r["exact_time_s"] for r in bench["coupling"] if r.get("exact_time_s")}
    rows += [{"estimator": "exact", "n": n, "time_s": t, "energy_rel_err": 0.0, "force_rel_err": 0.0,
              "reference": "exact"} for n, t in sorted(exact.items())]
    return rows


@maker(CostFigure)
def make(spec: CostFigure) -> FigureResult:
    """Read the benchmark, draw cost and error against N, write the PNG, CSV and config JSON."""
    out = spec.outputs()
    try:
        bench = json.loads(Path(spec.bench).read_text())
        rows = cost_rows(bench)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LandscapeError(f"{spec.bench}: not a bench/coupling.py JSON ({e})") from None

    fig, axes = plots.figure(1, 2, width=5.2, height=4.0)
    names = list(dict.fromkeys(r["estimator"] for r in rows))
    colors = plots.palette(names)
    for i, name in enumerate(names):
        mine = sorted((r for r in rows if r["estimator"] == name), key=lambda r: r["n"])
        n, t = np.array([r["n"] for r in mine]), np.array([r["time_s"] for r in mine])
        axes[0, 0].plot(n, t, marker=plots.MARKERS[i % len(plots.MARKERS)], color=colors[name], label=name)
        if name == "histogram":  # histogram-prefix: the same convolution, the same errors to rounding
            for key, style in (("energy_rel_err", "-"), ("force_rel_err", "--")):
                axes[0, 1].plot(n, [r[key] for r in mine], linestyle=style, marker="o", color=colors[name],
                                label=key.split("_")[0])
    n_all = np.array(sorted({r["n"] for r in rows}), dtype=float)
    anchor = min((r for r in rows if r["estimator"] == "exact"), key=lambda r: r["n"], default=None)
    if anchor is not None:  # slopes through the smallest exact timing
        for power, style in ((2, ":"), (1, "-.")):
            axes[0, 0].plot(n_all, anchor["time_s"] * (n_all / anchor["n"]) ** power, style, color="black",
                            linewidth=0.8, label=f"∝ N{'²' if power == 2 else ''}")
    axes[0, 0].set(xscale="log", yscale="log", xlabel="weights in the layer N", ylabel="seconds per energy + force",
                   title="cost")
    axes[0, 1].set(xscale="log", yscale="log", xlabel="weights in the layer N",
                   ylabel="relative error (vs exact or float64 sorted)",
                   title="histogram estimator error (FFT and prefix sums alike)")
    for ax in axes[0]:
        ax.legend(fontsize="x-small")
    threads = bench.get("threads")
    load = bench.get("step_overhead_by_estimator", {}).get("loadavg")
    fig.suptitle(f"Coupling estimators: cost and error (bench/coupling.py, {threads} thread(s), load average "
                 f"{load if load is None else round(load, 2)})", fontsize="medium")
    plots.save(fig, out[".png"])
    write_csv(out[".csv"], rows)
    write_config(out[".config.json"], spec, bench=spec.bench, threads=threads, loadavg=load)
    summary = {"estimators": names, "sizes": [int(n) for n in n_all], "threads": threads, "loadavg": load}
    return FigureResult({"png": str(out[".png"]), "csv": str(out[".csv"])}, summary,
                        [f"wrote {out['.png']}, {out['.csv']}, {out['.config.json']}"])
