"""`python -m landscape.evaluate` = `landscape evaluate` (the command lives in landscape/cli/evaluate.py)."""

from .cli.evaluate import *  # noqa: F403  (its public names, for `from landscape.evaluate import …`)
from .cli.evaluate import main

if __name__ == "__main__":
    from .cli import run

    run(main, "landscape.evaluate")
