"""Different seeds, different clusterings (bottom-of-the-loss-landscape paper, §4.1 and Fig. 1B).

Writes figures/seeds_clusters.png, seeds_clusters_hist.csv (seed, layer, kind = "bin" | "cluster", lo, hi, count:
a histogram bin [lo, hi) and its weights, or a cluster value lo = hi and its members) and
seeds_clusters_hist.config.json.

What it shows, the claim it reproduces and what it writes:
landscape.figures.seeds (SeedsFigure), whose
description `--help` prints below; this script parses its options into that spec.

  python analyses/fig_seeds.py --run runs/s0.h5 runs/s1.h5 runs/s2.h5 [--layers NAME ...] [--bins 120]
"""

from __future__ import annotations

import common

from landscape import cli, figures
from landscape.figures import make
from landscape.figures.seeds import SeedsFigure, default_layers  # noqa: F401  (default_layers: as before)

STEM = SeedsFigure.STEM


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/fig_seeds.py", common.described(__doc__, figures.SeedsFigure),
                      run_nargs="+")
    p.add_argument("--layers", nargs="+", default=None,
                   help="layers to show (state-dict names; default: the smallest, median and largest clustered)")
    p.add_argument("--bins", type=cli.positive_int, default=120, help="histogram bins per layer (default: 120)")
    args = p.parse_args(argv)
    spec = SeedsFigure(**common.figure_fields(args), layers=args.layers, bins=args.bins,
                       runs=tuple(str(r) for r in common.resolve_runs(args, SeedsFigure, STEM)))
    return common.show(make(spec), args.json)


if __name__ == "__main__":
    cli.run(main, "fig_seeds")
