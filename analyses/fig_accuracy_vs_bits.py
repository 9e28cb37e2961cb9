"""Accuracy vs mean bit-width: soft quantization against histogram-equalized PTQ (soft-quantization paper,
main result; its Pareto figure of accuracy vs bits).

What it shows, the claim it reproduces and what it writes:
landscape.figures.accuracy_vs_bits (AccuracyVsBitsFigure), whose
description `--help` prints below; this script parses its options into that spec.

  python analyses/fig_accuracy_vs_bits.py --run runs/wc-a.h5 runs/wc-b.h5 [--bits 2 3 4 5 6]
"""

from __future__ import annotations

import common

from landscape import cli, figures
from landscape.figures.accuracy_vs_bits import AccuracyVsBitsFigure, make


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/fig_accuracy_vs_bits.py", common.described(__doc__, figures.AccuracyVsBitsFigure),
                      run_nargs="+")
    p.add_argument("--bits", type=int, nargs="+", default=list(AccuracyVsBitsFigure.bits),
                   help="HEQ bit-widths (default: 2..6)")
    p.add_argument("--labels", nargs="+", default=None, help="one label per run (default: its settings)")
    args = p.parse_args(argv)
    if any(not 1 <= b <= 16 for b in args.bits):
        raise ValueError(f"--bits must be in 1..16, got {args.bits}")
    runs = common.resolve_runs(args, AccuracyVsBitsFigure)
    spec = AccuracyVsBitsFigure(**common.figure_fields(args), runs=tuple(str(r) for r in runs),
                                bits=tuple(args.bits), labels=args.labels)
    return common.show(make(spec), args.json)


if __name__ == "__main__":
    cli.run(main, "fig_accuracy_vs_bits")
