"""`python -m landscape.ptq` = `landscape ptq` (the command lives in landscape/cli/ptq.py)."""

from .cli.ptq import *  # noqa: F403  (its public names, for `from landscape.ptq import …`)
from .cli.ptq import main

if __name__ == "__main__":
    from .cli import run

    run(main, "landscape.ptq")
