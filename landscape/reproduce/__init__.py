"""The reproduction report: every testable claim of the five papers in ../shared/papers/, one row each, run by
this toolkit at a budget and written to REPRODUCTION.md (`landscape reproduce`).

- `budgets`: how much is trained and evaluated (`Budget`, `BUDGETS`: quick, full) and where (`Context`);
- `steps`: the typed steps — studies, study reports, perturbation tests, figures and tables as specs run by the
  library (the coupling benchmark alone as a command);
- `claims`: the rows (`Row`, `rows`, `select`): claim, paper, steps, rule;
- `rules`, `rules_bl`: each row's numbers and verdict from its steps' outputs;
- `engine`: the ledger, steps run once and resumed, stale rows; `report`: REPRODUCTION.md from stored rows.

It works in a checkout (studies, figures and ledgers live under it).

    >>> from landscape.reproduce import BUDGETS, Context, Engine
    >>> ctx = Context.for_budget(BUDGETS["quick"])
    >>> sorted({name.split(":")[0] for name in Engine(ctx, log=lambda *a: None).steps})
    ['bench', 'fig', 'perturb', 'report', 'study', 'table']
"""

from .budgets import BUDGETS, REPO, Budget, Context, budget_for_tests
from .claims import Row, rows, select
from .engine import Engine, Ledger, rule_digest, rule_sources, stale_rows
from .report import write_report
from .steps import CommandStep, FigureStep, PerturbStep, ReportStep, Step, StudyStep

__all__ = ["BUDGETS", "REPO", "Budget", "CommandStep", "Context", "Engine", "FigureStep", "Ledger", "PerturbStep",
           "ReportStep", "Row", "Step", "StudyStep", "budget_for_tests", "rows", "rule_digest", "rule_sources",
           "select", "stale_rows", "write_report"]


def __getattr__(name: str):
    if name == "main":  # `python -m landscape.reproduce` = `landscape reproduce` (the command's module, lazily)
        from ..cli.reproduce import main

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
