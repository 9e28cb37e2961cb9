"""python -m landscape.train: fine-tune a pretrained model with a compression loss, clamp it, and write a run file.

The run file (HDF5, schema in landscape/store.py and README) holds the settings, the pretrained state, weights
every --checkpoint-every steps, per-step scalars, the fine-tuned and clamped states, clusters and bits per layer,
and test accuracy pretrained / fine-tuned / clamped.

Example (soft quantization of the adapted ResNet-20, paper hyperparameters):
  python -m landscape.train --arch resnet20 --checkpoint ../shared/models/resnet20-cifar10jpeg.pt \\
      --method weight-coupling --h 0.05 --w 0.3 --epochs 3 --out runs/wc.h5
"""

from __future__ import annotations

import argparse
import dataclasses

from . import cli
from .cli_config import add_config_options, chosen_settings
from .compress import METHODS, make_compressor
from .data import Batches, load_cifar10
from .metrics import evaluate
from .models import load_model
from .store import RunWriter, create_run, write_eval, write_final
from .trainer import ProgressBar, Trainer, TrainConfig


def parser() -> tuple[argparse.ArgumentParser, dict]:
    p = cli.Parser("python -m landscape.train", __doc__)
    cli.add_model_args(p)
    cli.add_data_args(p)
    p.add_argument("--method", default="weight-coupling", choices=sorted(METHODS),
                   help="compression method (default: weight-coupling)")
    p.add_argument("--out", required=True, help="run file to write (HDF5)")
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
    t.add_argument("--lr", type=float, default=defaults.lr, help=f"SGD learning rate (default: {defaults.lr}, paper A.1)")
    t.add_argument("--train-batch-size", type=cli.positive_int, default=defaults.batch_size,
                   help=f"images per SGD step (default: {defaults.batch_size})")
    t.add_argument("--momentum", type=float, default=defaults.momentum, help="Nesterov momentum (default: 0.9)")
    t.add_argument("--weight-decay", type=float, default=defaults.weight_decay, help="L2 coefficient (default: 0)")
    t.add_argument("--schedule", default=defaults.schedule, choices=["constant", "onecycle"],
                   help="learning-rate schedule (default: constant)")
    t.add_argument("--seed", type=int, default=defaults.seed, help="seed of data order, augmentation and the "
                   "compressor's random draws (default: 0)")
    t.add_argument("--stats-every", type=cli.positive_int, default=defaults.stats_every,
                   help=f"steps between cluster statistics (default: {defaults.stats_every})")
    owners = add_config_options(p, {m: cfg for m, (_, cfg) in METHODS.items()}, skip=set())
    return p, owners


def main(argv: list[str] | None = None) -> int:
    p, owners = parser()
    args = p.parse_args(argv)
    out = cli.check_out(args.out, args.force)
    dev = cli.device(args.device)
    config = TrainConfig(epochs=args.epochs, batch_size=args.train_batch_size, lr=args.lr, momentum=args.momentum,
                         weight_decay=args.weight_decay, schedule=args.schedule, seed=args.seed,
                         stats_every=args.stats_every, device=str(dev))
    compressor = make_compressor(args.method, chosen_settings(args, args.method, owners), seed=args.seed)
    model = load_model(args.arch, args.checkpoint).to(dev)
    train, test = load_cifar10(args.data, download=args.download)
    train, test = train.subset(args.limit_train), test.subset(args.limit_test)
    test_batches = Batches(test, args.batch_size, train=False, device=dev)

    settings = {"train": dataclasses.asdict(config), "compressor": compressor.config_dict(),
                "arch": args.arch, "checkpoint": str(args.checkpoint), "method": args.method,
                "limit_train": args.limit_train, "limit_test": args.limit_test,
                "checkpoint_every": args.checkpoint_every}
    callbacks = [RunWriter(out, args.checkpoint_every)] + ([] if args.json else [ProgressBar()])
    trainer = Trainer(model, train, config, compressor, callbacks)
    start = trainer.model  # what is trained: the model, or the module the compressor prepared around it
    evals = {"pretrained": {**evaluate(start, test_batches), "split": "test"}}
    create_run(out, config=settings, seed=args.seed, method=args.method, arch=args.arch,
               pretrained=start.state_dict(), prepared=set(start.state_dict()) != set(model.state_dict()))
    compressed = trainer.fit()
    clamped = compressor.clamp(compressed)
    evals["compressed"] = {**evaluate(compressed, test_batches), "split": "test"}
    evals["clamped"] = {**evaluate(clamped.model, test_batches), "split": "test"}
    write_final(out, compressed=compressed, clamped=clamped, evals=evals)

    summary = {"run": str(out), "method": args.method, "epochs": args.epochs, "steps": trainer.step,
               **{f"accuracy_{k}": v["accuracy"] for k, v in evals.items()},
               **{f"loss_{k}": v["loss"] for k, v in evals.items()}, "n_test": evals["clamped"]["n"],
               "mean_bits": clamped.mean_bits(), "mean_storage_bits": clamped.mean_bits(storage=True),
               "bits_per_layer": clamped.bits}
    if args.json:
        cli.print_json(summary)
    else:
        for k, v in evals.items():
            print(f"{k:>10}: accuracy {100 * v['accuracy']:.2f}%  loss {v['loss']:.4f}")
        print(f"mean bits {summary['mean_bits']:.2f} (storage {summary['mean_storage_bits']:.2f}); run file {out}")
    return 0


if __name__ == "__main__":
    cli.run(main, "landscape.train")
