"""landscape evaluate: test accuracy and mean cross-entropy of a checkpoint.

Example:
  landscape evaluate --arch resnet20 --checkpoint ../shared/models/resnet20-cifar10jpeg.pt --json
"""

from __future__ import annotations

import argparse

from .. import cli
from ..data import Batches
from ..metrics import evaluate
from ..models import load_model


def parser() -> argparse.ArgumentParser:
    p = cli.Parser("landscape evaluate", __doc__)
    cli.add_model_args(p)
    cli.add_data_args(p)
    p.add_argument("--limit", type=cli.positive_int, default=None, help="evaluate the first N test images only "
                   "(class-balanced prefix)")
    p.add_argument("--json", action="store_true", help='print one JSON object {"accuracy", "loss", "n"}')
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    dev = cli.device(args.device)
    model = load_model(args.arch, args.checkpoint, args.arch_kwargs).to(dev)
    _, test = cli.load_data(args)
    result = evaluate(model, Batches(test.subset(args.limit), args.batch_size, train=False, device=dev),
                      progress=not args.json)
    if args.json:
        cli.print_json(result)
    else:
        print(f"{args.arch} {args.checkpoint}: accuracy {100 * result['accuracy']:.2f}%  "
              f"loss {result['loss']:.4f}  on {result['n']} test images")
    return 0


if __name__ == "__main__":
    cli.run(main, "landscape.evaluate")
