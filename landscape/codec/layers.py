"""One tensor as a codebook + indices (scalar or d-vector code), bit for bit, and back."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .bits import _INT_VIEW, MAX_K, ExportError, entropy_bits, packed_length, storage_bits

# ------------------------------------------------------------------------------------------- layer encoding


@dataclass(frozen=True, eq=False)
class Layer:
    """One encoded tensor: `codebook[indices]` (scalar) or its d-vectors (vector) is the tensor, bit for bit."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    encoding: str  # "scalar" | "vector"
    dim: int  # d (1 for scalar)
    codebook: Tensor  # [K] or [K, d], the layer's dtype
    indices: np.ndarray  # [n] int64 in [0, K)
    distinct_values: int  # distinct scalar bit patterns of the tensor
    run_clusters: int | None = None  # K of the run's /final/clusters, where known

    @property
    def k(self) -> int:
        return int(self.codebook.shape[0])

    @property
    def bits(self) -> int:
        return storage_bits(self.k)

    @property
    def n(self) -> int:
        return int(self.indices.size)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def itemsize(self) -> int:
        return torch.empty((), dtype=self.dtype).element_size()

    @property
    def packed_bytes(self) -> int:
        return packed_length(self.n, self.bits)

    @property
    def codebook_bytes(self) -> int:
        return self.codebook.numel() * self.itemsize

    @property
    def raw_bytes(self) -> int:
        return self.numel * self.itemsize

    @property
    def counts(self) -> np.ndarray:
        return np.bincount(self.indices, minlength=self.k)

    @property
    def entropy(self) -> float:
        """Bits per index of an ideal order-0 entropy coder."""
        return entropy_bits(self.counts)

    def manifest(self) -> dict:
        return {"encoding": self.encoding, "shape": list(self.shape), "dtype": str(self.dtype).removeprefix("torch."),
                "k": self.k, "bits": self.bits, "n": self.n, "dim": self.dim,
                "distinct_values": self.distinct_values, "run_clusters": self.run_clusters}


def _bits_of(t: Tensor) -> Tensor:
    """The tensor's bit patterns as integers (same item size), flattened."""
    return t.detach().cpu().contiguous().reshape(-1).view(_INT_VIEW[t.element_size()])


def _scalar_code(flat: Tensor) -> tuple[Tensor, Tensor]:
    """(codebook [K] sorted by value, inverse [N]) from the distinct bit patterns of a flat float tensor."""
    patterns, inverse = torch.unique(_bits_of(flat), sorted=True, return_inverse=True)
    values = patterns.view(flat.dtype)
    order = torch.argsort(values, stable=True)  # -0.0 before +0.0 is not guaranteed, but each keeps its own entry
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order))
    return values[order].clone(), rank[inverse]


def _vector_code(flat: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """(codebook [K, d], inverse [ceil(N/d)]) from the distinct d-vectors of consecutive weights; a last partial
    sub-vector takes the first entry that starts with its values (as VQ's reconstruction does), else a new entry
    padded with +0.0."""
    bits = _bits_of(flat)
    full = bits.numel() // dim * dim
    rows, inverse = torch.unique(bits[:full].view(-1, dim), dim=0, sorted=True, return_inverse=True)
    tail = bits[full:]
    if len(tail):
        match = torch.nonzero((rows[:, :len(tail)] == tail).all(1)).flatten() if len(rows) else torch.zeros(0)
        if len(match):
            extra = match[:1]
        else:
            rows = torch.cat([rows, torch.cat([tail, torch.zeros(dim - len(tail), dtype=tail.dtype)])[None]])
            extra = torch.tensor([len(rows) - 1])
        inverse = torch.cat([inverse, extra.to(inverse.dtype)])
    return rows.view(flat.dtype).clone(), inverse


def encode_tensor(name: str, tensor: Tensor, *, vector_dim: int | None = None, run_clusters: int | None = None,
                  max_k: int = MAX_K) -> Layer | str:
    """The smallest codebook encoding of `tensor` (scalar; with `vector_dim`, also d-vectors), or a one-line
    reason why it is better stored as is."""
    if not tensor.is_floating_point():
        return f"{tensor.dtype} tensor, not floating point"
    flat = tensor.detach().cpu().reshape(-1)
    if flat.numel() == 0:
        return "empty tensor"
    values, inverse = _scalar_code(flat)
    distinct = len(values)
    shape, dtype = tuple(tensor.shape), tensor.dtype
    candidates = []
    if distinct <= max_k:
        candidates.append(Layer(name, shape, dtype, "scalar", 1, values, inverse.numpy().astype(np.int64),
                                distinct, run_clusters))
    if vector_dim is not None and vector_dim > 1:
        rows, vinv = _vector_code(flat, vector_dim)
        if len(rows) <= max_k:
            candidates.append(Layer(name, shape, dtype, "vector", vector_dim, rows, vinv.numpy().astype(np.int64),
                                    distinct, run_clusters))
    if not candidates:
        return f"K = {distinct} distinct values > {max_k}: stored as is"
    best = min(candidates, key=lambda c: c.packed_bytes + c.codebook_bytes)
    if best.packed_bytes + best.codebook_bytes >= best.raw_bytes:
        return (f"{best.encoding} code K = {best.k} ({best.bits} bits per index): codebook + packed indices "
                f"({best.packed_bytes + best.codebook_bytes} B) not smaller than the tensor ({best.raw_bytes} B); "
                "stored as is")
    return best


def decode_layer(layer: Layer) -> Tensor:
    """The layer's tensor (a new tensor, bit-identical to the encoded one)."""
    index = torch.from_numpy(layer.indices)
    values = layer.codebook[index]
    return values.reshape(-1)[:layer.numel].reshape(layer.shape)


def encode_state(state: Mapping[str, Tensor], compressed: Iterable[str], *,
                 vector_dim: int | Mapping[str, int] | None = None,
                 run_clusters: Mapping[str, int] | None = None) -> tuple[dict[str, Layer], dict[str, str]]:
    """({key: Layer} for the compressed keys worth encoding, {key: reason} for those stored as is); `vector_dim`:
    one sub-vector length for every key, or one per key (a key it does not name: scalar only)."""
    layers, raw = {}, {}
    for key in compressed:
        if key not in state:
            raise ExportError(f"compressed parameter {key} is not in the state dict")
        dim = vector_dim.get(key) if isinstance(vector_dim, Mapping) else vector_dim
        out = encode_tensor(key, state[key], vector_dim=dim, run_clusters=(run_clusters or {}).get(key))
        if isinstance(out, Layer):
            layers[key] = out
        else:
            raw[key] = out
    return layers, raw
