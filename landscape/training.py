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
import math
import os
import sys
import time
from pathlib import Path

import torch

from . import accel, distributed
from .bn import recalibrate_bn_, recalibration_batches
from .data import Batches, Split
from .datasets import load_recorded
from .errors import LandscapeError
from .metrics import evaluate
from .models import load_model
from .specs import RunSpec, checkpoint_changed
from .store import Run, RunWriter, create_run, update, write_final
from .text import is_text
from .trainer import ProgressBar, Trainer


def check_resumable(out: str | os.PathLike) -> RunSpec:
    """The spec of an unfinished run file that `run_training(out, None)` can continue; a one-line error
    otherwise. (A run file written before TrainConfig.compile existed trained eagerly and continues so: the
    default "auto" would compile a long run, and a compiled continuation is not bit-identical to its eager
    start; `RunSpec.from_settings` does that.)

    Args:
        out: the run file.

    Returns:
        The run's `RunSpec`, read from the file; a `LandscapeError` (one line) for a finished run, a changed
            starting checkpoint or a file that is not a run file.

    Examples:
        >>> import tempfile, torch, torch.nn as nn
        >>> import landscape as ls
        >>> model = nn.Sequential(nn.Linear(4, 3))
        >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,)))]
        >>> tmp = tempfile.TemporaryDirectory()
        >>> run = ls.compress_model(model, data, data, out=f"{tmp.name}/run.h5", method="ptq", epochs=1,
        ...                         progress=False)
        >>> check_resumable(run.path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        landscape.errors.LandscapeError: .../run.h5 is a finished run; nothing to resume
        >>> tmp.cleanup()
    """
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
    writes; other ranks return {}.

    Args:
        out: the run file to write (HDF5), or the unfinished one to continue.
        spec: the run (None: continue `out`, from the settings it records).
        data (str | os.PathLike | None): the folder the spec's data is loaded from (None: the default places).
        download: let torchvision download CIFAR-10 when no local copy is found.
        device: the torch device trained on (overrides the spec's).
        world: the torchrun world (default: a single process).
        eval_batch_size: images per evaluation batch.
        progress: show a progress bar (rank 0).

    Returns:
        The summary (run, method, steps, accuracy_*/loss_* per state, mean_bits, bits_per_layer, …) on rank 0, {}
            on the other ranks.

    Examples:
        >>> run_training("no-such-run.h5", None)
        Traceback (most recent call last):
        ...
        landscape.errors.RunFileError: run file no-such-run.h5 does not exist
    """
    out, dev = Path(out), torch.device(device)
    resume = spec is None
    spec = (check_resumable(out) if resume else spec).at(device=str(dev))
    model = load_model(spec.arch, spec.checkpoint, spec.arch_kwargs).to(dev)
    n_bn = spec.recalibrate_bn
    if n_bn and not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        raise LandscapeError(f"--recalibrate-bn {n_bn}: {spec.arch} has no BatchNorm layer to re-estimate")
    if is_text(spec.data):  # a language model (landscape/lm.py): windows of a text file
        from .lm import text_run_data

        train, test_batches, recorded, loss_fn = text_run_data(spec, data, eval_batch_size)
        return fit_and_clamp(out, model, train, test_batches, dataclasses.replace(spec, data=recorded),
                             resume=resume, world=world, progress=progress, loss_fn=loss_fn)
    from .models import LANGUAGE_ARCHS

    if spec.arch in LANGUAGE_ARCHS:
        raise LandscapeError(f"{spec.arch} is a language model: train it on --dataset text")
    train, test, recorded = load_recorded(spec.data or None, data, download=download)
    spec = dataclasses.replace(spec, data=recorded)  # the data's numbers (normalization, classes) kept
    train, test = train.subset(spec.limit_train), test.subset(spec.limit_test)
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
    mean, default cross-entropy. Trains on the device the model is on. A compressor that needs data at the clamp
    (`calibration()` > 0 images, e.g. GPTQ) is calibrated right before it on `calibration_batches(train, …)`.

    Args:
        out: the run file to write (HDF5), or the unfinished one to continue with `resume`.
        model: the pretrained model, on the device to train on (`train` runs on a copy).
        train (landscape.data.Split | Iterable): a `data.Split` or a re-iterable of (x, y) batches; one pass is
            one epoch.
        test_batches (Iterable): an iterable of (x, y) batches the states are evaluated on.
        spec: the run's settings.
        resume: continue `out` from its last complete checkpoint.
        world: the torchrun world (default: a single process).
        progress: show a progress bar (rank 0).
        bn_data (list | None): batches a BN-recalibrated copy of the clamped model is re-estimated on (None: no copy).
        loss_fn (Callable | None): `loss_fn(outputs, targets) -> batch mean` (None: cross-entropy).

    Returns:
        The summary `run_training` returns (rank 0), {} on the other ranks.

    Examples:
        >>> import tempfile, torch, torch.nn as nn
        >>> from landscape.specs import RunSpec
        >>> from landscape.trainer import TrainConfig
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,))) for _ in range(2)]
        >>> spec = RunSpec(arch="<my model>", checkpoint=None, method="ptq", compressor={"bits": 2},
        ...                train=TrainConfig(epochs=1, compile="off"))
        >>> tmp = tempfile.TemporaryDirectory()
        >>> summary = fit_and_clamp(f"{tmp.name}/run.h5", model, data, data, spec, progress=False)
        >>> summary["steps"], summary["mean_bits"], summary["bits_per_layer"]
        (2, 2.0, {'0.weight': 2.0, '2.weight': 2.0})
        >>> tmp.cleanup()
    """
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
    started = time.perf_counter()
    compressed = trainer.fit()
    # the training's wall time (the evaluations and the clamp not included), summed over continuations
    train_seconds = time.perf_counter() - started + (float(Run(out).attrs.get("train_seconds", 0.0)) if resume else 0.0)
    if not world.is_main:
        return {}
    n_calibration = compressor.calibration()
    if n_calibration > 0:  # e.g. GPTQ: the clamp needs unaugmented training images
        compressor.calibrate(compressed, calibration_batches(train, n_calibration, config.batch_size,
                                                             torch.device(config.device)))
    clamped = compressor.clamp(compressed)
    evals["compressed"] = {**evaluate(compressed, test_batches, loss_fn=loss_fn), "split": "test"}
    evals["clamped"] = {**evaluate(clamped.model, test_batches, loss_fn=loss_fn), "split": "test"}
    recalibrated = None
    if bn_data is not None:
        recalibrated = recalibrate_bn_(copy.deepcopy(clamped.model), bn_data)
        evals["recalibrated"] = {**evaluate(recalibrated, test_batches, loss_fn=loss_fn), "split": "test",
                                 "bn_batches": len(bn_data)}
    write_final(out, compressed=compressed, clamped=clamped, evals=evals, recalibrated=recalibrated,
                train_seconds=train_seconds)

    return {"run": str(out), "method": spec.method, "epochs": config.epochs, "steps": trainer.step,
            # accuracy where the model is a classifier (NaN from metrics.evaluate otherwise: a language model has none)
            **{f"accuracy_{k}": v["accuracy"] for k, v in evals.items() if not math.isnan(v["accuracy"])},
            **{f"loss_{k}": v["loss"] for k, v in evals.items()}, "n_test": evals["clamped"]["n"],
            "mean_bits": clamped.mean_bits(), "mean_storage_bits": clamped.mean_bits(storage=True),
            "bits_per_layer": clamped.bits, "not_compressed": skipped, "world_size": world.size,
            "train_seconds": train_seconds}


def calibration_batches(train, n: int, batch_size: int, device: torch.device) -> list:
    """The first `n` training images a compressor's `calibrate` gets: from a data.Split, unaugmented, in batches of
    `batch_size` (`bn.recalibration_batches`); from any other re-iterable of (x, y) batches, its leading batches as
    they come (the last one trimmed), moved to `device`.

    Args:
        train: the training data `fit_and_clamp` was given.
        n: images (≥ 1; fewer where the data has fewer).
        batch_size: images per batch (a data.Split).
        device: where the batches go.

    Returns:
        A list of (x, y) batches.

    Examples:
        >>> import torch
        >>> data = [(torch.randn(16, 4), torch.zeros(16)) for _ in range(3)]
        >>> [len(x) for x, _ in calibration_batches(data, 20, 128, torch.device("cpu"))]
        [16, 4]
    """
    if isinstance(train, Split):
        return recalibration_batches(train.subset(n), math.ceil(n / batch_size), batch_size, device)
    out, left = [], n
    for x, y in train:
        if left <= 0:
            break
        out.append((x[:left].to(device), y[:left].to(device) if isinstance(y, torch.Tensor) and y.dim() else y))
        left -= len(out[-1][0])
    return out


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
