"""landscape ptq: post-training quantization baseline of a checkpoint, saved as a new checkpoint.

Quantizes the conv/linear weights of a copy of the model per layer with 2^B levels (--params all: every
parameter), evaluates it on the test split and writes the quantized checkpoint to --out.

Example:
  landscape ptq --method heq --bits 4 --arch resnet20 \\
      --checkpoint ../shared/models/resnet20-cifar10jpeg.pt --out runs/resnet20-heq4.pt --json
"""

from __future__ import annotations

import argparse

from .. import cli
from ..compress.ptq import run_ptq
from ..quantize import QUANTIZERS
from ..specs import PTQSpec


def bits_arg(text: str) -> int:
    bits = int(text)
    if not 1 <= bits <= 16:
        raise argparse.ArgumentTypeError(f"bits must be in 1..16, got {bits}")
    return bits


def parser() -> argparse.ArgumentParser:
    p = cli.Parser("landscape ptq", __doc__)
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


def spec_from_args(args: argparse.Namespace) -> PTQSpec:
    """The command line as a PTQSpec (what the library takes)."""
    return PTQSpec(arch=args.arch, checkpoint=args.checkpoint, arch_kwargs=args.arch_kwargs or {}, method=args.method,
                   bits=args.bits, params=args.params, limit=args.limit, recalibrate_bn=args.recalibrate_bn,
                   out=args.out, force=args.force, batch_size=args.batch_size, data=cli.data_source(args),
                   device=args.device)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    spec = spec_from_args(args)
    cli.device(spec.device)  # an unusable device is a one-line error before any work
    summary = run_ptq(spec, progress=not args.json)
    if args.json:
        cli.print_json(summary)
    else:
        if spec.recalibrate_bn:
            print(f"before BN recalibration: accuracy {100 * summary['accuracy_before_recalibration']:.2f}%  "
                  f"loss {summary['loss_before_recalibration']:.4f}")
        print(f"{spec.method} {spec.bits}-bit: accuracy {100 * summary['accuracy']:.2f}%  loss {summary['loss']:.4f}  "
              f"(mean effective bits {summary['mean_effective_bits']:.2f}) → {summary['out']}")
    return 0


if __name__ == "__main__":
    cli.run(main, "landscape.ptq")
