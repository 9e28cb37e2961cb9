"""Accuracy vs bits of the three post-training quantization baselines on the adapted ResNet-20.

What it shows, the claim it reproduces and what it writes:
landscape.figures.ptq_table (PTQTable), whose
description `--help` prints below; this script parses its options into that spec.

  python analyses/table_ptq.py [--checkpoint PATH] [--bits 2 3 4 8] [--limit N] [--device cpu]
"""

from __future__ import annotations

import common

from landscape import cli, figures
from landscape.figures.ptq_table import PTQTable, make
from landscape.quantize import QUANTIZERS

DEFAULT_CHECKPOINT = common.ADAPTED_R20


def main(argv: list[str] | None = None) -> int:
    p = cli.Parser("analyses/table_ptq.py", common.described(__doc__, figures.PTQTable))
    p.add_argument("--arch", default="resnet20", help="architecture of --checkpoint (default: resnet20; or "
                   "package.module:factory)")
    p.add_argument("--arch-kwargs", type=cli.json_object, default=None, metavar="JSON",
                   help="keyword arguments of the arch's factory")
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="model to quantize (default: the adapted "
                   "ResNet-20, ../shared/models/resnet20-cifar10jpeg.pt)")
    p.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4, 8], help="bit-widths (default: 2 3 4 8)")
    p.add_argument("--methods", nargs="+", default=list(QUANTIZERS), choices=list(QUANTIZERS))
    p.add_argument("--limit", type=cli.positive_int, default=None, help="first N test images (default: all 10,000)")
    p.add_argument("--out-dir", default=str(common.FIGURES), help="where the CSV/PNG/config go (default: figures/)")
    p.add_argument("--force", action="store_true", help="overwrite this script's existing outputs")
    cli.add_data_args(p)
    args = p.parse_args(argv)
    spec = PTQTable(out_dir=args.out_dir, force=args.force, limit=args.limit, batch_size=args.batch_size,
                    data=cli.data_source(args), device=args.device, checkpoint=args.checkpoint, arch=args.arch,
                    arch_kwargs=args.arch_kwargs, bits=tuple(args.bits), methods=tuple(args.methods))
    return common.show(make(spec), False)


if __name__ == "__main__":
    cli.run(main, "table_ptq")
