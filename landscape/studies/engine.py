"""Studies on Optuna: storage, creation, and the worker that trains trials.

Optuna is the engine: its storage holds the study, the queue of trials still to do and every result; its
samplers (TPE, NSGA-II) propose search points; `best_trials` is the Pareto front. What is ours is only what
makes a trial safe to kill, repeat or run twice:

- *Fixed run files with a lock.* A run (point + seed) always writes the same file (spec.run_path). While a
  worker trains a trial it holds an exclusive `flock` on the trial's lock file; the kernel releases it when the
  process dies, SIGKILL included. A trial whose lock is held elsewhere is a duplicate of a live trial: it is
  marked PRUNED (user attr `duplicate`) without training. A finished run file is read back without training; a
  partial one is continued from its last checkpoint (`train.run_training(path, None)`, bit-identical on CPU).
- *Grid = Optuna's trial queue, not GridSampler.* `create` enqueues every grid run (`enqueue_trial`); workers pop
  them with `ask` (Optuna marks a WAITING trial RUNNING atomically in every storage). GridSampler was not used: with
  concurrent workers it re-runs points near the end of the grid and after restarts (seen with optuna 5.0).
- *Dead workers.* On the journal file (no heartbeat in Optuna) a RUNNING trial whose lock file is free belongs to
  a dead process: at every worker start, and before each trial, it is failed and retried (re-enqueued with the
  same parameters by Optuna's `RetryHeartbeatStaleTrialCallback`). On PostgreSQL/MySQL, Optuna's own heartbeat does this
  (`HEARTBEAT_S`, `GRACE_FACTOR` below; `fail_stale_trials` runs before every trial). Then grid runs that
  have no trial at all (complete, waiting or running) are enqueued again, so no point is ever lost.
- *Multi-objective.* Objectives: accuracy (maximize; a language model's study: validation loss in nats/token,
  minimize — `StudySpec.metric`) and mean effective bits (minimize). No `report`/pruning
  (Optuna has none for multi-objective studies); `Trial.system_attrs` is not used (gone from Trial in 5.0).
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from ..errors import LandscapeError
from .spec import StudySpec, digest

HEARTBEAT_S = 30  # RDB storages: a running trial's heartbeat period (s); `study run --heartbeat` changes it
GRACE_FACTOR = 4  # RDB storages: a RUNNING trial without a heartbeat for this many periods is failed and retried
UNLOCKED_GRACE_S = 600  # journal: a RUNNING trial that never took its lock is taken as dead after this long (s)
SPEC_ATTR = "landscape_spec"

optuna.logging.set_verbosity(optuna.logging.WARNING)
# heartbeats and the retry callback are marked experimental in optuna 5.0; the CLIs' stderr is for our messages
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def masked(url: str) -> str:
    """A storage URL without its password, for messages."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        return f"{scheme}://{cred.split(':')[0]}:***@{host}"
    return url


def open_storage(url: str, *, heartbeat_s: int = HEARTBEAT_S) -> optuna.storages.BaseStorage:
    """An Optuna storage: `postgresql://…` / `mysql://…` (RDB, with heartbeat and retry of stale trials), or a
    path: Optuna's journal file (no server; for the workers of one machine). SQLite is refused: Optuna advises
    against it for concurrent workers."""
    if url.startswith("sqlite"):
        raise LandscapeError("SQLite storage is not safe for concurrent workers (Optuna's advice); use the default "
                             "journal file on one machine or --storage postgresql://… for many")
    if url.startswith(("postgresql", "mysql")):
        import sqlalchemy.exc

        try:
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=heartbeat_s, grace_period=GRACE_FACTOR * heartbeat_s,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=None),
                engine_kwargs={"pool_pre_ping": True})
        except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as e:
            raise LandscapeError(f"cannot open storage {masked(url)}: {str(e).splitlines()[0]}") from None
    if "://" in url:
        raise LandscapeError(f"unsupported storage {masked(url)}: use a journal file path or postgresql://…")
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = Path(url)
    if not path.parent.is_dir():
        raise LandscapeError(f"cannot open storage {path}: folder {path.parent}/ does not exist")
    return JournalStorage(JournalFileBackend(str(path)))


def open_study(url: str, name: str, **storage_options) -> tuple[optuna.Study, StudySpec]:
    """An existing study and its spec. A journal file that is not there is an error (not a new empty storage)."""
    if "://" not in url and not Path(url).is_file():
        raise LandscapeError(f"no study named {name!r} here (no journal file {url}); create it with `study create`")
    return load(open_storage(url, **storage_options), name)


def load(storage, name: str) -> tuple[optuna.Study, StudySpec]:
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise LandscapeError(f"no study named {name!r} in this storage (create it with `study create`)") from None
    if SPEC_ATTR not in study.user_attrs:
        raise LandscapeError(f"study {name!r} was not made by landscape.study (it has no spec)")
    return study, StudySpec.from_json(study.user_attrs[SPEC_ATTR])


def create(storage, spec: StudySpec) -> tuple[optuna.Study, bool]:
    """Create the study (and enqueue a grid's runs); an existing study with the same spec is returned as is
    (created=False), one with another spec is refused."""
    try:
        existing, stored = load(storage, spec.name)
    except LandscapeError:
        existing = None
    if existing is not None:
        differ = stored.differences(spec)
        if differ:
            raise LandscapeError(f"study {spec.name!r} exists with another spec ({', '.join(differ)} differ); "
                                 "pick another name or storage")
        return existing, False
    study = optuna.create_study(study_name=spec.name, storage=storage, directions=spec.directions)
    study.set_user_attr(SPEC_ATTR, spec.to_json())
    for params in spec.grid_runs() if spec.kind == "grid" else []:
        study.enqueue_trial(params)
    return study, True


def sampler(spec: StudySpec, worker: str) -> optuna.samplers.BaseSampler:
    """The study's sampler in one worker. Search samplers are seeded from the spec's seed and the worker's
    identity, so concurrent workers do not propose the same point from the same history."""
    seed = int(digest([spec.sampler_seed, worker]), 16) % 2**31
    # --max-bits reaches the samplers as the trial's constraint (Trial.set_constraint in the objective; the
    # samplers' constraints_func is deprecated in optuna 5.0)
    if spec.kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if spec.kind == "nsga2":
        # population: a quarter of the budget, 4..50 (Optuna's default 50 would leave a short study random)
        return optuna.samplers.NSGAIISampler(population_size=min(50, max(4, spec.trials // 4)), seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)  # grid: trials come from the queue; never samples a run


class Lock:
    """An exclusive `flock` on a file, taken without waiting; the kernel releases it if the process dies."""

    def __init__(self, path: Path):
        self.path, self.fd = Path(path), None

    def acquire(self) -> bool:
        """True if this process now holds the lock, False if another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()} {os.getpid()}\n".encode())
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


@contextmanager
def try_lock(path: Path):
    """Yields True while holding the lock on `path`, False if another process holds it."""
    lock = Lock(path)
    mine = lock.acquire()
    try:
        yield mine
    finally:
        lock.release()


def system_attrs(trial) -> dict:
    """A trial's system attributes (a live `optuna.Trial` has no `system_attrs` since Optuna 5.0)."""
    if isinstance(trial, optuna.trial.FrozenTrial):
        return trial.system_attrs
    return trial.storage.get_trial_system_attrs(trial._trial_id)


def trial_params(trial) -> dict:
    """A trial's parameters: those it was enqueued with (a grid run), else the suggested ones.

    The enqueued ones come first: a worker suggests a grid run's parameters one at a time, and in between its
    `params` hold only some of them — read then, the run looked missing and `recover` enqueued it again (a grid
    point trained twice under `study run -j 2`, seen once in CI)."""
    fixed = system_attrs(trial).get("fixed_params")
    return dict(fixed) if fixed else dict(trial.params)


def recover(study: optuna.Study, spec: StudySpec) -> tuple[int, int]:
    """Fail and retry the RUNNING trials of dead workers (journal storage: their lock is free; RDB: Optuna's
    heartbeat), then enqueue grid runs that have no trial at all. Returns (retried, re-enqueued)."""
    retried = 0
    storage = study._storage
    if isinstance(storage, optuna.storages.RDBStorage):  # opened with a heartbeat (open_storage)
        before = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        optuna.storages.fail_stale_trials(study)
        retried = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,))) - before
    else:
        now = time.time()
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            params = trial_params(t)
            if "worker" in t.user_attrs:
                with try_lock(spec.lock_path(params)) as free:
                    dead = free
            else:  # popped but never locked: a worker dies in that millisecond, or is alive and about to lock
                dead = t.datetime_start is not None and now - t.datetime_start.timestamp() > UNLOCKED_GRACE_S
            if not dead:
                continue
            try:  # several workers starting at once all see the dead trial: one of them fails and retries it
                if not storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            failed = storage.get_trial(t._trial_id)
            if failed.state == TrialState.FAIL:  # the journal ignores the change if the trial finished first
                RetryHeartbeatStaleTrialCallback(max_retry=None)(study, failed)
                retried += 1
    requeued = 0
    if spec.kind == "grid":
        live = (TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING)
        have = {digest(trial_params(t)) for t in study.get_trials(deepcopy=False, states=live)}
        for params in spec.grid_runs():
            if digest(params) not in have:
                study.enqueue_trial(params)
                requeued += 1
    return retried, requeued


def more_to_do(study: optuna.Study, spec: StudySpec) -> bool:
    counts = {s: 0 for s in TrialState}
    for t in study.get_trials(deepcopy=False):
        counts[t.state] += 1
    if counts[TrialState.WAITING]:
        return True
    return spec.kind != "grid" and counts[TrialState.COMPLETE] + counts[TrialState.RUNNING] < spec.trials


def done_count(study: optuna.Study, spec: StudySpec) -> tuple[int, int]:
    """(finished, total): grid runs with a complete trial / all grid runs; search: complete trials / --trials."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if spec.kind == "grid":
        return len({digest(t.params) for t in complete}), len(spec.grid_runs())
    return len(complete), spec.trials


def log(message: str) -> None:
    print(message, flush=True)


def fmt_seconds(s: float) -> str:
    return f"{int(s // 60)}m{int(s % 60):02d}s" if s >= 60 else f"{s:.1f}s"


def work(study: optuna.Study, spec: StudySpec, run_one, *, worker: str) -> int:
    """Train trials until the study has nothing left for this worker; returns the number of trials it finished.
    `run_one(point, seed)` trains (or reads back, or resumes) one run and returns its summary dict."""
    study.sampler = sampler(spec, worker)
    retried, requeued = recover(study, spec)
    if retried or requeued:
        log(f"[{worker}] recovered: {retried} trial(s) of dead workers retried, {requeued} lost grid run(s) "
            "enqueued again")
    finished = [0]
    held: list[Lock] = []

    def release_locks(*_):
        while held:
            held.pop().release()

    def objective(trial: optuna.Trial):
        if spec.kind == "grid":
            if not trial_params(trial) and "failed_trial" not in system_attrs(trial):
                trial.set_user_attr("duplicate", "no grid run was waiting")  # lost a race for the last one
                raise optuna.TrialPruned()
            params = {n: trial.suggest_categorical(n, spec.grid[n]) for n in spec.parameters}
            params["seed"] = trial.suggest_categorical("seed", spec.seeds)
        else:
            params = {n: trial.suggest_float(n, lo, hi, log=lg) for n, (lo, hi, lg) in spec.space.items()}
        point = {k: v for k, v in params.items() if k != "seed"}
        seeds = [params["seed"]] if spec.kind == "grid" else spec.seeds
        start = time.perf_counter()
        lock = Lock(spec.lock_path(params))
        if not lock.acquire():
            trial.set_user_attr("duplicate", "another live worker holds this trial's lock")
            raise optuna.TrialPruned()
        held.append(lock)  # released once Optuna has stored the trial's result (release_locks below): a trial
        #                    that looks RUNNING always has its lock held, so no one takes it for dead
        trial.set_user_attr("worker", worker)
        try:
            runs = [run_one(point, seed) for seed in seeds]
        except BaseException:
            release_locks()
            raise
        value = sum(r[f"{spec.metric}_{spec.objective}"] for r in runs) / len(runs)
        bits = sum(r["mean_bits"] for r in runs) / len(runs)
        trial.set_user_attr("runs", runs)
        if spec.max_bits is not None:
            trial.set_constraint("mean_bits", bits - spec.max_bits)  # ≤ 0: feasible
        shown = " ".join(f"{k}={v:g}" for k, v in params.items())
        notes = [f"{r['seed']}: resumed at step {r['resumed_at']}" for r in runs if r.get("resumed_at")]
        shown_value = f"loss {value:.4f} nats/token" if spec.metric == "loss" else f"accuracy {100 * value:.2f}%"
        log(f"trial {trial.number} {shown}: {spec.objective} {shown_value} at {bits:.2f} bits, "
            f"{fmt_seconds(time.perf_counter() - start)}" + (f" (seed {'; '.join(notes)})" if notes else ""))
        finished[0] += 1
        return value, bits

    while more_to_do(study, spec):
        # one trial per optimize() call: Optuna runs the heartbeat and stale-trial check around each
        study.optimize(objective, n_trials=1, catch=(), callbacks=[release_locks])
        recover(study, spec)
    return finished[0]


def worker_name(index: int) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{index}"
