"""Reproduction report: run (or resume) every command behind REPRODUCTION.md and regenerate it.

Claim tested: each testable claim of the five papers in ../shared/papers/, one row each (analyses/repro_claims.py
lists them with their commands, the figure or table they test, the verdict rule and the seeds). This script is
the engine: it runs the rows' steps — the toolkit's own commands (`python -m landscape.study create/run`,
`python -m landscape.perturb`, `python analyses/<figure>.py` …) — one at a time, each logged to a file, then reads
their outputs, computes each row's numbers (mean ± std over seeds) and verdict, and writes REPRODUCTION.md.

  python analyses/reproduce.py --budget quick            # every row at the quick budget (~1 CPU-hour here)
  python analyses/reproduce.py --budget full             # the paper-scale budget (many CPU-hours; resumable)
  python analyses/reproduce.py --budget full --status    # which steps are done and which rows are stale
  python analyses/reproduce.py --budget full --rows sq-bits sq-fig3 [--dry-run]
  python analyses/reproduce.py --report                  # REPRODUCTION.md from the stored row results only

Resumable. A finished step is recorded in reproduction/<budget>/ledger.json with its exact command; a step whose
command is recorded and whose outputs exist is skipped. A step interrupted half way resumes inside its own tool:
a study keeps its finished runs (Optuna journal, run files with checkpoints), perturb journals each evaluation.
Row results are stored in reproduction/<budget>/rows/<row>.json (committed, so the report can be regenerated on a
machine without the run files); a row is *stale* when a step it reads is missing, has changed its command, or
finished after the row was computed — `--status` lists them, and a run recomputes them.

More machines: the studies are Optuna studies — start `python -m landscape.study run NAME --dir DIR` on every
machine against a shared PostgreSQL storage (README, "Running on several processes, machines"), and the
perturbation steps run under torchrun; this script then finds them done. The CPU time every step took is in the
ledger; the report's header sums it.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import inspect
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import common  # noqa: F401  (puts the checkout first on sys.path)
import repro_claims as claims
from repro_report import cpu_hours, write_report

from landscape import cli

REPO = common.REPO


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def digest(argv: list[list[str]]) -> str:
    return hashlib.sha256(json.dumps(argv).encode()).hexdigest()[:16]


@dataclass
class Ledger:
    """reproduction/<budget>/ledger.json: step name → {commands, digest, seconds, finished}."""

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


def shown(argv: list[str]) -> str:
    """A command as a reader would type it: `python` for this interpreter, paths relative to the checkout."""
    out = ["python" if a == sys.executable else os.path.relpath(a, REPO) if os.path.isabs(a) and
           a.startswith(str(REPO)) else a for a in argv]
    return shlex.join(out)


class Engine:
    def __init__(self, ctx: claims.Context, *, log=print):
        self.ctx, self.log = ctx, log
        self.ledger = Ledger.load(ctx.work / "ledger.json")
        self.steps = {s.name: s for s in claims.steps(ctx)}

    # -- steps -------------------------------------------------------------------------------------------------
    def commands(self, name: str) -> list[list[str]] | None:
        """The step's commands, or None while an input it needs (e.g. a study's run files) is not there yet."""
        return self.steps[name].commands(self.ctx)

    def done(self, name: str) -> bool:
        entry = self.ledger.steps.get(name)
        cmds = self.commands(name)
        return (entry is not None and cmds is not None and entry["digest"] == digest(cmds)
                and all(Path(p).exists() for p in self.steps[name].outputs(self.ctx)))

    def run_step(self, name: str, *, dry_run: bool = False) -> bool:
        cmds = self.commands(name)
        if cmds is None:
            self.log(f"  {name}: waiting for its inputs (an earlier step failed or did not run)")
            return False
        if self.done(name):
            return True
        if dry_run:
            for c in cmds:
                self.log(f"  [{name}] {shown(c)}")
            return True
        log_path = self.ctx.work / "logs" / f"{name.replace(':', '_').replace('/', '_')}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        self.log(f"  {name}: running {len(cmds)} command{'s' * (len(cmds) > 1)} (progress: tail -f "
                 f"{os.path.relpath(log_path)})")
        with open(log_path, "a") as log:
            for c in cmds:
                log.write(f"\n$ {shown(c)}   # {now()}\n")
                log.flush()
                code = subprocess.call(c, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                       env={**os.environ, "PYTHONUNBUFFERED": "1"})
                if code != 0:
                    tail = log_path.read_text().splitlines()[-5:]
                    self.log(f"  {name}: FAILED (exit {code}) — last lines of {log_path}:\n    " + "\n    ".join(tail))
                    return False
        self.ledger.record(name, {"commands": [shown(c) for c in cmds], "digest": digest(cmds),
                                  "seconds": round(time.perf_counter() - start, 1), "finished": now()})
        self.log(f"  {name}: done in {time.perf_counter() - start:.0f} s")
        return True

    def record_training_time(self) -> None:
        """Store in the ledger the training time of every study step's runs (Optuna keeps each run's seconds): a
        study resumed or shared with other workers took longer than its step's wall time here."""
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
        return self.ctx.work / "rows" / f"{row.id}.json"

    def stale(self, row: claims.Row) -> str | None:
        """Why the stored result of `row` is out of date (None: current)."""
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
            return "its evaluation (analyses/repro_rows*.py) changed since"
        return None

    def compute(self, row: claims.Row) -> dict:
        result = row.evaluate(self.ctx)
        stored = {"id": row.id, "budget": self.ctx.budget.name, "computed": now(), "commit": git_commit(),
                  "rule": rule_digest(row), "steps": {n: self.ledger.steps[n]["digest"] for n in row.steps(self.ctx)},
                  **result}
        path = self.row_path(row)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stored, indent=1, default=float) + "\n")
        return stored

    def run_rows(self, rows: list[claims.Row], *, dry_run: bool = False, keep_going: bool = True) -> int:
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


RULE_MODULES = "repro_rows"  # analyses/repro_rows.py, repro_rows_bl.py: the rows' numbers and verdict rules


def rule_sources(fn: Callable) -> dict[str, str]:
    """Qualified name → source of `fn` and of every function of the rule modules (repro_rows*.py) that it names,
    transitively (a helper such as repro_rows.spearman belongs to the rule of every row that calls it).
    Functions of other modules (the toolkit, analyses/common.py) are not followed: they are code under test,
    not the rule."""
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
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                                       stderr=subprocess.DEVNULL).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def parser() -> argparse.ArgumentParser:
    p = cli.Parser("analyses/reproduce.py", __doc__)
    p.add_argument("--budget", choices=sorted(claims.BUDGETS), default="quick",
                   help="quick (~1 CPU-hour here) or full (paper-scale; many CPU-hours) (default: quick)")
    p.add_argument("--rows", nargs="+", default=None, metavar="ROW", help="only these rows (default: all)")
    p.add_argument("--status", action="store_true", help="list done steps and stale rows; run nothing")
    p.add_argument("--dry-run", action="store_true", help="print the commands that would run")
    p.add_argument("--report", action="store_true", help="only regenerate REPRODUCTION.md from stored rows")
    p.add_argument("--stop-on-failure", action="store_true", help="stop at the first failed step")
    p.add_argument("--out", default=str(REPO / "REPRODUCTION.md"), help="the report (default: REPRODUCTION.md)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    ctx = claims.Context.for_budget(claims.BUDGETS[args.budget], REPO)
    rows = claims.select(args.rows)
    code = 0
    if not args.report:
        engine = Engine(ctx)
        if args.status:
            engine.status(rows)
            return 0
        code = engine.run_rows(rows, dry_run=args.dry_run, keep_going=not args.stop_on_failure)
        if args.dry_run:
            return code
    stale = {}
    for name in ("full", "quick"):  # the report marks stored results whose steps changed or reran since
        eng = Engine(claims.Context.for_budget(claims.BUDGETS[name], REPO), log=print)
        eng.record_training_time()
        stale |= {(name, row.id): why for row in claims.rows() if row.testable and eng.row_path(row).is_file()
                  and (why := eng.stale(row))}
    path = write_report(Path(args.out), REPO, stale=stale)
    print(f"wrote {os.path.relpath(path)}")
    return code


if __name__ == "__main__":
    cli.run(main, "analyses/reproduce.py")
