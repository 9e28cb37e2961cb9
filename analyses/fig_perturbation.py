"""Soft quantization's displacement against random perturbations of the same norm (soft-quantization paper,
Mechanism 3 and Fig. 3).

What it shows, the claim it reproduces and what it writes:
landscape.figures.perturbation (PerturbationFigure), whose
description `--help` prints below; this script parses its options into that spec.

  python analyses/fig_perturbation.py --run runs/wc.h5 [--targets compressed clamped ptq:heq:4] \\
      [--directions 20]
"""

from __future__ import annotations

import common

from landscape import cli, figures
from landscape.analysis.perturbation import NORMS, PerturbConfig
from landscape.figures.perturbation import ALPHAS, TARGETS, PerturbationFigure, make


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/fig_perturbation.py", common.described(__doc__, figures.PerturbationFigure))
    p.add_argument("--targets", nargs="+", default=list(TARGETS),
                   help="displacement ends: compressed, clamped, ptq:METHOD:BITS (default: compressed "
                        "clamped ptq:heq:4)")
    p.add_argument("--directions", type=cli.positive_int, default=20, help="random directions M per target "
                   "(default: 20)")
    p.add_argument("--norm", default="global", choices=NORMS,
                   help="global (default) or per-layer norm matching")
    p.add_argument("--alphas", type=float, nargs="*", default=list(ALPHAS),
                   help="1-D scan positions in units of the step (default: -1 … 2 in steps of 0.5; none: "
                        "no scan)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random directions (default: 0)")
    p.add_argument("--bn", default="recalibrate", choices=["keep", "recalibrate"],
                   help="BN statistics of every state: re-estimated (recalibrate, default) or pretrained "
                        "(keep)")
    p.add_argument("--bn-batches", type=cli.positive_int, default=4,
                   help="--bn recalibrate: training batches of --batch-size images per state (default: 4)")
    args = p.parse_args(argv)
    config = PerturbConfig(directions=args.directions, norm=args.norm, seed=args.seed, alphas=tuple(args.alphas),
                           bn=args.bn, bn_batches=args.bn_batches)
    run = common.resolve_runs(args, PerturbationFigure)[0]
    spec = PerturbationFigure(**common.figure_fields(args), run=str(run), targets=tuple(args.targets), config=config)
    return common.show(make(spec), args.json)


if __name__ == "__main__":
    cli.run(main, "fig_perturbation")
