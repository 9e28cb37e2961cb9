"""Bit packing of code indices, the format's constants and its error type (the format: landscape/codec/__init__.py)."""

from __future__ import annotations

import lzma
import math

import numpy as np
import torch

from ..errors import LandscapeError

FORMAT = "landscape-export"
FORMAT_VERSION = 1
MAX_K = 2**16  # more distinct values than this: stored as is
MAX_HEADER = 100 * 2**20  # safetensors' own limit on the header length
CHUNK = 2**20  # indices packed/unpacked per numpy call (a multiple of 8, so chunks start on byte boundaries)
LZMA_PRESET = 9 | lzma.PRESET_EXTREME
ZSTD_LEVEL = 19
SEP = ":"  # KEY:codebook, KEY:indices; state-dict keys are dotted identifiers and never hold a colon

# torch dtype <-> safetensors dtype name
DTYPES: dict[torch.dtype, str] = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}
TORCH_DTYPES = {name: dtype for dtype, name in DTYPES.items()}
_INT_VIEW = {8: torch.int64, 4: torch.int32, 2: torch.int16, 1: torch.int8}  # bit patterns of a float dtype


class ExportError(LandscapeError):
    """A bad export file or a bad input to the exporter (one line, shown by the CLI without a traceback)."""



# ------------------------------------------------------------------------------------------------ bit packing


def storage_bits(k: int) -> int:
    """ceil(log2 K), 0 for K = 1."""
    return (k - 1).bit_length()


def packed_length(n: int, bits: int) -> int:
    return (n * bits + 7) // 8


def pack_bits(indices, bits: int) -> np.ndarray:
    """The [n] integer indices in [0, 2^bits) as a uint8 stream of ceil(n·bits/8) bytes, little-endian bit order
    (the format: landscape/codec/__init__.py); bits 0..32."""
    idx = np.asarray(indices)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"indices must be a 1-D integer array, got {idx.dtype} of shape {idx.shape}")
    if not 0 <= bits <= 32:
        raise ValueError(f"bits must be in 0..32, got {bits}")
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= 1 << bits):
        raise ValueError(f"indices must lie in [0, 2^{bits}), got {int(idx.min())}..{int(idx.max())}")
    if bits == 0:
        return np.zeros(0, np.uint8)
    idx = idx.astype(np.uint64, copy=False)
    shifts = np.arange(bits, dtype=np.uint64)
    out = np.empty(packed_length(idx.size, bits), np.uint8)
    for start in range(0, idx.size, CHUNK):  # CHUNK·bits is a multiple of 8: each chunk fills whole bytes
        matrix = ((idx[start:start + CHUNK, None] >> shifts) & np.uint64(1)).astype(np.uint8)  # [m, b]
        chunk = np.packbits(matrix.reshape(-1), bitorder="little")
        out[start * bits // 8:start * bits // 8 + chunk.size] = chunk
    return out


def unpack_bits(packed, bits: int, n: int) -> np.ndarray:
    """The n indices (int64) of a `pack_bits` stream; ValueError on a wrong length or non-zero padding bits."""
    packed = np.asarray(packed)
    if packed.dtype != np.uint8 or packed.ndim != 1:
        raise ValueError(f"packed indices must be a 1-D uint8 array, got {packed.dtype} of shape {packed.shape}")
    if not 0 <= bits <= 32 or n < 0:
        raise ValueError(f"bits must be in 0..32 and n ≥ 0, got bits {bits}, n {n}")
    if packed.size != packed_length(n, bits):
        raise ValueError(f"{packed.size} packed bytes for {n} indices of {bits} bits; expected "
                         f"{packed_length(n, bits)}")
    if bits == 0:
        return np.zeros(n, np.int64)
    used = n * bits % 8
    if used and int(packed[-1]) >> used:
        raise ValueError("non-zero padding bits after the last index")
    weights = np.left_shift(np.uint64(1), np.arange(bits, dtype=np.uint64))
    out = np.empty(n, np.int64)
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        chunk = packed[start * bits // 8:packed_length(start + m, bits)]
        matrix = np.unpackbits(chunk, count=m * bits, bitorder="little").reshape(m, bits)
        out[start:start + m] = matrix.astype(np.uint64) @ weights
    return out


def entropy_bits(counts) -> float:
    """Shannon entropy (bits per symbol) of a histogram; clamped to log2 of the used bins against round-off."""
    c = np.asarray(counts, dtype=np.float64)
    c = c[c > 0]
    if c.size <= 1:
        return 0.0
    p = c / c.sum()
    return float(min(-(p * np.log2(p)).sum(), math.log2(c.size)))
