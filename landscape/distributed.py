"""Running under torchrun: process group set-up, batch sharding and gathering, with PyTorch's own engine
(torch.distributed + DistributedDataParallel; gloo on CPU, nccl on CUDA). Without torchrun (no WORLD_SIZE in the
environment, or WORLD_SIZE=1) every function here is a no-op for a single process.

Sharding rule: every rank iterates the same global batches (same seed) and takes a contiguous 1/W slice of each,
so the global batch size, data order and augmentation are those of a single-process run; DDP averages the
gradients. The only difference from one process is BatchNorm: each rank normalises with its own slice's
statistics (SyncBatchNorm is GPU-only). A single process reproduces that exactly with `TrainConfig.micro_batches
= W` (the batch split into W slices whose gradients are averaged), which is what the 2-process test compares to.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from .errors import LandscapeError

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


def init(device: torch.device) -> World:
    """Join the process group torchrun describes in the environment (once); a single process gets World()."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    return World(dist.get_rank(), dist.get_world_size(), local_rank)


def usable_device(name: str) -> torch.device:
    """`torch.device(name)`, checked by allocating on it: raises LandscapeError (one line) where it is not usable.

        >>> usable_device("cpu")
        device(type='cpu')
    """
    from .errors import LandscapeError

    try:
        dev = torch.device(name)
        torch.empty(1, device=dev)
    except (RuntimeError, AssertionError) as e:
        raise LandscapeError(f"device {name!r} is not usable here ({str(e).splitlines()[0]})") from None
    return dev


def device_for(name: str) -> torch.device:
    """Under torchrun with CUDA, each process takes the GPU of its local rank: `cuda` → `cuda:LOCAL_RANK`, and
    `cuda:N` too, with one line on stderr from local rank 0 (N would put every rank on one GPU; choose the GPUs
    with CUDA_VISIBLE_DEVICES instead)."""
    dev = torch.device(name)
    if dev.type != "cuda" or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return dev
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dev.index is not None and local == 0:
        print(f"landscape: --device {name} under torchrun: each rank uses cuda:LOCAL_RANK (one GPU per process; "
              "CUDA_VISIBLE_DEVICES chooses which)", file=sys.stderr)
    return torch.device("cuda", local)


def shard(tensor: torch.Tensor, index: int, parts: int) -> torch.Tensor:
    """The index-th of `parts` contiguous slices along dim 0 (sizes differ by at most one)."""
    n = tensor.shape[0]
    start, stop = index * n // parts, (index + 1) * n // parts
    return tensor[start:stop]


def shard_list(items: list, world: World) -> list:
    """This rank's share of a list of work items (round-robin, so every rank gets a similar load)."""
    return items[world.rank :: world.size]


def gather(obj, world: World) -> list | None:
    """All ranks' objects in rank order on rank 0 (None elsewhere); [obj] for a single process."""
    if not world.active:
        return [obj]
    out = [None] * world.size if world.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast(obj, world: World):
    """Rank 0's `obj` on every rank (pickled over the process group); `obj` itself for a single process."""
    if not world.active:
        return obj
    box = [obj if world.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_main(fn: Callable[[], T], world: World) -> T | None:
    """fn() on rank 0 only (None elsewhere). A LandscapeError or ValueError it raises is raised on every rank, so
    the other ranks do not hang in the next collective while rank 0 exits with the message."""
    value, error = None, None
    if world.is_main:
        try:
            value = fn()
        except (LandscapeError, ValueError) as e:
            if not world.active:
                raise
            error = (type(e).__name__, str(e))
    error = broadcast(error, world)
    if error is not None:
        kind, message = error
        raise (ValueError if kind == "ValueError" else LandscapeError)(message)
    return value


def average_gradients(params, world: World) -> None:
    """Average the gradients of `params` (tensors outside the DDP-wrapped module, e.g. a compressor's codebooks)
    over the ranks, in place, in one all-reduce: what DDP does for the module's own parameters. A parameter with
    no gradient is skipped (every rank runs the same code, so every rank skips the same ones)."""
    if not world.active:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat.div_(world.size)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def barrier(world: World) -> None:
    if world.active:
        dist.barrier()


def finish(world: World) -> None:
    if world.active and dist.is_initialized():
        dist.destroy_process_group()
