"""The papers' figures and tables as library jobs: one frozen spec and one `make` per figure (a module each), and
`make(spec)` to run any of them. The scripts of `analyses/` parse argv into these specs; `make demo` and the
reproduction engine (`landscape.reproduce`) build them in Python.

    >>> from landscape.figures import PathsFigure
    >>> PathsFigure(runs=("runs/wc.h5",), out_dir="figures/demo", limit=1000).paths()[".png"].as_posix()
    'figures/demo/paths.png'
"""

from .base import FigureResult, FigureSpec, make
from .paths import PathsFigure

__all__ = ["FigureResult", "FigureSpec", "PathsFigure", "make"]
