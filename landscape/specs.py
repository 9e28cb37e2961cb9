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
from typing import Any

from .trainer import TrainConfig


@dataclass(frozen=True)
class RunSpec:
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
        """The run's seed: data order, augmentation and the compressor's random draws (TrainConfig.seed)."""
        return self.train.seed

    @classmethod
    def resolved(cls, checkpoint: str | None, **fields) -> RunSpec:
        """A spec whose checkpoint is resolved (an arch name → the public weights' file, found or downloaded),
        made absolute, and fingerprinted (sha256), as a run file records it."""
        from .data import sha256_of
        from .models import resolve_checkpoint

        if checkpoint is None:
            return cls(checkpoint=None, **fields)
        path = resolve_checkpoint(checkpoint)
        return cls(checkpoint=str(path.resolve()), checkpoint_sha256=sha256_of(path) if path.is_file() else None,
                   **fields)

    def at(self, point: Mapping[str, Any] | None = None, *, seed: int | None = None,
           device: str | None = None) -> RunSpec:
        """This spec with method settings from `point` (e.g. {"h": 0.1}), and/or another seed or device."""
        train = self.train
        if seed is not None or device is not None:
            train = dataclasses.replace(train, **({"seed": int(seed)} if seed is not None else {}),
                                        **({"device": str(device)} if device is not None else {}))
        return dataclasses.replace(self, compressor={**self.compressor, **dict(point or {})}, train=train)

    def compressor_instance(self):
        """A fresh compressor of this spec's method and config (seeded with the run's seed)."""
        from .compress import make_compressor

        return make_compressor(self.method, dict(self.compressor), seed=self.seed)

    def to_settings(self) -> dict[str, Any]:
        """The run file's `config` attribute (JSON-ready; the keys run files have always had)."""
        return {"train": dataclasses.asdict(self.train), "compressor": dict(self.compressor), "arch": self.arch,
                "arch_kwargs": dict(self.arch_kwargs), "data": dict(self.data), "checkpoint": self.checkpoint,
                "checkpoint_sha256": self.checkpoint_sha256, "method": self.method, "limit_train": self.limit_train,
                "limit_test": self.limit_test, "checkpoint_every": self.checkpoint_every,
                "recalibrate_bn": self.recalibrate_bn, "seed": self.seed}

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> RunSpec:
        """The spec of a run file's `config` (older files lack newer fields: they get the defaults; a run file
        written before TrainConfig.compile existed trained eagerly, so it continues so)."""
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
    """Whether the starting checkpoint's file differs from the one the spec fingerprinted."""
    from .data import sha256_of

    if not spec.checkpoint_sha256 or spec.checkpoint is None:
        return False
    path = Path(spec.checkpoint)
    return not path.is_file() or sha256_of(path) != spec.checkpoint_sha256


__all__ = ["RunSpec", "checkpoint_changed"]
