"""What a study is: the run every trial shares (`base`, a RunSpec), the method settings it varies (a grid, or a
search space), the seeds, and where the run files go. Checked at construction; stored with the study as JSON.

A *point* is one assignment of the varied settings (e.g. h=0.05, w=0.3); a *run* is a point and a seed, one run
file. Grid study: one Optuna trial per run (the seed is a trial parameter, so seeds are separate trials and the
report averages them per point). Search study: one trial per sampled point, trained once per seed, its objective
values the means over seeds.

Run files have fixed names derived from the point and seed (`<sha256 of the canonical JSON>[:16].h5` in the
study's run folder), so whichever worker trains a run, on whichever machine, writes the same file, and a rerun
finds it. The name is a digest, not the settings: the settings live inside the file (its `config` attribute).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path

from ..compress import METHODS
from ..errors import LandscapeError
from ..specs import RunSpec

KINDS = ("grid", "tpe", "nsga2")
OBJECTIVES = ("clamped", "recalibrated")  # which evaluation of the run is the accuracy objective
def numeric_fields(method: str) -> dict[str, type]:
    """The method's config fields a study can vary: name → int or float."""
    cfg = METHODS[method][1]
    hints = typing.get_type_hints(cfg)
    return {f.name: hints[f.name] for f in dataclasses.fields(cfg) if hints[f.name] in (int, float)}


def _number(name: str, text: str, kind: type) -> float | int:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{name}: {text!r} is not a finite number")
    if kind is int:
        if value != int(value):
            raise ValueError(f"{name} takes integers, got {text!r}")
        return int(value)
    return value


def _check_name(method: str, name: str) -> type:
    fields = numeric_fields(method)
    if name not in fields:
        raise ValueError(f"unknown parameter {name!r} for --method {method} (numeric settings it takes: "
                         f"{', '.join(sorted(fields))})")
    return fields[name]


def parse_grid(method: str, items: list[str]) -> dict[str, list]:
    """['h=0.01,0.05', 'w=0.3'] → {'h': [0.01, 0.05], 'w': [0.3]}."""
    grid: dict[str, list] = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep:
            raise ValueError(f"--grid {item!r}: write NAME=V1,V2,…")
        kind = _check_name(method, name)
        parsed = [_number(name, v, kind) for v in values.split(",") if v.strip()]
        if not parsed:
            raise ValueError(f"--grid {name}: empty list of values")
        if len(set(parsed)) != len(parsed):
            raise ValueError(f"--grid {name}: repeated values {values}")
        if name in grid:
            raise ValueError(f"--grid names {name} twice")
        grid[name] = parsed
    if not grid:
        raise ValueError("--grid needs at least one NAME=V1,V2,…")
    return grid


def parse_space(method: str, items: list[str]) -> dict[str, list]:
    """['h=0.01:0.25:log', 'w=0.15:0.45'] → {'h': [0.01, 0.25, True], 'w': [0.15, 0.45, False]} (lo, hi, log)."""
    space: dict[str, list] = {}
    for item in items:
        name, sep, rng = item.partition("=")
        parts = rng.split(":")
        if not sep or len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
            raise ValueError(f"--space {item!r}: write NAME=LO:HI or NAME=LO:HI:log")
        kind = _check_name(method, name)
        lo, hi = _number(name, parts[0], kind), _number(name, parts[1], kind)
        log = len(parts) == 3
        if lo >= hi:
            raise ValueError(f"--space {name}: LO must be < HI, got {parts[0]}:{parts[1]}")
        if log and lo <= 0:
            raise ValueError(f"--space {name}: a log range needs LO > 0, got {parts[0]}")
        if name in space:
            raise ValueError(f"--space names {name} twice")
        space[name] = [lo, hi, log]
    if not space:
        raise ValueError("--space needs at least one NAME=LO:HI")
    return space


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--seeds {text!r}: write integers separated by commas, e.g. 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {text!r}: give one or more distinct integers")
    return seeds


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StudySpec:
    name: str  # the study's name in its storage
    method: str  # compression method of every trial (train --method)
    kind: str  # "grid" (every point × seed once) | "tpe" | "nsga2" (Optuna's multi-objective samplers)
    seeds: list[int]  # training seeds; grid: each a trial, search: every trial trains each and averages
    runs: str  # folder of the run files (absolute; on several machines it must be the same shared path)
    base: RunSpec | None = None  # the run every point shares (a point's run: base.at(point, seed=…)); None only
    #                              for a spec that never trains (the engine's own tests)
    grid: dict[str, list] = field(default_factory=dict)  # grid: parameter → values
    space: dict[str, list] = field(default_factory=dict)  # search: parameter → [lo, hi, log]
    trials: int = 0  # search: trials to finish (each trains len(seeds) runs); grid: unused
    objective: str = "clamped"  # accuracy objective: the clamped model, or its BN-recalibrated copy
    max_bits: float | None = None  # search: constraint mean bits ≤ max_bits (the samplers' constraints_func)
    sampler_seed: int = 0  # search: seed of the sampler (combined with the worker's identity, see engine)

    def __post_init__(self):
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"study name {self.name!r}: use a plain name (no '/', not starting with '.')")
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.kind not in KINDS:
            raise ValueError(f"unknown study kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.kind == "grid" and (not self.grid or self.space):
            raise ValueError("a grid study needs --grid (and no --space)")
        if self.kind != "grid" and (not self.space or self.grid or self.trials < 1):
            raise ValueError("a search study needs --space and --trials N ≥ 1 (and no --grid)")
        if self.max_bits is not None and (self.kind == "grid" or not self.max_bits > 0):
            raise ValueError("--max-bits takes a number > 0 and applies to search studies only")
        if not self.seeds:
            raise ValueError("a study needs at least one seed")
        if self.base is not None:
            if self.base.method != self.method:
                raise ValueError(f"the base run's method {self.base.method!r} is not the study's {self.method!r}")
            if self.objective == "recalibrated" and self.metric == "loss":
                raise ValueError("--objective recalibrated: a language model has no BatchNorm to recalibrate")
            if self.objective == "recalibrated" and not self.base.recalibrate_bn:
                raise ValueError("--objective recalibrated needs the train option --recalibrate-bn N")
            for point in self.corners():  # every corner's settings are checked by the method's config (e.g. h ≥ 0)
                self.base.at(point)

    @property
    def metric(self) -> str:
        """What the study weighs against bits: "accuracy" (a classifier's test accuracy, maximized) or "loss" (a
        language model's validation loss in nats/token, minimized: its base run trains on `--dataset text`).

        Examples:
            >>> base = RunSpec(arch="tiny", checkpoint=None)
            >>> StudySpec("s", "weight-coupling", "grid", [0], "/tmp/runs", base, grid={"h": [0.1]}).metric
            'accuracy'
        """
        from ..text import is_text

        return "loss" if self.base is not None and is_text(self.base.data) else "accuracy"

    @property
    def directions(self) -> list[str]:
        """Optuna's directions of the two objectives: the metric's (maximize accuracy, minimize loss), then mean
        effective bits (minimize)."""
        return ["minimize" if self.metric == "loss" else "maximize", "minimize"]

    def corners(self) -> list[dict]:
        """The extreme points: every grid point, or every corner of a search space."""
        import itertools

        names = self.parameters
        values = [self.grid[n] for n in names] if self.kind == "grid" else [self.space[n][:2] for n in names]
        return [dict(zip(names, v, strict=True)) for v in itertools.product(*values)]

    @property
    def parameters(self) -> list[str]:
        return sorted(self.grid or self.space)

    def grid_runs(self) -> list[dict]:
        """Every run of a grid study as trial parameters (the point and its seed), seeds outermost: the queue
        finishes the whole grid at the first seed before it starts the next, so a study cut short has every
        point."""
        return [{**point, "seed": seed} for seed in self.seeds for point in self.corners()]

    def run_path(self, point: dict, seed: int) -> Path:
        """The fixed run file of a point (method settings only) and a seed."""
        return Path(self.runs) / f"{digest({'point': point, 'seed': seed})}.h5"

    def lock_path(self, trial_params: dict) -> Path:
        """The lock file a worker holds while it trains a trial's runs (grid: one run; search: one per seed)."""
        return Path(self.runs) / f"{digest(trial_params)}.lock"

    def to_json(self) -> str:
        """The spec as JSON (stored with the study; the base run as `RunSpec.to_settings`, a run file's config)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "base"}
        return json.dumps({**data, "base": self.base.to_settings() if self.base is not None else None},
                          sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StudySpec:
        data = json.loads(text)
        if "train_args" in data:  # written before the base run was a RunSpec: its settings were train argv
            raise LandscapeError(f"study {data['name']!r} stores its train options as command-line strings (made "
                                 f"by an older landscape); run `landscape study migrate {data['name']}` once, with "
                                 "the --dir or --storage it was created with, from the folder it was created in")
        base = data.pop("base", None)
        return cls(**data, base=RunSpec.from_settings(base) if base is not None else None)

    def differences(self, other: StudySpec) -> list[str]:
        a, b = json.loads(self.to_json()), json.loads(other.to_json())
        return [k for k in a if a[k] != b[k]]
