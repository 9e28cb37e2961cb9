"""`python -m landscape.export` = `landscape export` (the command lives in landscape/cli/export.py)."""

from .cli.export import *  # noqa: F403  (its public names, for `from landscape.export import …`)
from .cli.export import main

if __name__ == "__main__":
    from .cli import run

    run(main, "landscape.export")
