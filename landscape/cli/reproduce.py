"""landscape reproduce: run (or resume) every step behind REPRODUCTION.md and regenerate it.

Each row of the report is one testable claim of the five papers in ../shared/papers/ (landscape/reproduce/
claims.py): the steps it needs (studies, perturbation tests, figure scripts), the rule that turns their outputs
into numbers and a verdict, and the seeds. Steps run one at a time, each logged to
reproduction/<budget>/logs/; a step done is recorded in the ledger and skipped after; a row whose steps or rule
changed is stale and recomputed.

  landscape reproduce --budget quick             every row at the quick budget (~1 CPU-hour here)
  landscape reproduce --budget full              the paper-scale budget (many CPU-hours; resumable)
  landscape reproduce --budget full --status     which steps are done and which rows are stale
  landscape reproduce --budget full --rows sq-bits sq-fig3 [--dry-run]
  landscape reproduce --report                   REPRODUCTION.md from the stored row results only
  landscape reproduce --budget full --migrate    once: re-key a ledger of the command-string engine
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .. import cli
from ..reproduce import BUDGETS, REPO, Context, Engine, select, stale_rows, write_report

PROG = "landscape reproduce"


def parser() -> argparse.ArgumentParser:
    p = cli.Parser(PROG, __doc__)
    p.add_argument("--budget", choices=sorted(BUDGETS), default="quick",
                   help="quick (~1 CPU-hour here) or full (paper-scale; many CPU-hours) (default: quick)")
    p.add_argument("--rows", nargs="+", default=None, metavar="ROW", help="only these rows (default: all)")
    p.add_argument("--status", action="store_true", help="list done steps and stale rows; run nothing")
    p.add_argument("--dry-run", action="store_true", help="print what each step would do")
    p.add_argument("--report", action="store_true", help="only regenerate REPRODUCTION.md from stored rows")
    p.add_argument("--migrate", action="store_true", help="re-key the ledger entries the command-string engine "
                   "recorded for studies, study reports and perturbation tests (once, after upgrading)")
    p.add_argument("--stop-on-failure", action="store_true", help="stop at the first failed step")
    p.add_argument("--device", default="cpu", help="torch device of the studies and perturbation tests "
                   "(default: cpu; the figure scripts run on theirs)")
    p.add_argument("--out", default=str(REPO / "REPRODUCTION.md"), help="the report (default: REPRODUCTION.md)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    rows = select(args.rows)
    code = 0
    if not args.report:
        engine = Engine(Context.for_budget(BUDGETS[args.budget], device=str(cli.device(args.device))))
        if args.migrate:
            moved, waiting = engine.migrate()
            print(f"budget {args.budget}: {moved} ledger entries re-keyed" + (
                f"; {len(waiting)} wait for their inputs (rerun --migrate where their studies are): "
                f"{', '.join(waiting[:3])}{' …' if len(waiting) > 3 else ''}" if waiting else ""))
            return 0
        if args.status:
            engine.status(rows)
            return 0
        code = engine.run_rows(rows, dry_run=args.dry_run, keep_going=not args.stop_on_failure)
        if args.dry_run:
            return code
    # the report marks stored results whose steps changed or reran since
    path = write_report(Path(args.out), REPO, stale=stale_rows(REPO, [BUDGETS["full"], BUDGETS["quick"]]))
    print(f"wrote {os.path.relpath(path)}")
    return code


if __name__ == "__main__":
    cli.run(main, PROG)
