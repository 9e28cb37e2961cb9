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
