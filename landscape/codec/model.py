"""From an export to a model and from a run to an export: the model spec, the compressed parameters, provenance."""

from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch.nn as nn
from torch import Tensor

from ..errors import LandscapeError
from .bits import ExportError
from .container import read_export, write_export

# ------------------------------------------------------------------------------------------ model and runs


def build_from_spec(spec: dict, *, template: nn.Module | None = None, trust_spec: bool = False) -> nn.Module:
    """The (untrained) module an export's spec describes: a copy of `template` when given (a model of the same
    architecture), else the spec's arch (the format: landscape/codec/__init__.py), then the spec's wrapper."""
    import copy

    from ..models import ARCHS, LANGUAGE_ARCHS, build_model

    arch, kwargs = spec.get("arch"), spec.get("kwargs") or {}
    if not isinstance(arch, str) or not isinstance(kwargs, dict):
        raise ExportError(f"corrupt spec {spec!r}")
    if template is not None:
        model = copy.deepcopy(template)
    elif arch in ARCHS or arch in LANGUAGE_ARCHS:  # built in: no code of the file's choosing runs
        try:
            model = build_model(arch, kwargs)
        except LandscapeError as e:
            raise ExportError(str(e)) from None
    elif arch.startswith("<"):
        raise ExportError(f"the model {arch} was given as a Python object, not an importable factory: pass a model "
                          "of that architecture as template")
    elif ":" in arch:
        if not trust_spec:
            raise ExportError(f"the spec names the factory {arch}: building it imports that module and calls it with "
                              f"the file's arguments; pass trust_spec=True (CLI: --trust-spec) if you trust this "
                              f"file, or a model of that architecture as template")
        try:
            model = build_model(arch, kwargs)
        except LandscapeError as e:
            raise ExportError(str(e)) from None
    else:
        raise ExportError(f"unknown architecture {arch!r} in the spec; this landscape builds "
                          f"{', '.join((*ARCHS, *LANGUAGE_ARCHS))} and package.module:factory")
    wrapper = spec.get("wrapper")
    if wrapper:
        from ..compress import make_compressor

        try:
            model = make_compressor(wrapper["method"], wrapper.get("config") or {}).prepare(model)
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise ExportError(f"the spec's wrapper {wrapper!r} cannot be built ({e})") from None
    return model


def load_exported(path: str | os.PathLike, *, template: nn.Module | None = None,
                  trust_spec: bool = False) -> nn.Module:
    """The module of an export file (`python -m landscape.export`), in eval mode, its state dict decoded bit for
    bit. The architecture comes from the file's spec: a CIFAR ResNet name is built directly; a
    `package.module:factory` spec only with `trust_spec=True` (building it imports a module the file names and
    calls it with the file's arguments: code the file chooses); or pass `template`, a model of the same
    architecture (copied, never modified; needed for runs of a model given as a Python object). Errors (missing,
    truncated or corrupt file, another format or version, a state that does not fit the architecture) are
    `ExportError`s (a LandscapeError) with a one-line message.

    Args:
        path: the export file.
        template: a model of the export's architecture (copied, never modified).
        trust_spec: build a `package.module:factory` architecture the file names (imports and runs its code).

    Returns:
        The decoded model, in eval mode.

    Examples:
        >>> import tempfile
        >>> from landscape.codec import export_state
        >>> from landscape.models import build_model
        >>> from landscape.quantize import uniform
        >>> state = build_model("tiny").state_dict()
        >>> state["conv1.weight"] = uniform(state["conv1.weight"].flatten(), 2).apply().view_as(state["conv1.weight"])
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = export_state(f"{tmp.name}/tiny.safetensors", state, arch="tiny", compressed=["conv1.weight"],
        ...                     state_name="ptq:uniform:2")
        >>> import torch
        >>> model = load_exported(path)
        >>> torch.equal(model.state_dict()["conv1.weight"], state["conv1.weight"]), model.training
        (True, False)
        >>> tmp.cleanup()
    """
    from ..models import load_state

    exported = read_export(path)
    try:
        model = build_from_spec(exported.spec, template=template, trust_spec=trust_spec)
    except ExportError as e:
        raise ExportError(f"{path}: {e}") from None
    try:
        load_state(model, exported.state, source=f"export {path}")
    except LandscapeError as e:
        raise ExportError(f"{e} (architecture in the spec: {exported.spec.get('arch')})") from None
    return model.eval()


def run_spec(run) -> dict:
    """The architecture spec of a run (`store.Run`): the arch, and the compressor's wrapper for prepared runs."""
    spec = {"arch": run.arch, "kwargs": dict(run.arch_kwargs), "wrapper": None}
    if run.attrs.get("prepared", 0):
        spec["wrapper"] = {"method": run.method, "config": run.config.get("compressor", {})}
    return spec


def compressors(run, state: Mapping[str, Tensor]) -> tuple[list[str], dict[str, int]]:
    """(the run's compressed state-dict keys, K of each from /final/clusters): the layers with clusters in the
    run file, or (no /final/clusters) `select_params(model, config["compressor"]["params"])`."""
    from ..errors import RunFileError

    try:
        clusters = run.clusters()
    except RunFileError:
        clusters = None
    if clusters is not None:
        keys = [k for k in state if k in clusters]
        return keys, {k: len(clusters[k][0]) for k in keys}
    from ..params import select_params

    try:
        model = run.model("pretrained")
    except LandscapeError as e:
        raise ExportError(f"{run.path} has no /final/clusters and its model cannot be rebuilt to select the "
                          f"compressed parameters ({e})") from None
    which = run.config.get("compressor", {}).get("params", "weights")
    return [k for k in select_params(model, which) if k in state], {}


def tied_names(state: Mapping[str, Tensor], model: nn.Module | None = None) -> dict[str, str]:
    """alias → key of the tied tensors of a state dict (a head that is the token embedding): the model's own ties
    (`params.canonical_names`) when `model` is given, else the entries of `state` that are one tensor (same
    storage, shape and strides).

    Args:
        state: the state dict to export.
        model: a model of its architecture (None: read the ties from `state` itself).

    Returns:
        Each alias name → the name that `named_parameters` keeps.

    Examples:
        >>> net = nn.Sequential(nn.Embedding(5, 4), nn.Linear(4, 5, bias=False))
        >>> net[1].weight = net[0].weight
        >>> tied_names(net.state_dict()), tied_names(net.state_dict(), net)
        ({'1.weight': '0.weight'}, {'1.weight': '0.weight'})
    """
    if model is not None:
        from ..params import canonical_names

        return {a: k for a, k in canonical_names(model).items() if a != k and a in state and k in state}
    first: dict[tuple, str] = {}
    tied = {}
    for key, t in state.items():
        ident = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
        if t.numel() and ident in first:
            tied[key] = first[ident]
        else:
            first.setdefault(ident, key)
    return tied


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def export_state(path: str | os.PathLike, state: Mapping[str, Tensor], *, arch: str, compressed: Iterable[str],
                 state_name: str, arch_kwargs: dict | None = None, provenance: dict | None = None,
                 vector_dim: int | None = None) -> Path:
    """Export a state dict of `landscape.models.build_model(arch, arch_kwargs)` (e.g. a PTQ-quantized copy of a
    checkpoint); `compressed`: the keys to encode with codebooks.

    Args:
        path: the export file to write (overwritten).
        state: the state dict.
        arch: the architecture `landscape.models.build_model` rebuilds it with.
        compressed: the state-dict keys encoded as codebook + bit-packed indices (the rest is stored as is).
        state_name: what the state is (the manifest's "state", e.g. "ptq:heq:4").
        arch_kwargs: keyword arguments of the architecture's factory.
        provenance: extra provenance for the manifest.
        vector_dim: also try a vector code of this many weights per index (VQ runs; None: scalar only).

    Returns:
        The path of the export file.

    Examples:
        >>> import tempfile
        >>> from landscape.codec import export_state
        >>> from landscape.models import build_model
        >>> from landscape.quantize import uniform
        >>> state = build_model("tiny").state_dict()
        >>> state["conv1.weight"] = uniform(state["conv1.weight"].flatten(), 2).apply().view_as(state["conv1.weight"])
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = export_state(f"{tmp.name}/tiny.safetensors", state, arch="tiny", compressed=["conv1.weight"],
        ...                     state_name="ptq:uniform:2")
        >>> path.name
        'tiny.safetensors'
        >>> tmp.cleanup()
    """
    from .. import __version__
    from ..store import git_commit

    prov = {**(provenance or {}), "exporter_version": __version__, "exporter_git_commit": git_commit(),
            "exported": _now()}
    return write_export(path, state, spec={"arch": arch, "kwargs": dict(arch_kwargs or {}), "wrapper": None},
                        compressed=compressed, state_name=state_name, provenance=prov, vector_dim=vector_dim,
                        tied=tied_names(state))


def export_run(run_path: str | os.PathLike, out: str | os.PathLike, *, state: str = "clamped") -> Path:
    """Export one state of a run file (`clamped`, `recalibrated` or `compressed`) to `out` (overwritten).

    Args:
        run_path: the run file.
        out: the export file to write.
        state: "clamped", "recalibrated" or "compressed".

    Returns:
        The path of the export file.

    Examples:
        >>> import tempfile, torch, torch.nn as nn
        >>> import landscape as ls
        >>> from landscape.codec import read_export
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,)))]
        >>> tmp = tempfile.TemporaryDirectory()
        >>> run = ls.compress_model(model, data, data, out=f"{tmp.name}/run.h5", method="ptq", bits=2, epochs=1,
        ...                         progress=False)
        >>> exported = read_export(export_run(run.path, f"{tmp.name}/model.safetensors"))
        >>> exported.manifest["state"], {key: layer.bits for key, layer in exported.layers.items()}
        ('clamped', {'0.weight': 2, '2.weight': 2})
        >>> tmp.cleanup()
    """
    from .. import __version__
    from ..store import Run, git_commit

    if state not in ("clamped", "recalibrated", "compressed"):
        raise ExportError(f"state must be clamped, recalibrated or compressed, got {state!r}")
    run = Run(run_path)
    values = run.state(state)  # RunFileError (one line) when the run has no /final/<state>
    keys, ks = compressors(run, values)
    from ..compress import METHODS

    cls = METHODS[run.method][0] if run.method in METHODS else None
    vector_dim = cls.vector_dims(run) if cls is not None else None  # the vector codes a method's layers may have
    provenance = {"run": str(run.path), "run_sha256": _sha256_file(run.path),
                  "run_git_commit": str(run.attrs.get("git_commit", "")),
                  "run_created": str(run.attrs.get("created", "")),
                  "run_version": str(run.attrs.get("version", "")), "method": run.method, "seed": run.seed,
                  "compressor": run.config.get("compressor", {}),
                  "eval": {k: _plain(v) for k, v in run.evals().get(state, {}).items()},
                  "exporter_version": __version__, "exporter_git_commit": git_commit(), "exported": _now()}
    try:  # the architecture's tied weights (stored once); a model given as a Python object cannot be rebuilt
        tied = tied_names(values, run.model("pretrained"))
    except LandscapeError:
        tied = {}
    return write_export(out, values, spec=run_spec(run), compressed=keys, state_name=state, provenance=provenance,
                        vector_dim=vector_dim, run_clusters=ks, tied=tied)


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def export(spec) -> dict:
    """Export the state `spec` (a specs.ExportSpec) names and return the export's size report (`size_report`);
    every check on the user's input (the state is in the run file, `out` may be written and is not the run file)
    runs before anything is written.

        >>> from landscape.specs import ExportSpec
        >>> export(ExportSpec(run="no-such-run.h5", out="x.safetensors"))
        Traceback (most recent call last):
        ...
        landscape.errors.RunFileError: run file no-such-run.h5 does not exist
    """
    import h5py

    from ..outputs import check_out
    from ..store import Run
    from .sizes import size_report

    run = Run(spec.run)
    with h5py.File(run.path, "r") as f:
        stored = set(f["final"]) if "final" in f else set()
    if spec.state not in stored:
        hint = " (train --recalibrate-bn N writes it)" if spec.state == "recalibrated" else " (is the run finished?)"
        raise LandscapeError(f"{run.path} has no /final/{spec.state}{hint}")
    out = Path(spec.out)
    if out.exists() and out.resolve() == run.path.resolve():
        raise LandscapeError(f"--out {out} is the run file itself")
    check_out(out, spec.force)
    export_run(run.path, out, state=spec.state)
    return size_report(out)
