"""Cost and error of the coupling estimators against layer size (soft-quantization paper, §3 complexity).

Claim shown: the histogram estimator costs O(N + N_b log N_b) per layer instead of the exact pair sum's O(N²),
at a small error. Drawn from a benchmark's JSON (`python bench/coupling.py --json --out FILE`; nothing is timed
here): time per energy + force evaluation against N for the exact sum, the histogram (FFT and prefix-sum
convolutions) and the sorted estimator, with N and N² reference slopes; and the histogram's relative energy
and force errors against the exact (N ≤ 16,384) or float64 sorted sum (larger N). The benchmark's timings are
measurements only if it ran alone on the machine (its JSON records threads and the load average).

Writes figures/coupling_cost.png, coupling_cost.csv (estimator, n, time_s, energy_rel_err, force_rel_err,
reference) and coupling_cost.config.json.
The figure itself is landscape.figures.cost (CostFigure); this script parses the options into it.

  python analyses/fig_cost.py --bench figures/bench_coupling.json [--out-dir figures]
"""

from __future__ import annotations

import argparse

import common

from landscape import cli
from landscape.figures.cost import STEM, CostFigure, cost_rows, make  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    p = cli.Parser("analyses/fig_cost.py", __doc__)
    p.add_argument("--bench", required=True, help="bench/coupling.py's JSON output (--json --out FILE)")
    p.add_argument("--out-dir", default=str(common.FIGURES), help="where the PNG, CSV and config JSON go")
    p.add_argument("--force", action="store_true", help="overwrite this script's existing outputs")
    args: argparse.Namespace = p.parse_args(argv)
    spec = CostFigure(out_dir=args.out_dir, force=args.force, bench=args.bench)
    return common.show(make(spec), False)


if __name__ == "__main__":
    cli.run(main, "fig_cost")
