"""What every figure and table job shares: its spec's common fields, the result it returns, and the registry that
maps a spec's type to the function that makes it.

A figure job is a frozen spec (a subclass of `FigureSpec`) and one function `make(spec) -> FigureResult` that
computes, draws and writes `<out_dir>/<stem>.png`, `.csv` and `.config.json` (the spec as JSON, and the facts the
figure found). The scripts of `analyses/` parse argv into the spec; the demo and the reproduction engine build it
in Python. `landscape.figures.make(spec)` runs any of them.

    >>> import dataclasses
    >>> @dataclasses.dataclass(frozen=True)
    ... class Example(FigureSpec):
    ...     STEM = "example"
    >>> spec = Example(out_dir="/tmp/figs", limit=100)
    >>> spec.name, spec.paths()[".csv"].name
    ('example', 'example.csv')
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..errors import LandscapeError
from ..outputs import check_out, write_json
from ..specs import DataSource

SPLITS = ("test", "train", "both")  # the evaluated images of the figures that take a split (as `landscape interpolate`)


@dataclass(frozen=True)
class FigureSpec:
    """The fields every figure job has: where it writes, on which images and device it evaluates (a figure's spec
    subclasses it, adding its own fields, and sets its STEM and SUFFIXES).

        >>> FigureSpec(out_dir="figs", limit=500).batch_size
        500
        >>> FigureSpec(limit=0)
        Traceback (most recent call last):
        ...
        ValueError: limit must be ≥ 1 image, got 0
    """

    out_dir: str = "figures"  # folder of the PNG, CSV and config JSON (created if missing)
    stem: str = ""  # output names <stem>.png/.csv/.config.json ("": the figure's own STEM)
    force: bool = False  # overwrite this figure's existing outputs (else refuse before any work)
    limit: int | None = 1000  # first N images of the evaluated split (class-balanced prefix; None: all)
    batch_size: int = 500  # images per evaluation batch
    data: DataSource = field(default_factory=DataSource)  # where the images are, and which dataset
    device: str = "cpu"  # torch device
    quiet: bool = False  # no progress lines on stderr

    STEM: ClassVar[str] = ""  # default output stem of the figure
    SUFFIXES: ClassVar[tuple[str, ...]] = (".png", ".csv", ".config.json")

    def __post_init__(self):
        object.__setattr__(self, "out_dir", str(self.out_dir))
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be ≥ 1 image, got {self.limit}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1 image, got {self.batch_size}")

    @property
    def name(self) -> str:
        """The output stem: `stem`, else the figure's STEM.

        >>> FigureSpec(stem="paths-both").name
        'paths-both'
        """
        return self.stem or self.STEM

    def paths(self, suffixes: Iterable[str] | None = None) -> dict[str, Path]:
        """The output paths, not checked.

        Args:
            suffixes: which outputs (default: the figure's SUFFIXES).

        Returns:
            suffix → `<out_dir>/<name><suffix>`.

        >>> import dataclasses
        >>> @dataclasses.dataclass(frozen=True)
        ... class Toy(FigureSpec):
        ...     STEM = "toy"
        >>> Toy(out_dir="figs").paths([".csv"])[".csv"].as_posix()
        'figs/toy.csv'
        """
        return {s: Path(self.out_dir) / f"{self.name}{s}" for s in (self.SUFFIXES if suffixes is None else suffixes)}

    def outputs(self, suffixes: Iterable[str] | None = None) -> dict[str, Path]:
        """`paths`, checked before any work.

        Args:
            suffixes: which outputs (default: the figure's SUFFIXES).

        Returns:
            suffix → path, each one writable (LandscapeError where one exists and `force` is off, or its folder
            cannot be written).

        >>> import dataclasses, tempfile
        >>> @dataclasses.dataclass(frozen=True)
        ... class Toy(FigureSpec):
        ...     STEM = "toy"
        >>> out = tempfile.mkdtemp()
        >>> _ = open(f"{out}/toy.csv", "w").close()
        >>> Toy(out_dir=out).outputs([".csv"])
        Traceback (most recent call last):
        ...
        landscape.errors.LandscapeError: .../toy.csv exists; pass --force to overwrite it
        >>> Toy(out_dir=out, force=True).outputs([".csv"])[".csv"].name
        'toy.csv'
        """
        out = self.paths(suffixes)
        for path in out.values():
            check_out(path, self.force)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready values (what `.config.json` records).

        Returns:
            {"figure": the spec's type name, then every field}.

        >>> import dataclasses
        >>> @dataclasses.dataclass(frozen=True)
        ... class Toy(FigureSpec):
        ...     STEM = "toy"
        >>> Toy(limit=10).to_dict()["limit"], Toy().to_dict()["figure"]
        (10, 'Toy')
        """
        return {"figure": type(self).__name__, **json.loads(json.dumps(dataclasses.asdict(self), default=str))}

    def log(self, message: str) -> None:
        """A progress line on stderr, unless quiet.

        Args:
            message: the line.

        >>> FigureSpec(quiet=True).log("not shown")
        """
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)


@dataclass
class FigureResult:
    """What a figure job wrote and found: `outputs` (a name such as "png" or "csv" → path), `summary` (JSON-ready
    numbers), `lines` (the same for a reader: what a script prints); `flat`: the summary's keys stand beside the
    outputs in `to_dict` (the figures whose script printed them so) instead of under "summary".

        >>> FigureResult({"png": "a.png"}, {"bits": 3.9}).to_dict()
        {'png': 'a.png', 'summary': {'bits': 3.9}}
        >>> FigureResult({"png": "a.png"}, {"bits": 3.9}, flat=True).to_dict()
        {'png': 'a.png', 'bits': 3.9}
    """

    outputs: dict[str, str]
    summary: Any = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    flat: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The outputs and the summary as one JSON-ready object (a script's --json).

        Returns:
            The outputs' names → paths, and the summary (under "summary", or beside them where `flat`).

        >>> FigureResult({"csv": "t.csv"}, [1, 2]).to_dict()
        {'csv': 't.csv', 'summary': [1, 2]}
        """
        return {**self.outputs, **self.summary} if self.flat else {**self.outputs, "summary": self.summary}


def check_bits(bits, empty: str) -> tuple[int, ...]:
    """A figure's bit-widths as a tuple, each an int in 1..16 (the quantizers' range).

    Args:
        bits: the bit-widths given.
        empty: the one-line error for none at all.

    Returns:
        The bit-widths as a tuple; raises ValueError (one line) otherwise.

    >>> check_bits([2, 4], "give at least one bit-width")
    (2, 4)
    >>> check_bits([2, 17], "give at least one bit-width")
    Traceback (most recent call last):
    ...
    ValueError: bits must be in 1..16, got [2, 17]
    """
    bits = tuple(bits)
    if not bits:
        raise ValueError(empty)
    if any(not isinstance(b, int) or isinstance(b, bool) or not 1 <= b <= 16 for b in bits):
        raise ValueError(f"bits must be in 1..16, got {list(bits)}")
    return bits


def write_config(path: Path, spec: FigureSpec, /, **facts) -> Path:
    """`<stem>.config.json`: the spec's fields, the facts the figure found, and when it was written."""
    return write_json(path, {**spec.to_dict(), **facts, "written": time.strftime("%Y-%m-%d %H:%M:%S")})


def test_batches(spec: FigureSpec, run=None):
    """(unaugmented test Batches of the first `spec.limit` images, the device)."""
    from ..distributed import usable_device

    batches, _ = eval_batches(spec, "test", run)
    return batches["test"], usable_device(spec.device)


def bn_batches(spec: FigureSpec, n_batches: int, run=None) -> list:
    """The first `n_batches` unaugmented training batches of `spec.batch_size` images (for BN recalibration), as a
    list so that every recalibration sees exactly the same tensors."""
    from ..bn import recalibration_batches
    from ..distributed import usable_device

    train, _ = spec.data.load(run)
    return recalibration_batches(train, n_batches, spec.batch_size, usable_device(spec.device))


def checkpoint_epochs(path: str | Path) -> dict[int, float]:
    """step → epoch (fractional) of every complete checkpoint of a run file."""
    import h5py

    with h5py.File(path, "r") as f:
        if "checkpoints" not in f:
            return {}
        return {int(g.attrs["step"]): float(g.attrs["epoch"]) for g in f["checkpoints"].values()
                if g.attrs.get("complete", 0) == 1}


def study_runs(name: str, folder: str | Path = "studies", *, storage: str | None = None, method: str | None = None,
               finished: bool = False) -> tuple:
    """(spec, one row per finished run: grid point, seed, run file and numbers) of the study `name`, from its
    journal <folder>/<name>/journal.log or from `storage` (an Optuna storage URL). A one-line LandscapeError where
    `method` is given and the study is of another, or where `finished` and no run has finished yet."""
    from ..studies import engine, report

    study, spec = engine.open_study(storage or f"{folder}/{name}/journal.log", name)
    if method is not None and spec.method != method:
        raise LandscapeError(f"study {name!r} is a {spec.method} study, not {method}")
    rows = report.run_rows(study, spec)
    if finished and not rows:
        raise LandscapeError(f"study {name!r} has no finished runs yet (run it with `study run {name}`)")
    return spec, rows


def energy_gradient(fn, x, *args, **kw) -> tuple:
    """(fn(x′, *args, **kw) detached, the gradient of its sum with respect to x′) for a fresh leaf copy x′ of x, a
    tensor or a list of tensors (then a list of gradients): the energy and force of a coupling estimator."""
    many = isinstance(x, list | tuple)
    leaves = [t.detach().clone().requires_grad_(True) for t in (x if many else [x])]
    energy = fn(leaves if many else leaves[0], *args, **kw)
    energy.sum().backward()  # the layers' energies are independent: each gradient is its own layer's
    grads = [t.grad for t in leaves]
    return energy.detach(), (grads if many else grads[0])


def run_label(run, *, method: bool = True) -> str:
    """A short description of a run's (store.Run) compressor settings, e.g. 'weight-coupling h=0.05 w=0.3'."""
    settings = run.config.get("compressor", {})
    shown = " ".join(f"{k}={settings[k]}" for k in ("h", "w", "quantizer", "bits") if k in settings)
    return f"{run.method} {shown}".strip() if method else (shown or run.method)


MAKERS: dict[type, Callable[[Any], FigureResult]] = {}


def maker(spec_type: type) -> Callable:
    """Register `make` as the function that makes figures of `spec_type` (`landscape.figures.make` dispatches)."""
    def register(fn: Callable) -> Callable:
        MAKERS[spec_type] = fn
        return fn

    return register


def make(spec: FigureSpec) -> FigureResult:
    """Make the figure or table `spec` describes (the function registered for its type).

    Args:
        spec: a figure spec (any `landscape.figures` spec; its module registers its `make`).

    Returns:
        What the figure wrote and found.

    >>> make(FigureSpec())
    Traceback (most recent call last):
    ...
    TypeError: no figure is registered for FigureSpec
    """
    try:
        fn = MAKERS[type(spec)]
    except KeyError:
        raise TypeError(f"no figure is registered for {type(spec).__name__}") from None
    out = Path(spec.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return fn(spec)


def eval_batches(spec: FigureSpec, split: str = "test", run=None) -> tuple[dict, Any]:
    """({"test": …, "train": …} unaugmented Batches of the first `spec.limit` images of each split asked for
    (test, train or both; class-balanced prefixes, as `landscape interpolate --split`), the training split (for BN
    recalibration batches)), on the data `run` (a store.Run or None) recorded unless `spec.data` says otherwise."""
    from ..data import Batches
    from ..distributed import usable_device

    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    dev = usable_device(spec.device)
    train, test = spec.data.load(run)
    names = ["test", "train"] if split == "both" else [split]
    return {s: Batches((test if s == "test" else train).subset(spec.limit), spec.batch_size, train=False,
                       device=dev) for s in names}, train
