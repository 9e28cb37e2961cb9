"""Task loss and accuracy along the linear paths pretrained → compressed → clamped (workshop paper
"quantization near the bottom of the loss landscape", §4.2 and Fig. 2A).

Outputs: OUT_DIR/STEM.png, STEM.csv and STEM.config.json, STEM = --stem (default: paths), so one can write several
variants side by side.

What it shows, the claim it reproduces and what it writes:
landscape.figures.paths (PathsFigure), whose
description `--help` prints below; this script parses its options into that spec.

  python analyses/fig_paths.py --run runs/good.h5 runs/failed.h5 --labels "h=0.05" "h=0.001" [--points 11] \
      [--split both] [--stem paths-both]
"""

from __future__ import annotations

import common

from landscape import cli, figures
from landscape.analysis.paths import PathConfig
from landscape.figures import PathsFigure, make


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/fig_paths.py", common.described(__doc__, figures.PathsFigure),
                      run_nargs="+")
    p.add_argument("--labels", nargs="+", default=None,
                   help="one legend label per run (default: its settings)")
    p.add_argument("--points", type=cli.positive_int, default=11,
                   help="points per segment, endpoints included, ≥ 2 (default: 11)")
    p.add_argument("--bn", default="keep", choices=["keep", "recalibrate"],
                   help="BN statistics: interpolate (keep, default) or re-estimate per point (recalibrate)")
    p.add_argument("--bn-batches", type=cli.positive_int, default=PathConfig.bn_batches,
                   help=f"--bn recalibrate: training batches per point (default: {PathConfig.bn_batches})")
    p.add_argument("--split", default="test", choices=common.SPLITS,
                   help="images to evaluate on, the first --limit of each: test (default), train (unaugmented) "
                        "or both")
    p.add_argument("--stem", default=PathsFigure.STEM,
                   help=f"output file names STEM.png/.csv/.config.json (default: {PathsFigure.STEM})")
    args = p.parse_args(argv)
    spec = PathsFigure(**common.figure_fields(args), stem=args.stem, labels=args.labels, split=args.split,
                       config=PathConfig(points=args.points, bn=args.bn, bn_batches=args.bn_batches),
                       runs=tuple(str(r) for r in common.resolve_runs(args, PathsFigure, args.stem)))
    return common.show(make(spec), args.json)


if __name__ == "__main__":
    cli.run(main, "fig_paths")
