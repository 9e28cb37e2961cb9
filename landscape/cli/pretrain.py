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

Language models (`--dataset text --arch gpt`; landscape/lm.py): a character-level GPT on a UTF-8 text (--data
FILE; default ../shared/data/tinyshakespeare.txt), nanoGPT's CPU setting by default: 4 layers × 4 heads × 128
wide, --context 64, --steps 2000 of --train-batch-size 12 windows, AdamW lr 1e-3 (β2 0.99, weight decay 0.1),
100 warm-up steps, cosine decay to lr/10, gradient norm clipped at 1. The validation loss (nats per character,
every non-overlapping window of the last 10% of the text) is printed every --eval-every steps and saved with the
checkpoint, beside the vocabulary.
  landscape pretrain --dataset text --arch gpt --out runs/gpt-shakespeare.pt
"""

from __future__ import annotations

import argparse
import dataclasses

from .. import cli
from ..data import Batches
from ..errors import LandscapeError
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
    cli.add_data_args(p, text=True)
    p.add_argument("--epochs", type=cli.positive_int, default=6, help="passes over the train split (default: 6)")
    p.add_argument("--lr", type=float, default=None,
                   help="peak learning rate of the one-cycle schedule (default: 0.02; text: 1e-3)")
    p.add_argument("--train-batch-size", type=cli.positive_int, default=None,
                   help="images per SGD step (default: 128; text: windows per step, 12)")
    p.add_argument("--weight-decay", type=float, default=None, help="L2 coefficient (default: 1e-4; text: AdamW's "
                   "decoupled decay of the matrices, 0.1)")
    p.add_argument("--context", type=cli.positive_int, default=64, help="text: characters per window (default: 64)")
    p.add_argument("--steps", type=cli.positive_int, default=2000, help="text: optimizer steps (default: 2000)")
    p.add_argument("--eval-every", type=cli.positive_int, default=250,
                   help="text: steps between validation evaluations on 200 windows (default: 250)")
    p.add_argument("--seed", type=int, default=0, help="data order and augmentation seed (default: 0)")
    p.add_argument("--limit-train", type=cli.positive_int, default=None, help="train on the first N images only")
    p.add_argument("--limit-test", type=cli.positive_int, default=None, help="evaluate on the first N images only")
    p.add_argument("--out", required=True, help="where to save the adapted checkpoint")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--json", action="store_true", help="print one JSON summary object at the end")
    return p


def main_text(args: argparse.Namespace) -> int:
    """The language-model path: the options as an LMPretrainSpec, then `lm.pretrain_lm`."""
    from ..lm import NANOGPT_CPU, LMPretrainSpec, pretrain_lm
    from ..models import LANGUAGE_ARCHS

    if args.arch not in LANGUAGE_ARCHS or args.dataset != "text":
        raise LandscapeError(f"--arch {args.arch} with --dataset {args.dataset or 'cifar10'}: language architectures "
                             f"({', '.join(LANGUAGE_ARCHS)}) train on --dataset text, image ones on images")
    train = dataclasses.replace(NANOGPT_CPU, seed=args.seed, device=str(cli.device(args.device)),
                                **{k: v for k, v in (("lr", args.lr), ("batch_size", args.train_batch_size),
                                                     ("weight_decay", args.weight_decay)) if v is not None})
    spec = LMPretrainSpec(out=args.out, text=args.data, arch=args.arch, arch_kwargs=args.arch_kwargs or {},
                          checkpoint=args.checkpoint, context=args.context, steps=args.steps, train=train,
                          eval_every=args.eval_every, force=args.force)
    result = pretrain_lm(spec, progress=not args.json)
    if args.json:
        cli.print_json(result)
    else:
        print(f"saved {result['out']}: validation loss {result['val_loss']:.4f} nats/char (perplexity "
              f"{result['val_perplexity']:.2f}, {result['val_bits_per_char']:.3f} bits/char, "
              f"{result['val_tokens']:,} characters); {result['parameters']:,} parameters, "
              f"{result['tokens_per_second']:,.0f} characters/s")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from ..models import LANGUAGE_ARCHS

    if args.dataset == "text" or args.arch in LANGUAGE_ARCHS:
        return main_text(args)
    out = cli.check_out(args.out, args.force)
    dev = cli.device(args.device)
    config = TrainConfig(epochs=args.epochs, batch_size=args.train_batch_size or 128, lr=args.lr or 0.02,
                         momentum=0.9, weight_decay=1e-4 if args.weight_decay is None else args.weight_decay,
                         schedule="onecycle", warmup=0.15, seed=args.seed, device=str(dev))
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
