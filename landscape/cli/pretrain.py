"""landscape pretrain: adapt a public CIFAR-10 checkpoint to the JPEG copy by short fine-tuning.

The defaults are the recipe of ../shared/models/resnet20-cifar10jpeg.pt (its README): start from the public
ResNet-20, 6 epochs over the 50,000 JPEG train images, batch 128, SGD + Nesterov momentum 0.9, weight decay 1e-4,
one-cycle schedule with peak lr 0.02 and 15% warm-up, standard crop/flip augmentation, seed 0. The test
accuracy after every epoch, the config and the seed are saved with the checkpoint.

Without --checkpoint the model starts from its own initialisation: training from scratch (any --arch,
e.g. torchvision.models:mobilenet_v3_small with --arch-kwargs '{"num_classes": 10}').

Example (≈ 15 min on 2 CPU cores):
  landscape pretrain --arch resnet20 --checkpoint ../shared/models/resnet20-12fca82f.th \\
      --out runs/resnet20-cifar10jpeg.pt
"""

from __future__ import annotations

import argparse
import dataclasses

from .. import cli
from ..data import Batches
from ..metrics import evaluate
from ..models import load_model, save_checkpoint
from ..trainer import Callback, ProgressBar, TrainConfig, Trainer


class EpochEval(Callback):
    """Test accuracy after every epoch (the recipe's per-epoch numbers)."""

    def __init__(self, batches: Batches, quiet: bool):
        self.batches, self.quiet, self.history = batches, quiet, []

    def on_epoch_end(self, trainer: Trainer) -> None:
        result = evaluate(trainer.model, self.batches)
        self.history.append(result)
        if not self.quiet:
            acc, loss = 100 * result["accuracy"], result["loss"]
            print(f"epoch {len(self.history)}: test accuracy {acc:.2f}%  loss {loss:.4f}", flush=True)


def parser() -> argparse.ArgumentParser:
    p = cli.Parser("landscape pretrain", __doc__)
    cli.add_model_args(p, checkpoint_required=False)
    cli.add_data_args(p)
    p.add_argument("--epochs", type=cli.positive_int, default=6, help="passes over the train split (default: 6)")
    p.add_argument("--lr", type=float, default=0.02,
                   help="peak learning rate of the one-cycle schedule (default: 0.02)")
    p.add_argument("--train-batch-size", type=cli.positive_int, default=128, help="images per SGD step (default: 128)")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="L2 coefficient (default: 1e-4)")
    p.add_argument("--seed", type=int, default=0, help="data order and augmentation seed (default: 0)")
    p.add_argument("--limit-train", type=cli.positive_int, default=None, help="train on the first N images only")
    p.add_argument("--limit-test", type=cli.positive_int, default=None, help="evaluate on the first N images only")
    p.add_argument("--out", required=True, help="where to save the adapted checkpoint")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--json", action="store_true", help="print one JSON summary object at the end")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    out = cli.check_out(args.out, args.force)
    dev = cli.device(args.device)
    config = TrainConfig(epochs=args.epochs, batch_size=args.train_batch_size, lr=args.lr, momentum=0.9,
                         weight_decay=args.weight_decay, schedule="onecycle", warmup=0.15, seed=args.seed,
                         device=str(dev))
    model = load_model(args.arch, args.checkpoint, args.arch_kwargs)
    train, test = cli.load_data(args)
    test_batches = Batches(test.subset(args.limit_test), args.batch_size, train=False, device=dev)
    history = EpochEval(test_batches, quiet=args.json)
    callbacks = [history] if args.json else [ProgressBar(), history]
    trained = Trainer(model, train.subset(args.limit_train), config, callbacks=callbacks).fit()
    final = history.history[-1]
    save_checkpoint(trained.cpu(), out, arch=args.arch, arch_kwargs=args.arch_kwargs or {},
                    best_prec1=100 * final["accuracy"], config=dataclasses.asdict(config), source=str(args.checkpoint),
                    test_accuracy_per_epoch=[h["accuracy"] for h in history.history])
    summary = {"accuracy": final["accuracy"], "loss": final["loss"], "n": final["n"],
               "accuracy_per_epoch": [h["accuracy"] for h in history.history], "out": str(out)}
    if args.json:
        cli.print_json(summary)
    else:
        print(f"saved {out}: test accuracy {100 * final['accuracy']:.2f}%")
    return 0


if __name__ == "__main__":
    cli.run(main, "landscape.pretrain")
