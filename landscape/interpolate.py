"""`python -m landscape.interpolate` = `landscape interpolate` (the command lives in landscape/cli/interpolate.py)."""

from .cli.interpolate import *  # noqa: F403  (its public names, for `from landscape.interpolate import …`)
from .cli.interpolate import main

if __name__ == "__main__":
    from .cli import run

    run(main, "landscape.interpolate")
