"""A compressed model as a small file: per compressed layer its codebook and bit-packed indices, everything else
as is, with the architecture spec and provenance; `load_exported(path)` rebuilds the module bit for bit.

Written by `python -m landscape.export RUN.h5 --out MODEL` (landscape/export.py); sizes compared by
`analyses/table_export.py`.

File format "landscape-export", version 1
------------------------------------------
The container is safetensors (https://github.com/huggingface/safetensors, "format" in its README):

    [8 bytes]   N, the header length, unsigned 64-bit little-endian
    [N bytes]   the header: UTF-8 JSON, padded with spaces so that the data starts at a multiple of 8 bytes
    [the rest]  the data buffer: every tensor's bytes, row-major, little-endian, back to back, no holes

    header = {"__metadata__": {"format": "landscape-export", "format_version": "1",
                               "sha256": hex digest of the data buffer, "manifest": JSON text (below)},
              TENSOR: {"dtype": "F32" | "U8" | "I64" | …, "shape": [...], "data_offsets": [begin, end]}, …}

Tensors, listed in the header in the model's state-dict order (KEY:codebook, KEY:indices where KEY would be; a
reader takes the state dict's order from it), and in the data buffer by item size, largest first (so each is
aligned):
    KEY                 a state-dict entry stored as is (BN parameters and buffers, biases, uncompressed layers,
                        and compressed layers whose packing would not save anything), its own dtype and shape
    KEY:codebook        an encoded layer's codebook: [K] values (encoding "scalar") or [K, d] sub-vectors
                        ("vector"), in the layer's dtype; index k decodes to codebook[k]
    KEY:indices         U8 [ceil(n·b/8)]: the layer's n indices at b = ceil(log2 K) bits each (b = 0 when K = 1:
                        no bytes), bit-packed little-endian: bit j of index i is bit (i·b + j) of the stream, and
                        stream bit p is bit p mod 8 (least significant first) of byte p div 8; the unused high
                        bits of the last byte are zero

    manifest = {"spec": {"arch": "resnet20", "kwargs": {}, "wrapper": null | {"method", "config"}},
                "state": "clamped",
                "layers": {KEY: {"encoding": "scalar" | "vector", "shape", "dtype", "k", "bits", "n", "dim",
                                 "distinct_values", "run_clusters"}},
                "raw_compressed": {KEY: why a compressed layer is stored as is},
                "provenance": {"run", "run_sha256", "run_git_commit", "run_created", "run_version", "method",
                               "seed", "compressor", "eval", "exporter_version", "exporter_git_commit",
                               "exported"}}

    A layer decodes to codebook[indices] (scalar), or codebook[indices].flatten()[:numel] (vector: n =
    ceil(numel/d) sub-vectors of d consecutive weights in flattened order, the last one padded), reshaped to
    "shape". "spec" is the run's architecture as the run file names it (store.Run.arch, .arch_kwargs) and
    rebuilds the module: `landscape.models.build_model(arch, kwargs)` for a CIFAR ResNet name ("resnet20",
    "tiny", ...) or, only when the caller trusts the file (`trust_spec=True`, CLI --trust-spec), for a
    "package.module:factory" (building it imports a module the file names and calls it with the file's
    arguments: code the file chooses, which a model file should not get to run by default); an arch "<module.Class>"
    (a model given to landscape.compress as a Python object) is rebuilt only from a `template` model. Then, for
    runs whose states are of a compressor's wrapper module (input-bitwise),
    `make_compressor(method, config).prepare(model)`.

Choices, and why
----------------
- Container: safetensors. Measured on ResNet-20 (136 tensors, 147 KB of payload at 4 bits), the per-tensor
  overhead is what decides: HDF5 added 53 KB (libver latest; 79 KB default) of object headers, npz 38 KB of zip
  entries and .npy headers, safetensors one JSON entry per tensor (its whole header, manifest included, is
  15 KB). It is a standard, documented and widely read container (Python, Rust, JS readers;
  `safetensors.safe_open(path, "pt").metadata()` shows the manifest), it cannot carry code (unlike pickle), and
  it is simple enough that reading and writing it here takes no new dependency (this module implements the
  format; the `safetensors` package, 0.8.0 checked by hand, reads our files: every tensor and the metadata).
  The run files stay HDF5: they are appended to and hold many states, which safetensors is not made for.
- Codebook = the distinct *bit patterns* of the layer's tensor in the chosen state (`torch.unique` of its integer
  view, `return_inverse=True`), sorted by value. Comparing bits, not values, keeps -0.0 and +0.0 (and any NaN
  payload) apart, so decode(encode(w)) == w bit for bit by construction, and the loaded model's outputs equal the
  run's. K is cross-checked against the run's /final/clusters (`run_clusters`; reported when they differ).
- Which layers are encoded: those with a codebook in the run's /final/clusters (the compressor's own list of
  compressed parameters; `landscape.params.select_params(model, config["compressor"]["params"])` when a run
  has none). Input-bitwise runs compress the *inputs*: their clusters are the input channels' decoder tables,
  no weight is compressed, and their export is the float network plus the input quantizer, as is.
- A compressed layer is stored as is when K > 2^16 or when codebook + packed indices would not be smaller than
  the tensor itself (the "compressed" state of a run, with ~all values distinct, is such a case); the manifest
  and the report say so per layer.
- VQ-QAT runs (vector codebooks of d-dim sub-vectors): a layer is encoded both per d-vector (K = distinct
  sub-vectors, the codewords in use; what VQ stores: b bits per d weights) and per scalar (K = distinct values,
  up to d·2^b), and the smaller is kept ("encoding" says which). For d = 2 and 2^8 codewords the vector code
  takes 4 bits per weight where the scalar one would take 9.
- Bits: b = ceil(log2 K) (the storage bits of `quantize.Codebook`). Packing is vectorised (np.packbits on a
  [n, b] bit matrix, in chunks of 2^20 indices to bound memory).
- Integrity: the header carries the SHA-256 of the data buffer, so a flipped byte is caught, not decoded into a
  silently different model; lengths, index ranges and padding bits are checked as well.

Sizes (`size_report`): real bytes on disk of the export, of the float32 checkpoint of the same state
(`torch.save(state_dict)` written to a temporary file), and of the export compressed with lzma (xz, preset
9 | extreme; and zstd level 19 when the `zstandard` package or Python 3.14's `compression.zstd` is there);
per layer K, log2 K, b, the Shannon entropy H of its index histogram (bits per index) and the ideal
entropy-coded size n·H/8 bytes + the codebook. "entropy_ideal" = Σ over encoded layers (n·H/8 + codebook) +
the bytes of every tensor stored as is (header excluded): what an ideal order-0 entropy coder of the indices
would reach. It is not a bound for lzma, which models context (neighbouring indices, repeated byte patterns)
and can end below it.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import lzma
import math
import os
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from .errors import LandscapeError

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

__all__ = ["FORMAT", "FORMAT_VERSION", "ExportError", "Layer", "Exported", "pack_bits", "unpack_bits",
           "entropy_bits", "encode_tensor", "decode_layer", "encode_state", "write_export", "read_export",
           "load_exported", "build_from_spec", "run_spec", "export_run", "export_state", "size_report",
           "compressors"]


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
    (module docstring); bits 0..32."""
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


def encode_state(state: Mapping[str, Tensor], compressed: Iterable[str], *, vector_dim: int | None = None,
                 run_clusters: Mapping[str, int] | None = None) -> tuple[dict[str, Layer], dict[str, str]]:
    """({key: Layer} for the compressed keys worth encoding, {key: reason} for those stored as is)."""
    layers, raw = {}, {}
    for key in compressed:
        if key not in state:
            raise ExportError(f"compressed parameter {key} is not in the state dict")
        out = encode_tensor(key, state[key], vector_dim=vector_dim,
                            run_clusters=(run_clusters or {}).get(key))
        if isinstance(out, Layer):
            layers[key] = out
        else:
            raw[key] = out
    return layers, raw


# ------------------------------------------------------------------------------------------- the container


def _tensor_bytes(t: Tensor) -> bytes:
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def _encode_file(entries: list[tuple[str, Tensor | np.ndarray]], metadata: dict[str, str]) -> bytes:
    """safetensors bytes of (name, tensor or uint8 array) entries: the header lists them in the given order, the
    data buffer holds them ordered by item size (largest first, so each is aligned to its item size)."""
    if sys.byteorder != "little":
        raise ExportError("exporting needs a little-endian machine (the format is little-endian)")
    items = []
    for name, value in entries:
        t = torch.from_numpy(value) if isinstance(value, np.ndarray) else value.detach().cpu()
        if t.dtype not in DTYPES:
            raise ExportError(f"{name}: dtype {t.dtype} has no safetensors name")
        items.append((name, t))
    header, chunks, offset = {name: None for name, _ in items}, [], 0
    for name, t in sorted(items, key=lambda item: -item[1].element_size()):  # stable: the given order within a size
        data = _tensor_bytes(t)
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    buffer = b"".join(chunks)
    meta = {**metadata, "sha256": hashlib.sha256(buffer).hexdigest()}
    text = json.dumps({"__metadata__": meta, **header}, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-(8 + len(text)) % 8)
    return len(text).to_bytes(8, "little") + text + buffer


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _file_bytes(layers: Mapping[str, Layer], state: Mapping[str, Tensor], manifest: dict) -> bytes:
    entries = []
    for key, value in state.items():
        if key in layers:
            layer = layers[key]
            entries.append((f"{key}{SEP}codebook", layer.codebook))
            entries.append((f"{key}{SEP}indices", pack_bits(layer.indices, layer.bits)))
        else:
            entries.append((key, value))
    metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION),
                "manifest": json.dumps(manifest, separators=(",", ":"), ensure_ascii=False)}
    return _encode_file(entries, metadata)


def write_export(path: str | os.PathLike, state: Mapping[str, Tensor], *, spec: dict, compressed: Iterable[str],
                 state_name: str, provenance: dict | None = None, vector_dim: int | None = None,
                 run_clusters: Mapping[str, int] | None = None) -> Path:
    """Encode `state` (its `compressed` keys with codebooks, the rest as is) into an export file, written to a
    temporary name, read back and checked bit for bit against `state`, then renamed onto `path`."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in state.items()}
    layers, raw = encode_state(state, compressed, vector_dim=vector_dim, run_clusters=run_clusters)
    manifest = {"spec": spec, "state": state_name,
                "layers": {k: layer.manifest() for k, layer in layers.items()}, "raw_compressed": raw,
                "provenance": provenance or {}}
    data = _file_bytes(layers, state, manifest)
    back = _parse(data, f"{path} (as written)")
    for key, value in state.items():  # decode(encode(state)) == state, bit for bit, before the file lands
        got = back.state[key]
        if got.dtype != value.dtype or got.shape != value.shape or not torch.equal(_raw_bits(got), _raw_bits(value)):
            raise RuntimeError(f"export of {key} does not decode to the same bits (a bug in landscape.codec)")
    _atomic_write(path, data)
    return path


def _raw_bits(t: Tensor) -> Tensor:
    return t.contiguous().reshape(-1).view(torch.uint8)


@dataclass(frozen=True)
class Exported:
    """An export file read back: the decoded state dict, the manifest, the encoded layers and the raw tensors."""

    state: dict[str, Tensor]
    manifest: dict
    layers: dict[str, Layer]
    raw: dict[str, Tensor]
    header_bytes: int
    file_bytes: int

    @property
    def spec(self) -> dict:
        return self.manifest["spec"]


def read_export(path: str | os.PathLike) -> Exported:
    """Read and check an export file; every defect is an ExportError with a one-line message."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"export {path} does not exist")
    return _parse(path.read_bytes(), str(path))


def _parse(data: bytes, where: str) -> Exported:
    def bad(message: str) -> ExportError:
        return ExportError(f"{where}: {message}")

    if len(data) < 8:
        raise bad(f"not a landscape export ({len(data)} bytes, too short for a safetensors header)")
    n = int.from_bytes(data[:8], "little")
    if n > min(MAX_HEADER, len(data) - 8):
        raise bad(f"not a landscape export (header length {n} does not fit the {len(data)}-byte file: "
                  "truncated, or not safetensors)")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise bad("not a landscape export (its header is not JSON: corrupt, or not safetensors)") from None
    if not isinstance(header, dict) or not isinstance(header.get("__metadata__"), dict):
        raise bad("not a landscape export (a safetensors header without __metadata__)")
    meta = header.pop("__metadata__")
    if meta.get("format") != FORMAT:
        raise bad(f"not a landscape export (format {meta.get('format')!r}, expected {FORMAT!r})")
    if meta.get("format_version") != str(FORMAT_VERSION):
        raise bad(f"format version {meta.get('format_version')!r}; this landscape reads version {FORMAT_VERSION}")
    buffer = memoryview(data)[8 + n:]

    # the tensor table: known dtypes, sizes that match, offsets that tile the buffer
    spans = []
    for name, entry in header.items():
        try:
            dtype, shape, (begin, end) = TORCH_DTYPES[entry["dtype"]], entry["shape"], entry["data_offsets"]
            if not all(isinstance(d, int) and d >= 0 for d in shape) or not 0 <= begin <= end:
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise bad(f"corrupt tensor entry {name!r} in the header") from None
        size = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
        if end - begin != size:
            raise bad(f"tensor {name}: {end - begin} bytes for shape {shape} of {entry['dtype']} ({size} bytes)")
        spans.append((begin, end, name))
    spans.sort()
    expected = 0
    for begin, end, name in spans:
        if begin != expected:
            raise bad(f"tensor {name} starts at byte {begin} of the data, expected {expected} (corrupt header)")
        expected = end
    if len(buffer) != expected:
        kind = "truncated" if len(buffer) < expected else "trailing bytes"
        raise bad(f"{kind}: the header describes {expected} bytes of tensor data, the file holds {len(buffer)}")
    if hashlib.sha256(buffer).hexdigest() != meta.get("sha256"):
        raise bad("corrupt: the SHA-256 of the tensor data does not match the header's")

    tensors = {}
    for begin, end, name in spans:
        entry = header[name]
        dtype = TORCH_DTYPES[entry["dtype"]]
        if end == begin:
            tensors[name] = torch.empty(entry["shape"], dtype=dtype)
        else:
            raw = torch.frombuffer(bytearray(buffer[begin:end]), dtype=torch.uint8)
            tensors[name] = raw.view(dtype).reshape(entry["shape"])

    try:
        manifest = json.loads(meta["manifest"])
        layer_meta = dict(manifest["layers"])
        if not isinstance(manifest.get("spec"), dict):
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise bad("corrupt manifest (not the JSON this format defines)") from None

    state, layers, raw = {}, {}, {}
    for name in header:  # the header lists the state dict in the model's order
        key, _, part = name.partition(SEP)
        if key in layer_meta:
            if not part:
                raise bad(f"{key} is stored both as is and as a codebook layer")
            if key not in layers:
                layers[key] = _layer_from(key, layer_meta[key], tensors, bad)
                state[key] = decode_layer(layers[key])
        elif part:
            raise bad(f"tensor {name} belongs to no layer of the manifest")
        else:
            raw[key] = state[key] = tensors[key]
    missing = sorted(set(layer_meta) - set(layers))
    if missing:
        raise bad(f"the manifest's layer {missing[0]} has no tensors")
    return Exported(state, manifest, layers, raw, header_bytes=8 + n, file_bytes=len(data))


def _layer_from(key: str, m, tensors: dict[str, Tensor], bad) -> Layer:
    try:
        encoding, shape, k, bits, n, dim = (m["encoding"], tuple(m["shape"]), int(m["k"]), int(m["bits"]),
                                            int(m["n"]), int(m["dim"]))
        dtype = getattr(torch, m["dtype"])
        codebook, packed = tensors[f"{key}{SEP}codebook"], tensors[f"{key}{SEP}indices"]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise bad(f"layer {key}: corrupt entry (or its codebook/indices tensor is missing)") from None
    numel = math.prod(shape)
    if encoding not in ("scalar", "vector") or dim < 1 or (encoding == "scalar" and dim != 1):
        raise bad(f"layer {key}: unknown encoding {encoding!r} (dim {dim})")
    want_shape = (k,) if encoding == "scalar" else (k, dim)
    if codebook.dtype != dtype or tuple(codebook.shape) != want_shape or k < 1:
        raise bad(f"layer {key}: codebook {tuple(codebook.shape)} {codebook.dtype}, expected {want_shape} {dtype}")
    if bits != storage_bits(k):
        raise bad(f"layer {key}: {bits} bits per index for K = {k}, expected {storage_bits(k)}")
    if n != -(-numel // dim):
        raise bad(f"layer {key}: {n} indices for {numel} weights in {dim}-vectors")
    if packed.dtype != torch.uint8 or packed.dim() != 1 or packed.numel() != packed_length(n, bits):
        raise bad(f"layer {key}: {packed.numel()} packed bytes, expected {packed_length(n, bits)} "
                  f"({n} indices × {bits} bits)")
    try:
        indices = unpack_bits(packed.numpy(), bits, n)
    except ValueError as e:
        raise bad(f"layer {key}: {e}") from None
    if n and int(indices.max()) >= k:
        raise bad(f"layer {key}: index {int(indices.max())} ≥ K = {k}")
    return Layer(key, shape, dtype, encoding, dim, codebook, indices, int(m.get("distinct_values") or 0),
                 m.get("run_clusters"))


# ------------------------------------------------------------------------------------------ model and runs


def build_from_spec(spec: dict, *, template: nn.Module | None = None, trust_spec: bool = False) -> nn.Module:
    """The (untrained) module an export's spec describes: a copy of `template` when given (a model of the same
    architecture), else the spec's arch (module docstring), then the spec's wrapper."""
    import copy

    from .models import ARCHS, build_model

    arch, kwargs = spec.get("arch"), spec.get("kwargs") or {}
    if not isinstance(arch, str) or not isinstance(kwargs, dict):
        raise ExportError(f"corrupt spec {spec!r}")
    if template is not None:
        model = copy.deepcopy(template)
    elif arch in ARCHS:
        try:
            model = build_model(arch, kwargs)
        except LandscapeError as e:
            raise ExportError(str(e)) from None
    elif arch.startswith("<"):
        raise ExportError(f"the model {arch} was given as a Python object, not an importable factory: pass a model "
                          "of that architecture as template")
    elif ":" in arch:
        if not trust_spec:
            raise ExportError(f"the spec names the factory {arch}: building it imports that module and calls it with "
                              f"the file's arguments; pass trust_spec=True (CLI: --trust-spec) if you trust this "
                              f"file, or a model of that architecture as template")
        try:
            model = build_model(arch, kwargs)
        except LandscapeError as e:
            raise ExportError(str(e)) from None
    else:
        raise ExportError(f"unknown architecture {arch!r} in the spec; this landscape builds {', '.join(ARCHS)} "
                          "and package.module:factory")
    wrapper = spec.get("wrapper")
    if wrapper:
        from .compress import make_compressor

        try:
            model = make_compressor(wrapper["method"], wrapper.get("config") or {}).prepare(model)
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise ExportError(f"the spec's wrapper {wrapper!r} cannot be built ({e})") from None
    return model


def load_exported(path: str | os.PathLike, *, template: nn.Module | None = None,
                  trust_spec: bool = False) -> nn.Module:
    """The module of an export file (`python -m landscape.export`), in eval mode, its state dict decoded bit for
    bit. The architecture comes from the file's spec: a CIFAR ResNet name is built directly; a
    `package.module:factory` spec only with `trust_spec=True` (building it imports a module the file names and
    calls it with the file's arguments: code the file chooses); or pass `template`, a model of the same
    architecture (copied, never modified; needed for runs of a model given as a Python object). Errors (missing,
    truncated or corrupt file, another format or version, a state that does not fit the architecture) are
    `ExportError`s (a LandscapeError) with a one-line message."""
    from .models import load_state

    exported = read_export(path)
    try:
        model = build_from_spec(exported.spec, template=template, trust_spec=trust_spec)
    except ExportError as e:
        raise ExportError(f"{path}: {e}") from None
    try:
        load_state(model, exported.state, source=f"export {path}")
    except LandscapeError as e:
        raise ExportError(f"{e} (architecture in the spec: {exported.spec.get('arch')})") from None
    return model.eval()


def run_spec(run) -> dict:
    """The architecture spec of a run (`store.Run`): the arch, and the compressor's wrapper for prepared runs."""
    spec = {"arch": run.arch, "kwargs": dict(run.arch_kwargs), "wrapper": None}
    if run.attrs.get("prepared", 0):
        spec["wrapper"] = {"method": run.method, "config": run.config.get("compressor", {})}
    return spec


def compressors(run, state: Mapping[str, Tensor]) -> tuple[list[str], dict[str, int]]:
    """(the run's compressed state-dict keys, K of each from /final/clusters): the layers with clusters in the
    run file, or (no /final/clusters) `select_params(model, config["compressor"]["params"])`."""
    from .errors import RunFileError

    try:
        clusters = run.clusters()
    except RunFileError:
        clusters = None
    if clusters is not None:
        keys = [k for k in state if k in clusters]
        return keys, {k: len(clusters[k][0]) for k in keys}
    from .params import select_params

    try:
        model = run.model("pretrained")
    except LandscapeError as e:
        raise ExportError(f"{run.path} has no /final/clusters and its model cannot be rebuilt to select the "
                          f"compressed parameters ({e})") from None
    which = run.config.get("compressor", {}).get("params", "weights")
    return [k for k in select_params(model, which) if k in state], {}


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def export_state(path: str | os.PathLike, state: Mapping[str, Tensor], *, arch: str, compressed: Iterable[str],
                 state_name: str, arch_kwargs: dict | None = None, provenance: dict | None = None,
                 vector_dim: int | None = None) -> Path:
    """Export a state dict of `landscape.models.build_model(arch, arch_kwargs)` (e.g. a PTQ-quantized copy of a
    checkpoint); `compressed`: the keys to encode with codebooks."""
    from . import __version__
    from .store import git_commit

    prov = {**(provenance or {}), "exporter_version": __version__, "exporter_git_commit": git_commit(),
            "exported": _now()}
    return write_export(path, state, spec={"arch": arch, "kwargs": dict(arch_kwargs or {}), "wrapper": None},
                        compressed=compressed,
                        state_name=state_name, provenance=prov, vector_dim=vector_dim)


def export_run(run_path: str | os.PathLike, out: str | os.PathLike, *, state: str = "clamped") -> Path:
    """Export one state of a run file (`clamped`, `recalibrated` or `compressed`) to `out` (overwritten)."""
    from . import __version__
    from .store import Run, git_commit

    if state not in ("clamped", "recalibrated", "compressed"):
        raise ExportError(f"state must be clamped, recalibrated or compressed, got {state!r}")
    run = Run(run_path)
    values = run.state(state)  # RunFileError (one line) when the run has no /final/<state>
    keys, ks = compressors(run, values)
    vector_dim = run.config.get("compressor", {}).get("dim") if run.method == "vq" else None
    provenance = {"run": str(run.path), "run_sha256": _sha256_file(run.path),
                  "run_git_commit": str(run.attrs.get("git_commit", "")),
                  "run_created": str(run.attrs.get("created", "")),
                  "run_version": str(run.attrs.get("version", "")), "method": run.method, "seed": run.seed,
                  "compressor": run.config.get("compressor", {}),
                  "eval": {k: _plain(v) for k, v in run.evals().get(state, {}).items()},
                  "exporter_version": __version__, "exporter_git_commit": git_commit(), "exported": _now()}
    return write_export(out, values, spec=run_spec(run), compressed=keys, state_name=state, provenance=provenance,
                        vector_dim=vector_dim, run_clusters=ks)


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


# ------------------------------------------------------------------------------------------------- sizes


def _zstd():
    """(compress(bytes) -> bytes at level ZSTD_LEVEL, a label naming the module), or None when neither the
    `zstandard` package nor Python 3.14's compression.zstd is there."""
    try:
        import zstandard

        return (lambda data: zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data),
                f"level {ZSTD_LEVEL} (zstandard {getattr(zstandard, '__version__', '?')})")
    except ImportError:
        pass
    try:
        from compression import zstd  # Python ≥ 3.14

        return lambda data: zstd.compress(data, level=ZSTD_LEVEL), f"level {ZSTD_LEVEL} (compression.zstd)"
    except ImportError:
        return None


def float32_checkpoint_bytes(state: Mapping[str, Tensor]) -> int:
    """Bytes on disk of `torch.save(state_dict)` (written to a temporary file and measured)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "state.pt"
        torch.save(dict(state), path)
        return path.stat().st_size


def size_report(path: str | os.PathLike) -> dict:
    """Sizes of an export file against the float32 checkpoint of the same state (module docstring), per layer
    and in total; a JSON-able dict. Per layer, k / log2_k / bits / entropy_bits are per *index* (one index per
    weight, or per d weights for vector codes); the *_per_weight fields divide by the weights. The means
    (mean_log2_k, mean_bits_per_weight, ...) are over the encoded layers, weighted by their weights, in bits per
    weight; "with_codebook" adds the codebooks' bytes."""
    path = Path(path)
    exported = read_export(path)
    data = path.read_bytes()
    xz = len(lzma.compress(data, format=lzma.FORMAT_XZ, preset=LZMA_PRESET))
    zstd, zstd_label = _zstd() or (None, "not installed")
    float32 = float32_checkpoint_bytes(exported.state)
    rows = []
    for key, layer in exported.layers.items():
        h = layer.entropy
        per_weight = layer.n / layer.numel  # indices per weight (1/d for vector codes)
        rows.append({"layer": key, "weights": layer.numel, "encoding": layer.encoding, "dim": layer.dim,
                     "k": layer.k, "log2_k": math.log2(layer.k), "bits": layer.bits, "entropy_bits": h,
                     "log2_k_per_weight": math.log2(layer.k) * per_weight,
                     "bits_per_weight": layer.bits * per_weight, "entropy_bits_per_weight": h * per_weight,
                     "bits_per_weight_with_codebook": 8 * (layer.packed_bytes + layer.codebook_bytes) / layer.numel,
                     "packed_bytes": layer.packed_bytes, "codebook_bytes": layer.codebook_bytes,
                     "entropy_bytes": layer.n * h / 8 + layer.codebook_bytes, "float_bytes": layer.raw_bytes,
                     "distinct_values": layer.distinct_values, "run_clusters": layer.run_clusters})
    raw_compressed = exported.manifest.get("raw_compressed", {})
    raw_tensor_bytes = sum(t.numel() * t.element_size() for t in exported.raw.values())
    for key, reason in raw_compressed.items():
        t = exported.raw[key]
        rows.append({"layer": key, "weights": t.numel(), "encoding": "raw", "dim": None, "k": None,
                     "log2_k": None, "bits": None, "entropy_bits": None, "log2_k_per_weight": None,
                     "bits_per_weight": 8 * t.element_size(), "entropy_bits_per_weight": None,
                     "bits_per_weight_with_codebook": 8 * t.element_size(), "packed_bytes": None,
                     "codebook_bytes": None, "entropy_bytes": None, "float_bytes": t.numel() * t.element_size(),
                     "note": reason})
    n_compressed = sum(r["weights"] for r in rows)
    encoded = [r for r in rows if r["encoding"] != "raw"]
    n_encoded = sum(r["weights"] for r in encoded)

    def mean(field):
        return sum(r[field] * r["weights"] for r in encoded) / n_encoded if n_encoded else None

    entropy_ideal = sum(r["entropy_bytes"] for r in encoded) + raw_tensor_bytes
    sizes = {"float32_checkpoint": float32, "float32_tensors": sum(t.numel() * t.element_size()
                                                                   for t in exported.state.values()),
             "export": len(data), "export_header": exported.header_bytes, "export_lzma": xz,
             "export_zstd": len(zstd(data)) if zstd else None, "entropy_ideal": round(entropy_ideal),
             "raw_tensors": raw_tensor_bytes}
    ratios = {k: (float32 / v if v else None) for k, v in sizes.items()
              if k in ("export", "export_lzma", "export_zstd", "entropy_ideal")}
    manifest = exported.manifest
    return {"file": str(path), "format": FORMAT, "format_version": FORMAT_VERSION, "state": manifest["state"],
            "spec": manifest["spec"], "provenance": manifest.get("provenance", {}),
            "numel": sum(t.numel() for t in exported.state.values()),
            "compressed_weights": n_compressed, "encoded_weights": n_encoded,
            "mean_log2_k": mean("log2_k_per_weight"), "mean_bits_per_weight": mean("bits_per_weight"),
            "mean_entropy_bits_per_weight": mean("entropy_bits_per_weight"),
            "mean_bits_per_weight_with_codebook": mean("bits_per_weight_with_codebook"),
            "bytes": sizes, "ratio_vs_float32": ratios, "layers": rows,
            "lzma": "xz preset 9|extreme", "zstd": zstd_label}
