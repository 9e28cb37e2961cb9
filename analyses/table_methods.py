"""Accuracy after clamping of every compression method under one short fine-tuning budget, on the
adapted ResNet-20.

Claim checked (not assumed): the fine-tuning methods (weight-coupling, centroid–weight coupling, DSMM
before HEQ, VQ-QAT) beat the post-training baselines (uniform, HEQ, k-means; zero fine-tuning) at 2, 3 and
4 bits per weight after a short fine-tune, as the workshop paper's Table 1 reports for CWC on WRN-16.
Wherever a method loses to the best PTQ baseline at the same bits, the script says so below the table.
Bitwise input quantization is a different axis (bits per input feature, weights in full precision): its
rows sit in a second table with the compression factor against 32-bit float inputs, beside the untrained
uniform input quantizer it starts from.

Budget (the same for every method): from the adapted ResNet-20, --epochs (1) over the first --train-limit
(20,000) training images, i.e. 156 SGD steps of 128 images, lr 1e-3, Nesterov momentum 0.9, constant
schedule, no weight decay (paper A.1), standard augmentation; seed 0 for data order, augmentation and the
compressors' random draws. Every method keeps its defaults except the bits: centroid K = 2^b; DSMM then
HEQ at b bits; VQ d = 2 with 2b index bits (b/d = b bits per weight), cosine assignment (the paper's) and,
as a second row, euclidean; weight-coupling has no bit setting (paper h = 0.05, w = 0.3): one run, shown
in the column within 0.5 of the mean bits it reaches, else under "other bits". Accuracy on the full test
split (10,000 images) unless --limit. Deterministic given the seed on CPU.

Writes figures/methods_table.csv, figures/methods_accuracy_vs_bits.png and figures/methods_table.config.json
(each name + --suffix) and prints the tables as markdown.
The figure itself is landscape.figures.methods_table (MethodsTable); this script parses the options into it.

  python analyses/table_methods.py [--bits 2 3 4] [--input-bits 1 2 3 4] [--train-limit 20000]
                                   [--epochs 1] [--limit N] [--methods ...] [--device cpu]
"""

from __future__ import annotations

from pathlib import Path

from landscape import cli
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
    p = cli.Parser("analyses/table_methods.py", __doc__)
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
