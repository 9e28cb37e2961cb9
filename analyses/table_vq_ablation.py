"""VQ-QAT's ablations: codebook collapse, assignment churn and reconstruction error per variant (issue 26).

What it shows, the claim it checks and what it writes:
landscape.figures.vq_ablation (VQAblationFigure), whose
description `--help` prints below; this script parses its options into that spec.

  python analyses/table_vq_ablation.py --study vqa-cosine-ste vqa-euclidean-ste --dir studies/repro-quick
"""

from __future__ import annotations

import common

from landscape import cli, figures
from landscape.figures.vq_ablation import VQAblationFigure, make


def main(argv: list[str] | None = None) -> int:
    p = common.parser("analyses/table_vq_ablation.py", common.described(__doc__, figures.VQAblationFigure))
    p.add_argument("--study", nargs="+", required=True,
                   help="VQ-QAT studies (method vq, a grid over codebook_bits) trained with --layer-stats true")
    p.add_argument("--dir", default="studies", help="folder of the studies' journals (default: studies/)")
    args = p.parse_args(argv)
    spec = VQAblationFigure(**common.figure_fields(args), studies=tuple(args.study), dir=args.dir)
    return common.show(make(spec), args.json)


if __name__ == "__main__":
    cli.run(main, "table_vq_ablation")
