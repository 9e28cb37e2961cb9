"""Task loss and accuracy along the linear paths pretrained → compressed → clamped (workshop paper
"quantization near the bottom of the loss landscape", §4.2 and Fig. 2A).

Claim reproduced: in a successful compression the fine-tuning segment (pretrained → compressed) climbs the
loss a little and the clamping segment (compressed → clamped) costs almost nothing — the optimizer has reached
a clampable configuration; in a failed one (coupling too weak, e.g. h = 0.001) the compressed model stays
close to the pretrained loss and the degradation happens in the clamping segment. One curve per run (one seed);
give runs of several settings to compare them, several seeds of a setting under one --label to see the spread.

One curve per run on two panels (loss, accuracy), --points per segment with both endpoints included, on the
first --limit images (class-balanced prefix) of the test split, the training split (unaugmented), or both
(--split, as `python -m landscape.interpolate`; both: train dashed, test solid); BN statistics interpolated
(--bn keep) or re-estimated per point (--bn recalibrate). Each curve's legend label is the given --label, the
run's seed, and its mean effective bits and clamped test accuracy as the run file records them (its own test
evaluation, which may count more images than --limit), e.g. "h=0.05 (seed 0): 3.90 bits, 85.75%". Writes
figures/STEM.png, STEM.csv (run, label, seed, bits, accuracy_clamped, split, alpha, segment, loss, accuracy) and
STEM.config.json, STEM = --stem (default: paths), so one can write several variants side by side.
The figure itself is landscape.figures.paths (PathsFigure); this script parses the options into it.

  python analyses/fig_paths.py --run runs/good.h5 runs/failed.h5 --labels "h=0.05" "h=0.001" [--points 11] \
      [--split both] [--stem paths-both]
"""

from __future__ import annotations

import common

from landscape import cli
from landscape.analysis.paths import PathConfig
from landscape.figures import PathsFigure, make


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/fig_paths.py", __doc__, run_nargs="+")
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
