"""Result files written atomically (temporary name, then rename): CSV tables and JSON objects."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from pathlib import Path

from .errors import LandscapeError


def write_csv(path: Path, rows: list[Mapping]) -> Path:
    """Rows (dicts) as CSV; the columns are the union of the rows' keys in first-seen order (blank if absent)."""
    if not rows:
        raise LandscapeError(f"nothing to write to {path}")
    columns = list(dict.fromkeys(k for row in rows for k in row))
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
    return path


def write_json(path: Path, obj) -> Path:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path


def check_out(path: str | os.PathLike, force: bool) -> Path:
    """An output path that may be written: refuses to overwrite without --force and checks the folder is
    writable, before any work is done."""
    path = Path(path)
    if path.exists() and not force:
        raise LandscapeError(f"{path} exists; pass --force to overwrite it")
    folder = path.parent if str(path.parent) else Path(".")
    if folder.exists() and not folder.is_dir():
        raise LandscapeError(f"cannot write {path}: {folder} is a file, not a folder")
    if path.is_dir():
        raise LandscapeError(f"cannot write {path}: it is a folder")
    if folder.exists() and not os.access(folder, os.W_OK):
        raise LandscapeError(f"cannot write to {folder}/ (permission denied)")
    if not folder.exists():
        try:
            folder.mkdir(parents=True)
        except OSError as e:
            raise LandscapeError(f"cannot create {folder}/ ({e.strerror})") from None
    return path
