"""landscape train: fine-tune a pretrained model with a compression loss, clamp it, and write a run file.

The run file (HDF5, schema in landscape/store.py and README) holds the settings, the pretrained state, weights
every --checkpoint-every steps, per-step scalars, the fine-tuned and clamped states, clusters and bits per layer,
and test accuracy pretrained / fine-tuned / clamped.

Example (soft quantization of the adapted ResNet-20, paper hyperparameters):
  landscape train --arch resnet20 --checkpoint ../shared/models/resnet20-cifar10jpeg.pt \\
      --method weight-coupling --h 0.05 --w 0.3 --epochs 3 --out runs/wc.h5
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from .. import accel, cli, distributed
from ..compress import METHODS
from ..specs import RunSpec
from ..trainer import COMPILE, COMPILE_MIN_STEPS, OPTIMIZERS, TrainConfig
from ..training import run_training
from .config import add_config_options, chosen_settings


def parser() -> tuple[argparse.ArgumentParser, dict]:
    p = cli.Parser("landscape train", __doc__)
    cli.add_model_args(p, checkpoint_required=False)
    cli.add_data_args(p, text=True)
    p.add_argument("--method", default="weight-coupling", choices=sorted(METHODS),
                   help="compression method (default: weight-coupling)")
    p.add_argument("--out", help="run file to write (HDF5)")
    p.add_argument("--resume", metavar="RUN.h5", help="continue an interrupted run from its last complete checkpoint "
                   "(every setting is read from the run file; --data/--device/--json still apply)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--json", action="store_true", help="print one JSON summary object at the end")
    p.add_argument("--limit-train", type=cli.positive_int, default=None, help="train on the first N images only")
    p.add_argument("--limit-test", type=cli.positive_int, default=None, help="evaluate on the first N images only")
    p.add_argument("--checkpoint-every", type=cli.positive_int, default=100,
                   help="SGD steps between weight checkpoints in the run file (default: 100)")
    defaults = TrainConfig()
    t = p.add_argument_group("training (TrainConfig)")
    t.add_argument("--epochs", type=cli.positive_int, default=defaults.epochs, help=f"passes over the train split "
                   f"(default: {defaults.epochs})")
    t.add_argument("--lr", type=float, default=defaults.lr,
                   help=f"SGD learning rate (default: {defaults.lr}, paper A.1)")
    t.add_argument("--train-batch-size", type=cli.positive_int, default=defaults.batch_size,
                   help=f"images per SGD step (default: {defaults.batch_size})")
    t.add_argument("--momentum", type=float, default=defaults.momentum, help="Nesterov momentum (default: 0.9)")
    t.add_argument("--weight-decay", type=float, default=defaults.weight_decay, help="L2 coefficient (default: 0)")
    t.add_argument("--schedule", default=defaults.schedule, choices=["constant", "onecycle"],
                   help="learning-rate schedule (default: constant)")
    t.add_argument("--optimizer", default=defaults.optimizer, choices=OPTIMIZERS,
                   help="sgd (Nesterov momentum) or adamw (β = (--momentum, --beta2), decoupled weight decay on the "
                   "matrices; nanoGPT's) (default: sgd)")
    t.add_argument("--beta2", type=float, default=defaults.beta2, help=f"AdamW's β2 (default: {defaults.beta2})")
    t.add_argument("--grad-clip", type=float, default=defaults.grad_clip,
                   help="clip the global gradient norm to this before each step (default: 0, off)")
    t.add_argument("--seed", type=int, default=defaults.seed, help="seed of data order, augmentation and the "
                   "compressor's random draws (default: 0)")
    t.add_argument("--micro-batches", type=cli.positive_int, default=defaults.micro_batches,
                   help="split each batch into this many slices whose gradients are averaged (default: 1)")
    t.add_argument("--recalibrate-bn", type=cli.nonnegative_int, default=0, metavar="BATCHES",
                   help="after clamping, also store and evaluate a copy of the clamped model whose BN running "
                   "statistics are re-estimated on this many unaugmented training batches of --train-batch-size "
                   "images (nothing else trained; /final/recalibrated, /eval/recalibrated; default: 0, off)")
    t.add_argument("--stats-every", type=cli.positive_int, default=defaults.stats_every,
                   help=f"steps between cluster statistics (default: {defaults.stats_every})")
    t.add_argument("--compile", default=defaults.compile, choices=COMPILE,
                   help=f"torch.compile the training forward/backward (inductor; needs a C++ compiler on CPU, else "
                   f"uncompiled with a warning): auto = on for single-process CPU runs of ≥ {COMPILE_MIN_STEPS} steps; "
                   f"gradients equal to float32 round-off, ~1.4x faster steps (default: {defaults.compile})")
    t.add_argument("--precision", default=defaults.precision, choices=accel.PRECISIONS,
                   help="arithmetic of the task forward: fp32, or bf16 autocast (the coupling penalty, the weights "
                   f"and clamping stay float32; default: {defaults.precision})")
    t.add_argument("--deterministic", action="store_true",
                   help="deterministic kernels only (torch.use_deterministic_algorithms), TF32 off, no cuDNN "
                   "autotuning: what makes resume and N ranks = 1 rank bit-exact on a GPU (README, 'GPU'); "
                   "on CPU it changes nothing")
    owners = add_config_options(p, {m: cfg for m, (_, cfg) in METHODS.items()}, skip=set())
    return p, owners


def main(argv: list[str] | None = None) -> int:
    p, owners = parser()
    args = p.parse_args(argv)
    return cli.in_world(args.device, lambda dev, world: _train(args, owners, dev, world))


def spec_from_args(args, owners, device: str = "cpu") -> RunSpec:
    """The RunSpec of parsed `parser()` arguments (the only place argv becomes a run)."""
    if args.checkpoint is None:
        raise ValueError("--checkpoint is required (or --resume RUN.h5)")
    config = TrainConfig(epochs=args.epochs, batch_size=args.train_batch_size, lr=args.lr, momentum=args.momentum,
                         weight_decay=args.weight_decay, schedule=args.schedule, optimizer=args.optimizer,
                         beta2=args.beta2, grad_clip=args.grad_clip, seed=args.seed,
                         stats_every=args.stats_every, micro_batches=args.micro_batches, device=str(device),
                         compile=args.compile, precision=args.precision, deterministic=args.deterministic)
    return RunSpec.resolved(args.checkpoint, arch=args.arch, arch_kwargs=args.arch_kwargs or {},
                            method=args.method, compressor=chosen_settings(args, args.method, owners), train=config,
                            data=cli.data_spec(args), limit_train=args.limit_train, limit_test=args.limit_test,
                            checkpoint_every=args.checkpoint_every, recalibrate_bn=args.recalibrate_bn)


def _train(args, owners, dev, world: distributed.World) -> int:
    if args.resume:
        out, spec = Path(args.resume), None
    else:
        if args.out is None:
            raise ValueError("--out is required (or --resume RUN.h5)")
        spec = spec_from_args(args, owners, str(dev))
        out = cli.check_out(args.out, args.force) if world.is_main else Path(args.out)
    summary = run_training(out, spec, data=args.data, download=args.download, device=dev, world=world,
                           eval_batch_size=args.batch_size, progress=not args.json)
    if not world.is_main:
        return 0
    if args.json:
        cli.print_json(summary)
    else:
        for k in ("pretrained", "compressed", "clamped", "recalibrated"):
            if f"loss_{k}" not in summary:
                continue
            if f"accuracy_{k}" not in summary:  # not a classifier (a language model): its loss is the metric
                loss = summary[f"loss_{k}"]
                print(f"{k:>12}: validation loss {loss:.4f} nats/token  perplexity {math.exp(loss):.2f}")
            else:
                print(f"{k:>12}: accuracy {100 * summary[f'accuracy_{k}']:.2f}%  loss {summary[f'loss_{k}']:.4f}")
        print(f"mean bits {summary['mean_bits']:.2f} (storage {summary['mean_storage_bits']:.2f}); run file {out}")
    return 0


if __name__ == "__main__":
    cli.run(main, "landscape.train")
