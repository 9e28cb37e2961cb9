"""The reproduction engine: run (or resume) every step behind REPRODUCTION.md, compute the rows, keep the ledger.

Resumable. A finished step is recorded in reproduction/<budget>/ledger.json with the digest of its key (steps.py)
and what it did; a step whose digest is recorded and whose outputs exist is skipped. A step interrupted half way
resumes inside its own tool: a study keeps its finished runs (Optuna journal, run files with checkpoints), a
perturbation test journals each evaluation. Each step's output goes to reproduction/<budget>/logs/<step>.log.
Row results are stored in reproduction/<budget>/rows/<row>.json (committed, so the report can be regenerated on a
machine without the run files); a row is *stale* when a step it reads is missing, has changed its key, or
finished after the row was computed, or when its rule (its function in rules.py / rules_bl.py and the helpers it
calls) changed — `landscape reproduce --status` lists them, and a run recomputes them.

More machines: the studies are Optuna studies — start `landscape study run NAME --dir DIR` on every machine
against a shared PostgreSQL storage (docs: scaling), and the perturbation tests run under torchrun; the engine
then finds them done. The time every step took is in the ledger; the report's header sums it.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import inspect
import json
import os
import subprocess
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import claims
from .budgets import Context
from .report import cpu_hours
from .steps import CommandStep, Step, StepFailed, steps


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@dataclass
class Ledger:
    """reproduction/<budget>/ledger.json: step name → {digest, what (or commands), seconds, finished}."""

    path: Path
    steps: dict = field(default_factory=dict)
    changed: set = field(default_factory=set)  # the steps this process recorded (only these are written back)

    @classmethod
    def load(cls, path: Path) -> Ledger:
        return cls(path, cls._read(path))

    @staticmethod
    def _read(path: Path) -> dict:
        return json.loads(path.read_text())["steps"] if path.is_file() else {}

    def record(self, name: str, entry: dict) -> None:
        self.steps[name] = entry
        self.changed.add(name)
        self.save()

    def save(self) -> None:
        """Merge this process's entries into the ledger on disk (another invocation may have recorded steps since
        this one loaded it: writing the whole in-memory copy back once lost them), then write atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.steps = {**self._read(self.path), **{n: self.steps[n] for n in self.changed}}
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"steps": self.steps}, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, self.path)


class Engine:
    """The steps and rows of one budget (`ctx`); `log` gets one line per event (print by default).

    Args:
        ctx: the budget and its folders (`Context.for_budget`); the ledger is `ctx.work`/ledger.json.
        log (Callable[[str], None]): called with one line per event.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from landscape.reproduce import Context, budget_for_tests
        >>> tmp = tempfile.TemporaryDirectory()
        >>> engine = Engine(Context.for_budget(budget_for_tests("tiny.pt"), root=Path(tmp.name)), log=print)
        >>> sorted({name.split(":")[0] for name in engine.steps}), engine.ledger.steps
        (['bench', 'fig', 'perturb', 'report', 'study', 'table'], {})
        >>> tmp.cleanup()
    """

    def __init__(self, ctx: Context, *, log=print):
        self.ctx, self.log = ctx, log
        self.ledger = Ledger.load(ctx.work / "ledger.json")
        self.steps: dict[str, Step] = {s.name: s for s in steps(ctx)}

    # -- steps -------------------------------------------------------------------------------------------------
    def done(self, name: str) -> bool:
        """Whether step `name` is done: in the ledger under its current digest, and its outputs exist.

        Args:
            name: the step's name (`kind:what`, a key of `steps`).

        Returns:
            True when the step need not run again.

        Examples:
            >>> import tempfile
            >>> from pathlib import Path
            >>> from landscape.reproduce import Context, budget_for_tests, select
            >>> tmp = tempfile.TemporaryDirectory()
            >>> engine = Engine(Context.for_budget(budget_for_tests("tiny.pt"), root=Path(tmp.name)), log=print)
            >>> engine.done("study:sq")
            False
            >>> tmp.cleanup()
        """
        entry = self.ledger.steps.get(name)
        step = self.steps[name]
        return (entry is not None and entry["digest"] == step.digest(self.ctx)
                and all(Path(p).exists() for p in step.outputs(self.ctx)))

    def run_step(self, name: str, *, dry_run: bool = False) -> bool:
        """Run step `name` unless it is done, its output going to its log under `ctx.work`/logs, and record it in
        the ledger; a failed step is reported (the last lines of its log), not raised.

        Args:
            name: the step's name (a key of `steps`).
            dry_run: only say what the step would do.

        Returns:
            True when the step is done (or, with `dry_run`, could run); False when it failed or its inputs are
                missing.

        Examples:
            >>> import tempfile
            >>> from pathlib import Path
            >>> from landscape.reproduce import Context, budget_for_tests, select
            >>> tmp = tempfile.TemporaryDirectory()
            >>> engine = Engine(Context.for_budget(budget_for_tests("tiny.pt"), root=Path(tmp.name)), log=print)
            >>> engine.run_step("study:sq", dry_run=True)  # doctest: +ELLIPSIS
              [study:sq] study sq: weight-coupling, grid h=0.001,0.05 w=0.3, seeds 0, 1 epoch(s) from tiny.pt (...)
            True
            >>> tmp.cleanup()
        """
        step = self.steps[name]
        digest = step.digest(self.ctx)
        if digest is None:
            self.log(f"  {name}: waiting for its inputs (an earlier step failed or did not run)")
            return False
        if self.done(name):
            return True
        if dry_run:
            for line in step.describe(self.ctx):
                self.log(f"  [{name}] {line}")
            return True
        log_path = self.ctx.work / "logs" / f"{name.replace(':', '_').replace('/', '_')}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        self.log(f"  {name}: running (progress: tail -f {os.path.relpath(log_path)})")
        what = step.describe(self.ctx)  # once: a study step's description builds its spec (hashing the checkpoint)
        with open(log_path, "a") as log:
            log.write(f"\n# {name} at {now()}: {'; '.join(what)}\n")
            log.flush()
            try:  # the step's own output (progress bars, trial lines) goes to its log, not to this terminal
                with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                    step.execute(self.ctx, log)
            except Exception as e:  # a failed step is reported; the rows that need it wait, the others go on
                if not isinstance(e, StepFailed):
                    log.write(traceback.format_exc())
                log.flush()
                tail = log_path.read_text().splitlines()[-5:]
                self.log(f"  {name}: FAILED ({e}) — last lines of {log_path}:\n    " + "\n    ".join(tail))
                return False
        self.ledger.record(name, {"what": what, "digest": digest,
                                  "seconds": round(time.perf_counter() - start, 1), "finished": now()})
        self.log(f"  {name}: done in {time.perf_counter() - start:.0f} s")
        return True

    def migrate(self) -> tuple[int, list[str]]:
        """Re-key the ledger entries the command engine recorded for steps that are typed now (studies, study
        reports, perturbation tests, figures and tables: they were `landscape study|perturb` and `python
        analyses/<script>` commands) under their key's digest,
        and the stored rows that read them; returns (migrated, steps whose key cannot be computed here yet —
        e.g. a perturbation test whose study's run files are elsewhere). The entry keeps its recorded commands.

        Returns:
            (the number of entries re-keyed, the names of the steps whose key cannot be computed yet).

        Examples:
            >>> import tempfile
            >>> from pathlib import Path
            >>> from landscape.reproduce import Context, budget_for_tests, select
            >>> tmp = tempfile.TemporaryDirectory()
            >>> engine = Engine(Context.for_budget(budget_for_tests("tiny.pt"), root=Path(tmp.name)), log=print)
            >>> engine.migrate()  # an empty ledger: nothing to re-key
            (0, [])
            >>> tmp.cleanup()
        """
        moved, waiting = {}, []
        for name, entry in self.ledger.steps.items():
            step = self.steps.get(name)
            if step is None or isinstance(step, CommandStep) or "what" in entry or "migrated" in entry:
                continue
            digest = step.digest(self.ctx)
            if digest is None:
                waiting.append(name)
                continue
            moved[name] = (entry["digest"], digest)
            entry.update(digest=digest, migrated=now())
            self.ledger.changed.add(name)
        if moved:
            self.ledger.save()
            for path in sorted((self.ctx.work / "rows").glob("*.json")):
                stored = json.loads(path.read_text())
                keyed = {n: moved[n][1] if n in moved and d == moved[n][0] else d
                         for n, d in stored.get("steps", {}).items()}
                if keyed != stored.get("steps", {}):
                    path.write_text(json.dumps({**stored, "steps": keyed}, indent=1, default=float) + "\n")
        return len(moved), waiting

    def record_training_time(self) -> None:
        """Store in the ledger the training time of every study step's runs (Optuna keeps each run's seconds): a
        study resumed or shared with other workers took longer than its step's wall time here.

        Examples:
            >>> import tempfile
            >>> from pathlib import Path
            >>> from landscape.reproduce import Context, budget_for_tests, select
            >>> tmp = tempfile.TemporaryDirectory()
            >>> engine = Engine(Context.for_budget(budget_for_tests("tiny.pt"), root=Path(tmp.name)), log=print)
            >>> engine.record_training_time()  # no study step in the ledger: nothing changes
            >>> engine.ledger.steps
            {}
            >>> tmp.cleanup()
        """
        changed = False
        for name, entry in self.ledger.steps.items():
            if name.startswith("study:"):
                seconds = sum(r.get("seconds") or 0.0 for r in self.ctx.study_rows(name.split(":", 1)[1]))
                if seconds and entry.get("trial_seconds") != round(seconds, 1):
                    entry["trial_seconds"], changed = round(seconds, 1), True
                    self.ledger.changed.add(name)
        if changed:
            self.ledger.save()

    # -- rows --------------------------------------------------------------------------------------------------
    def row_path(self, row: claims.Row) -> Path:
        """Where the stored result of `row` lives: `ctx.work`/rows/<id>.json.

        Args:
            row: a row of the report (`claims.rows`).

        Returns:
            The path (it may not exist yet).

        Examples:
            >>> import tempfile
            >>> from pathlib import Path
            >>> from landscape.reproduce import Context, budget_for_tests, select
            >>> tmp = tempfile.TemporaryDirectory()
            >>> engine = Engine(Context.for_budget(budget_for_tests("tiny.pt"), root=Path(tmp.name)), log=print)
            >>> engine.row_path(select(["sq-bits"])[0]).relative_to(tmp.name)
            PosixPath('reproduction/test/rows/sq-bits.json')
            >>> tmp.cleanup()
        """
        return self.ctx.work / "rows" / f"{row.id}.json"

    def stale(self, row: claims.Row) -> str | None:
        """Why the stored result of `row` is out of date (None: current).

        Args:
            row: a row of the report.

        Returns:
            The reason ("not computed", "step S changed since", …), or None when the stored result is current.

        Examples:
            >>> import tempfile
            >>> from pathlib import Path
            >>> from landscape.reproduce import Context, budget_for_tests, select
            >>> tmp = tempfile.TemporaryDirectory()
            >>> engine = Engine(Context.for_budget(budget_for_tests("tiny.pt"), root=Path(tmp.name)), log=print)
            >>> engine.stale(select(["sq-bits"])[0])
            'not computed'
            >>> tmp.cleanup()
        """
        path = self.row_path(row)
        if not path.is_file():
            return "not computed"
        stored = json.loads(path.read_text())
        for name in row.steps(self.ctx):
            entry = self.ledger.steps.get(name)
            if entry is None:
                return f"step {name} not done"
            if stored.get("steps", {}).get(name) != entry["digest"]:
                return f"step {name} changed since"
            if entry["finished"] > stored["computed"]:
                return f"step {name} rerun since"
        if stored.get("rule") != rule_digest(row):
            return "its evaluation (landscape/reproduce/rules*.py) changed since"
        return None

    def compute(self, row: claims.Row) -> dict:
        """Evaluate `row` from its steps' outputs (its rule, rules*.py) and store the result at `row_path(row)`.

        Args:
            row: a row whose steps are done.

        Returns:
            The stored result: id, budget, computed, commit, rule and step digests, and the rule's verdict and
                numbers.

        Examples:
            >>> import tempfile
            >>> from pathlib import Path
            >>> from landscape.reproduce import Context, budget_for_tests, select
            >>> tmp = tempfile.TemporaryDirectory()
            >>> engine = Engine(Context.for_budget(budget_for_tests("tiny.pt"), root=Path(tmp.name)), log=print)
            >>> engine.compute(select(["sq-bits"])[0])  # its steps have not run: their outputs are missing
            Traceback (most recent call last):
            ...
            FileNotFoundError: ...
            >>> tmp.cleanup()
        """
        result = row.evaluate(self.ctx)
        stored = {"id": row.id, "budget": self.ctx.budget.name, "computed": now(), "commit": git_commit(),
                  "rule": rule_digest(row), "steps": {n: self.ledger.steps[n]["digest"] for n in row.steps(self.ctx)},
                  **result}
        path = self.row_path(row)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stored, indent=1, default=float) + "\n")
        return stored

    def run_rows(self, rows: list[claims.Row], *, dry_run: bool = False, keep_going: bool = True) -> int:
        """Run every step of `rows` that is not done, then evaluate each testable row whose result is stale.

        Args:
            rows: rows of the report (`claims.select`).
            dry_run: only say what each step would do.
            keep_going: go on after a failed step (False: stop at the first).

        Returns:
            0 when every row was evaluated (or is current), 1 when a step or an evaluation failed.

        Examples:
            >>> import tempfile
            >>> from pathlib import Path
            >>> from landscape.reproduce import Context, budget_for_tests, select
            >>> tmp = tempfile.TemporaryDirectory()
            >>> engine = Engine(Context.for_budget(budget_for_tests("tiny.pt"), root=Path(tmp.name)), log=print)
            >>> engine.run_rows(select(["sq-bits"]), dry_run=True)  # doctest: +ELLIPSIS
            [1/1] sq-bits: (h, w) = (0.05, 0.3) gives ≈ 3.8 mean bits on ResNet-20/CIFAR-10, more accurate than ...
              [study:sq] study sq: weight-coupling, grid h=0.001,0.05 w=0.3, seeds 0, 1 epoch(s) from tiny.pt (...)
              [report:sq] report of study sq → ...
            0
            >>> tmp.cleanup()
        """
        failed = 0
        for i, row in enumerate(rows, 1):
            names = row.steps(self.ctx)
            self.log(f"[{i}/{len(rows)}] {row.id}: {row.claim}")
            ok = True
            for name in names:
                ok = self.run_step(name, dry_run=dry_run) and ok
                if not ok and not keep_going:
                    return 1
            if dry_run or not row.testable:
                continue
            if not ok:
                failed += 1
                continue
            reason = self.stale(row)
            if reason is None:
                self.log("  result current")
                continue
            try:
                result = self.compute(row)
            except Exception as e:  # a row that cannot be evaluated is reported, not fatal to the others
                failed += 1
                self.log(f"  {row.id}: could not evaluate: {type(e).__name__}: {e}")
                continue
            self.log(f"  → {result['verdict']}: {result['result']}")
        return 1 if failed else 0

    def status(self, rows: list[claims.Row]) -> None:
        """Log, per row, how many of its steps are done and whether its stored result is current; then the budget's
        steps done and their hours.

        Args:
            rows: rows of the report.

        Examples:
            >>> import tempfile
            >>> from pathlib import Path
            >>> from landscape.reproduce import Context, budget_for_tests, select
            >>> tmp = tempfile.TemporaryDirectory()
            >>> engine = Engine(Context.for_budget(budget_for_tests("tiny.pt"), root=Path(tmp.name)), log=print)
            >>> engine.status(select(["sq-bits"]))  # doctest: +ELLIPSIS
            sq-bits            steps 0/2 done; result STALE: not computed
            budget test: 0 steps done, 0.00 hours of steps on this machine (...)
            >>> tmp.cleanup()
        """
        for row in rows:
            if not row.testable:
                self.log(f"{row.id:<18} not testable here")
                continue
            names = row.steps(self.ctx)
            done = sum(self.done(n) for n in names)
            reason = self.stale(row)
            self.log(f"{row.id:<18} steps {done}/{len(names)} done; result "
                     f"{'current' if reason is None else 'STALE: ' + reason}")
        self.record_training_time()
        self.log(f"budget {self.ctx.budget.name}: {len(self.ledger.steps)} steps done, "
                 f"{cpu_hours(self.ledger.steps):.2f} hours of steps on this machine (a study counts its runs' "
                 f"summed training time where that is longer than its step)")


RULE_MODULES = "landscape.reproduce.rules"  # rules.py, rules_bl.py: the rows' numbers and verdict rules


def rule_sources(fn: Callable) -> dict[str, str]:
    """Qualified name → source of `fn` and of every function of the rule modules (rules.py, rules_bl.py) that it
    names, transitively (a helper such as rules.spearman belongs to the rule of every row that calls it).
    Functions of other modules (the toolkit) are not followed: they are code under test, not the rule."""
    found, todo = {}, [fn]
    while todo:
        f = todo.pop()
        if f.__qualname__ in found:
            continue
        found[f.__qualname__] = inspect.getsource(f)
        names, codes = set(), [f.__code__]
        while codes:  # names used in the function and in its nested functions, lambdas and comprehensions
            code = codes.pop()
            names |= set(code.co_names)
            codes += [c for c in code.co_consts if inspect.iscode(c)]
        todo += [g for n in sorted(names)
                 if inspect.isfunction(g := f.__globals__.get(n)) and g.__module__.startswith(RULE_MODULES)]
    return found


def rule_digest(row: claims.Row) -> str:
    """A digest of the source of the row's evaluation function and its helpers: a changed rule makes its stored
    result stale."""
    sources = rule_sources(row.evaluate)
    return hashlib.sha256("\n".join(sources[k] for k in sorted(sources)).encode()).hexdigest()[:16]


def git_commit() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, text=True,
                                       stderr=subprocess.DEVNULL).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"




def stale_rows(repo: Path, budgets) -> dict[tuple[str, str], str]:
    """(budget, row id) → why its stored result is out of date, for every stored row of `budgets` (the report
    marks them)."""
    stale = {}
    for budget in budgets:
        eng = Engine(Context.for_budget(budget, repo), log=print)
        eng.record_training_time()
        stale |= {(budget.name, row.id): why for row in claims.rows() if row.testable and eng.row_path(row).is_file()
                  and (why := eng.stale(row))}
    return stale
