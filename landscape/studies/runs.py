"""One run of a study: train it, continue it, or read it back — whichever its fixed run file calls for."""

from __future__ import annotations

import math
import time
from pathlib import Path

from ..errors import LandscapeError
from ..specs import RunSpec
from ..store import Run
from ..training import run_training
from .spec import StudySpec


def run_summary(path: Path) -> dict:
    """The numbers of a finished run file: accuracy_<state> (fraction) and loss_<state> (nats) for every stored
    evaluation (pretrained, compressed, clamped, recalibrated), mean effective and storage bits, the training's
    wall seconds (train_seconds; NaN in run files written before it was stored). A language model's run has no
    accuracy_* keys."""
    run = Run(path)
    evals, bits = run.evals(), run.bits()
    return {"run": str(path), "seed": run.seed,
            # accuracy where the model is a classifier (a language model's evaluations store NaN: it has none)
            **{f"accuracy_{k}": float(v["accuracy"]) for k, v in evals.items() if not math.isnan(v["accuracy"])},
            **{f"loss_{k}": float(v["loss"]) for k, v in evals.items()}, "n_test": int(evals["clamped"]["n"]),
            "mean_bits": bits["mean_effective"], "mean_storage_bits": bits["mean_storage"],
            "train_seconds": float(run.attrs.get("train_seconds", float("nan")))}


def _differences(stored: dict, expected: dict) -> list[str]:
    """Settings that differ between a run file and the run the study expects there. The device does not count,
    nor a setting one side lacks (a field added to a config after the file was written keeps its default)."""
    differ = [k for k in expected if k in stored and k not in ("train", "data") and stored[k] != expected[k]]
    for group in ("train", "data"):  # dicts: the fields both sides have (a run file adds the data's numbers)
        s, e = stored.get(group, {}), expected.get(group, {})
        differ += [f"{group}.{k}" for k in e if k in s and k != "device" and s[k] != e[k]]
    return differ


def make_run_one(spec: StudySpec, base: RunSpec, *, data=None, download: bool = False, device: str = "cpu",
                 eval_batch_size: int = 500):
    """run_one(point, seed) -> summary dict (run_summary + seconds, resumed_at, trained) for a worker. `base`: the
    run every point shares (`base.at(point, seed=seed)` is a point's run)."""

    def run_one(point: dict, seed: int) -> dict:
        path = spec.run_path(point, seed)
        run_spec = base.at(point, seed=seed, device=device)
        start = time.perf_counter()
        resumed_at, trained = None, True
        run = Run(path) if path.exists() else None
        if run is not None and "final" in run.groups():
            trained = False
        else:
            if run is not None:
                differ = _differences(run.config, run_spec.to_settings())
                if differ:
                    raise LandscapeError(f"run file {path} holds another run (settings {', '.join(differ)} differ); "
                                         "move it away")
                resumed_at = (run.steps() or [0])[-1]
            path.parent.mkdir(parents=True, exist_ok=True)
            run_training(path, None if resumed_at is not None else run_spec, data=data, download=download,
                         device=device, eval_batch_size=eval_batch_size, progress=False)
        return {**run_summary(path), "seconds": time.perf_counter() - start, "resumed_at": resumed_at,
                "trained": trained}

    return run_one


def run_worker(study, spec: StudySpec, *, device: str = "cpu", data=None, download: bool = False,
               eval_batch_size: int = 500, worker: str | None = None) -> int:
    """Train the study's trials in this process until nothing is left for it (one worker; `landscape study run
    -j N` starts N of these); returns the number of trials it finished. Every run is `spec.base.at(point, seed)`
    on `device`."""
    from .engine import work, worker_name

    if spec.base is None:
        raise LandscapeError(f"study {spec.name!r} has no base run to train")
    run_one = make_run_one(spec, spec.base, data=data, download=download, device=device,
                           eval_batch_size=eval_batch_size)
    return work(study, spec, run_one, worker=worker or worker_name(0))
