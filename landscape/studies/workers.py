"""The worker processes of one study on this machine (`landscape study run -j N`): N processes started by
`multiprocessing` (spawn: a fresh interpreter each, as CUDA and threads need), each opening the study from its
storage URL and training trials by `run_worker` until none is left. Their standard output comes back to the
caller line by line (the command shows it above its progress bar); each worker's exit status is returned.

Why processes, not threads: a run is CPU- or GPU-bound PyTorch work; separate processes give each worker its own
threads and device, and a worker killed mid-run leaves a trial the others (or a rerun) retry, as on many machines.

    >>> spec = WorkerSpec(storage="studies/sq/journal.log", name="sq", threads=1)
    >>> spec.device, spec.eval_batch_size
    ('cpu', 500)
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import LandscapeError
from .engine import HEARTBEAT_S


@dataclass(frozen=True)
class WorkerSpec:
    """What every worker of `study run` shares: the study, where its runs train, and each worker's threads.

        >>> WorkerSpec(storage="studies/sq/journal.log", name="sq", threads=0)
        Traceback (most recent call last):
        ...
        ValueError: threads must be ≥ 1, got 0
    """

    storage: str  # Optuna storage URL or journal file of the study
    name: str  # the study's name in that storage
    device: str = "cpu"  # torch device; `cuda` deals the workers out over the visible GPUs (accel.worker_device)
    data: str | None = None  # the data folder (None: the default places)
    download: bool = False  # let torchvision download CIFAR-10 where no local copy is found
    eval_batch_size: int = 500  # images per evaluation batch
    threads: int = 1  # torch (and OpenMP) threads per worker
    heartbeat_s: int = HEARTBEAT_S  # RDB storages: heartbeat period of a running trial (s)

    def __post_init__(self):
        if self.threads < 1:
            raise ValueError(f"threads must be ≥ 1, got {self.threads}")
        if self.eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be ≥ 1 image, got {self.eval_batch_size}")


def worker(spec: WorkerSpec, index: int) -> int:
    """Be worker `index` of the study in this process: train its trials until none is left.

    Args:
        spec: the study and the settings every worker shares.
        index: this worker's number (0-based; it picks the GPU under `device="cuda"` and names the worker).

    Returns:
        The number of trials this worker finished.

    >>> import tempfile
    >>> worker(WorkerSpec(storage=f"{tempfile.mkdtemp()}/journal.log", name="none"), 0)
    Traceback (most recent call last):
    ...
    landscape.errors.LandscapeError: no study named 'none' here (no journal file ...); create it with `study create`
    """
    import torch

    from .. import accel
    from ..distributed import usable_device
    from .engine import open_study, worker_name
    from .runs import run_worker

    torch.set_num_threads(spec.threads)
    study, study_spec = open_study(spec.storage, spec.name, heartbeat_s=spec.heartbeat_s)
    dev = usable_device(accel.worker_device(spec.device, index))  # `cuda`: the workers share out the GPUs
    return run_worker(study, study_spec, device=str(dev), data=spec.data, download=spec.download,
                      eval_batch_size=spec.eval_batch_size, worker=worker_name(index))


class _Lines:
    """A text stream that sends every complete line to a queue (a worker's stdout, for its parent)."""

    def __init__(self, lines):
        self.lines, self.buffer = lines, ""

    def write(self, text: str) -> int:
        self.buffer += text
        *complete, self.buffer = self.buffer.split("\n")
        for line in complete:
            self.lines.put(line)
        return len(text)

    def flush(self) -> None:
        pass


def _process(spec: WorkerSpec, index: int, lines) -> None:
    """A worker process's body: stdout to the parent, a user error as one line on stderr and exit status 2."""
    sys.stdout = _Lines(lines)
    try:
        worker(spec, index)
    except (LandscapeError, ValueError) as e:
        print(f"study worker {index}: error: {e}", file=sys.stderr)
        sys.exit(2)


def run_workers(spec: WorkerSpec, n: int, *, on_line: Callable[[str], None] = print,
                poll: Callable[[], None] | None = None, every_s: float = 2.0) -> list[int]:
    """Start `n` worker processes of the study and wait for them.

    Args:
        spec: the study and the settings every worker shares.
        n: how many workers (≥ 1).
        on_line: called with every line a worker prints (default: print it).
        poll: called every `every_s` seconds while the workers run (the command redraws its progress bar).
        every_s: seconds between polls.

    Returns:
        Each worker's exit status (0: it finished; the study is complete unless another machine still works on it).

    A KeyboardInterrupt (or SIGTERM turned into one by the caller) terminates the workers, then propagates: their
    trials are retried by the next `study run`.

    >>> run_workers(WorkerSpec(storage="studies/sq/journal.log", name="sq"), 0)
    Traceback (most recent call last):
    ...
    ValueError: n must be ≥ 1 worker, got 0
    """
    if n < 1:
        raise ValueError(f"n must be ≥ 1 worker, got {n}")
    ctx = multiprocessing.get_context("spawn")
    lines = ctx.Queue()
    saved = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(spec.threads)  # a spawned interpreter reads it at start
    try:
        procs = [ctx.Process(target=_process, args=(spec, i, lines), name=f"study-worker-{i}") for i in range(n)]
        for p in procs:
            p.start()
    finally:
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved

    def drain(timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                on_line(lines.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                return

    try:
        while any(p.is_alive() for p in procs):
            drain(every_s)
            if poll is not None:
                poll()
    except BaseException:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join(timeout=10)
        raise
    for p in procs:
        p.join()
    drain(0.2)  # lines written just before a worker ended
    return [p.exitcode for p in procs]
