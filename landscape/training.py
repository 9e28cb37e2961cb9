"""One training run as a library call: fine-tune a model with a compression loss, clamp it, evaluate it, and write
the run file (schema in store.py). `python -m landscape.train` parses argv into a `specs.RunSpec` and calls
`run_training`; the API (`landscape.compress_model`) and the studies build the spec in Python.

    run_training(out, spec)       load the model and data a RunSpec names, then fit_and_clamp
    run_training(out, None)       continue the unfinished run file `out` from its last complete checkpoint
    fit_and_clamp(out, model, train, test_batches, spec)   the run itself, on any model and data
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import sys
from pathlib import Path

import torch

from . import accel, distributed
from .bn import recalibrate_bn_, recalibration_batches
from .data import Batches
from .datasets import load_recorded
from .errors import LandscapeError
from .metrics import evaluate
from .models import load_model
from .specs import RunSpec, checkpoint_changed
from .store import Run, RunWriter, create_run, update, write_final
from .trainer import ProgressBar, Trainer


def check_resumable(out: str | os.PathLike) -> RunSpec:
    """The spec of an unfinished run file that `run_training(out, None)` can continue; a one-line error
    otherwise. (A run file written before TrainConfig.compile existed trained eagerly and continues so: the
    default "auto" would compile a long run, and a compiled continuation is not bit-identical to its eager
    start; `RunSpec.from_settings` does that.)"""
    run = Run(out)
    if "final" in run.groups():
        raise LandscapeError(f"{out} is a finished run; nothing to resume")
    spec = RunSpec.from_settings(run.config)
    if checkpoint_changed(spec):
        raise LandscapeError(f"{spec.checkpoint} changed since the run started (sha256 differs)")
    return spec


def run_training(out: str | os.PathLike, spec: RunSpec | None, *, data=None, download: bool = False,
                 device: str | torch.device = "cpu", world: distributed.World = distributed.World(),
                 eval_batch_size: int = 500, progress: bool = True) -> dict:
    """Fine-tune, clamp and evaluate the run `spec` describes into the run file `out` (HDF5, overwritten), or
    continue the unfinished run in `out` from its last complete checkpoint when `spec` is None. `data`: the
    folder to load the spec's data from (None: the default places); `device` overrides the spec's. Returns the
    summary the CLI prints with --json (accuracies as fractions, losses in nats, bits per weight). Only rank 0
    writes; other ranks return {}."""
    out, dev = Path(out), torch.device(device)
    resume = spec is None
    spec = (check_resumable(out) if resume else spec).at(device=str(dev))
    model = load_model(spec.arch, spec.checkpoint, spec.arch_kwargs).to(dev)
    train, test, recorded = load_recorded(spec.data or None, data, download=download)
    spec = dataclasses.replace(spec, data=recorded)  # the data's numbers (normalization, classes) kept
    train, test = train.subset(spec.limit_train), test.subset(spec.limit_test)
    n_bn = spec.recalibrate_bn
    bn_data = recalibration_batches(train, n_bn, spec.train.batch_size, dev) if n_bn else None
    return fit_and_clamp(out, model, train, Batches(test, eval_batch_size, train=False, device=dev), spec,
                         resume=resume, world=world, progress=progress, bn_data=bn_data)


def fit_and_clamp(out: str | os.PathLike, model: torch.nn.Module, train, test_batches, spec: RunSpec, *,
                  resume: bool = False, world: distributed.World = distributed.World(), progress: bool = True,
                  bn_data=None, loss_fn=None) -> dict:
    """The run itself, on any model and data: `train` a data.Split or any re-iterable of (x, y) batches,
    `test_batches` any iterable of (x, y); `spec` the run's settings (its method, compressor, train config and
    checkpoint interval are used here; the whole spec is what the run file records); `bn_data` the batches a
    BN-recalibrated copy is re-estimated on (None: no recalibrated copy); `loss_fn` (outputs, targets) → batch
    mean, default cross-entropy. Trains on the device the model is on."""
    dev = next(model.parameters()).device
    spec = spec.at(device=str(dev))
    with accel.determinism(spec.train.deterministic, dev):  # the evaluations too, not only the steps
        return _fit_and_clamp(Path(out), model, train, test_batches, spec, resume=resume, world=world,
                              progress=progress, bn_data=bn_data, loss_fn=loss_fn)


def _fit_and_clamp(out: Path, model, train, test_batches, spec: RunSpec, *, resume, world, progress, bn_data,
                   loss_fn) -> dict:
    config, settings = spec.train, spec.to_settings()
    compressor = spec.compressor_instance()
    skipped = check_compressible(model, compressor, spec.arch)
    callbacks = []
    if world.is_main:  # only rank 0 writes the run file and shows progress
        callbacks = [RunWriter(out, spec.checkpoint_every)] + ([ProgressBar()] if progress else [])
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
        create_run(out, config=settings, seed=spec.seed, method=spec.method, arch=spec.arch,
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

    return {"run": str(out), "method": spec.method, "epochs": config.epochs, "steps": trainer.step,
            **{f"accuracy_{k}": v["accuracy"] for k, v in evals.items()},
            **{f"loss_{k}": v["loss"] for k, v in evals.items()}, "n_test": evals["clamped"]["n"],
            "mean_bits": clamped.mean_bits(), "mean_storage_bits": clamped.mean_bits(storage=True),
            "bits_per_layer": clamped.bits, "not_compressed": skipped, "world_size": world.size}


def check_compressible(model, compressor, arch: str) -> dict[str, str]:
    """The multi-dimensional parameters the compressor leaves out (name → module type; said on stderr, not
    skipped in silence); a one-line error if it would compress nothing."""
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
