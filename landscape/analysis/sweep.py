"""Many independent evaluations (a path's points, a perturbation test's states), spread over torchrun ranks and
journaled so that a killed job loses only the evaluations in flight.

A sweep is a list of string keys ("0", "1", … or "base", "random/17", …) and a function that evaluates one key.
The function must be a pure function of its key — the callers write the *whole* model state before every
evaluation (paths.StateEvaluator) — so a value does not depend on which rank computed it, in which order, or
whether the job was interrupted in between; that is what makes sharding and resuming exact.

Sharding (under torchrun; one process is the W = 1 case). The keys still to do are dealt out in rounds: in round r
rank k evaluates the (r·W + k)-th of them. After every round the values are gathered on rank 0 (gather_object over
the process group, gloo or nccl), so every rank spends the same number of rounds and nobody waits more than one
evaluation. Only rank 0 writes anything.

Journal. After every round rank 0 rewrites a small JSON file beside the result (`journal_path`): the job's
`fingerprint` (everything that decides the numbers: settings, device type and sha256 digests of the input states)
and every finished value. It is written to a temporary name, fsynced and renamed, so a kill at any moment leaves
the previous or the next journal, never a torn one. JSON stores Python floats by their shortest round-trip repr, so
a value read back is bit-identical to the one computed. On start, rank 0 reads the journal (`Journal.open`) and
broadcasts the finished keys: every rank skips them, whatever the world size of the interrupted job was. A journal
with another fingerprint is never mixed in: opening it is an error naming the differing settings, unless the
caller asks to discard it (the CLIs' --force). The caller removes the journal once the final result is stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import distributed
from ..distributed import World
from ..errors import LandscapeError

JOURNAL_VERSION = 1


def journal_path(result_file: str | os.PathLike, kind: str, name: str) -> Path:
    """Where the journal of result `name` of tool `kind` (paths, perturb) lives: a hidden file beside the file the
    result goes into, `.<file>.<kind>-<name>.journal.json`."""
    result_file = Path(result_file)
    return result_file.with_name(f".{result_file.name}.{kind}-{name}.journal.json")


def state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 of a state dict's names, dtypes, shapes and bytes (in key order): identifies a job's input states."""
    h = hashlib.sha256()
    for name, tensor in state.items():
        array = np.ascontiguousarray(tensor.detach().cpu().numpy())
        h.update(f"{name}|{array.dtype}|{array.shape}|".encode())
        h.update(array.tobytes())
    return h.hexdigest()


@dataclass
class Journal:
    """The finished values of one sweep, kept in `path` (module docstring)."""

    path: Path
    fingerprint: dict
    done: dict[str, object] = field(default_factory=dict)

    @classmethod
    def open(cls, path: str | os.PathLike, fingerprint: Mapping, *, discard_other: bool = False) -> Journal:
        """The journal at `path` if it belongs to `fingerprint` (its finished values kept), else a new empty one.
        A journal of another job, or an unreadable one, is an error unless `discard_other` (it is then replaced at
        the first write). `fingerprint` must be JSON-serialisable."""
        path = Path(path)
        for stale in path.parent.glob(f"{path.name}.tmp-*"):  # left by a writer killed between write and rename
            stale.unlink(missing_ok=True)
        fingerprint = json.loads(json.dumps(dict(fingerprint)))  # as it will read back (tuples → lists, …)
        if not path.exists():
            return cls(path, fingerprint)
        try:
            stored = json.loads(path.read_text())
            other, done = stored["fingerprint"], stored["done"]
            if stored.get("version") != JOURNAL_VERSION or not isinstance(done, dict):
                raise ValueError("unknown layout")
        except (OSError, ValueError, KeyError, TypeError) as e:
            if discard_other:
                return cls(path, fingerprint)
            raise LandscapeError(f"{path} is not a readable journal ({type(e).__name__}: {e}); pass --force to "
                                 f"discard it") from None
        if other != fingerprint:
            if discard_other:
                return cls(path, fingerprint)
            differ = sorted(k for k in set(other) | set(fingerprint) if other.get(k) != fingerprint.get(k))
            raise LandscapeError(f"{path} holds {len(done)} finished evaluations of a different command (differs in: "
                                 f"{', '.join(differ)}); rerun that command to resume it, or pass --force to "
                                 f"discard them")
        return cls(path, fingerprint, dict(done))

    def record(self, values: Mapping[str, object]) -> None:
        """Add finished values and rewrite the journal atomically (temporary name, fsync, rename)."""
        self.done.update(values)
        tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        with open(tmp, "w") as f:
            json.dump({"version": JOURNAL_VERSION, "fingerprint": self.fingerprint, "done": self.done}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def open_journal(result_file: str | os.PathLike | None, kind: str, name: str, settings: Mapping,
                 states: Sequence[Mapping[str, torch.Tensor]], world: World, *, discard_other: bool = False,
                 unit: str = "evaluations") -> Journal | None:
    """The journal of result `name` of tool `kind` beside `result_file` (`journal_path`), for the job that
    `settings` (JSON-serialisable) and the input `states` define, opened on rank 0 (None on the other ranks,
    where result_file may be None). An error there is raised on every rank, so no rank is left waiting in a
    collective that rank 0 never reaches. Says on stderr how many evaluations it resumes from."""
    def main() -> Journal:
        fingerprint = {"tool": kind, "name": name, **settings, "state_sha256": [state_digest(s) for s in states]}
        journal = Journal.open(journal_path(result_file, kind, name), fingerprint, discard_other=discard_other)
        if journal.done:
            print(f"resuming: {len(journal.done)} {unit} already done in {journal.path}", file=sys.stderr)
        return journal

    return distributed.on_main(main, world)


def run_sweep(keys: Sequence[str], evaluate: Callable[[str], object], *, world: World = World(),
              journal: Journal | None = None, progress: bool = False, desc: str = "sweep",
              unit: str = "eval") -> dict[str, object] | None:
    """Every key's value, {key: evaluate(key)}, on rank 0 (None on the others): keys already in `journal` (rank 0's)
    are skipped, the rest dealt out over the ranks round by round, and each round's values journaled."""
    keys = [str(k) for k in keys]
    if len(set(keys)) != len(keys):
        raise ValueError("sweep keys must be unique")
    wanted = set(keys)
    finished = {k: v for k, v in (journal.done if journal is not None else {}).items() if k in wanted}
    done_keys = set(distributed.broadcast(sorted(finished), world))
    todo = [k for k in keys if k not in done_keys]
    bar = tqdm(total=len(keys), initial=len(keys) - len(todo), desc=desc, unit=unit, leave=False,
               disable=not (progress and world.is_main))
    for start in range(0, len(todo), world.size):
        mine = todo[start + world.rank] if start + world.rank < len(todo) else None
        value = evaluate(mine) if mine is not None else None
        gathered = distributed.gather((mine, value), world)
        if world.is_main:
            new = {k: v for k, v in gathered if k is not None}
            finished.update(new)
            if journal is not None:
                journal.record(new)
            bar.update(len(new))
    bar.close()
    if not world.is_main:
        return None
    return {k: finished[k] for k in keys}
