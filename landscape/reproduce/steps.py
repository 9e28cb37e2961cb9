"""The steps of the reproduction report: what is trained, evaluated and drawn before the rows read the outputs.

A step is typed. The library's own jobs are specs run in this process:

- `StudyStep`: a grid study (`StudySpec`, its base run a `RunSpec` built from the budget), created in the
  budget's journal and trained by one worker (`studies.run_worker`); resumable like every study.
- `ReportStep`: the study's report (`studies.report.write`: tables, Pareto front, PTQ baselines, figure).
- `PerturbStep`: one perturbation test of a headline run (`PerturbSpec` → `analysis.run_analysis`).

- `FigureStep`: a figure or table (`landscape.figures`: a spec per figure, e.g. `PathsFigure`, `PTQTable`), built
  from the budget and the earlier steps' outputs, made by `landscape.figures.make`.

One step stays a command: the coupling benchmark (`bench/coupling.py`, a `CommandStep`), which times itself in a
fresh process of its own.

Every step has a `key` — the spec as JSON (paths relative to the checkout), or a command step's argv — whose
digest the ledger records: a step whose key changed runs again and makes the rows that read it stale.
A key is None while an input it needs (a study's run files) is not there yet.

Decisions the papers leave open, and why (the rows' rules are in rules.py / rules_bl.py):
- "Failed" vs "successful" runs at matched bits (§4.2 of the workshop paper): centroid–weight coupling fixes the
  bits (K = 2^b centroids), so runs at the same b with a weak (λ = 0.1) and a strong (λ = 1) pull are at matched
  bits by construction; the row tests the paper's description (the run that climbs the loss more while
  fine-tuning is the one that loses less at the clamp) without labelling runs in advance.
- Naive PTQ (Table 1) is uniform min–max PTQ per layer (the paper cites Jacob et al.); HEQ and k-means PTQ are
  shown beside it.
- DSMM is judged with uniform PTQ after it (a range-restricting loss can only help a range-based quantizer) and
  against the same fine-tuning without the loss (λ = 0), so the fine-tuning itself gets no credit. The paper's
  α₀ = 0.1 suits its training from scratch at lr 0.4–1.0; fine-tuned here at lr 1e-3 it keeps α·range ≪ 1, where
  the loss barely acts. A second design starts α at 10 (the paper's fixed-α value) at λ = 0.01, 0.1 and 1 — a
  protocol variant, added after the first design's result, and reported as such.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .budgets import Budget, Context

PY = sys.executable


class StepFailed(Exception):
    """A step did not finish (its log says why)."""


class Step(ABC):
    """One step: a name (`kind:what`), a key for the ledger, the outputs that must exist once it is done, and the
    work itself, whose output goes to `log` (a text file).

        >>> from landscape.reproduce import BUDGETS, Context
        >>> ctx = Context.for_budget(BUDGETS["quick"])
        >>> step = next(s for s in steps(ctx) if s.name == "table:ptq")
        >>> isinstance(step, Step), len(step.digest(ctx))
        (True, 16)
    """

    name: str

    @abstractmethod
    def key(self, ctx: Context) -> Any:
        """The JSON-ready identity of the work.

        Args:
            ctx: the budget at work.

        Returns:
            What the ledger's digest is taken of; None while an input is not there yet.
        """

    def digest(self, ctx: Context) -> str | None:
        """The ledger's digest of `key`: the same on every checkout (the checkout's path written ".").

        Args:
            ctx: the budget at work.

        Returns:
            16 hex digits, or None while the key is None.

        >>> from landscape.reproduce import BUDGETS, Context
        >>> ctx = Context.for_budget(BUDGETS["quick"])
        >>> step = next(s for s in steps(ctx) if s.name == "table:ptq")
        >>> step.digest(ctx) == step.digest(Context.for_budget(BUDGETS["quick"], device="cuda"))
        True
        """
        key = self.key(ctx)
        if key is None:
            return None
        text = json.dumps(key, sort_keys=True).replace(str(ctx.repo), ".")  # the same on every checkout
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self, ctx: Context) -> list[str]:
        """What the step does, in lines a reader can follow (--dry-run, the ledger, the report).

        Args:
            ctx: the budget at work.

        Returns:
            One line or more.

        >>> from landscape.reproduce import BUDGETS, Context
        >>> ctx = Context.for_budget(BUDGETS["quick"])
        >>> print(*next(s for s in steps(ctx) if s.name == "table:ptq").describe(ctx))
        PTQTable → figures/reproduction/quick/ptq_table.csv
        """
        return [self.name]

    def outputs(self, ctx: Context) -> list[Path]:
        """The files that must exist for the step to count as done.

        Args:
            ctx: the budget at work.

        Returns:
            Their paths (none by default).

        >>> from landscape.reproduce import BUDGETS, Context
        >>> ctx = Context.for_budget(BUDGETS["quick"])
        >>> print(*[p.name for p in next(s for s in steps(ctx) if s.name == "table:ptq").outputs(ctx)])
        ptq_table.csv
        """
        return []

    @abstractmethod
    def execute(self, ctx: Context, log: TextIO) -> None:
        """Do the work; raise on failure.

        Args:
            ctx: the budget at work.
            log: the step's log file (a text stream), where the step's own lines go.
        """


def relative(path: Path, repo: Path) -> str:
    """`path` relative to the checkout where it lies inside it."""
    return str(path.relative_to(repo)) if path.is_relative_to(repo) else str(path)


# -- commands -----------------------------------------------------------------------------------------------------
def shown(argv: list[str], repo: Path) -> str:
    """A command as a reader would type it: `python` for this interpreter, paths relative to the checkout."""
    import os
    import shlex

    out = ["python" if a == sys.executable else os.path.relpath(a, repo) if os.path.isabs(a) and
           a.startswith(str(repo)) else a for a in argv]
    return shlex.join(out)


@dataclass(frozen=True)
class CommandStep(Step):
    """Commands run one after the other, each in its own process, from the checkout."""

    name: str
    build: Callable[[Context], list[list[str]] | None]  # the commands (None: an input is not there yet)
    produces: Callable[[Context], list[Path]] = lambda ctx: []  # outputs that must exist for "done"

    def key(self, ctx: Context) -> list[list[str]] | None:
        return self.build(ctx)

    def digest(self, ctx: Context) -> str | None:
        cmds = self.build(ctx)  # the digest of the argv as the command engine recorded it (ledgers stay valid)
        return None if cmds is None else hashlib.sha256(json.dumps(cmds).encode()).hexdigest()[:16]

    def describe(self, ctx: Context) -> list[str]:
        return [shown(c, ctx.repo) for c in self.build(ctx) or []]

    def outputs(self, ctx: Context) -> list[Path]:
        return self.produces(ctx)

    def execute(self, ctx: Context, log: TextIO) -> None:
        import datetime
        import os

        for c in self.build(ctx):
            log.write(f"\n$ {shown(c, ctx.repo)}   # {datetime.datetime.now(datetime.timezone.utc):%FT%T}\n")
            log.flush()
            code = subprocess.call(c, cwd=ctx.repo, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
            if code != 0:
                raise StepFailed(f"exit {code}")


@dataclass(frozen=True)
class FigureStep(Step):
    """A figure or table of the report (`landscape.figures`): its spec is built from the budget and the earlier steps'
    outputs, written into the budget's figures (overwriting), and made in this process.

        >>> from landscape.figures import PTQTable
        >>> from landscape.reproduce import BUDGETS, Context
        >>> step = FigureStep("table:toy", lambda c: PTQTable(checkpoint="m.pt", bits=(4,)), ("ptq_table", ".csv"))
        >>> ctx = Context.for_budget(BUDGETS["quick"])
        >>> spec = step.spec(ctx)
        >>> spec.force, spec.out_dir == str(ctx.figures)
        (True, True)

    Args:
        name: the step's name, e.g. "table:ptq".
        build: the figure's spec from the budget at work (None while an input is not there yet); the step sets its
            out_dir, force and device.
        produces: (stem, suffix) of the output that must exist for "done".
    """

    name: str
    build: Callable[[Context], Any]  # the figure's spec, out_dir/force/device left to the step (None: no input yet)
    produces: tuple[str, str]  # (stem, suffix) of the output that must exist for "done"

    def spec(self, ctx: Context) -> Any:
        """The figure's spec at this budget: into the budget's figures, overwriting, on the budget's device.

        Args:
            ctx: the budget at work.

        Returns:
            A `landscape.figures` spec, or None while an input is not there yet.

        >>> from landscape.figures import PTQTable
        >>> from landscape.reproduce import BUDGETS, Context
        >>> step = FigureStep("t", lambda c: PTQTable(checkpoint="m.pt"), ("ptq_table", ".csv"))
        >>> step.spec(Context.for_budget(BUDGETS["quick"], device="cuda")).device
        'cuda'
        """
        import dataclasses

        spec = self.build(ctx)
        return None if spec is None else dataclasses.replace(spec, out_dir=str(ctx.figures), force=True,
                                                             device=ctx.device)

    def key(self, ctx: Context) -> dict | None:
        """The spec's fields but the device and quietness (they do not change what is drawn).

        Args:
            ctx: the budget at work.

        Returns:
            The spec as JSON-ready values, or None while an input is not there yet.

        >>> from landscape.figures import PTQTable
        >>> from landscape.reproduce import BUDGETS, Context
        >>> step = FigureStep("t", lambda c: PTQTable(checkpoint="m.pt"), ("ptq_table", ".csv"))
        >>> key = step.key(Context.for_budget(BUDGETS["quick"]))
        >>> key["figure"], key["checkpoint"], "device" in key
        ('PTQTable', 'm.pt', False)
        """
        spec = self.spec(ctx)
        return None if spec is None else {k: v for k, v in spec.to_dict().items() if k not in ("device", "quiet")}

    def describe(self, ctx: Context) -> list[str]:
        """The spec's type and the output the step produces.

        Args:
            ctx: the budget at work.

        Returns:
            One line.

        >>> from landscape.reproduce import BUDGETS, Context
        >>> print(*FigureStep("t", lambda c: None, ("x", ".csv")).describe(Context.for_budget(BUDGETS["quick"])))
        t: its inputs are not there yet
        """
        spec = self.spec(ctx)
        if spec is None:
            return [f"{self.name}: its inputs are not there yet"]
        return [f"{type(spec).__name__} → {relative(ctx.figure(*self.produces), ctx.repo)}"]

    def outputs(self, ctx: Context) -> list[Path]:
        """The output that must exist once the figure is made.

        Args:
            ctx: the budget at work.

        Returns:
            `ctx.figure(stem, suffix)` of `produces`.

        >>> from landscape.reproduce import BUDGETS, Context
        >>> FigureStep("t", lambda c: None, ("x", ".csv")).outputs(Context.for_budget(BUDGETS["quick"]))[0].name
        'x.csv'
        """
        return [ctx.figure(*self.produces)]

    def execute(self, ctx: Context, log: TextIO) -> None:
        """Make the figure (`landscape.figures.make`) and write its lines to `log`.

        Args:
            ctx: the budget at work.
            log: the step's log file.

        >>> import io
        >>> from landscape.reproduce import BUDGETS, Context
        >>> FigureStep("t", lambda c: None, ("x", ".csv")).execute(Context.for_budget(BUDGETS["quick"]), io.StringIO())
        Traceback (most recent call last):
        ...
        TypeError: no figure is registered for NoneType
        """
        from ..figures.base import make

        result = make(self.spec(ctx))
        print("\n".join(result.lines), file=log, flush=True)


def local_checkpoint(ctx: Context) -> str:
    """The budget's checkpoint: a path relative to the checkout (made absolute) or an arch's public weights."""
    local = ctx.repo / ctx.budget.checkpoint
    return str(local) if local.exists() else ctx.budget.checkpoint


# -- studies ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StudyDef:
    """A grid study of the report: name, method, grid, seeds and epochs per budget, method settings it fixes."""

    name: str
    method: str
    grid: Mapping[str, str]  # parameter → values, as `study create --grid` writes them
    seeds: Callable[[Budget], tuple[int, ...]]
    epochs: Callable[[Budget], int]
    # method settings every run shares (a function of the budget where they depend on it)
    settings: Mapping[str, Any] | Callable[[Budget], Mapping[str, Any]] = field(default_factory=dict)

    def fixed(self, budget: Budget) -> dict[str, Any]:
        """The method settings every run shares at this budget."""
        return dict(self.settings(budget) if callable(self.settings) else self.settings)


def base_run(ctx: Context, method: str, epochs: int, settings: Mapping[str, Any], *, sweep: bool = False):
    """The RunSpec a study's runs share at this budget (`sweep`: the Fig. 2 sweep's own settings — every
    training image, 20 BN-recalibration batches — whatever the budget)."""
    from ..specs import RunSpec
    from ..trainer import TrainConfig

    b = ctx.budget
    checkpoint = local_checkpoint(ctx)
    train = TrainConfig(epochs=epochs, **({"batch_size": b.train_batch_size} if b.train_batch_size else {}))
    return RunSpec.resolved(checkpoint, arch=b.arch, method=method, compressor=dict(settings), train=train,
                            limit_train=None if sweep else b.limit_train, limit_test=b.limit_test,
                            recalibrate_bn=20 if sweep else b.recalibrate_bn)


@dataclass(frozen=True)
class StudyStep(Step):
    definition: StudyDef

    @property
    def name(self) -> str:
        return f"study:{self.definition.name}"

    def study_def(self, ctx: Context) -> StudyDef | None:
        """The study this step runs at this budget (None while an input is not there yet)."""
        return self.definition

    def spec(self, ctx: Context):
        from ..studies import StudySpec, parse_grid

        d, b = self.study_def(ctx), ctx.budget
        if d is None:
            return None
        fig2 = d.name == b.fig2[1]
        base = base_run(ctx, d.method, 1 if fig2 else d.epochs(b), d.fixed(b), sweep=fig2)
        return StudySpec(name=d.name, method=d.method, kind="grid", seeds=list(d.seeds(b)),
                         runs=str((ctx.study_dir(d.name) / d.name / "runs").resolve()), base=base,
                         grid=parse_grid(d.method, [f"{k}={v}" for k, v in d.grid.items()]))

    def key(self, ctx: Context) -> dict | None:
        spec = self.spec(ctx)
        return None if spec is None else {"study": json.loads(spec.to_json()),
                                          "journal": str(ctx.journal(self.definition.name))}

    def describe(self, ctx: Context) -> list[str]:
        spec = self.spec(ctx)
        if spec is None:
            return [f"study {self.definition.name}: chosen once its inputs are there"]
        grid = " ".join(f"{k}={','.join(f'{v:g}' for v in vs)}" for k, vs in spec.grid.items())
        fixed = "".join(f" {k}={v}" for k, v in self.study_def(ctx).fixed(ctx.budget).items())
        return [f"study {spec.name}: {spec.method}{fixed}, grid {grid}, seeds {','.join(map(str, spec.seeds))}, "
                f"{spec.base.train.epochs} epoch(s) from {Path(spec.base.checkpoint).name} "
                f"({relative(ctx.journal(spec.name), ctx.repo)})"]

    def outputs(self, ctx: Context) -> list[Path]:
        return [ctx.journal(self.definition.name)]

    def execute(self, ctx: Context, log: TextIO) -> None:
        from ..studies import create, open_storage, run_worker

        spec = self.spec(ctx)
        journal = ctx.journal(spec.name)
        journal.parent.mkdir(parents=True, exist_ok=True)
        study, created = create(open_storage(str(journal)), spec)
        print(f"study {spec.name!r} {'created' if created else 'exists with this spec'}: {len(spec.grid_runs())} "
              f"runs, journal {journal}", file=log, flush=True)
        run_worker(study, spec, device=ctx.device)


@dataclass(frozen=True)
class ReportStep(Step):
    """The study's report, with the PTQ baselines (uniform, HEQ, k-means at 2–8 bits, each also BN-recalibrated)
    on the study's test images unless `ptq` is False (the rows then read table:ptq, which evaluates them once)."""

    study: str
    ptq: bool = True

    @property
    def name(self) -> str:
        return f"report:{self.study}"

    def key(self, ctx: Context) -> dict:
        return {"report": self.study, "journal": str(ctx.journal(self.study)), "out": str(ctx.figures),
                "ptq": self.ptq}

    def describe(self, ctx: Context) -> list[str]:
        return [f"report of study {self.study}{'' if self.ptq else ' (no PTQ baselines)'} → "
                f"{relative(ctx.figure(f'study-{self.study}', '.json'), ctx.repo)}"]

    def outputs(self, ctx: Context) -> list[Path]:
        return [ctx.figure(f"study-{self.study}", ".json")]

    def execute(self, ctx: Context, log: TextIO) -> None:
        from ..studies import engine, report

        study, spec = engine.open_study(str(ctx.journal(self.study)), self.study)
        _, files = report.write(study, spec, spec.base, ctx.figures, f"study-{self.study}", force=True, ptq=self.ptq,
                                device=ctx.device, step=self.name)
        print(f"files: {', '.join(files.values())}", file=log, flush=True)


# -- perturbation tests -------------------------------------------------------------------------------------------
# Perturbation protocols of Fig. 3: the task loss on training or test images, random directions matched to the
# global or the per-layer norm of Δθ, BN statistics kept (pretrained) or re-estimated for every state.
PROTOCOLS = [(split, norm, bn) for split in ("train", "test") for norm in ("global", "per-layer")
             for bn in ("recalibrate", "keep")]


def displacements(ctx: Context, *, compare: bool = True) -> list[tuple[str, int, float, str]]:
    """(label, seed, h, target) of the Fig. 3 displacements: the headline setting's compressed and clamped states
    for every seed; with `compare`, also the failure setting's for the first seed and HEQ-4 and k-means-4 PTQ of
    the pretrained model (on the first seed's run file, which holds it)."""
    first = ctx.budget.seeds[0]
    out = [("h=0.05", s, 0.05, t) for s in ctx.budget.seeds for t in ("compressed", "clamped")]
    if compare:
        out += [("h=0.001", first, 0.001, t) for t in ("compressed", "clamped")]
        out += [("HEQ-4", first, 0.05, "ptq:heq:4"), ("k-means-4", first, 0.05, "ptq:kmeans:4")]
    return out


def perturb_name(target: str, split: str, norm: str, bn: str) -> str:
    return f"repro-{target.replace(':', '-')}-{split}-{norm}-{bn}"


@dataclass(frozen=True)
class PerturbStep(Step):
    """The perturbation test of one displacement of a `sq` study run under one Fig. 3 protocol."""

    label: str
    seed: int
    h: float
    target: str
    protocol: tuple[str, str, str]

    @property
    def name(self) -> str:
        split, norm, bn = self.protocol
        return f"perturb:{self.label}:s{self.seed}:{self.target}:{split}-{norm}-{bn}"

    def spec(self, ctx: Context):
        from ..analysis.perturbation import PerturbConfig
        from ..specs import PerturbSpec

        run = ctx.runs("sq", h=self.h, w=0.3).get(self.seed)
        if run is None:
            return None
        b, (split, norm, bn) = ctx.budget, self.protocol
        config = PerturbConfig(directions=b.directions, norm=norm, seed=0, bn=bn, bn_batches=b.bn_batches)
        return PerturbSpec(run=run, name=perturb_name(self.target, *self.protocol), force=True, split=split,
                           limit=b.images, device=ctx.device, target=self.target, config=config)

    def key(self, ctx: Context) -> dict | None:
        spec = self.spec(ctx)
        return None if spec is None else {k: v for k, v in spec.to_dict().items() if k != "device"}

    def describe(self, ctx: Context) -> list[str]:
        spec = self.spec(ctx)
        where = "(its run file is not there yet)" if spec is None else Path(spec.run).name
        split, norm, bn = self.protocol
        return [f"perturb {self.target} of the h={self.h:g} seed-{self.seed} run {where}: {ctx.budget.directions} "
                f"{norm} directions, {split} images, BN {bn}"]

    def execute(self, ctx: Context, log: TextIO) -> None:
        from ..analysis import run_analysis

        spec = self.spec(ctx)  # once: it reads the study's runs
        outcome = run_analysis(spec, progress=True)
        print(f"stored {outcome.attrs.get('name', '')} in {spec.run}" if outcome else "", file=log, flush=True)


# -- the steps of the report --------------------------------------------------------------------------------------
STUDIES = [
    # The headline setting and the failure setting of the soft-quantization paper.
    StudyDef("sq", "weight-coupling", {"h": "0.001,0.05", "w": "0.3"}, lambda b: b.seeds, lambda b: b.epochs),
    StudyDef("fig2", "weight-coupling", {"h": "0.01,0.05,0.1,0.25", "w": "0.15,0.3,0.45"},
             lambda b: (0, 1), lambda b: 1),
    StudyDef("cwc", "centroid", {"bits": "2,3,4", "strength": "0.1,1"}, lambda b: b.cwc_seeds,
             lambda b: b.cwc_epochs),
    StudyDef("nbins", "weight-coupling", {"n_bins": "1024,4096,16384,65536", "h": "0.05", "w": "0.3"},
             lambda b: b.sweep_seeds[:1], lambda b: b.sweep_epochs),
    StudyDef("est-subsampled", "weight-coupling", {"h": "0.05", "w": "0.3"}, lambda b: b.sweep_seeds,
             lambda b: b.sweep_epochs, {"estimator": "subsampled"}),
    # the workshop paper's own design: all pairs among a random ⌈√N_l⌉-subset of the weights (added after the
    # random-pair design above failed at the quick budget; the row judges both)
    StudyDef("est-subset", "weight-coupling", {"h": "0.05", "w": "0.3"}, lambda b: b.sweep_seeds,
             lambda b: b.sweep_epochs, {"estimator": "subset"}),
    StudyDef("est-sorted", "weight-coupling", {"h": "0.05", "w": "0.3"}, lambda b: b.sweep_seeds,
             lambda b: b.sweep_epochs, {"estimator": "sorted"}),
    StudyDef("est-histogram", "weight-coupling", {"h": "0.05", "w": "0.3"}, lambda b: b.sweep_seeds,
             lambda b: b.sweep_epochs, {"estimator": "histogram"}),
    StudyDef("dsmm", "dsmm", {"bits": "2,3,4", "strength": "0,0.01"}, lambda b: b.sweep_seeds,
             lambda b: b.sweep_epochs, {"then": "uniform"}),
    # DSMM with α₀ = 10, the paper's fixed-α value (Table 1), at three strengths: one training per λ, PTQ at every
    # bit width afterwards (table:dsmm). Added after the paper's α₀ = 0.1 left every weight range unchanged.
    StudyDef("dsmm-alpha10", "dsmm", {"strength": "0.01,0.1,1"}, lambda b: b.sweep_seeds, lambda b: b.sweep_epochs,
             {"then": "uniform", "bits": 2, "alpha_init": 10.0}),
]


# -- the QAT comparison (issue 25): every method at 2, 3 and 4 bits, the same budget (cmp_epochs, cmp_seeds) ------
def steps_per_epoch(b: Budget) -> int:
    """SGD steps of one epoch of a training of this budget."""
    from ..trainer import TrainConfig

    return math.ceil((b.limit_train or 50_000) / (b.train_batch_size or TrainConfig().batch_size))


def parq_settings(b: Budget) -> dict[str, Any]:
    """PARQ and BinaryRelax anneal over the first three quarters of the run and end at the hard projection (the
    PARQ paper anneals over most of training; its library default, 1,000 steps, would not end within a short
    budget, nor fill a long one)."""
    return {"anneal_end": max(2, round(0.75 * b.cmp_epochs * steps_per_epoch(b)))}


# DSMM in the comparison: α₀ = 10, λ = 1 — the DSMM setting that moved the weight ranges (×0.61) and helped PTQ
# in the dsmm-ptq row (its table:dsmm); the paper's α₀ = 0.1 left every range unchanged at this learning rate.
DSMM_QAT = {"alpha_init": 10.0, "strength": 1.0}
COMPARISON = [
    # soft quantization has no bit setting: w doubles from the lowest-bit point of the Fig. 2 sweep (h = 0.1,
    # w = 0.45: 3.63 bits after 1 epoch), so that its points spread over the 2–4-bit columns (chosen before any run)
    StudyDef("cmp-sq", "weight-coupling", {"h": "0.1", "w": "0.45,0.9,1.8"}, lambda b: b.cmp_seeds,
             lambda b: b.cmp_epochs),
    StudyDef("cmp-cwc", "centroid", {"bits": "2,3,4"}, lambda b: b.cmp_seeds, lambda b: b.cmp_epochs,
             {"strength": 1.0}),
    StudyDef("cmp-lsq", "lsq", {"bits": "2,3,4"}, lambda b: b.cmp_seeds, lambda b: b.cmp_epochs),
    StudyDef("cmp-parq", "parq", {"bits": "2,3,4"}, lambda b: b.cmp_seeds, lambda b: b.cmp_epochs, parq_settings),
    StudyDef("cmp-binaryrelax", "binaryrelax", {"bits": "2,3,4"}, lambda b: b.cmp_seeds, lambda b: b.cmp_epochs,
             parq_settings),
    StudyDef("cmp-dkm", "dkm", {"bits": "2,3,4"}, lambda b: b.cmp_seeds, lambda b: b.cmp_epochs),
    StudyDef("cmp-dsmm-lsq", "dsmm", {"bits": "2,3,4"}, lambda b: b.cmp_seeds, lambda b: b.cmp_epochs,
             {"then": "lsq", **DSMM_QAT}),
    StudyDef("cmp-dsmm-dkm", "dsmm", {"bits": "2,3,4"}, lambda b: b.cmp_seeds, lambda b: b.cmp_epochs,
             {"then": "dkm", **DSMM_QAT}),
    # VQ-QAT as its paper: d = 2, cosine assignment, top-1 STE; 2b index bits = b bits per weight
    StudyDef("cmp-vq", "vq", {"codebook_bits": "4,6,8"}, lambda b: b.cmp_seeds, lambda b: b.cmp_epochs, {"dim": 2}),
    # euclidean assignment: the strongest VQ-QAT of the methods table (cosine ignores vector length)
    StudyDef("cmp-vq-euclidean", "vq", {"codebook_bits": "4,6,8"}, lambda b: b.cmp_seeds, lambda b: b.cmp_epochs,
             {"dim": 2, "assign": "euclidean"}),
    # the ablation of its top-1 STE: DKM's soft reconstruction A·C in the forward, all else the same
    StudyDef("cmp-vq-soft", "vq", {"codebook_bits": "4,6,8"}, lambda b: b.cmp_seeds, lambda b: b.cmp_epochs,
             {"dim": 2, "forward": "soft"}),
]
COMPARISON_STUDIES = tuple(d.name for d in COMPARISON)
STUDIES += COMPARISON


# -- VQ-QAT's search and ablations (issue 26) --------------------------------------------------------------------
def nas_settings(b: Budget) -> dict[str, Any]:
    """The search runs over the first half of the training steps, the chosen configuration fine-tunes alone over the
    second half (the paper gives no split; half leaves the argmax configuration as long to adapt as the search had
    to find it)."""
    return {"search_steps": max(1, b.nas_epochs * steps_per_epoch(b) // 2)}


def _fixed_candidates() -> tuple[str, ...]:
    """The default candidate set's members at 2, 3 or 4 bits per weight: the fixed uniform configurations the
    search is compared with in each bit column (vq:4x4, vq:6x4 and lin:8 are at no such size)."""
    from ..compress.vq_nas import VQNASConfig

    return tuple(c.name for c in VQNASConfig().candidate_set if c.nominal_bits in (2, 3, 4))


# the search at three budgets, and every fixed configuration through the same code (vq-nas with one candidate: the
# same commitment term, grids, codebook initialisation and training; `strength` = its default, a one-point grid)
NAS = [StudyDef("nas", "vq-nas", {"budget_bits": "2,3,4"}, lambda b: b.nas_seeds, lambda b: b.nas_epochs,
                nas_settings),
       # added after the first quick run (post hoc, reported beside the row's verdict, not judged): the hinge left
       # the 2-bit search at 1.09 bits, far under its budget; the budget as a two-sided target instead
       StudyDef("nas-target", "vq-nas", {"budget_bits": "2,3,4"}, lambda b: b.nas_seeds, lambda b: b.nas_epochs,
                lambda b: {**nas_settings(b), "budget_mode": "target"}),
       *[StudyDef(f"nas-fixed-{name.replace(':', '')}", "vq-nas", {"strength": "1"}, lambda b: b.nas_seeds,
                  lambda b: b.nas_epochs, lambda b, name=name: {**nas_settings(b), "candidates": name})
         for name in _fixed_candidates()]]
NAS_STUDIES = tuple(d.name for d in NAS)
# VQ-QAT (d = 2, 2^b codewords: b/2 bits per weight) four ways — cosine or euclidean assignment × top-1 STE or the
# soft A·C forward — with the per-layer codebook measurements on
VQ_ABLATION = [StudyDef(f"vqa-{assign}-{forward}", "vq", {"codebook_bits": "4,6,8"}, lambda b: b.vq_seeds,
                        lambda b: b.nas_epochs, {"dim": 2, "assign": assign, "forward": forward, "layer_stats": True})
               for assign in ("cosine", "euclidean") for forward in ("ste", "soft")]
VQ_ABLATION_STUDIES = tuple(d.name for d in VQ_ABLATION)
STUDIES += NAS + VQ_ABLATION
LONGER = ("cmp-long-1", "cmp-long-2")  # the longer budget's studies: the best and the second-best method


def longer_choice(ctx: Context, rank: int) -> tuple[StudyDef, dict[str, str]] | None:
    """The comparison's `rank`-th best trained method at 2 and 3 bits (1: the best): among the studies with a cell
    in both the 2- and the 3-bit column of table:comparison, the highest mean of those two cells' accuracies
    (ties: the study name). Returns its StudyDef and the grid of those two cells' points (None while the table is
    not there, or fewer than `rank` studies qualify). The rule was fixed before any comparison run."""
    from .rules import read_csv

    path = ctx.figure("comparison", ".csv")
    if not path.is_file():
        return None
    cells: dict[str, dict[int, dict]] = {}
    for r in read_csv(path):
        if r["kind"] == "trained" and int(r["column"]) in (2, 3) and float(r["accuracy"]) > cells.setdefault(
                r["study"], {}).get(int(r["column"]), {}).get("accuracy", -1.0):
            cells[r["study"]][int(r["column"])] = {"accuracy": float(r["accuracy"]), "setting": r["setting"]}
    ranked = sorted((name for name, c in cells.items() if set(c) == {2, 3} and name in STUDY),
                    key=lambda n: (-(cells[n][2]["accuracy"] + cells[n][3]["accuracy"]) / 2, n))
    if len(ranked) < rank:
        return None
    name = ranked[rank - 1]
    grid: dict[str, list[str]] = {}
    for col in (2, 3):
        for item in cells[name][col]["setting"].split():
            k, v = item.split("=")
            if v not in grid.setdefault(k, []):
                grid[k].append(v)
    return STUDY[name], {k: ",".join(v) for k, v in grid.items()}


@dataclass(frozen=True)
class LongerStudyStep(StudyStep):
    """The comparison's longer budget (issue 25): the `rank`-th best method at 2 and 3 bits (`longer_choice`), its
    cells' settings trained for `cmp_long_epochs`. `definition` holds the study's name, seeds and epochs; the
    method, its fixed settings and the grid come from table:comparison."""

    rank: int = 1

    def study_def(self, ctx: Context) -> StudyDef | None:
        chosen = longer_choice(ctx, self.rank)
        if chosen is None:
            return None
        d, grid = chosen
        return StudyDef(self.definition.name, d.method, grid, self.definition.seeds, self.definition.epochs,
                        d.fixed(ctx.budget))
STUDY = {s.name: s for s in STUDIES}
ESTIMATOR_STUDIES = ("est-subsampled", "est-subset", "est-sorted", "est-histogram")


def _labelled(ctx: Context, name: str, label: Callable[[dict], str]) -> tuple[list[str], list[str]]:
    rows = ctx.at(name)
    rows.sort(key=lambda r: (label(r), r["seed"]))
    return [r["run"] for r in rows], [label(r) for r in rows]


def fig3_spec(ctx: Context, *, compare: bool = False):
    """The headline seeds' run files (and with `compare` the failure setting's); the PTQ displacements are stored
    in the first seed's file, so only `compare` shows them."""
    from ..figures.protocols import ProtocolsFigure

    runs = [ctx.runs("sq", h=0.05, w=0.3).get(s) for s in ctx.budget.seeds]
    if None in runs:
        return None
    names = [perturb_name(t, *p) for t in ("compressed", "clamped") for p in PROTOCOLS]
    if not compare:
        return ProtocolsFigure(runs=tuple(runs), labels=("h=0.05",) * len(runs), names=tuple(names),
                               stem="fig3_protocols")
    failed = ctx.runs("sq", h=0.001, w=0.3).get(ctx.budget.seeds[0])
    if failed is None:
        return None
    names += [perturb_name(t, *p) for t in ("ptq:heq:4", "ptq:kmeans:4") for p in PROTOCOLS]
    return ProtocolsFigure(runs=(*runs, failed), labels=(*["h=0.05"] * len(runs), "h=0.001"), names=tuple(names),
                           stem="fig3_compare")


def paths_spec(ctx: Context):
    from ..analysis.paths import PathConfig
    from ..figures.paths import PathsFigure

    runs, labels = _labelled(ctx, "cwc", lambda r: f"K={2 ** int(r['bits'])}, λ={r['strength']:g}")
    if not runs:
        return None
    b = ctx.budget
    return PathsFigure(runs=tuple(runs), labels=tuple(labels), split="both", limit=b.images,
                       config=PathConfig(points=b.points), stem="paths_cwc")


def headline_runs(ctx: Context) -> tuple[str, ...] | None:
    """The headline setting's run files, one per seed (mixed precision and the seeds figure)."""
    runs = [ctx.runs("sq", h=0.05, w=0.3).get(s) for s in ctx.budget.seeds]
    return None if None in runs else tuple(runs)


def mixed_spec(ctx: Context):
    from ..figures.mixed_precision import MixedPrecisionFigure

    runs = headline_runs(ctx)
    return None if runs is None else MixedPrecisionFigure(runs=runs)


def seeds_spec(ctx: Context):
    from ..figures.seeds import SeedsFigure

    runs = headline_runs(ctx)
    return None if runs is None else SeedsFigure(runs=runs)


def alpha_spec(ctx: Context):
    from ..figures.alpha import AlphaFigure

    run = ctx.runs("sq", h=0.05, w=0.3).get(ctx.budget.seeds[0])
    return None if run is None else AlphaFigure(run=run, every=1)


def methods_step(seed: int, first: bool) -> FigureStep:
    """The methods table (VQ-QAT, bitwise input) for one sweep seed: the first seed's outputs plain
    (table:methods), each other seed's beside them with the suffix _s<seed> (table:methods:s<seed>)."""
    from ..figures.methods_table import MethodsTable

    suffix = "" if first else f"_s{seed}"

    def build(ctx: Context):
        b = ctx.budget
        return MethodsTable(arch=b.arch, checkpoint=local_checkpoint(ctx), epochs=b.sweep_epochs,
                            train_limit=b.limit_train or 50_000, seed=seed,
                            methods=("vq", "vq-euclidean", "input-bitwise"), suffix=suffix)

    name = "table:methods" if first else f"table:methods:s{seed}"
    return FigureStep(name, build, (f"methods_table{suffix}", ".csv"))


def methods_steps(ctx: Context) -> list[str]:
    seeds = ctx.budget.sweep_seeds
    return [methods_step(seed, i == 0).name for i, seed in enumerate(seeds)]


def longer_spec(ctx: Context):
    """The longer budget's table: the two long studies beside their own comparison studies (no PTQ rows)."""
    from ..figures.comparison import Comparison

    chosen = [longer_choice(ctx, rank) for rank in (1, 2)]
    if None in chosen or not all(ctx.journal(n).is_file() for n in LONGER):
        return None
    return Comparison(studies=(*LONGER, *(d.name for d, _ in chosen)), dir=str(ctx.studies), ptq=(),
                      limit=ctx.budget.limit_test, stem="comparison-long")


def nas_allocation_spec(ctx: Context):
    """The configuration the search chose at the 3-bit budget, first seed (None until that run exists)."""
    from ..figures.nas_allocation import NASAllocationFigure

    runs = ctx.runs("nas", budget_bits=3.0)
    return NASAllocationFigure(run=runs[min(runs)]) if runs else None


def figure_steps(ctx: Context) -> list[Step]:
    """The figures and tables of the report (landscape.figures), and the coupling benchmark fig:cost draws."""
    from ..figures.comparison import Comparison
    from ..figures.cost import CostFigure
    from ..figures.dsmm_table import DSMMTable
    from ..figures.estimators import EstimatorsFigure
    from ..figures.nbins import NbinsTable
    from ..figures.ptq_table import PTQTable
    from ..figures.vq_ablation import VQAblationFigure

    b = ctx.budget
    bench = ctx.figure("bench_coupling", ".json")
    return [
        FigureStep("fig:fig3", fig3_spec, ("fig3_protocols", "_summary.csv")),
        FigureStep("fig:fig3-compare", lambda c: fig3_spec(c, compare=True), ("fig3_compare", "_summary.csv")),
        FigureStep("fig:paths", paths_spec, ("paths_cwc", ".csv")),
        FigureStep("fig:mixed", mixed_spec, ("mixed_precision", ".csv")),
        FigureStep("fig:seeds", seeds_spec, ("seeds_clusters", ".png")),
        FigureStep("fig:alpha", alpha_spec, ("alpha_fit", ".csv")),
        FigureStep("fig:estimators", lambda c: EstimatorsFigure(studies=ESTIMATOR_STUDIES, dir=str(c.studies)),
                   ("estimators_force", ".csv")),
        FigureStep("fig:nbins", lambda c: NbinsTable(study="nbins", dir=str(c.studies)), ("nbins", ".csv")),
        FigureStep("table:ptq", lambda c: PTQTable(arch=b.arch, checkpoint=local_checkpoint(c), bits=(2, 3, 4),
                                                   methods=("uniform", "heq", "kmeans")), ("ptq_table", ".csv")),
        FigureStep("table:dsmm", lambda c: DSMMTable(studies=("dsmm", "dsmm-alpha10"), dir=str(c.studies),
                                                     limit=10_000), ("dsmm_ptq", ".csv")),
        *[methods_step(seed, i == 0) for i, seed in enumerate(b.sweep_seeds)],
        # a benchmark times itself in a fresh process of its own (no state of this one in its numbers): a command
        CommandStep("bench:coupling", lambda c: [[PY, str(c.repo / "bench" / "coupling.py"), "--quick", "--json",
                                                  "--out", str(bench)]], lambda c: [bench]),
        FigureStep("fig:cost", lambda c: CostFigure(bench=str(bench)), ("coupling_cost", ".csv")),
        FigureStep("table:comparison", lambda c: Comparison(studies=COMPARISON_STUDIES, dir=str(c.studies),
                                                            matched="cmp-sq", limit=b.limit_test),
                   ("comparison", ".csv")),
        FigureStep("table:comparison-long", longer_spec, ("comparison-long", ".csv")),
        FigureStep("table:nas", lambda c: Comparison(studies=NAS_STUDIES, dir=str(c.studies), ptq=(),
                                                     limit=b.limit_test, stem="nas_comparison"),
                   ("nas_comparison", ".csv")),
        FigureStep("fig:nas-allocation", nas_allocation_spec, ("nas_allocation", ".csv")),
        FigureStep("table:vq-ablation", lambda c: VQAblationFigure(studies=VQ_ABLATION_STUDIES, dir=str(c.studies)),
                   ("vq_ablation", "_summary.csv")),
    ]


def steps(ctx: Context) -> list[Step]:
    """Every step of the report at this budget."""
    out: list[Step] = [StudyStep(d) for d in STUDIES]
    out += [LongerStudyStep(StudyDef(name, "", {}, lambda b: b.cmp_seeds, lambda b: b.cmp_long_epochs), rank=rank)
            for rank, name in enumerate(LONGER, 1)]
    out += [ReportStep(n) for n in ("sq", "fig2")] + [ReportStep(n, ptq=False) for n in ("cwc", "dsmm")]
    out += [PerturbStep(*d, p) for d in displacements(ctx) for p in PROTOCOLS]
    out += figure_steps(ctx)
    return out
