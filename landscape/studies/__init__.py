"""Studies: many compression runs (a grid of settings × seeds, or a multi-objective search) on Optuna, resumable
and shared out over worker processes and machines. `python -m landscape.study` is the command line."""

from .engine import create, load, open_storage, work
from .report import figure, nondominated, ptq_baselines, summary
from .runs import make_run_one, run_summary, run_worker
from .spec import StudySpec, parse_grid, parse_seeds, parse_space

__all__ = ["StudySpec", "create", "figure", "load", "make_run_one", "nondominated", "open_storage", "parse_grid",
           "parse_seeds", "parse_space", "ptq_baselines", "run_summary", "run_worker", "summary", "work"]
