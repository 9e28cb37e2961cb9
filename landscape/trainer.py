"""The fine-tuning loop: task loss + one compressor's penalty, SGD with Nesterov momentum.

Callbacks are the only extension point (progress bar, run file, anything else): objects with any of
on_train_start(trainer), on_step_end(trainer, scalars), on_epoch_end(trainer), on_train_end(trainer).
The trainer deep-copies the model it is given; the caller's model is never modified.

Host syncs. On a GPU a step never waits for the device except where a reader asks: the step's scalars (task
loss, compression loss) stay on the device inside `StepScalars`, which reads them all in one transfer the first
time a callback looks (the run file at its checkpoints, the progress bar every few steps); a non-finite loss is
caught every `stats_every` steps there (on CPU, at once). What a compressor's own penalty syncs is the
compressor's (README, "GPU"): the histogram and sorted estimators read the layers' ranges once per step, since
their grids' shapes depend on them.
"""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from . import accel, distributed
from .compress.base import Compressor
from .data import Batches, Split
from .errors import LandscapeError

SCHEDULES = ("constant", "onecycle")
OPTIMIZERS = ("sgd", "adamw")
COMPILE = ("auto", "on", "off")
# compile="auto" compiles runs of at least this many SGD steps. Measured by bench/train.py (ResNet-20, batch 128,
# 2 CPU cores): a compiled soft-quant step saves ~0.06 s; compiling costs ~30 s the first time a model and batch
# shape are compiled on a machine and ~2 s once inductor's on-disk cache holds them (every later run, e.g. all
# but the first run of a study): break-even ~500 steps cold, ~30 warm. Shorter runs (tests, demos) stay eager.
COMPILE_MIN_STEPS = 100


@dataclass(frozen=True)
class TrainConfig:
    """The fine-tuning loop's settings (`Trainer`): units, paper values and defaults beside each field. Checked at
    construction; frozen (`dataclasses.replace` makes another).

    Examples:
        >>> config = TrainConfig(epochs=1, lr=0.01, schedule="onecycle")
        >>> config.batch_size, config.momentum, config.compile
        (128, 0.9, 'auto')
        >>> TrainConfig(schedule="cosine")
        Traceback (most recent call last):
        ...
        ValueError: schedule must be one of ('constant', 'onecycle'), got 'cosine'
    """

    epochs: int = 3  # passes over the training split
    batch_size: int = 128  # images per SGD step
    lr: float = 1e-3  # step size (the peak, for onecycle); paper A.1: 1e-3
    momentum: float = 0.9  # SGD: Nesterov momentum coefficient; AdamW: β1 (dimensionless); paper A.1: 0.9
    weight_decay: float = 0.0  # SGD: L2 coefficient per weight; AdamW: decoupled decay of the matrices (dim ≥ 2) only, as nanoGPT; paper A.1: none  # noqa: E501
    schedule: str = "constant"  # "constant" lr, or "onecycle": linear warm-up then cosine decay to final_lr
    warmup: float = 0.15  # onecycle: fraction of all steps spent warming up
    final_lr: float = 0.0  # onecycle: the lr at the last step, as a fraction of the peak (nanoGPT's char model: 0.1)
    optimizer: str = "sgd"  # "sgd" (Nesterov momentum) or "adamw" (β = (momentum, beta2); nanoGPT's for GPTs)
    beta2: float = 0.999  # AdamW's β2 (dimensionless); nanoGPT's char model: 0.99
    grad_clip: float = 0.0  # the largest global gradient norm, clipped before each step (0: none); nanoGPT: 1.0
    seed: int = 0  # seeds data order, augmentation, and the compressor's random draws
    stats_every: int = 50  # SGD steps between compressor stats (cluster counts): they cost a clustering pass
    micro_batches: int = 1  # split each batch into this many slices whose gradients are averaged (gradient
    #                         accumulation; BN sees each slice alone, as a rank under DDP does)
    device: str = "cpu"  # torch device
    compile: str = "auto"  # torch.compile the model's forward and backward (inductor; on CPU it needs a C++
    #                        compiler, else training stays uncompiled with a warning): "on", "off", or "auto" = on
    #                        for single-process CPU runs of ≥ 100 steps. Same loss and gradients to float32
    #                        round-off (bench/train.py), not bit-identical to "off"; ~1.4x faster steps on CPU
    precision: str = "fp32"  # the task forward: "fp32", or "bf16" autocast (the penalty, the optimizer's weights
    #                          and clamping stay float32)
    deterministic: bool = False  # deterministic kernels only, TF32 off (accel.determinism; what it costs: README)

    def __post_init__(self):
        for name in ("epochs", "batch_size", "stats_every", "micro_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        for name in ("lr", "momentum", "weight_decay", "warmup", "final_lr", "beta2", "grad_clip"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number ≥ 0, got {value}")
        if self.lr == 0:
            raise ValueError("lr must be > 0")
        if self.momentum >= 1 or self.warmup >= 1 or self.beta2 >= 1 or self.final_lr > 1:
            raise ValueError("momentum, warmup and beta2 must be < 1, final_lr ≤ 1")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.compile not in COMPILE:
            raise ValueError(f"compile must be one of {COMPILE}, got {self.compile!r}")
        if self.precision not in accel.PRECISIONS:
            raise ValueError(f"precision must be one of {accel.PRECISIONS}, got {self.precision!r}")


def model_groups(model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """The model's parameters as optimizer groups: one for SGD; for AdamW the matrices (dim ≥ 2: Linear, conv and
    embedding weights) with `weight_decay` and the rest (biases, norms) without, as nanoGPT does."""
    params = list(model.parameters())
    if config.optimizer == "sgd":
        return [{"params": params}]
    groups = [{"params": [p for p in params if p.dim() >= 2]},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def make_optimizer(groups: list[dict[str, Any]], config: TrainConfig) -> torch.optim.Optimizer:
    """The trainer's one optimizer over `groups` (the model's, then a compressor's own)."""
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=(config.momentum, config.beta2),
                                 weight_decay=config.weight_decay)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0,
                           weight_decay=config.weight_decay)


def use_compile(config: TrainConfig, steps: int, distributed_run: bool = False) -> bool:
    """config.compile resolved for a run of `steps` SGD steps: "auto" = single process on CPU or CUDA, ≥
    COMPILE_MIN_STEPS steps; and on CPU only with a working C++ compiler (inductor builds its kernels with one):
    without one, a warning and uncompiled training. (On CUDA inductor builds Triton kernels, which ship with
    torch's CUDA wheels; a failing compile falls back to eager at the first step, with a warning.)"""
    mode, device = config.compile, torch.device(config.device)
    if mode == "off" or (mode == "auto" and (distributed_run or device.type not in ("cpu", "cuda")
                                             or steps < COMPILE_MIN_STEPS)):
        return False
    if device.type == "cpu":
        _quiet_import_cpp_extension()
        try:
            from torch._inductor import cpp_builder
            cpp_builder.get_cpp_compiler()  # raises when none of inductor's candidates (g++, $CXX) works
        except ImportError:
            pass  # a torch without this helper: a missing compiler is caught at the first step instead
        except Exception as e:
            warnings.warn(f"compile={mode}: no C++ compiler for torch.compile ({_first_line(e)}); training "
                          "uncompiled", RuntimeWarning, stacklevel=3)
            return False
    return True


class StepScalars(Mapping):
    """One step's scalars (task_loss, compression_loss, lr, and the compressor's stats on the steps that have
    them) as a read-only mapping of floats. Values computed on the device stay there until the first read,
    which fetches them all in one transfer: a step that nobody reads costs no host sync."""

    def __init__(self, device_values: dict[str, torch.Tensor], floats: dict[str, float]):
        self._device, self._floats = device_values, dict(floats)

    def _fetch(self) -> None:
        if self._device:
            names = list(self._device)
            values = torch.stack([self._device[n].float() for n in names]).tolist()
            self._floats.update(zip(names, values, strict=True))
            self._device = {}

    def update(self, more: dict[str, float]) -> None:
        self._floats.update(more)

    def __getitem__(self, key: str) -> float:
        if key in self._device:
            self._fetch()
        return self._floats[key]

    def __iter__(self):
        return iter([*self._device, *self._floats])

    def __len__(self) -> int:
        return len(self._device) + len(self._floats)


class Callback:
    def on_train_start(self, trainer: Trainer) -> None: ...
    def on_step_end(self, trainer: Trainer, scalars: dict[str, float]) -> None: ...
    def on_epoch_end(self, trainer: Trainer) -> None: ...
    def on_train_end(self, trainer: Trainer) -> None: ...


class TrainingDiverged(LandscapeError):
    pass


class Loader:
    """Any re-iterable of (x, y) batches (a DataLoader, a list) as the trainer's batch source: one pass per
    epoch, `set_epoch` forwarded to a sampler that has one (DistributedSampler), and `iterate(start)` skipping
    the first `start` batches of the epoch (what a resumed run does; exact when the source's order is a function
    of the epoch, e.g. a seeded sampler). Batches are moved to `device`."""

    def __init__(self, batches, device: torch.device):
        try:
            self.n = len(batches)
        except TypeError:
            raise ValueError("training data must have a length (batches per epoch): a DataLoader, a list, …") from None
        if self.n == 0:
            raise ValueError("the training data has no batches")
        self.batches, self.device, self.epoch = batches, device, 0

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        sampler = getattr(self.batches, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)

    def iterate(self, start: int = 0):
        for k, (x, y) in enumerate(self.batches):
            if k >= start:
                yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


class Trainer:
    def __init__(self, model: nn.Module, train, config: TrainConfig = TrainConfig(),
                 compressor: Compressor | None = None, callbacks: list[Callback] | tuple = (),
                 world: distributed.World | None = None, loss_fn=None):
        """`train`: a data.Split (batched here with config.batch_size, augmented, seeded) or any re-iterable of
        (x, y) batches (`Loader`; then config.batch_size is not used for batching); `loss_fn` (outputs, targets)
        → batch mean, default cross-entropy."""
        world = world or distributed.World()
        self.loss_fn = loss_fn or F.cross_entropy
        self.config, self.compressor, self.callbacks, self.world = config, compressor, list(callbacks), world
        self.device = torch.device(config.device)
        if isinstance(train, Split) and config.batch_size < world.size * config.micro_batches:
            raise ValueError(f"batch_size {config.batch_size} cannot be split over {world.size} ranks × "
                             f"{config.micro_batches} micro-batches")
        model = copy.deepcopy(model).to(self.device)
        self.model = compressor.prepare(model) if compressor is not None else model
        # Under torchrun the forward pass goes through DDP (gradient averaging); the penalty reads the parameters
        # of the unwrapped module, identical on every rank, so every rank adds the same coupling gradient.
        self.ddp = None
        if world.active:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.eager_forward = self.ddp if self.ddp is not None else self.model
        if isinstance(train, Split):
            self.batches = Batches(train, config.batch_size, train=True, seed=config.seed, device=self.device,
                                   drop_last=True)
        else:
            self.batches = Loader(train, self.device)
        self.total_steps = config.epochs * len(self.batches)
        # torch.compile wraps the module without changing it: self.model stays the plain module (state dicts,
        # evaluation, what fit() returns); only train_step's forward (and so its backward) runs compiled.
        self.compiled = use_compile(config, self.total_steps, world.active)
        self.forward = torch.compile(self.eager_forward, dynamic=False) if self.compiled else self.eager_forward
        groups = model_groups(self.model, config)
        if compressor is not None:
            groups += compressor.param_groups()
        # a compressor's own tensors live outside the DDP module: their gradients are averaged over ranks here
        self.compressor_params = list(compressor.learnable().values()) if compressor is not None else []
        self.optimizer = make_optimizer(groups, config)
        if compressor is not None:  # e.g. PARQ's proximal optimizer around the SGD; before the scheduler sees it
            self.optimizer = compressor.wrap_optimizer(self.optimizer, self.model)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.step = 0  # SGD steps done
        self.last_stats: dict[str, float] = {}
        self._finite = torch.ones((), dtype=torch.bool, device=self.device)  # every loss so far was finite
        self._checked = 0  # steps whose losses are known finite
        torch.manual_seed(config.seed)  # here, not in fit(): a resumed run restores the RNG state after this

    @property
    def steps_per_epoch(self) -> int:
        return len(self.batches)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.compiled:
            return self.forward(x)
        try:
            return self.forward(x)
        except _compile_errors() as e:  # dynamo/inductor fail while compiling, before the graph runs: redo uncompiled
            warnings.warn(f"torch.compile failed ({_first_line(e)}); training uncompiled from here",
                          RuntimeWarning, stacklevel=3)
            self.compiled, self.forward = False, self.eager_forward
            return self.forward(x)

    def _lr_factor(self, step: int) -> float:
        if self.config.schedule == "constant":
            return 1.0
        warm = max(1, round(self.config.warmup * self.total_steps))
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, self.total_steps - warm)
        final = self.config.final_lr
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """One SGD step on the global batch (x, y): this rank's slice, in `micro_batches` slices. Returns the
        step's scalars as floats (which waits for the device); `fit` uses `step_scalars`, which does not."""
        scalars = self.step_scalars(x, y)
        self.check_finite()
        return dict(scalars)

    def step_scalars(self, x: torch.Tensor, y: torch.Tensor) -> StepScalars:
        """`train_step` without a host sync: scalars stay on the device until read (`StepScalars`); a non-finite
        loss is noted on the device and raised by the next `check_finite()` (on CPU, at once)."""
        with accel.determinism(self.config.deterministic, self.device):
            return self._step(x, y)

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> StepScalars:
        self.model.train()
        x = distributed.shard(x, self.world.rank, self.world.size)
        y = distributed.shard(y, self.world.rank, self.world.size)
        k = self.config.micro_batches
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.zero_grad(set_to_none=True)
        task_total = None
        for j in range(k):
            last = j == k - 1
            sync = self.ddp.no_sync() if self.ddp is not None and not last else contextlib.nullcontext()
            with sync:
                with accel.autocast(self.device, self.config.precision):  # the task forward only
                    task = self.loss_fn(self._forward(distributed.shard(x, j, k)), distributed.shard(y, j, k))
                task = task.float()
                loss = task / k
                if last:  # the penalty once per step, in the backward pass that averages gradients over ranks
                    penalty = (self.compressor.penalty(self.model) if self.compressor is not None
                               else task.new_zeros(()))
                    loss = loss + penalty.to(task.device)
                self._finite &= torch.isfinite(loss.detach())
                if self.device.type == "cpu":
                    self.check_finite(task)  # free on CPU: stop before a non-finite backward
                loss.backward()
            task_total = task.detach() / k if task_total is None else task_total + task.detach() / k
        distributed.average_gradients(self.compressor_params, self.world)
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_([*self.model.parameters(), *self.compressor_params], self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return StepScalars({"task_loss": task_total, "compression_loss": penalty.detach()}, {"lr": lr})

    def check_finite(self, task: torch.Tensor | None = None) -> None:
        """Raise TrainingDiverged if any loss since the last check was NaN or inf (one host sync)."""
        if self._checked == self.step and task is None:
            return
        if not bool(self._finite):
            where = f"at step {self.step}" if task is not None else f"between steps {self._checked} and {self.step}"
            detail = f" (task {task.item():.4g})" if task is not None else ""
            raise TrainingDiverged(f"loss is not finite {where}{detail}: lower lr or h")
        self._checked = self.step

    def fit(self) -> nn.Module:
        """Train to `config.epochs` (from wherever `self.step` stands, for resume); return the trained model."""
        with accel.determinism(self.config.deterministic, self.device):
            for cb in self.callbacks:
                cb.on_train_start(self)
            while self.step < self.total_steps:
                epoch, start = divmod(self.step, self.steps_per_epoch)
                self.batches.set_epoch(epoch)
                for x, y in self.batches.iterate(start):
                    scalars = self._step(x, y)
                    if self.step % self.config.stats_every == 0 or self.step == self.total_steps:
                        self.check_finite()
                        if self.compressor is not None:
                            self.last_stats = self.compressor.stats(self.model)
                            scalars.update(self.last_stats)
                    for cb in self.callbacks:
                        cb.on_step_end(self, scalars)
                for cb in self.callbacks:
                    cb.on_epoch_end(self)
            self.check_finite()
            for cb in self.callbacks:
                cb.on_train_end(self)
        return self.model

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: model, optimizer, scheduler, compressor, step, RNG (CPU, and
        CUDA on a GPU)."""
        rng = accel.rng_state(self.device)
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "step": self.step,
                "compressor": self.compressor.state_dict() if self.compressor is not None else {},
                "torch_rng": rng["cpu"], **({"cuda_rng": rng["cuda"]} if "cuda" in rng else {})}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = self._checked = int(state["step"])
        if self.compressor is not None:
            self.compressor.load_state_dict(state["compressor"])
        accel.set_rng_state({"cpu": state["torch_rng"], **({"cuda": state["cuda_rng"]} if "cuda_rng" in state
                                                            else {})}, self.device)


def _quiet_import_cpp_extension() -> None:
    """Import torch.utils.cpp_extension (inductor's C++ builder) without its import-time "No CUDA runtime is
    found, using CUDA_HOME=..." warning, which a CUDA build of torch logs on every CPU-only machine."""
    import logging

    log = logging.getLogger("torch.utils.cpp_extension")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        import torch.utils.cpp_extension  # noqa: F401
    finally:
        log.setLevel(level)


def _compile_errors() -> tuple[type[Exception], ...]:
    """What torch.compile raises when tracing or building kernels fails (InductorError included; a private
    module, so looked up defensively)."""
    try:
        from torch._dynamo.exc import TorchDynamoException
    except ImportError:
        return (RuntimeError,)
    return (TorchDynamoException,)


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"


class ProgressBar(Callback):
    """tqdm over all SGD steps with task loss, compression loss and the latest cluster statistics."""

    def __init__(self, every: int = 10):
        self.every, self.bar = every, None

    def on_train_start(self, trainer: Trainer) -> None:
        self.bar = tqdm(total=trainer.total_steps, initial=trainer.step, desc="train", unit="step", dynamic_ncols=True)

    def on_step_end(self, trainer: Trainer, scalars: dict[str, float]) -> None:
        self.bar.update(1)
        if trainer.step % self.every == 0:
            post = {"task": f"{scalars['task_loss']:.3f}", "L_C": f"{scalars['compression_loss']:.3g}"}
            if "mean_clusters" in trainer.last_stats:
                post["clusters"] = f"{trainer.last_stats['mean_clusters']:.1f}"
                post["bits"] = f"{trainer.last_stats['mean_bits']:.2f}"
            self.bar.set_postfix(post, refresh=False)

    def on_train_end(self, trainer: Trainer) -> None:
        self.bar.close()
