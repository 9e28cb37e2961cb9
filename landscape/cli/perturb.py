"""python -m landscape.perturb: is the compressor's displacement special? Compare it with M random directions
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
  python -m landscape.perturb runs/wc.h5 --directions 50 --target clamped --limit 1000
  python -m landscape.perturb runs/wc.h5 --directions 50 --target clamped --limit 1000 --split train
  python -m landscape.perturb runs/wc.h5 --directions 20 --target ptq:heq:4 --norm per-layer \\
      --alphas -1 -0.5 0 0.5 1
"""

from __future__ import annotations

import argparse

from .. import cli, distributed
from ..analysis.perturbation import GROUP, NORMS, PerturbConfig, perturbation_test, write_perturb
from ..analysis.states import load_state_spec
from ..analysis.storage import check_name, check_writable
from ..analysis.sweep import open_journal
from ..bn import recalibration_batches
from ..data import Batches
from ..store import Run

SPLITS = ("test", "train")


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
    p = cli.Parser("python -m landscape.perturb", __doc__)
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
    p.add_argument("--seed", type=int, default=0, help="seed of the random directions (default: 0)")
    p.add_argument("--split", default="test", choices=SPLITS,
                   help="evaluate on test images (default) or on unaugmented training images (train: the loss "
                        "the compressor lowers; default --name gets a _train suffix; with --bn recalibrate the "
                        "recalibration batches are among the evaluated images, see above)")
    p.add_argument("--limit", type=cli.positive_int, default=None,
                   help="evaluate on the first N images of --split (class-balanced prefix; default: all)")
    p.add_argument("--bn", default="recalibrate", choices=["keep", "recalibrate"],
                   help="BN statistics of every perturbed state: re-estimate them on --bn-batches training "
                        "batches (recalibrate, default) or keep the pretrained ones (keep)")
    p.add_argument("--bn-batches", type=cli.positive_int, default=4,
                   help="--bn recalibrate: training batches of --batch-size images per state (default: 4)")
    p.add_argument("--no-fast", action="store_true", help="evaluate the model as is (no BN folding)")
    cli.add_result_args(p, "analysis/perturb", "TARGET_NORM, TARGET_NORM_train for --split train")
    cli.add_data_args(p)
    return p


def default_name(target: str, norm: str, split: str = "test") -> str:
    """TARGET_NORM (test split, the name results had before --split existed), TARGET_NORM_train (train)."""
    return f"{target.replace(':', '-')}_{norm}" + ("" if split == "test" else f"_{split}")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return cli.in_world(args.device, lambda dev, world: _perturb(args, dev, world))


def _perturb(args, dev, world: distributed.World) -> int:
    config = PerturbConfig(directions=args.directions, norm=args.norm, seed=args.seed,
                           alphas=tuple(args.alphas or ()), bn=args.bn, fast=not args.no_fast)
    run = Run(args.run)
    name = args.name or default_name(args.target, args.norm, args.split)
    check_name(name)

    # Everything that can fail on the user's input fails here, before any evaluation or write.
    distributed.on_main(lambda: check_writable(run.path, GROUP, name, args.force), world)
    target = load_state_spec(run, args.target)
    model = run.model("pretrained").to(dev)
    attrs = {"target": args.target, "norm": args.norm, "directions": args.directions, "seed": args.seed,
             "params": config.params, "alphas": list(config.alphas), "bn": args.bn, "bn_batches": args.bn_batches,
             "fast": config.fast, "split": args.split, "limit": args.limit, "batch_size": args.batch_size}
    journal = open_journal(run.path, "perturb", name, {**attrs, "device": dev.type}, [model.state_dict(), target],
                           world, discard_other=args.force)
    train, test = cli.load_data(args, run)
    batches = Batches((train if args.split == "train" else test).subset(args.limit), args.batch_size, train=False,
                      device=dev)
    bn_data = recalibration_batches(train, args.bn_batches, args.batch_size, dev) if args.bn == "recalibrate" \
        else None

    result = perturbation_test(model, target, batches, config, bn_data=bn_data, progress=not args.json,
                               world=world, journal=journal)
    if not world.is_main:
        return 0
    attrs = {**attrs, "alphas": attrs["alphas"] or None, "run": str(run.path), "world_size": world.size}
    key = write_perturb(run.path, name, result, attrs, force=args.force)
    journal.remove()
    summary = result.summary()
    if args.json:
        cli.print_json({"file": str(run.path), "group": f"/{key}", **attrs, **summary})
    else:
        print(f"target {args.target}: ‖Δθ‖ = {result.displacement_norm:.4f} over {len(result.layer_norms)} "
              f"layers; "
              f"base loss {result.base['loss']:.4f} on {result.base['n']} {args.split} images")
        print(f"  real displacement   ΔL = {result.real['delta_loss']:+.4f}  "
              f"ΔL/‖Δθ‖ = {result.real['slope']:+.5f}  accuracy {100 * result.real['accuracy']:.2f}%  "
              f"(target's full state: loss {result.target['loss']:.4f}, "
              f"accuracy {100 * result.target['accuracy']:.2f}%)")
        r = result.random_delta_loss
        print(f"  random ({args.norm}, M={len(r)})  ΔL mean {r.mean():+.4f}  min {r.min():+.4f}  "
              f"max {r.max():+.4f}")
        print(f"  percentile {result.percentile:.1f}%  z-score {result.zscore:+.2f}")
        if result.scan is not None:
            print("  scan   alpha   real loss  random loss")
            for a, lr, lx in zip(result.scan.alpha, result.scan.real["loss"], result.scan.random["loss"],
                                 strict=True):
                print(f"       {a:+6.2f}  {lr:10.4f}  {lx:10.4f}")
        print(f"wrote {run.path}:/{key}")
    return 0


if __name__ == "__main__":
    cli.run(main, "landscape.perturb")
