"""landscape ptq: post-training quantization baseline of a checkpoint, saved as a new checkpoint.

Quantizes the conv/linear weights of a copy of the model per layer with 2^B levels (--params all: every
parameter), evaluates it on the test split and writes the quantized checkpoint to --out. --method gptq (GPTQ,
Frantar et al. 2022) puts the weights on a per-layer grid of 2^B values column by column, compensating each
column's error on the next ones with the inverse Hessian of the layer's inputs on --calibration-images unaugmented
training images (landscape/compress/gptq.py).

--levels-from RUN.h5 (uniform, heq, kmeans) is the matched-bits baseline of a mixed-precision run (e.g. soft
quantization): each layer gets the number of levels K_l the run's clamped model has in it instead of 2^B, so
k-means spends exactly the run's per-layer budget (its mean effective bits are the run's where every layer has at
least K_l distinct weights). --bits is then optional and only gives the layers the run did not quantize 2^B levels
(e.g. with --params all over a run of weights); a layer the run quantized that this model does not, or a layer
with no count and no --bits, is a one-line error (exit 2) before anything is written.

Example:
  landscape ptq --method heq --bits 4 --arch resnet20 \\
      --checkpoint ../shared/models/resnet20-cifar10jpeg.pt --out runs/resnet20-heq4.pt --json
  landscape ptq --method gptq --bits 3 --arch resnet20 \\
      --checkpoint ../shared/models/resnet20-cifar10jpeg.pt --out runs/resnet20-gptq3.pt --json
  landscape ptq --method kmeans --levels-from runs/demo/soft-quant.h5 --arch resnet20 \
      --checkpoint ../shared/models/resnet20-cifar10jpeg.pt --out runs/resnet20-kmeans-matched.pt --json
"""

from __future__ import annotations

import argparse

from .. import cli
from ..compress.gptq import GPTQConfig
from ..compress.groupwise import GROUPWISE
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
    p.add_argument("--method", required=True, choices=sorted((*QUANTIZERS, "gptq", *GROUPWISE)),
                   help="uniform: 2^B evenly spaced levels over [min,max]; heq: 2^B equal-population bins, each "
                        "weight → its bin's mean; kmeans: 2^B k-means centroids; gptq: GPTQ on the --grid of 2^B "
                        "values per layer, calibrated on training images; rtn, hqq: round-to-nearest / HQQ on a "
                        "min-max grid per output channel or per --group-size inputs (scales counted in the bits)")
    p.add_argument("--group-size", type=cli.positive_int, default=None, metavar="G",
                   help="rtn, hqq: input weights per group, e.g. 64 or 128 (default: one group per output channel)")
    p.add_argument("--bits", type=bits_arg, default=None,
                   help="bits per weight B, 1..16 (gptq: 2..8); required unless --levels-from gives every layer's "
                        "levels (then: 2^B levels for the layers the run did not quantize)")
    p.add_argument("--levels-from", default=None, metavar="RUN.h5",
                   help="a finished run file (e.g. soft quantization): each layer gets the number of levels K_l of "
                        "its clamped codebook (matched bits; uniform, heq, kmeans only)")
    p.add_argument("--params", default="weights", type=cli.selection_arg,
                   help="weights: conv/linear weights only, BN and biases untouched (default); all: every parameter; "
                        "either with ±patterns, e.g. weights,-head.weight")
    cli.add_model_args(p)
    cli.add_data_args(p, text=True)
    p.add_argument("--limit", type=cli.positive_int, default=None,
                   help="evaluate on the first N test images (text: validation windows)")
    p.add_argument("--recalibrate-bn", type=cli.nonnegative_int, default=0, metavar="BATCHES",
                   help="after quantizing, re-estimate the BN running statistics on this many unaugmented training "
                        "batches of 128 images (nothing else changes), report the accuracy before and after, and "
                        "save the recalibrated model (default: 0, off)")
    defaults = GPTQConfig()
    g = p.add_argument_group("GPTQ (--method gptq only)")
    g.add_argument("--grid", choices=list(QUANTIZERS), default=None,
                   help=f"the per-layer grid of 2^B values, that quantizer's values for the layer's weights "
                        f"(default: {defaults.grid})")
    g.add_argument("--damp", type=float, default=None,
                   help=f"dampening λ as a fraction of mean diag H, > 0 (default: {defaults.damp})")
    g.add_argument("--block-size", type=cli.positive_int, default=None,
                   help=f"columns per lazy batch update (default: {defaults.block_size})")
    g.add_argument("--act-order", action="store_true", default=None,
                   help="sweep the columns in order of decreasing diag H (default: off)")
    g.add_argument("--calibration-images", type=cli.positive_int, default=None, metavar="N",
                   help=f"the first N training images, unaugmented, H is estimated on (text: the first N "
                        f"training windows of the model's context) (default: {defaults.calibration_images})")
    p.add_argument("--out", required=True, help="where to save the quantized checkpoint")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--json", action="store_true", help="print one JSON object with accuracy, loss, bits per layer")
    return p


GPTQ_OPTIONS = ("grid", "damp", "block_size", "act_order", "calibration_images")


def spec_from_args(args: argparse.Namespace) -> PTQSpec:
    """The command line as a PTQSpec (what the library takes)."""
    if args.bits is None and args.levels_from is None:
        raise ValueError("give --bits B (2^B levels per layer) or --levels-from RUN.h5 (a run's levels per layer)")
    given = {k: getattr(args, k) for k in GPTQ_OPTIONS if getattr(args, k) is not None}
    if given and args.method != "gptq":
        raise ValueError(f"--{next(iter(given)).replace('_', '-')} applies to --method gptq only")
    calibration = given.pop("calibration_images", GPTQConfig().calibration_images)
    return PTQSpec(arch=args.arch, checkpoint=args.checkpoint, arch_kwargs=args.arch_kwargs or {}, method=args.method,
                   bits=args.bits, params=args.params, limit=args.limit, recalibrate_bn=args.recalibrate_bn,
                   out=args.out, force=args.force, batch_size=args.batch_size, data=cli.data_source(args),
                   device=args.device, calibration_images=calibration, gptq=given, levels_from=args.levels_from,
                   group_size=args.group_size)


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
        what = f"{spec.bits}-bit" if spec.levels_from is None else f"at the levels of {spec.levels_from}"
        metric = (f"validation loss {summary['loss']:.4f} nats/char  perplexity {summary['perplexity']:.2f}"
                  if "accuracy" not in summary else f"accuracy {100 * summary['accuracy']:.2f}%  loss "
                  f"{summary['loss']:.4f}")
        print(f"{spec.method} {what}: {metric}  (mean effective bits {summary['mean_effective_bits']:.2f}) → "
              f"{summary['out']}")
    return 0


if __name__ == "__main__":
    cli.run(main, "landscape.ptq")
