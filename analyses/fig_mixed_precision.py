"""Mixed precision from two global hyperparameters (soft-quantization paper, Mechanism 2 and abstract).

What it shows, the claim it reproduces and what it writes:
landscape.figures.mixed_precision (MixedPrecisionFigure), whose
description `--help` prints below; this script parses its options into that spec.

  python analyses/fig_mixed_precision.py --run runs/a.h5 runs/b.h5 [--out-dir figures]
"""

from __future__ import annotations

import common

from landscape import cli, figures
from landscape.figures import make
from landscape.figures.mixed_precision import MixedPrecisionFigure, layer_rows  # noqa: F401  (layer_rows: as before)

STEM = MixedPrecisionFigure.STEM


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/fig_mixed_precision.py", common.described(__doc__, figures.MixedPrecisionFigure),
                      run_nargs="+")
    args = p.parse_args(argv)
    spec = MixedPrecisionFigure(**common.figure_fields(args),
                                runs=tuple(str(r) for r in common.resolve_runs(args, MixedPrecisionFigure, STEM)))
    return common.show(make(spec), args.json)


if __name__ == "__main__":
    cli.run(main, "fig_mixed_precision")
