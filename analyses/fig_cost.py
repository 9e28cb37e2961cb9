"""Cost and error of the coupling estimators against layer size (soft-quantization paper, §3 complexity).

What it shows, the claim it reproduces and what it writes:
landscape.figures.cost (CostFigure), whose
description `--help` prints below; this script parses its options into that spec.

  python analyses/fig_cost.py --bench figures/bench_coupling.json [--out-dir figures]
"""

from __future__ import annotations

import argparse

import common

from landscape import cli, figures
from landscape.figures.cost import STEM, CostFigure, cost_rows, make  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    p = cli.Parser("analyses/fig_cost.py", common.described(__doc__, figures.CostFigure))
    p.add_argument("--bench", required=True, help="bench/coupling.py's JSON output (--json --out FILE)")
    p.add_argument("--out-dir", default=str(common.FIGURES), help="where the PNG, CSV and config JSON go")
    p.add_argument("--force", action="store_true", help="overwrite this script's existing outputs")
    args: argparse.Namespace = p.parse_args(argv)
    spec = CostFigure(out_dir=args.out_dir, force=args.force, bench=args.bench)
    return common.show(make(spec), False)


if __name__ == "__main__":
    cli.run(main, "fig_cost")
