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
import copy
import dataclasses
import json
import os
from pathlib import Path

import torch

from . import accel, cli, distributed
from .bn import recalibrate_bn_, recalibration_batches
from .cli_config import add_config_options, chosen_settings
from .compress import METHODS, make_compressor
from .data import Batches, sha256_of
from .datasets import load_recorded
from .errors import LandscapeError
from .metrics import evaluate
from .models import load_model, resolve_checkpoint
from .store import Run, RunWriter, create_run, update, write_final
from .trainer import COMPILE, COMPILE_MIN_STEPS, ProgressBar, TrainConfig, Trainer


def parser() -> tuple[argparse.ArgumentParser, dict]:
    p = cli.Parser("python -m landscape.train", __doc__)
    cli.add_model_args(p, checkpoint_required=False)
    cli.add_data_args(p)
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


def settings_from_args(args, owners, device: str = "cpu", **overrides) -> dict:
    """Everything that defines a run, as stored in the run file's `config` attribute (and read by --resume),
    from parsed `parser()` arguments. `overrides`: method settings (e.g. h=0.1) and/or `seed`, applied on top of
    the arguments (a study's grid point)."""
    if args.checkpoint is None:
        raise ValueError("--checkpoint is required (or --resume RUN.h5)")
    seed = int(overrides.pop("seed", args.seed))
    config = TrainConfig(epochs=args.epochs, batch_size=args.train_batch_size, lr=args.lr, momentum=args.momentum,
                         weight_decay=args.weight_decay, schedule=args.schedule, seed=seed,
                         stats_every=args.stats_every, micro_batches=args.micro_batches, device=str(device),
                         compile=args.compile, precision=args.precision, deterministic=args.deterministic)
    method_settings = {**chosen_settings(args, args.method, owners), **overrides}
    compressor = make_compressor(args.method, method_settings, seed=seed)
    checkpoint = resolve_checkpoint(args.checkpoint)
    return {"train": dataclasses.asdict(config), "compressor": compressor.config_dict(), "arch": args.arch,
            "arch_kwargs": args.arch_kwargs or {},
            "data": cli.data_spec(args),
            "checkpoint": str(checkpoint.resolve()), "checkpoint_sha256": sha256_of(checkpoint) if checkpoint.is_file()
            else None, "method": args.method, "limit_train": args.limit_train, "limit_test": args.limit_test,
            "checkpoint_every": args.checkpoint_every, "recalibrate_bn": args.recalibrate_bn, "seed": seed}


def _train(args, owners, dev, world: distributed.World) -> int:
    if args.resume:
        out, settings = Path(args.resume), None
    else:
        if args.out is None:
            raise ValueError("--out is required (or --resume RUN.h5)")
        settings = settings_from_args(args, owners, str(dev))
        out = cli.check_out(args.out, args.force) if world.is_main else Path(args.out)
    summary = run_training(out, settings, data=args.data, download=args.download, device=dev, world=world,
                           eval_batch_size=args.batch_size, progress=not args.json)
    if not world.is_main:
        return 0
    if args.json:
        cli.print_json(summary)
    else:
        for k in ("pretrained", "compressed", "clamped", "recalibrated"):
            if f"accuracy_{k}" in summary:
                print(f"{k:>12}: accuracy {100 * summary[f'accuracy_{k}']:.2f}%  loss {summary[f'loss_{k}']:.4f}")
        print(f"mean bits {summary['mean_bits']:.2f} (storage {summary['mean_storage_bits']:.2f}); run file {out}")
    return 0


def check_resumable(out: Path) -> dict:
    """The settings of an unfinished run file that `run_training(out, None)` can continue; a one-line error
    otherwise."""
    run = Run(out)
    if "final" in run.groups():
        raise LandscapeError(f"{out} is a finished run; nothing to resume")
    recorded = run.config.get("checkpoint_sha256")
    if recorded and sha256_of(Path(run.config["checkpoint"])) != recorded:
        raise LandscapeError(f"{run.config['checkpoint']} changed since the run started (sha256 differs)")
    settings = run.config
    # a run file written before TrainConfig.compile existed trained eagerly: continue it so (the default "auto"
    # would compile a long run, and a compiled continuation is not bit-identical to its eager start)
    settings["train"].setdefault("compile", "off")
    return settings


def run_training(out: str | os.PathLike, settings: dict | None, *, data=None, download: bool = False,
                 device: str | torch.device = "cpu", world: distributed.World = distributed.World(),
                 eval_batch_size: int = 500, progress: bool = True) -> dict:
    """Fine-tune, clamp and evaluate one run into the run file `out` (HDF5, overwritten), or continue the
    unfinished run in `out` from its last complete checkpoint when `settings` is None. `settings` is the dict
    `settings_from_args` builds (everything that defines the run: model, data, method, training). Returns the
    summary the CLI prints with --json (accuracies as fractions, losses in nats, bits per weight). Only rank 0
    writes; other ranks return {}."""
    out, dev = Path(out), torch.device(device)
    resume = settings is None
    settings = dict(check_resumable(out) if resume else settings)  # the caller's dict is not changed
    config = TrainConfig(**{**settings["train"], "device": str(dev)})
    model = load_model(settings["arch"], settings["checkpoint"], settings.get("arch_kwargs")).to(dev)
    train, test, settings["data"] = load_recorded(settings.get("data"), data, download=download)  # numbers kept
    train, test = train.subset(settings["limit_train"]), test.subset(settings["limit_test"])
    n_bn = settings.get("recalibrate_bn") or 0  # absent in run files written before the option existed
    bn_data = recalibration_batches(train, n_bn, config.batch_size, dev) if n_bn else None
    return fit_and_clamp(out, model, train, Batches(test, eval_batch_size, train=False, device=dev), settings,
                         resume=resume, world=world, progress=progress, bn_data=bn_data)


def fit_and_clamp(out: Path, model: torch.nn.Module, train, test_batches, settings: dict, *, resume: bool = False,
                  world: distributed.World = distributed.World(), progress: bool = True, bn_data=None,
                  loss_fn=None) -> dict:
    """The run itself, on any model and data: `train` a data.Split or any re-iterable of (x, y) batches,
    `test_batches` any iterable of (x, y); `settings` as recorded in the run file (its "train", "method",
    "compressor", "seed", "checkpoint_every"); `bn_data` the batches a BN-recalibrated copy is re-estimated on
    (None: no recalibrated copy); `loss_fn` (outputs, targets) → batch mean, default cross-entropy."""
    dev = next(model.parameters()).device
    config = TrainConfig(**{**settings["train"], "device": str(dev)})
    with accel.determinism(config.deterministic, dev):  # the evaluations too, not only the steps
        return _fit_and_clamp(out, model, train, test_batches, settings, config, resume=resume, world=world,
                              progress=progress, bn_data=bn_data, loss_fn=loss_fn)


def _fit_and_clamp(out, model, train, test_batches, settings, config, *, resume, world, progress, bn_data,
                   loss_fn) -> dict:
    compressor = make_compressor(settings["method"], settings["compressor"], seed=settings["seed"])
    skipped = check_compressible(model, compressor, settings["arch"])
    callbacks = []
    if world.is_main:  # only rank 0 writes the run file and shows progress
        callbacks = [RunWriter(out, settings["checkpoint_every"])] + ([ProgressBar()] if progress else [])
    trainer = Trainer(model, train, config, compressor, callbacks, world, loss_fn=loss_fn)
    start = trainer.model  # what is trained: the model, or the module the compressor prepared around it
    if resume:
        evals = {"pretrained": Run(out).evals()["pretrained"]}
        if "resume" in Run(out).groups():
            trainer.load_state_dict(Run(out).resume_state())
        if world.is_main:  # provenance: the steps at which this run was continued
            with update(out) as f:
                f.attrs["resumed_at"] = json.dumps(json.loads(f.attrs.get("resumed_at", "[]")) + [trainer.step])
    elif world.is_main:
        evals = {"pretrained": {**evaluate(start, test_batches, loss_fn=loss_fn), "split": "test"}}
        create_run(out, config=settings, seed=settings["seed"], method=settings["method"], arch=settings["arch"],
                   pretrained=start.state_dict(), prepared=set(start.state_dict()) != set(model.state_dict()),
                   evals=evals)
    compressed = trainer.fit()
    if not world.is_main:
        return {}
    clamped = compressor.clamp(compressed)
    evals["compressed"] = {**evaluate(compressed, test_batches, loss_fn=loss_fn), "split": "test"}
    evals["clamped"] = {**evaluate(clamped.model, test_batches, loss_fn=loss_fn), "split": "test"}
    recalibrated = None
    if bn_data is not None:
        recalibrated = recalibrate_bn_(copy.deepcopy(clamped.model), bn_data)
        evals["recalibrated"] = {**evaluate(recalibrated, test_batches, loss_fn=loss_fn), "split": "test",
                                 "bn_batches": len(bn_data)}
    write_final(out, compressed=compressed, clamped=clamped, evals=evals, recalibrated=recalibrated)

    return {"run": str(out), "method": settings["method"], "epochs": config.epochs, "steps": trainer.step,
            **{f"accuracy_{k}": v["accuracy"] for k, v in evals.items()},
            **{f"loss_{k}": v["loss"] for k, v in evals.items()}, "n_test": evals["clamped"]["n"],
            "mean_bits": clamped.mean_bits(), "mean_storage_bits": clamped.mean_bits(storage=True),
            "bits_per_layer": clamped.bits, "not_compressed": skipped, "world_size": world.size}


def check_compressible(model, compressor, arch: str) -> dict[str, str]:
    """The multi-dimensional parameters the compressor leaves out (name → module type; said on stderr, not
    skipped in silence); a one-line error if it would compress nothing."""
    import sys

    from .params import not_compressed

    if compressor.quantizes != "weights":  # e.g. input-bitwise: nothing to select among the weights
        return {}
    if not compressor.selected(model):
        raise LandscapeError(f"{arch} has no compressible layer (conv, linear, attention projection) under "
                             f"--params {compressor.params}; select some by name, e.g. --params weights,+embed.weight")
    skipped = not_compressed(model, compressor.params)
    if skipped:
        print(f"not compressed ({len(skipped)} multi-dimensional parameters; --params selects them by name): "
              + ", ".join(f"{n} ({t})" for n, t in skipped.items()), file=sys.stderr)
    return skipped


if __name__ == "__main__":
    cli.run(main, "landscape.train")
