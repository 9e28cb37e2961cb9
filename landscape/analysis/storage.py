"""Where analysis results live: groups /analysis/<kind>/<name> of a run file (or any HDF5 file), written all at
once or not at all, with their settings as attributes; and the PNG a CLI draws beside that file."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import h5py

from ..errors import LandscapeError, RunFileError


@contextlib.contextmanager
def open_for_update(path: str | os.PathLike) -> Iterator[h5py.File]:
    """An HDF5 file opened for changes that land all at once or not at all: an existing run file through
    `store.update` (copy, change, atomic rename); a new file written under a temporary name and renamed."""
    from ..store import update

    path = Path(path)
    if path.exists():
        with update(path) as f:
            yield f
        return
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            yield f
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_name(name: str) -> str:
    if not name or "/" in name or name.startswith(".") or name != name.strip():
        raise ValueError(f"result name {name!r} must be non-empty, without '/', not starting with '.'")
    return name




@contextlib.contextmanager
def new_result(path: str | os.PathLike, group: str, name: str, *, force: bool = False
               ) -> Iterator[tuple[h5py.Group, str]]:
    """(the fresh group /<group>/<name>, its key) in `path`, for a writer to fill: it lands all at once when the
    block ends, or not at all (`open_for_update`); an existing result of that name needs `force`."""
    from ..store import fresh_group

    check_name(name)
    key = f"{group}/{name}"
    with open_for_update(path) as f:
        yield fresh_group(f, key, force=force, where=path), key


def set_attrs(group: h5py.Group, attrs: Mapping) -> None:
    """Settings as attributes (lists, tuples and dicts as JSON; None left out) and a `created` time stamp."""
    group.attrs.update({k: (json.dumps(v) if isinstance(v, (list, tuple, dict)) else v)
                        for k, v in attrs.items() if v is not None})
    group.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def stored(path: str | os.PathLike, group: str) -> list[str]:
    """Names of the results under `group` (e.g. analysis/paths) of an HDF5 file."""
    with h5py.File(path, "r") as f:
        return sorted(k for k in f[group] if not k.startswith(".")) if group in f else []


def open_result(f: h5py.File, group: str, name: str, path) -> h5py.Group:
    """The group /<group>/<name> of an open file, or a one-line error naming what is stored."""
    key = f"{group}/{name}"
    if key not in f:
        have = sorted(k for k in f[group] if not k.startswith(".")) if group in f else []
        raise RunFileError(f"{path} has no /{key} (stored: {', '.join(have) or 'none'})")
    return f[key]


def check_writable(run_path: Path, group: str, name: str, force: bool) -> None:
    """The CLIs' check before any work: the run file may be written and has no result `name` (unless force)."""
    if not os.access(run_path, os.W_OK):
        raise LandscapeError(f"cannot write to {run_path} (permission denied)")
    if name in stored(run_path, group) and not force:
        raise LandscapeError(f"{run_path} already has /{group}/{name}; pass --force or another --name")


def png_path(file: str | os.PathLike, kind: str, name: str) -> Path:
    """Where a CLI puts the PNG of a stored result: beside the file, <stem>.<kind>-<name>.png."""
    file = Path(file)
    return file.with_name(f"{file.stem}.{kind}-{name}.png")


def write_with_png(fig, png: Path, write) -> str:
    """Store a result and the PNG drawn from it together: the figure is saved under a temporary name, `write()`
    stores the result (returning its group key), then the PNG is renamed into place; if the write fails the PNG is
    removed, so neither lands without the other."""
    tmp = png.with_name(f".{png.name}.tmp{os.getpid()}.png")
    fig.savefig(tmp, dpi=130)
    try:
        key = write()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, png)
    return key
