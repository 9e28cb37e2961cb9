"""`python -m landscape.surface` = `landscape surface` (the command lives in landscape/cli/surface.py)."""

from .cli.surface import *  # noqa: F403  (its public names, for `from landscape.surface import …`)
from .cli.surface import main

if __name__ == "__main__":
    from .cli import run

    run(main, "landscape.surface")
