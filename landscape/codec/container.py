"""The safetensors container: write an export file atomically, read and check one back."""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .bits import (
    DTYPES,
    FORMAT,
    FORMAT_VERSION,
    MAX_HEADER,
    SEP,
    TORCH_DTYPES,
    ExportError,
    pack_bits,
    packed_length,
    storage_bits,
    unpack_bits,
)
from .layers import Layer, decode_layer, encode_state

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
                 state_name: str, provenance: dict | None = None, vector_dim: int | Mapping[str, int] | None = None,
                 run_clusters: Mapping[str, int] | None = None, tied: Mapping[str, str] | None = None) -> Path:
    """Encode `state` (its `compressed` keys with codebooks, the rest as is) into an export file, written to a
    temporary name, read back and checked bit for bit against `state`, then renamed onto `path`. `tied` (alias →
    key: a head that is the token embedding) stores each such tensor once, under its key; the manifest's "tied"
    restores the alias on reading. An alias whose values differ from its key's is stored as is."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in state.items()}
    tied = {a: k for a, k in (tied or {}).items() if a in state and k in state and a != k and k not in (tied or {})
            and state[a].shape == state[k].shape and torch.equal(_raw_bits(state[a]), _raw_bits(state[k]))}
    stored = {k: v for k, v in state.items() if k not in tied}
    layers, raw = encode_state(stored, [k for k in compressed if k not in tied], vector_dim=vector_dim,
                               run_clusters=run_clusters)
    manifest = {"spec": spec, "state": state_name,
                "layers": {k: layer.manifest() for k, layer in layers.items()}, "raw_compressed": raw,
                **({"tied": tied} if tied else {}), "provenance": provenance or {}}
    data = _file_bytes(layers, stored, manifest)
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
    """Read and check an export file; every defect is an ExportError with a one-line message.

    Args:
        path: the export file.

    Returns:
        The `Exported` file: the decoded state dict, the manifest, the encoded layers and the raw tensors.

    Examples:
        >>> import tempfile
        >>> from landscape.codec import export_state
        >>> from landscape.models import build_model
        >>> from landscape.quantize import uniform
        >>> state = build_model("tiny").state_dict()
        >>> state["conv1.weight"] = uniform(state["conv1.weight"].flatten(), 2).apply().view_as(state["conv1.weight"])
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = export_state(f"{tmp.name}/tiny.safetensors", state, arch="tiny", compressed=["conv1.weight"],
        ...                     state_name="ptq:uniform:2")
        >>> exported = read_export(path)
        >>> list(exported.layers), exported.layers["conv1.weight"].k, exported.manifest["spec"]["arch"]
        (['conv1.weight'], 4, 'tiny')
        >>> tmp.cleanup()
        >>> read_export("no-such.safetensors")
        Traceback (most recent call last):
        ...
        landscape.codec.bits.ExportError: export no-such.safetensors does not exist
    """
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
    tied = manifest.get("tied") or {}
    if not isinstance(tied, dict) or any(k not in state or a in state for a, k in tied.items()):
        raise bad("corrupt manifest: its tied names do not match the stored tensors")
    for alias, key in tied.items():  # one tensor under two names (a tied head), as the model has it
        state[alias] = state[key]
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
