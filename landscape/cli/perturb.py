"""landscape perturb: is the compressor's displacement special? Compare it with M random directions
of the same norm (soft-quantization paper, Fig. 3).

Δθ = θ_target − θ_pretrained over the conv/linear weights, the target being the run's compressed or clamped
state or a PTQ of its pretrained state (ptq:METHOD:BITS). Each random Gaussian direction is scaled to ‖Δθ‖
(--norm global) or to each layer's ‖Δθ_l‖ (--norm per-layer). Every perturbed state, the real one included,
gets its BN statistics re-estimated on --bn-batches unaugmented training batches (--bn recalibrate, default)
or keeps the pretrained ones (--bn keep: cheaper, but biased against structured steps); BN parameters and
biases stay pretrained (landscape/analysis/perturbation.py says why). The target's full state is reported separately.
Prints ΔL = L(θ_pre + δ) − L(θ_pre), ΔL/‖Δθ‖, and the real displacement's percentile and z-score among the
random ones; --alphas adds a 1-D scan along Δθ and along random direction 0.

Data (--split). ΔL is measured on the first --limit test images (test, default) or unaugmented training images
(train; class-balanced prefixes, as in landscape.interpolate). The loss soft quantization lowers is the training
loss, so --split train is the one the paper's Fig. 3 wording speaks about. A train-split result gets the default
name TARGET_NORM_train, so it never replaces a test-split one. With --split train and --bn recalibrate the
recalibration batches (the first --bn-batches × --batch-size training images) are also among the evaluated
images. That is acceptable: both are unaugmented training images, recalibration uses no labels (the BN
statistics are per-channel activation moments, a property of the state, not a fit to the labels), and every
state — pretrained, real and random — gets the same batches, so the comparison stays even.

Results are stored in the run file, group /analysis/perturb/<name> (see landscape/analysis/perturbation.py).

Long jobs. Finished evaluations are journaled in a hidden file beside the result,
.<file>.perturb-<name>.journal.json; rerunning the same command after a crash or Ctrl-C skips them, with the
same numbers as an uninterrupted run. Under torchrun the evaluations are shared out over the processes and rank 0
writes the result: torchrun --nproc-per-node 4 -m landscape.perturb ... (landscape/analysis/sweep.py, README).

Example:
  landscape perturb runs/wc.h5 --directions 50 --target clamped --limit 1000
  landscape perturb runs/wc.h5 --directions 50 --target clamped --limit 1000 --split train
  landscape perturb runs/wc.h5 --directions 20 --target ptq:heq:4 --norm per-layer \\
      --alphas -1 -0.5 0 0.5 1
"""

from __future__ import annotations

import argparse
import math

from .. import cli
from ..analysis.perturbation import GROUP, NORMS, PerturbConfig
from ..specs import PerturbSpec


def directions_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"the number of random directions M must be ≥ 1, got {value}")
    return value


def target_arg(text: str) -> str:
    if text in ("compressed", "clamped") or text.startswith("ptq:"):
        return text
    raise argparse.ArgumentTypeError(f"must be compressed, clamped or ptq:METHOD:BITS, got {text!r}")


def parser() -> argparse.ArgumentParser:
    p = cli.Parser("landscape perturb", __doc__)
    p.add_argument("run", help="run file (HDF5) written by landscape.train")
    p.add_argument("--directions", type=directions_arg, required=True, metavar="M",
                   help="number of random directions, ≥ 1")
    p.add_argument("--target", type=target_arg, default="clamped",
                   help="the displacement's end: compressed, clamped (default) or ptq:METHOD:BITS, e.g. "
                        "ptq:heq:4")
    p.add_argument("--norm", default="global", choices=NORMS,
                   help="scale random directions to ‖Δθ‖ (global, default) or to every layer's ‖Δθ_l‖ "
                        "(per-layer)")
    p.add_argument("--alphas", type=float, nargs="+", default=None, metavar="A",
                   help="1-D scan along Δθ and along random direction 0 at these multiples of the step")
    cli.add_seed_arg(p, "the random directions")
    cli.add_eval_args(p, split_help="train is the loss the compressor lowers; the default --name gets a _train "
                      "suffix; with --bn recalibrate the recalibration batches are among the evaluated images, see "
                      "above", bn=PerturbConfig.bn, bn_batches=PerturbConfig.bn_batches,
                      bn_help="of every perturbed state: re-estimate them on --bn-batches training batches "
                              "(recalibrate) or keep the pretrained ones (keep); a language model's run has no "
                              "BatchNorm and defaults to keep")
    p.set_defaults(bn=None)  # resolved in spec_from_args: recalibrate, or keep for a language model's run
    cli.add_result_args(p, GROUP, "TARGET_NORM, TARGET_NORM_train for --split train")
    cli.add_data_args(p)
    return p


def spec_from_args(args: argparse.Namespace) -> PerturbSpec:
    """The command line as a PerturbSpec (what the library takes)."""
    bn = args.bn or ("keep" if cli.recorded_dataset(args.run) == "text" else PerturbConfig.bn)
    config = PerturbConfig(directions=args.directions, norm=args.norm, seed=args.seed,
                           alphas=tuple(args.alphas or ()), bn=bn, bn_batches=args.bn_batches,
                           fast=not args.no_fast)
    return PerturbSpec(**cli.analysis_fields(args), target=args.target, config=config)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return cli.run_analysis_command(spec_from_args(args), args.json, report)


def report(outcome) -> None:
    result, split = outcome.result, outcome.attrs["split"]
    lm = math.isnan(result.base["accuracy"])  # a language model: loss in nats/token over windows, no accuracy
    acc = (lambda v: "") if lm else (lambda v: f", accuracy {100 * v:.2f}%")
    print(f"target {outcome.attrs['target']}: ‖Δθ‖ = {result.displacement_norm:.4f} over "
          f"{len(result.layer_norms)} layers; base loss {result.base['loss']:.4f}{' nats/token' if lm else ''} on "
          f"{result.base['n']} {split} {'windows' if lm else 'images'}")
    print(f"  real displacement   ΔL = {result.real['delta_loss']:+.4f}  "
          f"ΔL/‖Δθ‖ = {result.real['slope']:+.5f}{acc(result.real['accuracy'])}  "
          f"(target's full state: loss {result.target['loss']:.4f}{acc(result.target['accuracy'])})")
    r = result.random_delta_loss
    print(f"  random ({outcome.attrs['norm']}, M={len(r)})  ΔL mean {r.mean():+.4f}  min {r.min():+.4f}  "
          f"max {r.max():+.4f}")
    print(f"  percentile {result.percentile:.1f}%  z-score {result.zscore:+.2f}")
    if result.scan is not None:
        print("  scan   alpha   real loss  random loss")
        for a, lr, lx in zip(result.scan.alpha, result.scan.real["loss"], result.scan.random["loss"], strict=True):
            print(f"       {a:+6.2f}  {lr:10.4f}  {lx:10.4f}")
    print(f"wrote {outcome.file}:/{outcome.key}")


if __name__ == "__main__":
    cli.run(main, "landscape.perturb")
