"""Does the layer-size power law behind α ≈ 0.66 hold during fine-tuning? (soft-quantization paper, Next check 1)

Without --run or --checkpoint the small soft-quantization run of analyses/common.py is made (once) and used.

What it shows, the claim it reproduces and what it writes:
landscape.figures.alpha (AlphaFigure), whose
description `--help` prints below; this script parses its options into that spec.

  python analyses/fig_alpha.py --run RUN.h5 [--w 0.3] [--every K | --steps S ...] [--out-dir DIR] [--force] [--json]
  python analyses/fig_alpha.py --checkpoint ../shared/models/resnet20-cifar10jpeg.pt --arch resnet20   (pretrained only)
"""

from __future__ import annotations

import common

from landscape import cli, figures
from landscape.figures import make
from landscape.figures.alpha import (  # noqa: F401  (the figure's pieces, importable from the script as before)
    DEFAULT_ALPHA,
    DEFAULT_W,
    AlphaFigure,
    draw,
    fit_power_law,
    measure,
    pick_steps,
    slope,
)

STEM, FIT_STEM = f"{AlphaFigure.STEM}_powerlaw", f"{AlphaFigure.STEM}_fit"


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/fig_alpha.py", common.described(__doc__, figures.AlphaFigure))
    cli.add_model_args(p, checkpoint_required=False)
    p.set_defaults(arch="resnet20")
    p.add_argument("--w", type=float, default=None,
                   help=f"global well width in units of σ_l (default: the run's own w; {DEFAULT_W} for --checkpoint)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--every", type=cli.positive_int, default=None, metavar="K",
                       help="measure every K-th stored checkpoint (from the first; the last always) (default: 1, all)")
    group.add_argument("--steps", type=int, nargs="+", default=None, metavar="S",
                       help="measure these checkpoint steps only")
    args = p.parse_args(argv)
    fields = dict(**common.figure_fields(args), checkpoint=args.checkpoint, arch=args.arch,
                  arch_kwargs=args.arch_kwargs, w=args.w, every=args.every, steps=args.steps)
    run = args.run
    if not (run or args.checkpoint):
        AlphaFigure(**fields, run="(the small run)")  # the options checked before the small run is trained
        run = str(common.resolve_runs(args, AlphaFigure)[0])
    return common.show(make(AlphaFigure(**fields, run=run)), args.json)


if __name__ == "__main__":
    cli.run(main, "fig_alpha")
