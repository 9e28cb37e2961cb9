"""Today's QAT methods as baselines: every method at 2, 3 and 4 bits under one budget, against PTQ (issue 25).

What it shows, the claim it checks and what it writes:
landscape.figures.comparison (Comparison), whose
description `--help` prints below; this script parses its options into that spec.

  python analyses/table_comparison.py --study cmp-sq cmp-lsq cmp-parq --dir studies/repro-quick --matched cmp-sq
"""

from __future__ import annotations

import common

from landscape import cli, figures
from landscape.figures.comparison import Comparison, make


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/table_comparison.py", common.described(__doc__, figures.Comparison))
    p.set_defaults(limit=None)  # the runs' own test images: all of them unless the studies used a limit
    p.add_argument("--study", nargs="+", required=True, help="one study per trained method, same checkpoint")
    p.add_argument("--dir", default="studies", help="folder of the studies' journals (default: studies/)")
    p.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4], help="bit columns and PTQ bits (default: 2 3 4)")
    p.add_argument("--ptq", nargs="*", default=["uniform", "heq", "kmeans", "gptq"],
                   help="PTQ baselines of the pretrained model; none: --ptq alone (default: uniform heq kmeans gptq)")
    p.add_argument("--matched", default=None, help="the study whose runs get k-means PTQ at their own K_l")
    p.add_argument("--stem", default="", help="output names <stem>.png/.csv/.config.json (default: comparison)")
    p.add_argument("--calibration-images", type=cli.positive_int, default=1024,
                   help="GPTQ: unaugmented training images it is calibrated on (default: 1024)")
    args = p.parse_args(argv)
    spec = Comparison(**common.figure_fields(args), studies=tuple(args.study), dir=args.dir, bits=tuple(args.bits),
                      ptq=tuple(args.ptq), matched=args.matched, calibration_images=args.calibration_images,
                      stem=args.stem)
    return common.show(make(spec), args.json)


if __name__ == "__main__":
    cli.run(main, "table_comparison")
