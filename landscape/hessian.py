"""`python -m landscape.hessian` = `landscape hessian` (the command lives in landscape/cli/hessian.py)."""

from .cli.hessian import *  # noqa: F403  (its public names, for `from landscape.hessian import …`)
from .cli.hessian import main

if __name__ == "__main__":
    from .cli import run

    run(main, "landscape.hessian")
