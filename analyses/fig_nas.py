"""The configuration a VQ/linear search chose (VQ-QAT paper, mixed vector/linear networks by NAS).

What it shows, the claim it reproduces and what it writes:
landscape.figures.nas_allocation (NASAllocationFigure), whose
description `--help` prints below; this script parses its options into that spec.

  python analyses/fig_nas.py --run runs/nas.h5 [--out-dir figures]
"""

from __future__ import annotations

import common

from landscape import cli, figures
from landscape.figures import make
from landscape.figures.nas_allocation import NASAllocationFigure

STEM = NASAllocationFigure.STEM


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/fig_nas.py", common.described(__doc__, figures.NASAllocationFigure))
    for action in p._actions:  # no small run to fall back on (it would be soft quantization, not a search)
        if "--run" in action.option_strings:
            action.required, action.help = True, "a run file of landscape train --method vq-nas"
    args = p.parse_args(argv)
    spec = NASAllocationFigure(**common.figure_fields(args), run=str(args.run))
    return common.show(make(spec), args.json)


if __name__ == "__main__":
    cli.run(main, "fig_nas")
