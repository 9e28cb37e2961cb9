"""The public API, one hop from `import landscape`: the functions a notebook, a figure script or a CLI calls.

Every function takes any `nn.Module`, any iterable of (x, y) batches (a `DataLoader`, a list, a `data.Batches`) and a
loss function `loss_fn(outputs, targets) -> batch mean` (default: cross-entropy), and reads and writes the same run
files as the CLIs. A model argument may also be a run (`Run` or the path of a run file): its architecture and states
are then read from the file, and a state may be named as the CLIs name it ("pretrained", "compressed", "clamped",
"step:N", "ptq:METHOD:BITS", a checkpoint file). Nothing here modifies a caller's model or state dicts.

Units: losses in nats (mean over examples), accuracies as fractions, distances as ‖·‖₂ over parameters, bits per
weight.

    import landscape as ls
    run = ls.compress_model(model, train_loader, test_loader, out="runs/mine.h5", h=0.05, w=0.3)
    ls.evaluate_model(run.model("clamped"), test_loader)
    path = ls.loss_path(run, ["pretrained", "compressed", "clamped"], test_loader)
    plane = ls.loss_surface(run, test_loader, plane="states")

Why not `ls.surface`, `ls.evaluate`, `ls.compress`, …: those are modules (`python -m landscape.surface`, the
`landscape.compress` package), and importing a
module `landscape.surface` rebinds the package attribute `landscape.surface` to it, so a function of the same name
would silently turn into a module once any code imported the CLI. The functions are named for what they return.
"""

from __future__ import annotations

import copy
import itertools
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn as nn
from torch import Tensor

from .metrics import LossFn
from .store import Run

StateLike = str | Mapping[str, Tensor] | nn.Module


# --------------------------------------------------------------------------------------------- runs and models


def open_run(run: Run | str | os.PathLike) -> Run:
    """A run file (landscape.store.Run), from its path.

    Args:
        run: the run file's path, or a `Run` (returned as is).

    Returns:
        The `Run` (read access; every method opens and closes the file).

    Examples:
        >>> import landscape as ls
        >>> ls.open_run("no-such-run.h5")
        Traceback (most recent call last):
        ...
        landscape.errors.RunFileError: run file no-such-run.h5 does not exist
    """
    return run if isinstance(run, Run) else Run(run)


def _source(model: nn.Module | Run | str | os.PathLike, template: nn.Module | None = None
            ) -> tuple[nn.Module, Run | None]:
    """(the architecture as a module in eval mode, the run it came from or None)."""
    if isinstance(model, nn.Module):
        return model, None
    run = open_run(model)
    return run.model("pretrained", template=template), run


def _state(spec: StateLike, run: Run | None) -> dict[str, Tensor]:
    if isinstance(spec, nn.Module):
        return spec.state_dict()
    if isinstance(spec, Mapping):
        return dict(spec)
    if run is None:
        raise ValueError(f"state {spec!r} names a run-file state, but no run was given (pass the run, or a state "
                         "dict / model)")
    from .analysis.states import load_state_spec

    return load_state_spec(run, spec)


def _device(model: nn.Module) -> torch.device:
    p = next(itertools.chain(model.parameters(), model.buffers()), None)
    return p.device if p is not None else torch.device("cpu")


def _on(batches: Iterable, device: torch.device) -> list:
    """Batches as a list on `device` (analyses iterate them many times and must see the same tensors)."""
    return [(x.to(device), y.to(device)) for x, y in batches]


# --------------------------------------------------------------------------------------------------- training


def compress_model(model: nn.Module, train: Iterable, test: Iterable, *, out: str | os.PathLike,
             method: str = "weight-coupling", epochs: int = 3, lr: float = 1e-3, momentum: float = 0.9,
             weight_decay: float = 0.0, schedule: str = "constant", seed: int = 0, loss_fn: LossFn | None = None,
             recalibrate_bn: int = 0, checkpoint_every: int = 100, arch: str | None = None,
             arch_kwargs: dict | None = None, device: str | torch.device = "cpu", precision: str = "fp32",
             deterministic: bool = False, progress: bool = True, resume: bool = False, **method_settings) -> Run:
    """Fine-tune `model` (not modified) on `train` (a re-iterable of (x, y) batches; one pass = one epoch) with
    `method`'s compression loss (settings as keywords: h=0.05, w=0.3, bits=4, …; `landscape.train --help` lists
    them), clamp it, evaluate pretrained / compressed / clamped on `test`, and write the run file `out` (the
    schema of `python -m landscape.train`). `recalibrate_bn` N > 0 also stores a clamped copy with BN statistics
    re-estimated on the first N batches of `train`. `arch` (with `arch_kwargs`), a `package.module:factory`
    that builds this architecture, lets the CLIs rebuild the model from the run file; without it, pass the
    model as `template` to `Run.model`. `resume=True` continues an unfinished `out` from its last checkpoint
    (exact when `train`'s order depends only on the epoch). `precision="bf16"` autocasts the task forward,
    `deterministic=True` allows deterministic kernels only (README, "GPU"). Returns the run.

    Args:
        model: the pretrained model (copied, never modified).
        train: a re-iterable of (x, y) training batches; one pass is one epoch.
        test: an iterable of (x, y) batches the three states are evaluated on.
        out: the run file to write (HDF5; overwritten, or continued with `resume`).
        method: the compression method (`landscape.compress.METHODS`).
        epochs: passes over `train`.
        lr: SGD step size (the peak, for "onecycle").
        momentum: Nesterov momentum coefficient.
        weight_decay: L2 coefficient per weight.
        schedule: "constant" or "onecycle".
        seed: data order and the compressor's random draws.
        loss_fn: `loss_fn(outputs, targets) -> batch mean` (None: cross-entropy).
        recalibrate_bn: N > 0 also stores a clamped copy with BN statistics re-estimated on N batches of `train`.
        checkpoint_every: SGD steps between weight checkpoints in the run file.
        arch: a `package.module:factory` that builds this architecture (None: the run file names the class).
        arch_kwargs: keyword arguments of `arch`'s factory.
        device: the torch device trained on.
        precision: "fp32", or "bf16" autocast of the task forward.
        deterministic: deterministic kernels only.
        progress: show a progress bar.
        resume: continue an unfinished `out` from its last checkpoint (the other settings are the file's).
        **method_settings (Any): the method's config fields (e.g. h=0.05, w=0.3 or bits=4).

    Returns:
        The run file, as a `Run`.

    Examples:
        >>> import tempfile, torch, torch.nn as nn
        >>> import landscape as ls
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,))) for _ in range(2)]
        >>> tmp = tempfile.TemporaryDirectory()
        >>> run = ls.compress_model(model, data, data, out=f"{tmp.name}/run.h5", method="ptq", bits=2, epochs=1,
        ...                         progress=False)
        >>> sorted(run.evals()), run.bits()["mean_storage"]
        (['clamped', 'compressed', 'pretrained'], 2.0)
        >>> tmp.cleanup()
    """
    from .specs import RunSpec
    from .trainer import TrainConfig
    from .training import check_resumable, fit_and_clamp

    out, dev = Path(out), torch.device(device)
    if resume:
        spec = check_resumable(out)
    else:
        config = TrainConfig(epochs=epochs, lr=lr, momentum=momentum, weight_decay=weight_decay, schedule=schedule,
                             seed=seed, device=str(dev), compile="off", precision=precision,
                             deterministic=deterministic)
        spec = RunSpec(arch=arch or f"<{type(model).__module__}.{type(model).__qualname__}>", checkpoint=None,
                       method=method, compressor=method_settings, train=config, arch_kwargs=arch_kwargs or {},
                       data={"name": "python"}, checkpoint_every=checkpoint_every, recalibrate_bn=recalibrate_bn)
    work = copy.deepcopy(model).to(dev)  # nn.Module.to() works in place: never on the caller's model
    n_bn = spec.recalibrate_bn
    bn_data = _on(itertools.islice(train, n_bn), dev) if n_bn else None
    fit_and_clamp(out, work, train, _on(test, dev), spec, resume=resume, progress=progress, bn_data=bn_data,
                  loss_fn=loss_fn)
    return Run(out)


def clamp(model: nn.Module | Run | str | os.PathLike, *, method: str = "ptq", **settings):
    """A clamped copy: for a run, its clamped model (`Run.model("clamped")`); for a model, the codebooks of
    `method` (default "ptq", with bits=…, quantizer=uniform|heq|kmeans) applied to a copy. Returns a
    `compress.Clamped` (.model, .codebooks, .bits, .mean_bits()) for a model, the nn.Module for a run.

    Args:
        model: a model (copied, never modified), or a run (`Run` or the path of a run file).
        method: the compression method whose codebooks are applied (for a model only).
        **settings (Any): the method's config fields (e.g. bits=2, quantizer="kmeans").

    Returns:
        (landscape.compress.Clamped | nn.Module): A `compress.Clamped` for a model; the run's clamped `nn.Module`
            (eval mode) for a run.

    Examples:
        >>> import torch, torch.nn as nn
        >>> import landscape as ls
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> clamped = ls.clamp(model, bits=2)
        >>> sorted(clamped.codebooks), clamped.mean_bits()
        (['0.weight', '2.weight'], 2.0)
    """
    if not isinstance(model, nn.Module):
        return open_run(model).model("clamped")
    from .compress import make_compressor

    compressor = make_compressor(method, settings)
    return compressor.clamp(compressor.prepare(copy.deepcopy(model)))


def evaluate_model(model: nn.Module, data: Iterable, *, loss_fn: LossFn | None = None) -> dict:
    """{"loss": mean loss (nats), "accuracy": fraction (NaN for non-classifiers), "n": examples} of `model`
    in eval mode (its mode restored).

    Args:
        model: the model evaluated (not modified).
        data: an iterable of (x, y) batches.
        loss_fn: `loss_fn(outputs, targets) -> batch mean` (None: cross-entropy).

    Returns:
        {"loss": nats, "accuracy": fraction, "n": examples}.

    Examples:
        >>> import torch, torch.nn as nn
        >>> import landscape as ls
        >>> model = nn.Sequential(nn.Linear(4, 3))
        >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,))) for _ in range(2)]
        >>> result = ls.evaluate_model(model, data)
        >>> sorted(result), result["n"]
        (['accuracy', 'loss', 'n'], 32)
    """
    from .metrics import evaluate as run

    return run(model, data, loss_fn=loss_fn)


# --------------------------------------------------------------------------------------------------- analyses


def loss_path(model: nn.Module | Run | str | os.PathLike, states: Sequence[StateLike], data: Iterable | Mapping,
                *, points: int = 11, bn: str = "keep", bn_data: Iterable | None = None, fast: bool = True,
                loss_fn: LossFn | None = None, template: nn.Module | None = None, save: str | None = None,
                progress: bool = False):
    """Loss and accuracy along the piecewise-linear path through `states` (analysis/paths.py): `data` is one
    iterable of batches, or split name → iterable. `save` stores it in the run file under
    /analysis/paths/<save>. Returns a PathResult (alpha, segment, `metrics[split]["loss" or "accuracy"]`).

    Args:
        model: the architecture (a model, not modified), or a run (`Run` or the path of a run file).
        states: ≥ 2 states: state dicts, models, or (for a run) names such as "pretrained" or "step:N".
        data: an iterable of (x, y) batches, or split name → iterable.
        points: evaluation points per segment, both endpoints included.
        bn: BN running statistics: "keep" (interpolated) or "recalibrate" (re-estimated on `bn_data`).
        bn_data: the training batches BN statistics are re-estimated on (bn="recalibrate").
        fast: BN folded into convolutions, channels-last forward (values to ~1e-6).
        loss_fn: `loss_fn(outputs, targets) -> batch mean` (None: cross-entropy).
        template: a model of the run's architecture, for runs of a model given as a Python object.
        save: store the result in the run file under this name (None: not stored).
        progress: show a progress bar.

    Returns:
        (landscape.analysis.paths.PathResult): Loss and accuracy at every point of the path.

    Examples:
        >>> import torch, torch.nn as nn
        >>> import landscape as ls
        >>> model = nn.Sequential(nn.Linear(4, 3))
        >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,)))]
        >>> moved = {k: v + 0.1 for k, v in model.state_dict().items()}
        >>> path = ls.loss_path(model, [model.state_dict(), moved], data, points=3)
        >>> path.alpha.tolist(), path.metrics["test"]["loss"].shape
        ([0.0, 0.5, 1.0], (3,))
    """
    from .analysis.paths import PathConfig, evaluate_path, write_path

    arch, run = _source(model, template)
    dev = _device(arch)
    splits = dict(data) if isinstance(data, Mapping) else {"test": data}
    result = evaluate_path(arch, [_state(s, run) for s in states], {k: _on(v, dev) for k, v in splits.items()},
                           PathConfig(points=points, bn=bn, fast=fast), bn_data=_maybe(bn_data, dev),
                           progress=progress, loss_fn=loss_fn)
    if save:
        write_path(_run_path(run, save), save, result, {"states": [str(s) for s in states if isinstance(s, str)],
                                                       "points": points, "bn": bn})
    return result


ModelOrRun = nn.Module | Run | str | os.PathLike


def perturbation_test(model: ModelOrRun, target: StateLike, data: Iterable, *, directions: int = 20,
                      norm: str = "global", seed: int = 0, bn: str = "recalibrate", bn_data: Iterable | None = None,
                      alphas: Sequence[float] = (), params: str = "weights", fast: bool = True,
                      loss_fn: LossFn | None = None, template: nn.Module | None = None, save: str | None = None,
                      split: str = "test", progress: bool = False):
    """The displacement pretrained → `target` against `directions` random ones of the same norm
    (analysis/perturbation.py). For a run, `model`'s pretrained state is the start. BN "recalibrate" needs
    `bn_data` (training batches). `split` only labels `data` ("test", "train", …) in the result `save` stores
    (analyses/fig3_protocols.py groups results by it). Returns a PerturbResult (.percentile, .zscore,
    .summary()).

    Args:
        model: the architecture and starting state (a model, not modified), or a run (its pretrained state).
        target: the displaced state: a state dict, a model, or (for a run) a name such as "clamped".
        data: an iterable of (x, y) batches the losses are measured on.
        directions: M random directions of the displacement's norm.
        norm: "global" (‖δ‖ = ‖Δθ‖) or "per-layer" (‖δ_l‖ = ‖Δθ_l‖).
        seed: seed of the random directions.
        bn: BN statistics of every state: "recalibrate" (on `bn_data`) or "keep".
        bn_data: training batches for bn="recalibrate".
        alphas: 1-D scan positions in units of the step (empty: no scan).
        params: the displaced parameters ("weights": conv/linear weights, or a selection of landscape/params.py).
        fast: BN-folded channels-last forward.
        loss_fn: `loss_fn(outputs, targets) -> batch mean` (None: cross-entropy).
        template: a model of the run's architecture, for runs of a model given as a Python object.
        save: store the result in the run file under this name (None: not stored).
        split: the label of `data` in the stored result.
        progress: show a progress bar.

    Returns:
        (landscape.analysis.perturbation.PerturbResult): The real displacement against the random ones.

    Examples:
        >>> import torch, torch.nn as nn
        >>> import landscape as ls
        >>> model = nn.Sequential(nn.Linear(4, 3))
        >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,)))]
        >>> result = ls.perturbation_test(model, ls.clamp(model, bits=2).model, data, directions=4, bn="keep")
        >>> result.random_delta_loss.shape, 0 <= result.percentile <= 100
        ((4,), True)
    """
    from .analysis.perturbation import PerturbConfig, write_perturb
    from .analysis.perturbation import perturbation_test as run_test

    arch, run = _source(model, template)
    dev = _device(arch)
    config = PerturbConfig(directions=directions, norm=norm, seed=seed, bn=bn, alphas=tuple(alphas), params=params,
                           fast=fast)
    result = run_test(arch, _state(target, run), _on(data, dev), config, bn_data=_maybe(bn_data, dev),
                               progress=progress, loss_fn=loss_fn)
    if save:
        write_perturb(_run_path(run, save), save, result, {"target": str(target) if isinstance(target, str) else None,
                                                           "norm": norm, "directions": directions, "bn": bn,
                                                           "seed": seed, "split": split})
    return result


def loss_surface(model: nn.Module | Run | str | os.PathLike, data: Iterable, *, plane: str = "random",
            states: Sequence[StateLike] = ("pretrained", "compressed", "clamped"), around: StateLike = "clamped",
            resolution: int | tuple[int, int] = 21, range: Sequence | None = None, dims: int = 2,  # noqa: A002
            norm: str = "filter", ignore: str = "biasbn", seed: int = 0, bn: str = "keep",
            bn_data: Iterable | None = None, fast: bool = True, loss_fn: LossFn | None = None,
            template: nn.Module | None = None, save: str | None = None, progress: bool = False):
    """The loss on a plane (analysis/surface.py): "states" through three states, or "random" around one
    (filter-normalized). For a bare model, `around` defaults to the model's own state. Returns a SurfaceResult
    (coords, loss [x, y], accuracy, anchors).

    Args:
        model: the architecture (a model, not modified), or a run (`Run` or the path of a run file).
        data: an iterable of (x, y) batches.
        plane: "states" (through the three `states`) or "random" (around `around`).
        states: the states plane's three states (state dicts, models, or names of a run's states).
        around: the random plane's centre.
        resolution: grid points per axis (odd, ≥ 3), one for all axes or one per axis.
        range: (A, B) per axis (None: ±1 for a random plane, the states' box grown by a margin for "states").
        dims: a random plane's directions: 2, or 1 for a 1-D scan.
        norm: normalization of the random directions: "filter", "layer" or "none".
        ignore: the 1-D tensors of the random directions: "biasbn" (zeroed) or normalized as one slice.
        seed: seed of the random directions.
        bn: BN statistics: "keep" or "recalibrate" (on `bn_data`, at every point).
        bn_data: training batches for bn="recalibrate".
        fast: BN-folded channels-last forward.
        loss_fn: `loss_fn(outputs, targets) -> batch mean` (None: cross-entropy).
        template: a model of the run's architecture, for runs of a model given as a Python object.
        save: store the result in the run file under this name (None: not stored).
        progress: show a progress bar.

    Returns:
        (landscape.analysis.surface.SurfaceResult): The grid's coordinates, loss and accuracy, and the anchors.

    Examples:
        >>> import torch, torch.nn as nn
        >>> import landscape as ls
        >>> model = nn.Sequential(nn.Linear(4, 3))
        >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,)))]
        >>> surface = ls.loss_surface(model, data, resolution=3)
        >>> surface.loss.shape, surface.anchors[0][0]
        ((3, 3), 'centre')
    """
    from .analysis.surface import SurfaceConfig, evaluate_surface, random_plane, states_plane, write_surface

    arch, run = _source(model, template)
    dev = _device(arch)
    labels = lambda specs: [s if isinstance(s, str) else f"state {i}" for i, s in enumerate(specs)]  # noqa: E731
    if plane == "states":
        p = states_plane(arch, [_state(s, run) for s in states], labels(states))
    else:
        centre = arch.state_dict() if run is None and around == "clamped" else _state(around, run)
        p = random_plane(arch, centre, labels([around])[0] if run is not None else "centre", dims=dims, seed=seed,
                         norm=norm, ignore=ignore)
    config = SurfaceConfig(plane=plane, resolution=resolution, range=range, dims=dims if plane == "random" else 2,
                           norm=norm, ignore=ignore, seed=seed, bn=bn, fast=fast)
    result = evaluate_surface(arch, p, _on(data, dev), config, bn_data=_maybe(bn_data, dev), progress=progress,
                              loss_fn=loss_fn)
    if save:
        write_surface(_run_path(run, save), save, result, {"plane": plane, "units": p.units, "bn": bn,
                                                           "resolution": list(config.resolution)})
    return result


def hessian_spectrum(model: ModelOrRun, data: Iterable, *, states: Sequence[StateLike] = ("clamped",),
                     top_k: int = 1, trace: bool = False, density: bool = False, per_layer: bool = False,
                     params: str = "weights", path: bool = False, clamp_cost: bool = False,
                     loss_fn: LossFn | None = None, template: nn.Module | None = None, progress: bool = False,
                     **settings):
    """Hessian spectra (analysis/hessian.py) of the loss on `data` (eval mode): top-k eigenvalues (Lanczos), with
    `trace` the Hutchinson trace ± standard error, with `density` the SLQ spectral density, `per_layer` the
    diagonal block of every compressed layer; for a run, `path` adds λ_max and trace along pretrained →
    compressed → clamped and `clamp_cost` the second-order prediction of the clamp step's ΔL beside the measured
    one. For a bare model, `states` defaults to the model's own. Returns a HessianResult.

    Args:
        model: the architecture (a model, not modified), or a run (`Run` or the path of a run file).
        data: an iterable of (x, y) batches.
        states: the states analysed (state dicts, models, or names of a run's states).
        top_k: largest eigenvalues per state (and per layer block).
        trace: also the Hutchinson trace.
        density: also the SLQ spectral density.
        per_layer: also the diagonal block of every compressed layer.
        params: the parameters differentiated ("weights", "all" or a selection of landscape/params.py).
        path: for a run, λ_max and trace along pretrained → compressed → clamped.
        clamp_cost: for a run, the second-order prediction of the clamp step's loss change.
        loss_fn: `loss_fn(outputs, targets) -> batch mean` (None: cross-entropy).
        template: a model of the run's architecture, for runs of a model given as a Python object.
        progress: show a progress bar.
        **settings (Any): further `landscape.analysis.hessian.HessianConfig` fields (e.g. samples=64, seed=1).

    Returns:
        (landscape.analysis.hessian.HessianResult): The spectra (`.states[label]["top"]`, the top eigenvalues).

    Examples:
        >>> import torch, torch.nn as nn
        >>> import landscape as ls
        >>> model = nn.Sequential(nn.Linear(4, 3))
        >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,)))]
        >>> spectrum = ls.hessian_spectrum(model, data, top_k=2)
        >>> list(spectrum.states), len(spectrum.states["model"]["top"])
        (['model'], 2)
    """
    import torch.nn.functional as F

    from .analysis.hessian import HessianConfig, analyze

    arch, run = _source(model, template)
    dev = _device(arch)
    config = HessianConfig(top_k=top_k, trace=trace, density=density, per_layer=per_layer, params=params, **settings)
    if run is None and tuple(states) == ("clamped",):
        named = {"model": arch.state_dict()}
    else:
        named = {(s if isinstance(s, str) else f"state{i}").replace("/", "_"): _state(s, run)
                 for i, s in enumerate(states)}
    path_states = [_state(s, run) for s in ("pretrained", "compressed", "clamped")] if path else None
    clamp = (_state("compressed", run), _state("clamped", run)) if clamp_cost else None
    return analyze(arch, _on(data, dev), named, config, path=path_states, clamp=clamp,
                   loss_fn=loss_fn or F.cross_entropy, progress=progress)


def _maybe(batches: Iterable | None, dev: torch.device) -> list | None:
    return None if batches is None else _on(batches, dev)


def _run_path(run: Run | None, name: str) -> Path:
    if run is None:
        raise ValueError(f"save={name!r} stores the result in a run file: pass the run (or its path) as the model")
    return run.path


# ------------------------------------------------------------------------------------------------------ export


def export_model(run: Run | str | os.PathLike, out: str | os.PathLike, *, state: str = "clamped") -> Path:
    """Write a run's clamped model as codebooks + bit-packed indices (landscape/codec/); returns the path.

    Args:
        run: the run (`Run` or the path of a run file).
        out: the export file to write (e.g. MODEL.safetensors; overwritten).
        state: the state exported: "clamped", "recalibrated" or "compressed".

    Returns:
        The path of the export file.

    Examples:
        >>> import tempfile, torch, torch.nn as nn
        >>> import landscape as ls
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,)))]
        >>> tmp = tempfile.TemporaryDirectory()
        >>> run = ls.compress_model(model, data, data, out=f"{tmp.name}/run.h5", method="ptq", bits=2, epochs=1,
        ...                         progress=False)
        >>> ls.export_model(run, f"{tmp.name}/model.safetensors").name
        'model.safetensors'
        >>> tmp.cleanup()
    """
    from .codec import export_run

    return export_run(open_run(run).path, out, state=state)


def load_exported(path: str | os.PathLike, *, template: nn.Module | None = None, trust_spec: bool = False
                  ) -> nn.Module:
    """The model of an export (`export_model`, `python -m landscape.export`), rebuilt bit for bit, in eval mode.
    A model given as a Python object needs `template` (a model of the same architecture); a `package.module:factory`
    spec is imported and called only with `trust_spec=True` (it runs code the file names).

    Args:
        path: the export file.
        template: a model of the export's architecture (copied, never modified).
        trust_spec: build a `package.module:factory` architecture the file names (imports and runs its code).

    Returns:
        The decoded model, in eval mode.

    Examples:
        >>> import tempfile, torch, torch.nn as nn
        >>> import landscape as ls
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,)))]
        >>> tmp = tempfile.TemporaryDirectory()
        >>> run = ls.compress_model(model, data, data, out=f"{tmp.name}/run.h5", method="ptq", bits=2, epochs=1,
        ...                         progress=False)
        >>> loaded = ls.load_exported(ls.export_model(run, f"{tmp.name}/model.safetensors"), template=model)
        >>> x = data[0][0]
        >>> torch.equal(loaded(x), run.model("clamped", template=model)(x))
        True
        >>> tmp.cleanup()
    """
    from .codec import load_exported as load

    return load(path, template=template, trust_spec=trust_spec)
