"""Cost and error of the coupling estimators against layer size (soft-quantization paper, §3 complexity).

Claim shown: the histogram estimator costs O(N + N_b log N_b) per layer instead of the exact pair sum's O(N²),
at a small error. Drawn from a benchmark's JSON (`python bench/coupling.py --json --out FILE`; nothing is timed
here): time per energy + force evaluation against N for the exact sum, the histogram (FFT and prefix-sum
convolutions) and the sorted estimator, with N and N² reference slopes; and the histogram's relative energy
and force errors against the exact (N ≤ 16,384) or float64 sorted sum (larger N). The benchmark's timings are
measurements only if it ran alone on the machine (its JSON records threads and the load average).

Writes figures/coupling_cost.png, coupling_cost.csv (estimator, n, time_s, energy_rel_err, force_rel_err,
reference) and coupling_cost.config.json.

  python analyses/fig_cost.py --bench figures/bench_coupling.json [--out-dir figures]
"""

from __future__ import annotations

import argparse
import json

import common
import numpy as np

from landscape import cli, plots
from landscape.errors import LandscapeError

STEM = "coupling_cost"


def cost_rows(bench: dict) -> list[dict]:
    """One row per (estimator, N) of the benchmark, the exact pair sum's own timings included."""
    rows = [{k: r[k] for k in ("estimator", "n", "time_s", "energy_rel_err", "force_rel_err", "reference")}
            for r in bench["coupling"] + bench.get("histogram_prefix", [])]
    exact = {r["n"]: r["exact_time_s"] for r in bench["coupling"] if r.get("exact_time_s")}
    rows += [{"estimator": "exact", "n": n, "time_s": t, "energy_rel_err": 0.0, "force_rel_err": 0.0,
              "reference": "exact"} for n, t in sorted(exact.items())]
    return rows


def main(argv: list[str] | None = None) -> int:
    p = cli.Parser("analyses/fig_cost.py", __doc__)
    p.add_argument("--bench", required=True, help="bench/coupling.py's JSON output (--json --out FILE)")
    p.add_argument("--out-dir", default=str(common.FIGURES), help="where the PNG, CSV and config JSON go")
    p.add_argument("--force", action="store_true", help="overwrite this script's existing outputs")
    args: argparse.Namespace = p.parse_args(argv)
    out = common.outputs(args.out_dir, STEM, [".png", ".csv", ".config.json"], args.force)
    try:
        bench = json.loads(open(args.bench).read())
        rows = cost_rows(bench)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LandscapeError(f"{args.bench}: not a bench/coupling.py JSON ({e})") from None

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
    common.write_csv(out[".csv"], rows)
    common.write_config(out[".config.json"], args, bench=args.bench, threads=threads, loadavg=load)
    print(f"wrote {out['.png']}, {out['.csv']}, {out['.config.json']}")
    return 0


if __name__ == "__main__":
    cli.run(main, "fig_cost")
