"""Per-device settings of a training or evaluation job: determinism, TF32, cuDNN autotuning, bf16 autocast.

`determinism(on, device)` is a context manager that sets torch's process-wide switches for the duration of a
job and restores them afterwards, so a library call never leaves them changed behind its caller:
  on=True   torch.use_deterministic_algorithms(True) (an op with no deterministic kernel raises instead of
            running), cuDNN deterministic and not autotuned, TF32 off for matmuls and convolutions, and
            CUBLAS_WORKSPACE_CONFIG=:4096:8 (cuBLAS reads it when its first handle is made: a process that already
            ran a CUDA matmul keeps its workspace, which is why `landscape.train --deterministic` sets it first).
            Cost: measured by bench/gpu_check.py on a GPU (README); on CPU nothing changes (every kernel the
            trainer uses is deterministic there, tested bit-identical).
  on=False  on CUDA, cuDNN autotuning (`cudnn.benchmark`: the fastest convolution algorithm for each shape, which
            may differ between runs); everything else as torch's defaults (cuDNN convolutions may use TF32 on
            Ampere and later GPUs, matmuls do not).
`autocast(device, precision)`: bf16 autocast of the task forward (precision "bf16"), a no-op for "fp32".
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

PRECISIONS = ("fp32", "bf16")  # the task forward's arithmetic: float32, or bf16 autocast (weights stay float32)
CUBLAS_WORKSPACE = ":4096:8"


@contextlib.contextmanager
def determinism(on: bool, device: torch.device | str = "cpu") -> Iterator[None]:
    device = torch.device(device)
    saved = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
             torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        if on:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        elif device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0])
        (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
         torch.backends.cudnn.allow_tf32) = saved[1:]


def autocast(device: torch.device | str, precision: str):
    """bf16 autocast on `device` for precision "bf16"; a context that does nothing for "fp32"."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")


def rng_state(device: torch.device | str) -> dict[str, torch.Tensor]:
    """torch's global RNG states that a job on `device` draws from: the CPU one, and the CUDA one of that GPU."""
    device = torch.device(device)
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device | str) -> None:
    """Restore `rng_state`'s output; a CUDA state is restored on a CUDA device only (a run resumed on another
    kind of device continues from the CPU state alone, and is then not bit-identical anyway)."""
    device = torch.device(device)
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def worker_device(name: str, index: int, gpus: int | None = None) -> str:
    """The device of worker `index` of a study run with `-j`: `cuda` (no index) deals the workers out over the
    visible GPUs round-robin (`cuda:index % gpus`); an explicit `cuda:N`, `cpu` or any other device is every
    worker's."""
    device = torch.device(name)
    if device.type != "cuda" or device.index is not None:
        return name
    gpus = torch.cuda.device_count() if gpus is None else gpus
    return f"cuda:{index % gpus}" if gpus > 0 else name
