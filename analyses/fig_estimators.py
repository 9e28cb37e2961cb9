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
The figure itself is landscape.figures.estimators (EstimatorsFigure); this script parses the options into it.

  python analyses/fig_estimators.py --study est-subsampled est-subset est-sorted est-histogram --dir studies
"""

from __future__ import annotations

import common

from landscape import cli
from landscape.figures.estimators import SAMPLED, STEM, EstimatorsFigure, force_noise, make  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/fig_estimators.py", __doc__)
    p.add_argument("--study", nargs="+", required=True, help="studies to show (one estimator each)")
    p.add_argument("--dir", default="studies", help="folder of the studies' journals (default: studies/)")
    p.add_argument("--draws", type=cli.positive_int, default=20, help="draws per layer for the force noise")
    args = p.parse_args(argv)
    spec = EstimatorsFigure(**common.figure_fields(args), studies=tuple(args.study), dir=args.dir, draws=args.draws)
    return common.show(make(spec), args.json)


if __name__ == "__main__":
    cli.run(main, "fig_estimators")
