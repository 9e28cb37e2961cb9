"""`python -m landscape.train` = `landscape train` (the command lives in landscape/cli/train.py)."""

from .cli.train import *  # noqa: F403  (its public names, for `from landscape.train import …`)
from .cli.train import main

if __name__ == "__main__":
    from .cli import run

    run(main, "landscape.train")
