"""The run file (HDF5): the trainer's output and the analysis layer's input.

Schema (`h5ls -r RUN.h5` shows it as is; parameter names are the model's state-dict keys):

  /                           attrs: schema, config (JSON), seed, method, arch, version, git_commit, created,
                              resumed_at (JSON list of the SGD steps at which train --resume continued it),
                              train_seconds (wall seconds of Trainer.fit, summed over continuations; absent in
                              run files written before it existed),
                              prepared (1: every state below is of the module that the compressor's
                              prepare() returns around the model, e.g. an input quantizer + the network;
                              0 or absent: of the model itself)
  /pretrained/<name>          the starting state dict (weights and BN buffers)
  /checkpoints/<step>/<name>  state dict every `checkpoint_every` SGD steps (8-digit zero-padded step);
                              attrs: step, epoch, complete (set to 1 last: a torn checkpoint has complete=0)
  /compressor/<step>/<name>   the compressor's own learnable tensors at the same checkpoints (Compressor.learnable:
                              VQ codebooks, CWC centroids, DSMM temperatures; absent for methods without any, and
                              in run files written before it existed)
  /scalars/<name>             1-D float64, one entry per SGD step: step, epoch, task_loss, compression_loss, lr,
                              mean_clusters, mean_bits (NaN on steps where cluster stats were not computed); and
                              one more dataset per namespaced compressor stat, a name holding a ":" (NAMESPACED;
                              e.g. layer:<param>:perplexity of VQ-QAT's layer_stats, nas:expected_bits of
                              vq-nas), NaN on the steps without it (created the first time a stat appears, so
                              absent for methods that report none: the other methods' files are unchanged)
  /final/compressed/<name>    fine-tuned state dict
  /final/clamped/<name>       the same with every compressed weight replaced by its cluster value
  /final/recalibrated/<name>  only with train --recalibrate-bn N: the clamped state with BN running statistics
                              re-estimated on N unaugmented training batches (weights identical to clamped)
  /final/clusters/<name>/values, /counts   each compressed layer's cluster values and member counts
  /final/bits                 attrs: effective bits log2 K_l and storage bits ceil(log2 K_l) per layer, means
  /eval/<state>               attrs accuracy (fraction), loss (nats), n, split, for pretrained/compressed/clamped
                              (and recalibrated, with bn_batches)
  /analysis/paths/<name>      written by `python -m landscape.interpolate` (analysis/paths.py): alpha [T] (position in
                              segments, state k at alpha = k), segment [T], <split>/loss [T] (nats),
                              <split>/accuracy [T] for split test and/or train; attrs: states (JSON), points, bn,
                              bn_batches, fast, limit, batch_size, n_<split>, created
  /analysis/perturb/<name>    written by `python -m landscape.perturb` (analysis/perturbation.py): random_delta_loss
                              [M] (nats), random_slope [M] (ΔL/‖Δθ‖), random_accuracy [M], layer_norms [L], scan_*
                              when --alphas; attrs: target, norm, directions, seed, bn, displacement_norm,
                              base_loss, real_delta_loss, real_slope, target_loss, percentile, zscore, created, …
  /analysis/surfaces/<name>   written by `python -m landscape.surface` (analysis/surface.py): x [Rx], y [Ry], loss
                              [Rx, Ry] (nats), accuracy [Rx, Ry], anchor_coords/_loss/_accuracy; attrs: plane, states,
                              units, axis_norms, cosine, norm, ignore, bn, resolution, range, split, limit, n, …
  /analysis/hessian/<name>    written by `python -m landscape.hessian` (analysis/hessian.py): states/<label>/ (top,
                              bottom, trace, density, layers/<param>/), path/, clamp_cost/; schema there

  /resume                     attrs: step; dataset `trainer`: the trainer's full state (model, optimizer, scheduler,
                              compressor, RNG) as a torch.save blob, replaced at every checkpoint (for --resume)

Beside the file, only while an analysis job on it is unfinished: `.RUN.h5.<kind>-<name>.journal.json` (finished
evaluations, analysis/sweep.py); it is removed when the result lands in /analysis.

Crash safety. Every write goes through `update(path)`: the file is copied, the copy changed and closed, and the
copy atomically renamed over the original (os.replace). A process killed at any moment (SIGKILL included)
leaves either the old or the new file, both complete, plus at worst a stale `.RUN.h5.tmp-<pid>` copy that the
next write removes. The price is one file copy per checkpoint (≈ 1 MB of compressed weights per ResNet-20
checkpoint, so a few ms); for large models raise --checkpoint-every.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn as nn

from .errors import RunFileError
from .trainer import Callback, Trainer

SCHEMA = 1
SCALARS = ("step", "epoch", "task_loss", "compression_loss", "lr", "mean_clusters", "mean_bits")
NAMESPACED = ":"  # a compressor stat whose name holds this gets its own /scalars/<name> (state-dict keys hold none)
STATES = ("pretrained", "compressed", "clamped", "recalibrated")  # recalibrated: only with --recalibrate-bn


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                              text=True, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_state(group: h5py.Group, state: Mapping[str, torch.Tensor]) -> None:
    """One dataset per tensor; tensors above 4 KiB chunked and gzip-compressed."""
    for name, tensor in state.items():
        array = tensor.detach().cpu().numpy()
        big = array.nbytes > 4096 and array.ndim > 0
        group.create_dataset(name, data=array, chunks=True if big else None, compression="gzip" if big else None,
                             compression_opts=4 if big else None)


def read_state(group: h5py.Group) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(np.array(ds)) for name, ds in group.items()}


def create_run(path: str | os.PathLike, *, config: dict, seed: int, method: str, arch: str,
               pretrained: Mapping[str, torch.Tensor], prepared: bool = False,
               evals: Mapping[str, dict] | None = None) -> Path:
    """A new run file (overwriting `path`) holding the settings and the pretrained state. `prepared`: the
    states are of `make_compressor(method, config["compressor"]).prepare(build_model(arch))`, not of the
    bare model."""
    from . import __version__

    path = Path(path)
    tmp = _tmp_name(path)
    with h5py.File(tmp, "w") as f:
        f.attrs.update(schema=SCHEMA, config=json.dumps(config), seed=seed, method=method, arch=arch,
                       version=__version__, git_commit=git_commit(), prepared=int(prepared),
                       created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
        write_state(f.create_group("pretrained"), pretrained)
        scalars = f.create_group("scalars")
        for name in SCALARS:
            scalars.create_dataset(name, shape=(0,), maxshape=(None,), dtype="f8", chunks=(1024,))
        for name, result in (evals or {}).items():
            write_eval(f, name, result)
    _replace(tmp, path)
    return path


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _replace(tmp: Path, path: Path) -> None:
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def update(path: str | os.PathLike) -> Iterator[h5py.File]:
    """Open a run file for changes that land all at once or not at all (see "Crash safety" above)."""
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        stale.unlink(missing_ok=True)  # left by a killed writer; ours is made below
    tmp = _tmp_name(path)
    shutil.copyfile(path, tmp)
    try:
        with h5py.File(tmp, "a") as f:
            yield f
        _replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class RunWriter(Callback):
    """Trainer callback: appends per-step scalars and writes a checkpoint every `every` steps (and at the end)."""

    def __init__(self, path: str | os.PathLike, every: int):
        if every < 1:
            raise ValueError(f"checkpoint interval must be ≥ 1 step, got {every}")
        self.path, self.every, self.pending = Path(path), every, []
        self._written: set[str] = set()

    def on_step_end(self, trainer: Trainer, scalars: Mapping[str, float]) -> None:
        epoch = (trainer.step - 1) // trainer.steps_per_epoch
        self.pending.append((trainer.step, epoch, scalars))  # read at the checkpoint: no host sync per step
        if trainer.step % self.every == 0:
            self.checkpoint(trainer)

    def on_train_end(self, trainer: Trainer) -> None:
        self.checkpoint(trainer)

    def checkpoint(self, trainer: Trainer) -> None:
        """Scalars so far, the weights at this step and the trainer's resume state, in one atomic update."""
        if not self.pending and f"{trainer.step:08d}" in self._written:
            return
        with update(self.path) as f:
            rows = np.asarray([[step, epoch] + [scalars.get(k, np.nan) for k in SCALARS[2:]]
                               for step, epoch, scalars in self.pending], dtype="f8").reshape(-1, len(SCALARS))
            done = f["scalars"]["step"].shape[0]  # rows stored before this checkpoint
            for i, name in enumerate(SCALARS):
                ds = f["scalars"][name]
                ds.resize((ds.shape[0] + len(rows),))
                ds[ds.shape[0] - len(rows):] = rows[:, i]
            self._write_namespaced(f["scalars"], done)
            key = f"checkpoints/{trainer.step:08d}"
            if key not in f:
                group = f.create_group(key)
                group.attrs.update(step=trainer.step, epoch=trainer.step / trainer.steps_per_epoch, complete=0)
                write_state(group, trainer.model.state_dict())
                learnable = trainer.compressor.learnable() if trainer.compressor is not None else {}
                if learnable:
                    write_state(f.require_group("compressor").create_group(f"{trainer.step:08d}"), learnable)
                group.attrs["complete"] = 1
            if "resume" in f:
                del f["resume"]
            blob = io.BytesIO()
            torch.save(trainer.state_dict(), blob)
            resume = f.create_group("resume")
            resume.attrs["step"] = trainer.step
            resume.create_dataset("trainer", data=np.frombuffer(blob.getvalue(), dtype=np.uint8))
        self.pending = []
        self._written.add(f"{trainer.step:08d}")

    def _write_namespaced(self, group: h5py.Group, done: int) -> None:
        """The pending rows of every namespaced stat (schema above): new ones get a dataset NaN-filled for the
        `done` rows before them; every one already there grows with the others (NaN where a row lacks it)."""
        names = {k for _, _, scalars in self.pending for k in scalars if NAMESPACED in k}
        names |= {k for k in group if k not in SCALARS}
        for name in sorted(names):
            if name not in group:
                group.create_dataset(name, shape=(done,), maxshape=(None,), dtype="f8", chunks=(1024,),
                                     fillvalue=np.nan)
            ds = group[name]
            ds.resize((done + len(self.pending),))
            if self.pending:
                ds[done:] = np.asarray([scalars.get(name, np.nan) for _, _, scalars in self.pending], dtype="f8")


def write_final(path: str | os.PathLike, *, compressed: nn.Module, clamped, evals: Mapping[str, dict],
                recalibrated: nn.Module | None = None, train_seconds: float | None = None) -> None:
    """Store the fine-tuned and clamped states, the clusters and bits of every compressed layer, and the
    evaluations (`clamped` is a `compress.base.Clamped`); `recalibrated`: the clamped model with re-estimated BN
    statistics (train --recalibrate-bn), if any; `train_seconds`: the wall time of the training itself."""
    with update(path) as f:
        if train_seconds is not None:
            f.attrs["train_seconds"] = float(train_seconds)
        for done in ("final", "resume"):  # a finished run needs no resume state
            if done in f:
                del f[done]
        final = f.create_group("final")
        write_state(final.create_group("compressed"), compressed.state_dict())
        write_state(final.create_group("clamped"), clamped.model.state_dict())
        if recalibrated is not None:
            write_state(final.create_group("recalibrated"), recalibrated.state_dict())
        clusters = final.create_group("clusters")
        for name, cb in clamped.codebooks.items():
            g = clusters.create_group(name)
            g.create_dataset("values", data=cb.values.cpu().numpy())
            g.create_dataset("counts", data=cb.counts.cpu().numpy())
        bits = final.create_group("bits")
        bits.attrs["effective"] = json.dumps(clamped.bits)
        bits.attrs["storage"] = json.dumps(clamped.storage_bits)
        bits.attrs["mean_effective"] = clamped.mean_bits()
        bits.attrs["mean_storage"] = clamped.mean_bits(storage=True)
        for name, result in evals.items():
            write_eval(f, name, result)


def fresh_group(f: h5py.File, key: str, *, force: bool, where: str | os.PathLike) -> h5py.Group:
    """An empty group at `key`; an existing one is replaced only with `force` (else a one-line error)."""
    if key in f:
        if not force:
            raise RunFileError(f"{where} already has /{key}; pass --force to replace it")
        del f[key]
    return f.create_group(key)


def write_eval(f: h5py.File, name: str, result: Mapping) -> None:
    key = f"eval/{name}"
    if key in f:
        del f[key]
    f.create_group(key).attrs.update({k: v for k, v in result.items() if v is not None})


class Run:
    """Read access to a run file. Every method opens and closes the file itself.

    Args:
        path: the run file (HDF5, the schema above); a `RunFileError` (one line) if it is missing or not a run file.

    Examples:
        >>> import tempfile, torch, torch.nn as nn
        >>> import landscape as ls
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,))) for _ in range(2)]
        >>> tmp = tempfile.TemporaryDirectory()
        >>> _ = ls.compress_model(model, data, data, out=f"{tmp.name}/run.h5", method="ptq", epochs=1,
        ...                       progress=False)
        >>> run = Run(f"{tmp.name}/run.h5")
        >>> run.method, run.seed, run.config["compressor"]["bits"]
        ('ptq', 0, 4)
        >>> tmp.cleanup()
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise RunFileError(f"run file {self.path} does not exist")
        try:
            with h5py.File(self.path, "r") as f:
                attrs = dict(f.attrs)
        except OSError as e:
            raise RunFileError(f"{self.path} is not a readable HDF5 file ({e})") from None
        if attrs.get("schema") != SCHEMA or "config" not in attrs:
            raise RunFileError(f"{self.path} is not a landscape run file (no schema {SCHEMA} attributes)")
        self.config = json.loads(attrs["config"])
        self.seed, self.method, self.arch = int(attrs["seed"]), str(attrs["method"]), str(attrs["arch"])
        self.arch_kwargs = self.config.get("arch_kwargs") or {}  # the factory's keyword arguments (models.build_model)
        self.attrs = attrs

    def _group(self, f: h5py.File, key: str) -> h5py.Group:
        if key not in f:
            raise RunFileError(f"{self.path} has no /{key} (is the run finished?)")
        return f[key]

    def steps(self) -> list[int]:
        """Steps of the complete checkpoints, ascending.

        Returns:
            The SGD steps ([] for a run without checkpoints).

        Examples:
            >>> import tempfile, torch, torch.nn as nn
            >>> import landscape as ls
            >>> _ = torch.manual_seed(0)
            >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
            >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,))) for _ in range(2)]
            >>> tmp = tempfile.TemporaryDirectory()
            >>> run = ls.compress_model(model, data, data, out=f"{tmp.name}/run.h5", method="centroid", bits=2,
            ...                         epochs=1, checkpoint_every=1, progress=False)
            >>> run.steps()
            [1, 2]
            >>> tmp.cleanup()
        """
        with h5py.File(self.path, "r") as f:
            if "checkpoints" not in f:
                return []
            return sorted(int(k) for k, g in f["checkpoints"].items() if g.attrs.get("complete", 0) == 1)

    def state(self, which: str | int) -> dict[str, torch.Tensor]:
        """A state dict: "pretrained", "compressed", "clamped", or the step of a complete checkpoint.

        Args:
            which: "pretrained", "compressed", "clamped", "recalibrated", or a checkpoint's step.

        Returns:
            Parameter and buffer name → tensor (CPU).

        Examples:
            >>> import tempfile, torch, torch.nn as nn
            >>> import landscape as ls
            >>> _ = torch.manual_seed(0)
            >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
            >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,))) for _ in range(2)]
            >>> tmp = tempfile.TemporaryDirectory()
            >>> run = ls.compress_model(model, data, data, out=f"{tmp.name}/run.h5", method="centroid", bits=2,
            ...                         epochs=1, checkpoint_every=1, progress=False)
            >>> clamped = run.state("clamped")
            >>> sorted(clamped), len(clamped["0.weight"].unique()) <= 4
            (['0.bias', '0.weight', '2.bias', '2.weight'], True)
            >>> torch.equal(run.state(2)["0.weight"], run.state("compressed")["0.weight"])
            True
            >>> tmp.cleanup()
        """
        if isinstance(which, int):
            if which not in self.steps():
                raise RunFileError(f"{self.path} has no complete checkpoint at step {which}")
            key = f"checkpoints/{which:08d}"
        elif which == "pretrained":
            key = "pretrained"
        elif which in ("compressed", "clamped", "recalibrated"):
            key = f"final/{which}"
        else:
            raise ValueError(f"unknown state {which!r}; use one of {STATES} or a checkpoint step")
        with h5py.File(self.path, "r") as f:
            return read_state(self._group(f, key))

    def compressor_state(self, step: int) -> dict[str, torch.Tensor]:
        """The compressor's learnable tensors at the complete checkpoint of `step` (empty for a method without
        any, or a run file written before they were stored).

        Args:
            step: the step of a complete checkpoint (`steps()`).

        Returns:
            Name → tensor (the names of `Compressor.learnable`).

        Examples:
            >>> import tempfile, torch, torch.nn as nn
            >>> import landscape as ls
            >>> _ = torch.manual_seed(0)
            >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
            >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,))) for _ in range(2)]
            >>> tmp = tempfile.TemporaryDirectory()
            >>> run = ls.compress_model(model, data, data, out=f"{tmp.name}/run.h5", method="centroid", bits=2,
            ...                         epochs=1, checkpoint_every=1, progress=False)
            >>> {name: tuple(t.shape) for name, t in run.compressor_state(2).items()}
            {'0.weight.centroids': (4,), '2.weight.centroids': (4,)}
            >>> tmp.cleanup()
        """
        if step not in self.steps():
            raise RunFileError(f"{self.path} has no complete checkpoint at step {step}")
        with h5py.File(self.path, "r") as f:
            key = f"compressor/{step:08d}"
            return read_state(f[key]) if key in f else {}

    def model(self, which: str | int, template: nn.Module | None = None) -> nn.Module:
        """The model of a state, in eval mode; for a `prepared` run, the compressor's module around it. The
        architecture is rebuilt from the run's arch spec, or copied from `template` (a model of the same
        architecture: needed for runs of a model given as a Python object, `landscape.compress`).

        Args:
            which: the state (as `state` takes it).
            template: a model of the run's architecture (copied, never modified; None: built from `arch`).

        Returns:
            The model with that state, in eval mode.

        Examples:
            >>> import tempfile, torch, torch.nn as nn
            >>> import landscape as ls
            >>> _ = torch.manual_seed(0)
            >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
            >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,))) for _ in range(2)]
            >>> tmp = tempfile.TemporaryDirectory()
            >>> run = ls.compress_model(model, data, data, out=f"{tmp.name}/run.h5", method="centroid", bits=2,
            ...                         epochs=1, checkpoint_every=1, progress=False)
            >>> clamped = run.model("clamped", template=model)
            >>> clamped.training, torch.equal(clamped[0].weight, run.state("clamped")["0.weight"])
            (False, True)
            >>> tmp.cleanup()
        """
        import copy

        from .models import build_model, load_state

        model = copy.deepcopy(template) if template is not None else build_model(self.arch, self.arch_kwargs)
        if self.attrs.get("prepared", 0):
            from .compress import make_compressor

            model = make_compressor(self.method, self.config["compressor"]).prepare(model)
        return load_state(model, self.state(which), source=f"{self.path}:{which}").eval()

    def groups(self) -> set[str]:
        """The file's top-level groups (the schema above: which parts a run has written).

        Returns:
            The group names.

        Examples:
            >>> import tempfile, torch, torch.nn as nn
            >>> import landscape as ls
            >>> _ = torch.manual_seed(0)
            >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
            >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,))) for _ in range(2)]
            >>> tmp = tempfile.TemporaryDirectory()
            >>> run = ls.compress_model(model, data, data, out=f"{tmp.name}/run.h5", method="centroid", bits=2,
            ...                         epochs=1, checkpoint_every=1, progress=False)
            >>> sorted(run.groups())
            ['checkpoints', 'compressor', 'eval', 'final', 'pretrained', 'scalars']
            >>> tmp.cleanup()
        """
        with h5py.File(self.path, "r") as f:
            return set(f.keys())

    def resume_state(self) -> dict:
        """The trainer state of the last complete checkpoint (see Trainer.state_dict).

        Returns:
            The state `Trainer.load_state_dict` takes; a `RunFileError` for a finished run, which keeps none.

        Examples:
            >>> import tempfile, torch, torch.nn as nn
            >>> import landscape as ls
            >>> _ = torch.manual_seed(0)
            >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
            >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,))) for _ in range(2)]
            >>> tmp = tempfile.TemporaryDirectory()
            >>> run = ls.compress_model(model, data, data, out=f"{tmp.name}/run.h5", method="centroid", bits=2,
            ...                         epochs=1, checkpoint_every=1, progress=False)
            >>> run.resume_state()  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            landscape.errors.RunFileError: .../run.h5 has no /resume/trainer (is the run finished?)
            >>> tmp.cleanup()
        """
        with h5py.File(self.path, "r") as f:
            blob = np.array(self._group(f, "resume/trainer")).tobytes()
        return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=False)

    def scalars(self) -> dict[str, np.ndarray]:
        """The per-step scalars (/scalars: step, epoch, task_loss, compression_loss, lr, mean_clusters, mean_bits,
        and the compressor's namespaced stats, if any: the schema above).

        Returns:
            Name → 1-D float64 array, one entry per SGD step.

        Examples:
            >>> import tempfile, torch, torch.nn as nn
            >>> import landscape as ls
            >>> _ = torch.manual_seed(0)
            >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
            >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,))) for _ in range(2)]
            >>> tmp = tempfile.TemporaryDirectory()
            >>> run = ls.compress_model(model, data, data, out=f"{tmp.name}/run.h5", method="centroid", bits=2,
            ...                         epochs=1, checkpoint_every=1, progress=False)
            >>> scalars = run.scalars()
            >>> sorted(scalars), scalars["step"].tolist()
            (['compression_loss', 'epoch', 'lr', 'mean_bits', 'mean_clusters', 'step', 'task_loss'], [1.0, 2.0])
            >>> tmp.cleanup()
        """
        with h5py.File(self.path, "r") as f:
            return {name: np.array(ds) for name, ds in self._group(f, "scalars").items()}

    def evals(self) -> dict[str, dict]:
        """The evaluations of the run's states (/eval).

        Returns:
            State → {"accuracy": fraction, "loss": nats, "n", "split", …} ({} before any).

        Examples:
            >>> import tempfile, torch, torch.nn as nn
            >>> import landscape as ls
            >>> _ = torch.manual_seed(0)
            >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
            >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,))) for _ in range(2)]
            >>> tmp = tempfile.TemporaryDirectory()
            >>> run = ls.compress_model(model, data, data, out=f"{tmp.name}/run.h5", method="centroid", bits=2,
            ...                         epochs=1, checkpoint_every=1, progress=False)
            >>> evals = run.evals()
            >>> sorted(evals), sorted(evals["clamped"])
            (['clamped', 'compressed', 'pretrained'], ['accuracy', 'loss', 'n', 'split'])
            >>> tmp.cleanup()
        """
        with h5py.File(self.path, "r") as f:
            if "eval" not in f:
                return {}
            return {name: dict(g.attrs) for name, g in f["eval"].items()}

    def bits(self) -> dict:
        """The clamped model's bits (/final/bits).

        Returns:
            {"effective": layer → log2 K_l, "storage": layer → ceil(log2 K_l), "mean_effective", "mean_storage"}.

        Examples:
            >>> import tempfile, torch, torch.nn as nn
            >>> import landscape as ls
            >>> _ = torch.manual_seed(0)
            >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
            >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,))) for _ in range(2)]
            >>> tmp = tempfile.TemporaryDirectory()
            >>> run = ls.compress_model(model, data, data, out=f"{tmp.name}/run.h5", method="centroid", bits=2,
            ...                         epochs=1, checkpoint_every=1, progress=False)
            >>> run.bits()
            {'effective': {'0.weight': 2.0, '2.weight': 2.0}, 'storage': {'0.weight': 2, '2.weight': 2},
             'mean_effective': 2.0, 'mean_storage': 2.0}
            >>> tmp.cleanup()
        """
        with h5py.File(self.path, "r") as f:
            g = self._group(f, "final/bits")
            return {"effective": json.loads(g.attrs["effective"]), "storage": json.loads(g.attrs["storage"]),
                    "mean_effective": float(g.attrs["mean_effective"]), "mean_storage": float(g.attrs["mean_storage"])}

    def clusters(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each compressed layer's cluster values and member counts (/final/clusters).

        Returns:
            Layer → (values [K], counts [K]).

        Examples:
            >>> import tempfile, torch, torch.nn as nn
            >>> import landscape as ls
            >>> _ = torch.manual_seed(0)
            >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
            >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,))) for _ in range(2)]
            >>> tmp = tempfile.TemporaryDirectory()
            >>> run = ls.compress_model(model, data, data, out=f"{tmp.name}/run.h5", method="centroid", bits=2,
            ...                         epochs=1, checkpoint_every=1, progress=False)
            >>> {name: (len(values) <= 4, int(counts.sum())) for name, (values, counts) in run.clusters().items()}
            {'0.weight': (True, 32), '2.weight': (True, 24)}
            >>> tmp.cleanup()
        """
        with h5py.File(self.path, "r") as f:
            g = self._group(f, "final/clusters")
            return {name: (np.array(c["values"]), np.array(c["counts"])) for name, c in g.items()}
