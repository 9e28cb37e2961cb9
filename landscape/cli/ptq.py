"""python -m landscape.ptq: post-training quantization baseline of a checkpoint, saved as a new checkpoint.

Quantizes the conv/linear weights of a copy of the model per layer with 2^B levels (--params all: every
parameter), evaluates it on the test split and writes the quantized checkpoint to --out.

Example:
  python -m landscape.ptq --method heq --bits 4 --arch resnet20 \\
      --checkpoint ../shared/models/resnet20-cifar10jpeg.pt --out runs/resnet20-heq4.pt --json
"""

from __future__ import annotations

import argparse

from .. import cli
from ..bn import RECALIBRATION_BATCH, recalibrate_bn_, recalibration_batches
from ..compress.ptq import quantize_model
from ..data import Batches
from ..metrics import evaluate
from ..models import load_model, save_checkpoint
from ..quantize import QUANTIZERS


def bits_arg(text: str) -> int:
    bits = int(text)
    if not 1 <= bits <= 16:
        raise argparse.ArgumentTypeError(f"bits must be in 1..16, got {bits}")
    return bits


def parser() -> argparse.ArgumentParser:
    p = cli.Parser("python -m landscape.ptq", __doc__)
    p.add_argument("--method", required=True, choices=sorted(QUANTIZERS),
                   help="uniform: 2^B evenly spaced levels over [min,max]; heq: 2^B equal-population bins, each "
                        "weight → its bin's mean; kmeans: 2^B k-means centroids")
    p.add_argument("--bits", type=bits_arg, required=True, help="bits per weight B, 1..16")
    p.add_argument("--params", default="weights", choices=["weights", "all"],
                   help="weights: conv/linear weights only, BN and biases untouched (default); all: every parameter")
    cli.add_model_args(p)
    cli.add_data_args(p)
    p.add_argument("--limit", type=cli.positive_int, default=None, help="evaluate on the first N test images")
    p.add_argument("--recalibrate-bn", type=cli.nonnegative_int, default=0, metavar="BATCHES",
                   help="after quantizing, re-estimate the BN running statistics on this many unaugmented training "
                        "batches of 128 images (nothing else changes), report the accuracy before and after, and "
                        "save the recalibrated model (default: 0, off)")
    p.add_argument("--out", required=True, help="where to save the quantized checkpoint")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--json", action="store_true", help="print one JSON object with accuracy, loss, bits per layer")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    out = cli.check_out(args.out, args.force)
    dev = cli.device(args.device)
    model = load_model(args.arch, args.checkpoint, args.arch_kwargs)
    train, test = cli.load_data(args)
    q = quantize_model(model, args.method, args.bits, which=args.params)
    test_batches = Batches(test.subset(args.limit), args.batch_size, train=False, device=dev)
    result = evaluate(q.model.to(dev), test_batches, progress=not args.json)
    summary = {"method": args.method, "bits": args.bits, **result, "mean_effective_bits": q.mean_bits(),
               "bits_per_layer": q.bits, "out": str(out)}
    if args.recalibrate_bn:  # the saved model is the recalibrated one; the un-recalibrated numbers stay reported
        recalibrate_bn_(q.model, recalibration_batches(train, args.recalibrate_bn, RECALIBRATION_BATCH, dev))
        after = evaluate(q.model, test_batches, progress=not args.json)
        summary.update({"accuracy_before_recalibration": result["accuracy"], "loss_before_recalibration":
                        result["loss"], **after, "recalibrate_bn": args.recalibrate_bn})
    save_checkpoint(q.model.cpu(), out, arch=args.arch, arch_kwargs=args.arch_kwargs or {},
                    ptq={k: v for k, v in summary.items() if k != "out"},
                    source=str(args.checkpoint))
    if args.json:
        cli.print_json(summary)
    else:
        if args.recalibrate_bn:
            print(f"before BN recalibration: accuracy {100 * result['accuracy']:.2f}%  loss {result['loss']:.4f}")
        print(f"{args.method} {args.bits}-bit: accuracy {100 * summary['accuracy']:.2f}%  loss {summary['loss']:.4f}  "
              f"(mean effective bits {summary['mean_effective_bits']:.2f}) → {out}")
    return 0


if __name__ == "__main__":
    cli.run(main, "landscape.ptq")
