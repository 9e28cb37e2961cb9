"""Subsampled against exact pair sums (bottom-of-the-loss-landscape paper, §3.1 and App. A.1).

What it shows, the claim it reproduces and what it writes:
landscape.figures.estimators (EstimatorsFigure), whose
description `--help` prints below; this script parses its options into that spec.

  python analyses/fig_estimators.py --study est-subsampled est-subset est-sorted est-histogram --dir studies
"""

from __future__ import annotations

import common

from landscape import cli, figures
from landscape.figures.estimators import SAMPLED, STEM, EstimatorsFigure, force_noise, make  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/fig_estimators.py", common.described(__doc__, figures.EstimatorsFigure))
    p.add_argument("--study", nargs="+", required=True, help="studies to show (one estimator each)")
    p.add_argument("--dir", default="studies", help="folder of the studies' journals (default: studies/)")
    p.add_argument("--draws", type=cli.positive_int, default=20, help="draws per layer for the force noise")
    args = p.parse_args(argv)
    spec = EstimatorsFigure(**common.figure_fields(args), studies=tuple(args.study), dir=args.dir, draws=args.draws)
    return common.show(make(spec), args.json)


if __name__ == "__main__":
    cli.run(main, "fig_estimators")
