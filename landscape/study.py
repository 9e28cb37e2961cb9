"""`python -m landscape.study` = `landscape study` (the command lives in landscape/cli/study.py)."""

from .cli.study import *  # noqa: F403  (its public names, for `from landscape.study import …`)
from .cli.study import main

if __name__ == "__main__":
    from .cli import run

    run(main, "landscape.study")
