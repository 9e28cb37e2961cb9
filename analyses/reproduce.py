"""`python analyses/reproduce.py` = `landscape reproduce` (the engine lives in landscape/reproduce/)."""

import common  # noqa: F401  (puts the checkout first on sys.path)

from landscape.cli import run
from landscape.cli.reproduce import main

if __name__ == "__main__":
    run(main, "analyses/reproduce.py")
