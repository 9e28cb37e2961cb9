"""Accuracy after clamping of every compression method under one short fine-tuning budget, on the
adapted ResNet-20.

Writes figures/methods_table.csv, figures/methods_accuracy_vs_bits.png and figures/methods_table.config.json
(each name + --suffix) and prints the tables as markdown.

What it shows, the claim it reproduces and what it writes:
landscape.figures.methods_table (MethodsTable), whose
description `--help` prints below; this script parses its options into that spec.

  python analyses/table_methods.py [--bits 2 3 4] [--input-bits 1 2 3 4] [--train-limit 20000]
                                   [--epochs 1] [--limit N] [--methods ...] [--device cpu]
"""

from __future__ import annotations

from pathlib import Path

import common

from landscape import cli, figures
from landscape.figures.methods_table import (  # noqa: F401  (the table's names, importable from the script as before)
    DEFAULT_CHECKPOINT,
    FINETUNED,
    METHODS,
    PTQ,
    ROWS,
    MethodsTable,
    column,
    make,
    markdown,
    variants,
    verdicts,
)

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = cli.Parser("analyses/table_methods.py", common.described(__doc__, figures.MethodsTable))
    p.add_argument("--arch", default="resnet20", help="architecture of --checkpoint (default: resnet20; or "
                   "package.module:factory)")
    p.add_argument("--arch-kwargs", type=cli.json_object, default=None, metavar="JSON",
                   help="keyword arguments of the arch's factory")
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="pretrained model (default: the "
                   "adapted ResNet-20, ../shared/models/resnet20-cifar10jpeg.pt)")
    p.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4],
                   help="bits per weight (default: 2 3 4)")
    p.add_argument("--input-bits", type=int, nargs="+", default=[1, 2, 3, 4],
                   help="bits per input feature for input-bitwise, 1..8 (default: 1 2 3 4)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--train-limit", type=cli.positive_int, default=20_000,
                   help="fine-tune on the first N training images (default: 20000)")
    p.add_argument("--epochs", type=cli.positive_int, default=1, help="fine-tuning epochs (default: 1)")
    p.add_argument("--lr", type=float, default=1e-3, help="SGD learning rate (default: 1e-3, paper A.1)")
    p.add_argument("--seed", type=int, default=0,
                   help="data order, augmentation, compressor draws (default: 0)")
    p.add_argument("--limit", type=cli.positive_int, default=None,
                   help="first N test images (default: all 10,000)")
    p.add_argument("--out-dir", default=str(REPO / "figures"),
                   help="where the CSV/PNG/config go (default: figures/)")
    p.add_argument("--suffix", default="", help="appended to every output's name, e.g. _s1 for a second seed "
                   "beside the first (default: none)")
    p.add_argument("--force", action="store_true", help="overwrite this script's existing outputs")
    cli.add_data_args(p)
    args = p.parse_args(argv)
    spec = MethodsTable(out_dir=args.out_dir, force=args.force, limit=args.limit, batch_size=args.batch_size,
                        data=cli.data_source(args), device=args.device, arch=args.arch, arch_kwargs=args.arch_kwargs,
                        checkpoint=args.checkpoint, bits=tuple(args.bits), input_bits=tuple(args.input_bits),
                        methods=tuple(args.methods), train_limit=args.train_limit, epochs=args.epochs, lr=args.lr,
                        seed=args.seed, suffix=args.suffix)
    for line in make(spec).lines:
        print(line)
    return 0


if __name__ == "__main__":
    cli.run(main, "table_methods")
