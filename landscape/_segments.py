"""Segmented tensor primitives for the batched (all layers at once) estimators of `landscape.coupling`.

The weights of several layers are concatenated into one 1-D tensor; layer l is the contiguous segment
[off_l, off_{l+1}) ("segment-major"). Each primitive here does for every segment at once what a per-layer
call would do for one, in a fixed number of torch ops. Values are only ever compared as themselves: nothing
is shifted by a per-segment offset, so every float comparison is the one the per-layer computation makes and
exact results stay exact. Pure torch, device-agnostic.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
from torch import Tensor


class Layout(NamedTuple):
    off: Tensor  # (L + 1,) int64: segment l is [off[l], off[l + 1])
    seg: Tensor  # (N,) int64: the segment of every element
    inner: Tensor  # (N - 1,) bool: element p + 1 is in the same segment as element p
    index: Tensor  # (N + 1,) int64: 0, 1, ..., N


@functools.lru_cache(maxsize=8)
def layout(sizes: tuple[int, ...], device: torch.device) -> Layout:
    """Index tensors for segments of the given sizes laid end to end. Cached: a model's layer sizes do not
    change between steps, and building them costs several elementwise passes. Treat as read-only."""
    off = torch.zeros(len(sizes) + 1, dtype=torch.int64, device=device)
    off[1:] = torch.tensor(sizes, dtype=torch.int64, device=device).cumsum(0)
    n = sum(sizes)
    seg = torch.zeros(n + 1, dtype=torch.int64, device=device)
    seg.index_add_(0, off[1:-1], torch.ones(len(sizes) - 1, dtype=torch.int64, device=device))
    seg = seg[:n].cumsum(0)  # +1 at every segment start after the first
    return Layout(off, seg, seg[1:] == seg[:-1], torch.arange(n + 1, device=device))


def _ordered_bits(x: Tensor) -> Tensor:
    """Integers in the order of the finite float32/float64 values x (sign-magnitude to two's complement:
    negative values get their magnitude bits flipped). -0.0 comes just before +0.0; they are then adjacent,
    equal as floats, so a sort by these keys is a valid ascending sort of x."""
    ity, bits = (torch.int32, 32) if x.dtype == torch.float32 else (torch.int64, 64)
    b = x.view(ity)
    return b ^ ((b >> (bits - 1)) & ((1 << (bits - 1)) - 1))


def sort_segments(x: Tensor, sizes: tuple[int, ...]) -> Tensor:
    """Permutation sorting x ascending within each segment, segments kept in place.

    x: finite float32 or float64. Sorts integer keys (`_ordered_bits`), which torch sorts by radix on CPU
    (~2.5x faster here than its comparison sort of the floats; CUDA sorts are radix sorts anyway), one
    segment at a time: measured ~1.8x faster than one sort of all segments by a composite (segment, value)
    key, which takes 8 radix passes over arrays that no longer fit in cache (and float64 has no spare bits).
    """
    key = _ordered_bits(x)
    perm = torch.empty(x.numel(), dtype=torch.int64, device=x.device)
    lo = 0
    for n in sizes:
        if n:
            perm[lo : lo + n] = torch.sort(key[lo : lo + n], stable=True).indices.add_(lo)
        lo += n
    return perm


def tie_runs(s: Tensor, inner: Tensor) -> tuple[Tensor, Tensor, Tensor] | None:
    """Runs of equal values in s (sorted within segments; runs never cross segments), on the few weights in
    them. inner: `Layout.inner`. Returns None if all values differ, else (members, run start, tau) for every
    position in a run: tau = (#run members before it) - (#after), i.e. 2k - r + 1 at offset k of a run of r.
    O(N) to find them, then O(#tied) ops.
    """
    tied = torch.nonzero((s[1:] == s[:-1]).logical_and_(inner)).squeeze(1).add_(1)  # equal to predecessor
    if tied.numel() == 0:
        return None
    members = torch.unique(torch.cat([tied - 1, tied]))  # sorted
    is_start = ~torch.isin(members, tied)
    run = is_start.cumsum(0).sub_(1)
    start = members[is_start].index_select(0, run)
    length = torch.bincount(run).index_select(0, run)
    return members, start, (members - start).mul_(2).sub_(length).add_(1)


def segment_sums(v: Tensor, sizes: list[int]) -> Tensor:
    """(L,) sums of the consecutive pieces of v of the given sizes (one small reduction per piece: faster
    here than one scatter_add/index_add over all of v, whose CPU kernels add one element at a time)."""
    return torch.stack([p.sum() for p in v.split(sizes)])
