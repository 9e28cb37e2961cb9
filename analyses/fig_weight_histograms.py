"""Weight histograms during soft quantization (soft-quantization paper, Fig. 1).

What it shows, the claim it reproduces and what it writes:
landscape.figures.weight_histograms (WeightHistogramsFigure), whose
description `--help` prints below; this script parses its options into that spec.

  python analyses/fig_weight_histograms.py --run runs/wc.h5 [--layers all|NAME ...] [--bins 150]
"""

from __future__ import annotations

import common

from landscape import cli, figures
from landscape.figures.weight_histograms import WeightHistogramsFigure, make


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/fig_weight_histograms.py", common.described(__doc__, figures.WeightHistogramsFigure))
    p.add_argument("--layers", nargs="+", default=None,
                   help="layer names (e.g. layer2.0.conv1.weight) or 'all' (default: 4 representative "
                        "layers)")
    p.add_argument("--bins", type=cli.positive_int, default=150,
                   help="histogram bins per layer (default: 150)")
    args = p.parse_args(argv)
    run = common.resolve_runs(args, WeightHistogramsFigure)[0]
    spec = WeightHistogramsFigure(**common.figure_fields(args), run=str(run), layers=args.layers, bins=args.bins)
    return common.show(make(spec), args.json)


if __name__ == "__main__":
    cli.run(main, "fig_weight_histograms")
