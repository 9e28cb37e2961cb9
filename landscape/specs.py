"""Typed specs: what the library takes to do a job. A CLI parses argv into a spec and calls the library; the API,
studies and analysis scripts build specs in Python (`dataclasses.replace`, `RunSpec.at` for a study's point).

`RunSpec` is one training run: the model (architecture, its factory's keyword arguments, the starting checkpoint
and its sha256), the data (as `datasets.load_recorded` reads it) and its limits, the method and its full config,
the trainer's `TrainConfig`, and the run file's checkpoint interval and BN recalibration. Its JSON form,
`to_settings()`, is the run file's `config` attribute (the same keys as run files have always had), and
`from_settings` rebuilds the spec from it (resume, studies, reports): stored runs load unchanged.

    >>> from landscape.specs import RunSpec
    >>> from landscape.trainer import TrainConfig
    >>> spec = RunSpec(arch="tiny", checkpoint=None, method="centroid", compressor={"bits": 2},
    ...                train=TrainConfig(epochs=1))
    >>> spec.compressor["bits"], spec.compressor["rho"]      # the method's full config, defaults filled in
    (2, 1.0)
    >>> point = spec.at({"bits": 3}, seed=1)                  # a study's grid point: a new spec
    >>> point.compressor["bits"], point.seed, spec.compressor["bits"]
    (3, 1, 2)
    >>> RunSpec.from_settings(point.to_settings()) == point
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .trainer import TrainConfig

if TYPE_CHECKING:
    from .analysis.hessian import HessianConfig
    from .analysis.paths import PathConfig
    from .analysis.perturbation import PerturbConfig
    from .analysis.surface import SurfaceConfig


@dataclass(frozen=True)
class RunSpec:
    """One training run: the model, the data and its limits, the method and its full config, the trainer's
    `TrainConfig`, and the run file's checkpoint interval and BN recalibration (module docstring). The method's
    config is validated and completed at construction; a spec is frozen (`at` and `dataclasses.replace` make new
    ones).

    Examples:
        >>> spec = RunSpec(arch="tiny", checkpoint=None, method="ptq", compressor={"bits": 2})
        >>> spec.compressor
        {'quantizer': 'heq', 'bits': 2, 'params': 'weights', 'levels': None}
        >>> RunSpec(arch="tiny", checkpoint=None, method="ptq", compressor={"h": 0.1})
        Traceback (most recent call last):
        ...
        ValueError: method ptq has no setting h (it takes: bits, levels, params, quantizer)
    """

    arch: str  # a built-in architecture (models.ARCHS) or a `package.module:factory`
    checkpoint: str | None  # starting weights: a checkpoint path (absolute once resolved), None for a Python model
    method: str = "weight-coupling"  # compression method (compress.METHODS)
    compressor: Mapping[str, Any] = field(default_factory=dict)  # the method's config fields (defaults filled in)
    train: TrainConfig = field(default_factory=TrainConfig)  # the fine-tuning loop; its seed is the run's seed
    arch_kwargs: Mapping[str, Any] = field(default_factory=dict)  # keyword arguments of the arch's factory
    data: Mapping[str, Any] = field(default_factory=dict)  # the data spec (datasets.load_recorded); {} = CIFAR-10
    checkpoint_sha256: str | None = None  # of `checkpoint`, checked on resume (None: not a file)
    limit_train: int | None = None  # train on the first N training examples only (None: all)
    limit_test: int | None = None  # evaluate on the first N test examples only (None: all)
    checkpoint_every: int = 100  # SGD steps between weight checkpoints in the run file
    recalibrate_bn: int = 0  # after clamping, also a copy with BN statistics re-estimated on N training batches

    def __post_init__(self):
        from .compress import make_compressor

        # the method's config, validated and completed by its dataclass (unknown fields are an error)
        config = make_compressor(self.method, dict(self.compressor), seed=self.seed).config_dict()
        object.__setattr__(self, "compressor", config)
        object.__setattr__(self, "arch_kwargs", dict(self.arch_kwargs or {}))
        object.__setattr__(self, "data", dict(self.data or {}))
        for name in ("limit_train", "limit_test"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be ≥ 1 or None, got {value}")
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be ≥ 1 step, got {self.checkpoint_every}")
        if self.recalibrate_bn < 0:
            raise ValueError(f"recalibrate_bn must be ≥ 0 batches, got {self.recalibrate_bn}")

    @property
    def seed(self) -> int:
        """The run's seed: data order, augmentation and the compressor's random draws (TrainConfig.seed).

        Examples:
            >>> RunSpec(arch="tiny", checkpoint=None, train=TrainConfig(seed=3)).seed
            3
        """
        return self.train.seed

    @classmethod
    def resolved(cls, checkpoint: str | None, **fields) -> RunSpec:
        """A spec whose checkpoint is resolved (an arch name → the public weights' file, found or downloaded),
        made absolute, and fingerprinted (sha256), as a run file records it.

        Args:
            checkpoint: a checkpoint path, an arch name with public weights, or None (a model given in Python).
            **fields (Any): the other fields of the spec (`arch` at least).

        Returns:
            The spec, with `checkpoint` absolute and `checkpoint_sha256` set where the checkpoint is a file.

        Examples:
            >>> import tempfile, torch
            >>> from landscape.models import build_model
            >>> tmp = tempfile.TemporaryDirectory()
            >>> torch.save(build_model("tiny").state_dict(), f"{tmp.name}/tiny.pt")
            >>> spec = RunSpec.resolved(f"{tmp.name}/tiny.pt", arch="tiny")
            >>> len(spec.checkpoint_sha256), RunSpec.resolved(None, arch="tiny").checkpoint_sha256
            (64, None)
            >>> tmp.cleanup()
        """
        from .data import sha256_of
        from .models import resolve_checkpoint

        if checkpoint is None:
            return cls(checkpoint=None, **fields)
        path = resolve_checkpoint(checkpoint)
        from .models import LANGUAGE_ARCHS, read_checkpoint

        if fields.get("arch") in LANGUAGE_ARCHS and not fields.get("arch_kwargs") and path.is_file():
            # a language model's shape (and vocabulary size) is its checkpoint's, as `landscape pretrain` saved it
            fields = {**fields, "arch_kwargs": dict(read_checkpoint(path).get("arch_kwargs") or {})}
        return cls(checkpoint=str(path.resolve()), checkpoint_sha256=sha256_of(path) if path.is_file() else None,
                   **fields)

    def at(self, point: Mapping[str, Any] | None = None, *, seed: int | None = None,
           device: str | None = None) -> RunSpec:
        """This spec with method settings from `point` (e.g. {"h": 0.1}), and/or another seed or device.

        Args:
            point: method settings that replace the spec's (None: none).
            seed: another seed (None: the spec's).
            device: another torch device (None: the spec's).

        Returns:
            A new spec (this one is unchanged).

        Examples:
            >>> spec = RunSpec(arch="tiny", checkpoint=None, compressor={"h": 0.05})
            >>> point = spec.at({"h": 0.1}, seed=2, device="cuda")
            >>> point.compressor["h"], point.seed, point.train.device, spec.compressor["h"]
            (0.1, 2, 'cuda', 0.05)
        """
        train = self.train
        if seed is not None or device is not None:
            train = dataclasses.replace(train, **({"seed": int(seed)} if seed is not None else {}),
                                        **({"device": str(device)} if device is not None else {}))
        return dataclasses.replace(self, compressor={**self.compressor, **dict(point or {})}, train=train)

    def compressor_instance(self):
        """A fresh compressor of this spec's method and config (seeded with the run's seed).

        Returns:
            (landscape.compress.Compressor): The compressor.

        Examples:
            >>> compressor = RunSpec(arch="tiny", checkpoint=None, method="ptq").compressor_instance()
            >>> compressor.name, compressor.config.bits
            ('ptq', 4)
        """
        from .compress import make_compressor

        return make_compressor(self.method, dict(self.compressor), seed=self.seed)

    def to_settings(self) -> dict[str, Any]:
        """The run file's `config` attribute (JSON-ready; the keys run files have always had).

        Returns:
            The settings as plain JSON-ready data (`from_settings` rebuilds the spec).

        Examples:
            >>> settings = RunSpec(arch="tiny", checkpoint=None, method="ptq").to_settings()
            >>> settings["method"], settings["compressor"]["bits"], settings["train"]["epochs"]
            ('ptq', 4, 3)
        """
        return {"train": dataclasses.asdict(self.train), "compressor": dict(self.compressor), "arch": self.arch,
                "arch_kwargs": dict(self.arch_kwargs), "data": dict(self.data), "checkpoint": self.checkpoint,
                "checkpoint_sha256": self.checkpoint_sha256, "method": self.method, "limit_train": self.limit_train,
                "limit_test": self.limit_test, "checkpoint_every": self.checkpoint_every,
                "recalibrate_bn": self.recalibrate_bn, "seed": self.seed}

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> RunSpec:
        """The spec of a run file's `config` (older files lack newer fields: they get the defaults; a run file
        written before TrainConfig.compile existed trained eagerly, so it continues so).

        Args:
            settings: a run file's `config` (what `to_settings` wrote).

        Returns:
            The spec.

        Examples:
            >>> spec = RunSpec(arch="tiny", checkpoint=None, method="ptq", compressor={"bits": 3})
            >>> RunSpec.from_settings(spec.to_settings()) == spec
            True
        """
        train = dict(settings["train"])
        train.setdefault("compile", "off")
        train["seed"] = int(settings.get("seed", train.get("seed", 0)))
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        return cls(arch=settings["arch"], checkpoint=settings.get("checkpoint"), method=settings["method"],
                   compressor=settings.get("compressor") or {},
                   train=TrainConfig(**{k: v for k, v in train.items() if k in known}),
                   arch_kwargs=settings.get("arch_kwargs") or {}, data=settings.get("data") or {},
                   checkpoint_sha256=settings.get("checkpoint_sha256"), limit_train=settings.get("limit_train"),
                   limit_test=settings.get("limit_test"), checkpoint_every=int(settings.get("checkpoint_every", 100)),
                   recalibrate_bn=int(settings.get("recalibrate_bn") or 0))


def checkpoint_changed(spec: RunSpec) -> bool:
    """Whether the starting checkpoint's file differs from the one the spec fingerprinted.

    Args:
        spec: a spec whose checkpoint may carry a fingerprint (`RunSpec.resolved`).

    Returns:
        True when the file is gone or its sha256 changed; False when it is the same or nothing was fingerprinted.

    Examples:
        >>> checkpoint_changed(RunSpec(arch="tiny", checkpoint=None))
        False
        >>> checkpoint_changed(RunSpec(arch="tiny", checkpoint="gone.pt", checkpoint_sha256="0" * 64))
        True
    """
    from .data import sha256_of

    if not spec.checkpoint_sha256 or spec.checkpoint is None:
        return False
    path = Path(spec.checkpoint)
    return not path.is_file() or sha256_of(path) != spec.checkpoint_sha256


# ------------------------------------------------------------------------------------------------- analyses


@dataclass(frozen=True)
class DataSource:
    """Where an analysis finds its images, and which dataset and preprocessing it uses. A field left None falls back
    to what the analysed run recorded, else to CIFAR-10 (`recorded`), so a run is analysed on the data it saw.

        >>> DataSource().recorded({"name": "cifar100"})
        {'name': 'cifar100'}
        >>> DataSource(dataset="cifar10").recorded({"name": "cifar100"})
        {'name': 'cifar10'}
    """

    folder: str | None = None  # the only place searched (None: $LANDSCAPE_DATA, ../shared/data, ~/.cache/landscape); a language-model run: the text file (None: the recorded one)  # noqa: E501
    dataset: str | None = None  # cifar10 | cifar100 | imagefolder | text (None: the run's own)
    image_size: int | None = None  # imagefolder: resized and centre-cropped to this many pixels square
    normalization: str | None = None  # imagenet | measured | m1,m2,m3,s1,s2,s3 (None: the run's own)
    download: bool = False  # let torchvision download CIFAR-10 into `folder` if no local copy is found

    def __post_init__(self):
        if self.folder is not None:
            object.__setattr__(self, "folder", str(self.folder))
        if self.image_size is not None and self.image_size < 1:
            raise ValueError(f"image_size must be ≥ 1 pixel, got {self.image_size}")

    def recorded(self, recorded: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The data spec (`datasets.load_recorded`'s) of a run that recorded `recorded`, with this source's
        fields applied: another dataset starts from scratch, a normalization replaces a recorded mean/std.

        Args:
            recorded: the data spec a run recorded (its config's "data"; None or {}: CIFAR-10).

        Returns:
            The data spec to load.

        Examples:
            >>> DataSource(normalization="imagenet").recorded({"name": "cifar10", "mean": [0.5] * 3, "std": [0.2] * 3})
            {'name': 'cifar10', 'normalization': 'imagenet'}
        """
        spec = dict(recorded or {})
        if self.dataset is not None and self.dataset != spec.get("name", "cifar10"):
            spec = {"name": self.dataset}
        if self.image_size is not None:
            spec["image_size"] = self.image_size
        if self.normalization is not None:
            spec = {k: v for k, v in spec.items() if k not in ("mean", "std")} | {"normalization": self.normalization}
        return spec

    def load(self, run=None):
        """(train, test) splits (data.Split) for `run` (a store.Run or None).

        Args:
            run (landscape.store.Run | None): the analysed run, whose recorded data spec the fields apply to
                (None: CIFAR-10).

        Returns:
            (tuple[landscape.data.Split, landscape.data.Split]): (train, test); a `DataNotFound` error (one line)
                if the data is missing.

        Examples:
            >>> import tempfile
            >>> DataSource(folder=tempfile.mkdtemp()).load()  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            landscape.errors.DataNotFound: CIFAR-10 not found in --data ...
        """
        from .datasets import load_recorded
        from .text import is_text, recorded_splits

        recorded = run.config.get("data") if run is not None else None
        spec = self.recorded(recorded)
        if is_text(spec):  # a language-model run: its text's windows (`folder` is the text file)
            if not is_text(recorded):
                raise ValueError("dataset text needs a language-model run (one trained with --dataset text)")
            return recorded_splits(recorded, self.folder)
        train, test, _ = load_recorded(spec, self.folder, download=self.download)
        return train, test


def _positive(name: str, value, none_ok: bool = True) -> None:
    if value is None and none_ok:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer ≥ 1{' or None' if none_ok else ''}, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class AnalysisSpec:
    """What every analysis of a run file's states shares (the concrete specs below add their own settings). The
    engine, `landscape.analysis.engine.run_analysis`, takes any of them.

    Examples:
        >>> spec = PathSpec(run="runs/wc.h5", limit=1000, device="cuda")
        >>> isinstance(spec, AnalysisSpec), spec.split, spec.batch_size
        (True, 'test', 500)
        >>> PerturbSpec(run="runs/wc.h5", split="both")
        Traceback (most recent call last):
        ...
        ValueError: split must be one of test, train, got 'both'
    """

    run: str  # the run file (HDF5) whose states are analysed
    name: str | None = None  # result name under the analysis's group (None: derived from the settings)
    out: str | None = None  # write the result into this HDF5 file instead of the run file
    force: bool = False  # replace an existing result (and its PNG), and discard a journal of a different job
    split: str = "test"  # the images evaluated: test, or unaugmented train images
    limit: int | None = None  # first N images of the split (a class-balanced prefix; None: all)
    batch_size: int = 500  # images per evaluation batch
    data: DataSource = field(default_factory=DataSource)
    device: str = "cpu"  # torch device (under torchrun `cuda` is each rank's own GPU)

    splits = ("test", "train")  # the splits this analysis accepts (a class attribute, not a field)

    def __post_init__(self):
        object.__setattr__(self, "run", str(self.run))
        if self.out is not None:
            object.__setattr__(self, "out", str(self.out))
        if self.split not in self.splits:
            raise ValueError(f"split must be one of {', '.join(self.splits)}, got {self.split!r}")
        _positive("limit", self.limit)
        _positive("batch_size", self.batch_size, none_ok=False)
        if self.name is not None:
            from .analysis.storage import check_name

            check_name(self.name)

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready data (`from_dict` rebuilds it); stored with every result as its `spec`.

        Returns:
            {"kind": the spec's class name, every field as plain data}.

        Examples:
            >>> data = PathSpec(run="runs/wc.h5", states=("pretrained", "clamped")).to_dict()
            >>> data["kind"], data["states"], data["config"]["points"]
            ('PathSpec', ['pretrained', 'clamped'], 11)
        """
        return {"kind": type(self).__name__, **_plain(dataclasses.asdict(self))}

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> AnalysisSpec:
        """The spec `to_dict` wrote (any of the analysis specs, by its `kind`).

        Args:
            data: what `to_dict` returned (e.g. a stored result's `spec` attribute, parsed).

        Returns:
            The spec: a `PathSpec`, `PerturbSpec`, `SurfaceSpec` or `HessianSpec`.

        Examples:
            >>> spec = PathSpec(run="runs/wc.h5", states=("pretrained", "clamped"), limit=500)
            >>> AnalysisSpec.from_dict(spec.to_dict()) == spec
            True
        """
        data = dict(data)
        cls = _ANALYSIS_SPECS[data.pop("kind")]
        config_type = {f.name: f for f in dataclasses.fields(cls)}.get("config")
        fields = {**data, "data": DataSource(**data.get("data", {}))}
        if config_type is not None and "config" in data:
            config = _CONFIGS[cls]()
            fields["config"] = type(config)(**_tuples(type(config), data["config"]))
        for name in ("states",):
            if name in fields:
                fields[name] = tuple(fields[name])
        return cls(**fields)


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _tuples(config_type, data: Mapping[str, Any]) -> dict[str, Any]:
    """A config's fields read back from JSON: lists become the tuples the dataclass holds."""
    out = {}
    for f in dataclasses.fields(config_type):
        if f.name in data:
            v = data[f.name]
            out[f.name] = tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
    return out


def _path_config():
    from .analysis.paths import PathConfig

    return PathConfig()


def _perturb_config():
    from .analysis.perturbation import PerturbConfig

    return PerturbConfig()


def _surface_config():
    from .analysis.surface import SurfaceConfig

    return SurfaceConfig()


def _hessian_config():
    from .analysis.hessian import HessianConfig

    return HessianConfig()


PATH_STATES = ("pretrained", "compressed", "clamped")


@dataclass(frozen=True, kw_only=True)
class PathSpec(AnalysisSpec):
    """Loss and accuracy along the piecewise-linear path through `states` (analysis/paths.py;
    `landscape interpolate`). `split` may also be "both".

        >>> from landscape.analysis.paths import PathConfig
        >>> spec = PathSpec(run="runs/wc.h5", config=PathConfig(points=5), limit=1000)
        >>> spec.states, spec.config.points
        (('pretrained', 'compressed', 'clamped'), 5)
    """

    states: tuple[str, ...] = PATH_STATES  # state specs (analysis/states.py), ≥ 2
    config: PathConfig = field(default_factory=_path_config)  # analysis.paths.PathConfig: points per segment, BN mode

    splits = ("test", "train", "both")

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "states", tuple(str(s) for s in self.states))
        if len(self.states) < 2:
            raise ValueError(f"a path needs at least 2 states, got {len(self.states)} ({', '.join(self.states)})")


@dataclass(frozen=True, kw_only=True)
class PerturbSpec(AnalysisSpec):
    """The real displacement pretrained → `target` against equal-norm random ones (analysis/perturbation.py;
    `landscape perturb`).

        >>> from landscape.analysis.perturbation import PerturbConfig
        >>> PerturbSpec(run="runs/wc.h5", config=PerturbConfig(directions=50)).target
        'clamped'
    """

    target: str = "clamped"  # compressed | clamped | ptq:METHOD:BITS
    config: PerturbConfig = field(default_factory=_perturb_config)  # analysis.perturbation.PerturbConfig

    def __post_init__(self):
        super().__post_init__()
        if not (self.target in ("compressed", "clamped") or self.target.startswith("ptq:")):
            raise ValueError(f"target must be compressed, clamped or ptq:METHOD:BITS, got {self.target!r}")


@dataclass(frozen=True, kw_only=True)
class SurfaceSpec(AnalysisSpec):
    """The loss on a 2-D plane (or a 1-D scan) of parameter space (analysis/surface.py; `landscape surface`):
    through the three `states` (config.plane "states") or random directions around `around` ("random").

        >>> from landscape.analysis.surface import SurfaceConfig
        >>> SurfaceSpec(run="runs/wc.h5", config=SurfaceConfig(plane="states", resolution=11)).states
        ('pretrained', 'compressed', 'clamped')
    """

    states: tuple[str, ...] = PATH_STATES  # the states plane's three states
    around: str = "clamped"  # the random plane's centre
    config: SurfaceConfig = field(default_factory=_surface_config)  # analysis.surface.SurfaceConfig

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "states", tuple(str(s) for s in self.states))
        if len(self.states) != 3:
            raise ValueError(f"the states plane goes through 3 states, got {len(self.states)}")


@dataclass(frozen=True, kw_only=True)
class HessianSpec(AnalysisSpec):
    """Hessian spectra at `states`, optionally along the path and the clamp-cost prediction (analysis/hessian.py;
    `landscape hessian`). Each Hessian-vector product costs about four gradient passes: `limit` defaults to
    1,000 images.

        >>> from landscape.analysis.hessian import HessianConfig
        >>> spec = HessianSpec(run="runs/wc.h5", states=("pretrained", "clamped"), config=HessianConfig(trace=True))
        >>> spec.limit, spec.clamp_cost
        (1000, True)
    """

    states: tuple[str, ...] = ("clamped",)  # state specs, each analysed on its own
    path: bool = False  # also λ_max and trace along pretrained → compressed → clamped
    clamp_cost: bool = True  # the second-order prediction of what clamping costs, beside the measured loss change
    keep_graph: bool = False  # keep each batch's graph between the products of one quantity (faster, more memory)
    limit: int | None = 1000
    config: HessianConfig = field(default_factory=_hessian_config)  # analysis.hessian.HessianConfig

    def __post_init__(self):
        super().__post_init__()
        from .analysis.states import spec_label

        object.__setattr__(self, "states", tuple(str(s) for s in self.states))
        labels = [spec_label(s) for s in self.states]
        if not labels:
            raise ValueError("no state to analyse")
        if len(set(labels)) != len(labels):
            raise ValueError(f"states {', '.join(self.states)} repeat a name; give each state once")


# ---------------------------------------------------------------------------------------------- export, PTQ

EXPORT_STATES = ("clamped", "recalibrated", "compressed")


@dataclass(frozen=True)
class ExportSpec:
    """One state of a run as codebooks + bit-packed indices (codec/; `landscape export`).

        >>> ExportSpec(run="runs/wc.h5", out="runs/wc.safetensors").state
        'clamped'
    """

    run: str  # the run file
    out: str  # the export file to write (e.g. MODEL.safetensors)
    state: str = "clamped"  # clamped | recalibrated (clamped, BN re-estimated) | compressed (before clamping)
    force: bool = False  # overwrite `out` if it exists

    def __post_init__(self):
        object.__setattr__(self, "run", str(self.run))
        object.__setattr__(self, "out", str(self.out))
        if self.state not in EXPORT_STATES:
            raise ValueError(f"state must be one of {', '.join(EXPORT_STATES)}, got {self.state!r}")


@dataclass(frozen=True)
class PTQSpec:
    """A post-training quantization baseline of a checkpoint, evaluated and saved (compress/ptq.py `run_ptq`;
    `landscape ptq`).

        >>> PTQSpec(arch="resnet20", checkpoint="resnet20", method="heq", bits=4, out="runs/heq4.pt").params
        'weights'
        >>> PTQSpec(arch="resnet20", checkpoint="resnet20", method="heq", bits=17, out="x.pt")
        Traceback (most recent call last):
        ...
        ValueError: bits must be in 1..16, got 17
        >>> PTQSpec(arch="resnet20", checkpoint="resnet20", method="kmeans", bits=None, out="q.pt",
        ...         levels_from="runs/sq.h5").levels_from  # each layer: the K_l levels that run clamped it to
        'runs/sq.h5'
        >>> PTQSpec(arch="tiny", checkpoint="x.pt", method="gptq", bits=3, out="x.pt", gptq={"damp": 0.1}).gptq
        {'damp': 0.1}
        >>> PTQSpec(arch="resnet20", checkpoint="resnet20", method="gptq", bits=9, out="x.pt")
        Traceback (most recent call last):
        ...
        ValueError: bits must be an integer in 2..8, got 9
    """

    arch: str  # a built-in architecture or a package.module:factory
    checkpoint: str  # checkpoint path, or an arch name for the public weights
    method: str  # uniform | heq | kmeans (quantize.QUANTIZERS) | gptq (compress/gptq.py) | rtn | hqq (groupwise.py)
    bits: int | None  # bits per weight B: 2^B levels per layer (gptq: 2..8); None only with levels_from
    out: str  # where the quantized checkpoint is saved
    arch_kwargs: Mapping[str, Any] = field(default_factory=dict)  # keyword arguments of the arch's factory
    params: str = "weights"  # weights (conv/linear only) | all (every parameter) | ±patterns (landscape/params.py)
    calibration_images: int = 1024  # gptq: unaugmented training images (the split's first) H is estimated on, ≥ 1
    gptq: Mapping[str, Any] = field(default_factory=dict)  # gptq: GPTQConfig's grid, damp, block_size, act_order
    limit: int | None = None  # evaluate on the first N test images (None: all)
    recalibrate_bn: int = 0  # re-estimate BN statistics on this many unaugmented training batches of 128 (0: off)
    force: bool = False  # overwrite `out` if it exists
    batch_size: int = 500  # evaluation batch size in images
    data: DataSource = field(default_factory=DataSource)
    device: str = "cpu"
    levels_from: str | None = None  # a finished run file: each layer gets its clamped K_l levels (uniform|heq|kmeans)
    group_size: int | None = None  # rtn, hqq: input weights per group G (None: one group per output channel)

    def __post_init__(self):
        from .compress.groupwise import GROUPWISE, GroupwiseConfig
        from .quantize import QUANTIZERS

        object.__setattr__(self, "out", str(self.out))
        object.__setattr__(self, "checkpoint", str(self.checkpoint))
        object.__setattr__(self, "arch_kwargs", dict(self.arch_kwargs or {}))
        object.__setattr__(self, "gptq", dict(self.gptq or {}))
        methods = (*QUANTIZERS, "gptq", *GROUPWISE)
        if self.method not in methods:
            raise ValueError(f"method must be one of {', '.join(sorted(methods))}, got {self.method!r}")
        if self.group_size is not None and self.method not in GROUPWISE:
            raise ValueError(f"group_size (--group-size) applies to methods {', '.join(GROUPWISE)}, not {self.method}")
        if self.method in GROUPWISE:
            if self.bits is None:
                raise ValueError(f"{self.method} needs bits (levels_from is for the codebook quantizers)")
            GroupwiseConfig(self.method, self.bits, self.group_size, self.params)  # its checks
        if self.levels_from is not None:  # matched-bits PTQ: the run's K_l per layer; bits only for the others
            object.__setattr__(self, "levels_from", str(self.levels_from))
            if self.method not in QUANTIZERS:
                raise ValueError(f"levels_from (--levels-from) applies to methods {', '.join(sorted(QUANTIZERS))}, "
                                 f"not {self.method}")
        if self.bits is None and self.levels_from is None:
            raise ValueError("bits must be given (2^bits levels per layer) unless levels_from gives the levels")
        if self.bits is not None and (not isinstance(self.bits, int) or not 1 <= self.bits <= 16):
            raise ValueError(f"bits must be in 1..16, got {self.bits}")
        from .params import check_selection

        check_selection(self.params)  # weights | all | a selection with ±patterns (landscape/params.py)
        _positive("calibration_images", self.calibration_images, none_ok=False)
        if self.method == "gptq":
            self.gptq_config()  # its checks
        elif self.gptq:
            raise ValueError(f"gptq settings ({', '.join(sorted(self.gptq))}) apply to method gptq only, "
                             f"not {self.method}")
        _positive("limit", self.limit)
        _positive("batch_size", self.batch_size, none_ok=False)
        if not isinstance(self.recalibrate_bn, int) or self.recalibrate_bn < 0:
            raise ValueError(f"recalibrate_bn must be ≥ 0 batches, got {self.recalibrate_bn!r}")

    def gptq_config(self):
        """The `compress.gptq.GPTQConfig` of method "gptq" (bits, params, calibration_images and `gptq`'s fields).

        Returns:
            (landscape.compress.gptq.GPTQConfig): The config; ValueError naming a setting it does not take.

        Examples:
            >>> spec = PTQSpec(arch="tiny", checkpoint="x", method="gptq", bits=2, out="q.pt", gptq={"grid": "heq"})
            >>> spec.gptq_config().grid, spec.gptq_config().calibration_images
            ('heq', 1024)
        """
        from .compress.gptq import GPTQConfig

        fields = {"grid", "damp", "block_size", "act_order"}
        unknown = sorted(set(self.gptq) - fields)
        if unknown:
            raise ValueError(f"gptq has no setting {', '.join(unknown)} (it takes: {', '.join(sorted(fields))})")
        return GPTQConfig(bits=self.bits, params=self.params, calibration_images=self.calibration_images,
                          **self.gptq)


_ANALYSIS_SPECS = {c.__name__: c for c in (PathSpec, PerturbSpec, SurfaceSpec, HessianSpec)}
_CONFIGS = {PathSpec: _path_config, PerturbSpec: _perturb_config, SurfaceSpec: _surface_config,
            HessianSpec: _hessian_config}

__all__ = ["RunSpec", "checkpoint_changed", "DataSource", "AnalysisSpec", "PathSpec", "PerturbSpec", "SurfaceSpec",
           "HessianSpec", "ExportSpec", "PTQSpec"]
