"""`python -m landscape.reproduce` = `landscape reproduce`."""

from ..cli import run
from ..cli.reproduce import main

run(main, "landscape.reproduce")
