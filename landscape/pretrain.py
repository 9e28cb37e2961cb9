"""`python -m landscape.pretrain` = `landscape pretrain` (the command lives in landscape/cli/pretrain.py)."""

from .cli.pretrain import *  # noqa: F403  (its public names, for `from landscape.pretrain import …`)
from .cli.pretrain import main

if __name__ == "__main__":
    from .cli import run

    run(main, "landscape.pretrain")
