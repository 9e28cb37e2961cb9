"""One engine for every analysis of a run file's states: paths, perturbations, surfaces, Hessian spectra.

An analysis is a spec (landscape.specs: PathSpec, PerturbSpec, SurfaceSpec, HessianSpec) and a small class that
implements `Analysis` for it, registered under the spec's type. The protocol is spec → keys → evaluate one key →
write: the class loads and checks its inputs (`prepare`), names its settings (`settings`, stored as attributes and
fingerprinting the journal), computes its result as one sweep of keys (`compute`: the library function, e.g.
paths.evaluate_path, calls `sweep.run_sweep`, which shares the keys out over torchrun ranks and journals them), and
stores it (`write`), with a figure where it has one (`draw`). Everything around that exists once, here, in
`run_analysis`:

1. every check that can fail on the user's input (output file writable, result name free, PNG free, states
   loadable) runs before any evaluation or write, on rank 0, its error raised on every rank;
2. the journal beside the output (sweep.open_journal) is opened, so a rerun after a crash resumes;
3. the run's pretrained model goes to the device, the data is loaded (`spec.data`, else what the run recorded);
4. rank 0 writes the result and its PNG together (storage.write_with_png), then removes the journal.

    >>> from landscape.analysis.engine import analysis_for
    >>> from landscape.specs import HessianSpec, PathSpec
    >>> analysis_for(PathSpec(run="runs/wc.h5")).kind, analysis_for(HessianSpec(run="runs/wc.h5")).group
    ('paths', 'analysis/hessian')
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn as nn

from .. import distributed
from ..distributed import World
from ..errors import LandscapeError
from ..outputs import check_out
from .storage import check_name, png_path, stored, write_with_png
from .sweep import Journal, open_journal


@dataclass
class Context:
    """What an analysis evaluates with, built once by the engine.

    Examples:
        >>> import torch, torch.nn as nn
        >>> from landscape.data import Split
        >>> from landscape.distributed import World
        >>> from landscape.specs import PathSpec
        >>> split = Split(torch.zeros(8, 3, 4, 4, dtype=torch.uint8), torch.arange(8) % 2)
        >>> ctx = Context(spec=PathSpec(run="runs/wc.h5", limit=6, batch_size=4), run=None, model=nn.Identity(),
        ...               device=torch.device("cpu"), world=World(), journal=None, progress=False, train=split,
        ...               test=split)
        >>> len(ctx.split()), [len(y) for _, y in ctx.batches()]
        (6, [4, 2])
    """

    spec: Any  # the analysis spec
    run: Any  # store.Run
    model: nn.Module  # the run's pretrained model, on `device` (the analyses never modify it)
    device: torch.device
    world: World
    journal: Journal | None  # rank 0's journal (None elsewhere)
    progress: bool  # show a progress bar (rank 0)
    train: Any  # data.Split
    test: Any  # data.Split

    def split(self, name: str | None = None):
        """The first `spec.limit` images of split `name` (default: the spec's split).

        Args:
            name: "test" or "train" (None: `spec.split`).

        Returns:
            (landscape.data.Split): The images and labels.

        Examples:
            >>> import torch
            >>> from landscape.data import Split
            >>> from landscape.specs import PathSpec
            >>> train = Split(torch.zeros(8, 3, 4, 4, dtype=torch.uint8), torch.arange(8) % 2)
            >>> ctx = Context(spec=PathSpec(run="runs/wc.h5", limit=5), run=None, model=None, device="cpu",
            ...               world=None, journal=None, progress=False, train=train, test=train.subset(2))
            >>> len(ctx.split()), len(ctx.split("train"))
            (2, 5)
        """
        name = name or self.spec.split
        return (self.test if name == "test" else self.train).subset(self.spec.limit)

    def batches(self, name: str | None = None):
        """Unaugmented evaluation batches of `split(name)` on the device.

        Args:
            name: "test" or "train" (None: `spec.split`).

        Returns:
            (landscape.data.Batches): Batches of `spec.batch_size` images, normalized (floats), in order.

        Examples:
            >>> import torch
            >>> from landscape.data import Split
            >>> from landscape.specs import PathSpec
            >>> split = Split(torch.zeros(8, 3, 4, 4, dtype=torch.uint8), torch.arange(8) % 2)
            >>> ctx = Context(spec=PathSpec(run="runs/wc.h5", batch_size=3), run=None, model=None,
            ...               device=torch.device("cpu"), world=None, journal=None, progress=False, train=split,
            ...               test=split)
            >>> [tuple(x.shape) for x, _ in ctx.batches()]
            [(3, 3, 4, 4), (3, 3, 4, 4), (2, 3, 4, 4)]
        """
        from ..text import evaluation_batches

        # a language model's fixed windows: `limit` and `batch_size` count windows
        return evaluation_batches(self.split(name), self.spec.batch_size, self.device)

    @property
    def loss_fn(self) -> Callable | None:
        """The loss every evaluation uses: None (cross-entropy of a classifier) for images, `text.lm_loss`
        (next-token cross-entropy, nats per token) for a language model's windows.

        Returns:
            None, or `landscape.text.lm_loss`.

        Examples:
            >>> import torch
            >>> from landscape.specs import PathSpec
            >>> from landscape.text import TextSplit
            >>> split = TextSplit(torch.arange(40) % 5, context=4)
            >>> ctx = Context(spec=PathSpec(run="runs/lm.h5", batch_size=4), run=None, model=None, device="cpu",
            ...               world=None, journal=None, progress=False, train=split, test=split)
            >>> ctx.loss_fn.__name__, [tuple(x.shape) for x, _ in ctx.batches()]
            ('lm_loss', [(4, 4), (4, 4), (1, 4)])
        """
        from ..text import loss_for

        return loss_for(self.test)

    def bn_data(self, config) -> list | None:
        """The recalibration batches of a config with bn = "recalibrate" (bn_batches × batch_size training images,
        unaugmented), else None.

        Args:
            config (Any): an analysis config with `bn` and `bn_batches` (e.g. `paths.PathConfig`).

        Returns:
            A list of (x, y) batches, or None when `config.bn` is not "recalibrate".

        Examples:
            >>> import torch
            >>> from landscape.analysis.paths import PathConfig
            >>> from landscape.data import Split
            >>> from landscape.specs import PathSpec
            >>> split = Split(torch.zeros(8, 3, 4, 4, dtype=torch.uint8), torch.arange(8) % 2)
            >>> ctx = Context(spec=PathSpec(run="runs/wc.h5", batch_size=2), run=None, model=None,
            ...               device=torch.device("cpu"), world=None, journal=None, progress=False, train=split,
            ...               test=split)
            >>> len(ctx.bn_data(PathConfig(bn="recalibrate", bn_batches=3))), ctx.bn_data(PathConfig())
            (3, None)
        """
        from ..bn import recalibration_batches

        if config.bn != "recalibrate":
            return None
        if self.loss_fn is not None:
            raise LandscapeError("bn recalibrate: a language model has no BatchNorm statistics to re-estimate "
                                 "(LayerNorm normalizes each token by itself); use bn keep")
        return recalibration_batches(self.train, config.bn_batches, self.spec.batch_size, self.device)


class Analysis(ABC):
    """One analysis of a run's states, as `run_analysis` runs it (module docstring). Subclasses set the class
    attributes and implement the abstract methods; `register` makes the engine find them by spec type.

    Args:
        spec (landscape.specs.AnalysisSpec): the analysis spec (e.g. a `landscape.specs.PathSpec`).
        run (landscape.store.Run): the run file analysed.

    Examples:
        >>> from landscape.specs import PathSpec
        >>> spec = PathSpec(run="runs/wc.h5", states=("pretrained", "clamped"))
        >>> analysis = analysis_for(spec)(spec, run=None)
        >>> analysis.kind, analysis.group, analysis.figure, analysis.default_name()
        ('paths', 'analysis/paths', 'path', 'pretrained-clamped_bn-keep')
        >>> analysis.settings()["points"]
        11
    """

    kind: ClassVar[str]  # the registry name; also the journal's (.<file>.<kind>-<name>.journal.json)
    group: ClassVar[str]  # results go to /<group>/<name> of the output file
    figure: ClassVar[str | None] = None  # PNG beside the output, <stem>.<figure>-<name>.png; None: no figure
    unit: ClassVar[str] = "evaluations"  # what a journal entry is, in the "resuming" message

    def __init__(self, spec, run):
        self.spec = spec
        self.run = run

    @abstractmethod
    def default_name(self) -> str:
        """The result name when the spec gives none (settings are never hidden in file names: this is a label)."""

    @abstractmethod
    def prepare(self, model: nn.Module) -> list[Mapping[str, torch.Tensor]]:
        """Load and check the inputs (`model`: the run's pretrained model, on the CPU); return the state dicts the
        result depends on (their digests join the journal's fingerprint).

        Args:
            model: the run's pretrained model, on the CPU (not to be modified).

        Returns:
            The state dicts the result depends on.
        """

    @abstractmethod
    def settings(self) -> dict:
        """Everything that decides the numbers, JSON-ready: stored as the result's attributes."""

    @abstractmethod
    def compute(self, ctx: Context):
        """The result on rank 0 (None on the others): one journaled, sharded sweep (sweep.run_sweep).

        Args:
            ctx: the model, data, device, torchrun world and journal (`Context`).

        Returns:
            (Any): The analysis's result object (e.g. a `paths.PathResult`) on rank 0, None on the other ranks.
        """

    @abstractmethod
    def write(self, file: Path, name: str, result, attrs: Mapping) -> str:
        """Store `result` under /<group>/<name> of `file`; return its key.

        Args:
            file: the HDF5 file written (the run file, or the spec's `out`).
            name: the result's name.
            result (Any): what `compute` returned.
            attrs: the attributes stored with it (settings, `result_attrs`, the run, the spec).

        Returns:
            The result's group key, "<group>/<name>".
        """

    def result_attrs(self, result) -> dict:
        """Attributes known only once the result is there.

        Args:
            result (Any): what `compute` returned.

        Returns:
            Attributes to store beside the settings (JSON-ready; {} by default).

        Examples:
            >>> from landscape.specs import PathSpec
            >>> spec = PathSpec(run="runs/wc.h5")
            >>> analysis_for(spec)(spec, run=None).result_attrs(None)
            {}
        """
        return {}

    def draw(self, result, name: str):
        """The figure of result `name` (a matplotlib Figure), or None.

        Args:
            result (Any): what `compute` returned.
            name: the result's name (figures use it in their title).

        Returns:
            (matplotlib.figure.Figure | None): The figure, or None for an analysis without one (the default).

        Examples:
            >>> from landscape.specs import PerturbSpec
            >>> spec = PerturbSpec(run="runs/wc.h5")
            >>> analysis_for(spec)(spec, run=None).draw(None, "demo") is None
            True
        """
        return None

    def summary(self, result) -> dict:
        """The result as JSON-ready data (the CLIs' --json).

        Args:
            result (Any): what `compute` returned.

        Returns:
            `result.to_dict()` by default.

        Examples:
            >>> import numpy as np
            >>> from landscape.analysis.paths import PathResult
            >>> from landscape.specs import PathSpec
            >>> spec = PathSpec(run="runs/wc.h5")
            >>> result = PathResult(alpha=np.array([0.0, 1.0]), segment=np.array([0, 0]),
            ...                     metrics={"test": {"loss": np.array([0.5, 0.7])}}, n={"test": 100})
            >>> analysis_for(spec)(spec, run=None).summary(result)
            {'alpha': [0.0, 1.0], 'segment': [0, 0], 'n': {'test': 100}, 'test': {'loss': [0.5, 0.7]}}
        """
        return result.to_dict()


ANALYSES: dict[type, type[Analysis]] = {}


def register(spec_type: type) -> Callable[[type[Analysis]], type[Analysis]]:
    """Class decorator: the `Analysis` that runs specs of `spec_type`.

    Args:
        spec_type: the spec class whose instances the decorated analysis runs.

    Returns:
        The decorator; it registers the class and returns it unchanged.

    Examples:
        >>> class CountSpec:  # a new kind of analysis spec
        ...     pass
        >>> @register(CountSpec)
        ... class CountAnalysis(Analysis):
        ...     kind, group = "count", "analysis/count"
        >>> analysis_for(CountSpec()) is CountAnalysis
        True
        >>> del ANALYSES[CountSpec]
    """

    def add(cls: type[Analysis]) -> type[Analysis]:
        ANALYSES[spec_type] = cls
        return cls

    return add


def analysis_for(spec) -> type[Analysis]:
    """The registered `Analysis` class of a spec.

    Args:
        spec: an analysis spec (`landscape.specs.PathSpec`, …).

    Returns:
        The `Analysis` subclass registered for the spec's type; a TypeError if there is none.

    Examples:
        >>> from landscape.specs import SurfaceSpec
        >>> analysis_for(SurfaceSpec(run="runs/wc.h5")).__name__
        'SurfaceAnalysis'
    """
    from . import hessian, paths, perturbation, surface  # noqa: F401  (each registers its analysis)

    try:
        return ANALYSES[type(spec)]
    except KeyError:
        raise TypeError(f"no analysis is registered for {type(spec).__name__}") from None


@dataclass(frozen=True)
class Outcome:
    """What `run_analysis` wrote: the file, the result's group key, the PNG (or None), the stored attributes, and
    the result itself.

    Examples:
        >>> from pathlib import Path
        >>> outcome = Outcome(name="demo", file=Path("runs/wc.h5"), key="analysis/paths/demo", png=None,
        ...                   attrs={"points": 11}, result=None, summary={"n": {"test": 500}})
        >>> outcome.file, outcome.key
        (PosixPath('runs/wc.h5'), 'analysis/paths/demo')
    """

    name: str
    file: Path
    key: str
    png: Path | None
    attrs: dict
    result: Any
    summary: dict

    def to_dict(self) -> dict:
        """The --json object: where it went, the settings and the result (the stored `spec` attribute, which repeats
        the settings with the file names, is left out).

        Returns:
            {"file", "group", "png" (if any), the attributes without "spec", the summary's entries}.

        Examples:
            >>> from pathlib import Path
            >>> outcome = Outcome(name="demo", file=Path("runs/wc.h5"), key="analysis/paths/demo", png=None,
            ...                   attrs={"points": 11, "spec": {}}, result=None, summary={"n": {"test": 500}})
            >>> outcome.to_dict()
            {'file': 'runs/wc.h5', 'group': '/analysis/paths/demo', 'points': 11, 'n': {'test': 500}}
        """
        attrs = {k: v for k, v in self.attrs.items() if k != "spec"}
        return {"file": str(self.file), "group": f"/{self.key}", **({"png": str(self.png)} if self.png else {}),
                **attrs, **self.summary}


def run_analysis(spec, *, world: World = World(), device: torch.device | str | None = None,
                 progress: bool = False) -> Outcome | None:
    """Run the analysis `spec` describes on its run file and store the result (module docstring); returns the
    `Outcome` on rank 0, None on the other torchrun ranks. `device` overrides `spec.device` (the CLIs pass each
    rank's own).

    Args:
        spec (landscape.specs.AnalysisSpec): an analysis spec (`PathSpec`, `PerturbSpec`, `SurfaceSpec`, `HessianSpec`).
        world: the torchrun world (default: a single process).
        device: the torch device evaluated on (None: `spec.device`).
        progress: show a progress bar (rank 0).

    Returns:
        The `Outcome` on rank 0, None on the other ranks.

    Examples:
        >>> from landscape.specs import PathSpec
        >>> run_analysis(PathSpec(run="no-such-run.h5"))
        Traceback (most recent call last):
        ...
        landscape.errors.RunFileError: run file no-such-run.h5 does not exist
    """
    from ..store import Run

    run = Run(spec.run)
    analysis = analysis_for(spec)(spec, run)
    name = check_name(spec.name or analysis.default_name())
    dev = torch.device(device if device is not None else spec.device)

    # Everything that can fail on the user's input fails here, before any evaluation or write.
    file, png = distributed.on_main(lambda: _check_outputs(analysis, name), world) or (None, None)
    model = run.model("pretrained")
    inputs = analysis.prepare(model)
    settings = analysis.settings()
    journal = open_journal(file, analysis.kind, name, {**settings, "device": dev.type}, inputs, world,
                           discard_other=spec.force, unit=analysis.unit)
    train, test = spec.data.load(run)
    ctx = Context(spec=spec, run=run, model=model.to(dev), device=dev, world=world, journal=journal,
                  progress=progress, train=train, test=test)
    result = analysis.compute(ctx)
    if not world.is_main:
        return None

    attrs = {**settings, **analysis.result_attrs(result), "run": str(run.path), "world_size": world.size,
             "spec": spec.to_dict()}
    fig = analysis.draw(result, name) if png is not None else None
    store = lambda: analysis.write(file, name, result, attrs)  # noqa: E731
    key = write_with_png(fig, png, store) if fig is not None else store()
    journal.remove()
    return Outcome(name=name, file=Path(file), key=key, png=png if fig is not None else None, attrs=attrs,
                   result=result, summary=analysis.summary(result))


def _check_outputs(analysis: Analysis, name: str) -> tuple[Path, Path | None]:
    """(the file the result goes into, its PNG or None), or an error if either may not be written."""
    spec, run = analysis.spec, analysis.run
    file = check_out(spec.out, spec.force) if spec.out else run.path
    if not spec.out and not os.access(run.path, os.W_OK):
        raise LandscapeError(f"cannot write to {run.path} (permission denied); use --out")
    if file.exists() and name in _stored(file, analysis.group) and not spec.force:
        raise LandscapeError(f"{file} already has /{analysis.group}/{name}; pass --force or another --name")
    png = png_path(file, analysis.figure, name) if analysis.figure else None
    if png is not None and png.exists() and not spec.force:
        raise LandscapeError(f"{png} exists; pass --force to overwrite it")
    return file, png


def _stored(path: Path, group: str) -> list[str]:
    try:
        return stored(path, group)
    except OSError as e:
        raise LandscapeError(f"{path} is not a readable HDF5 file ({e})") from None
