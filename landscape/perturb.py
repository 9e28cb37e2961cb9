"""`python -m landscape.perturb` = `landscape perturb` (the command lives in landscape/cli/perturb.py)."""

from .cli.perturb import *  # noqa: F403  (its public names, for `from landscape.perturb import …`)
from .cli.perturb import main

if __name__ == "__main__":
    from .cli import run

    run(main, "landscape.perturb")
