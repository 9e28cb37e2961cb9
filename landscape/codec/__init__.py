"""A compressed model as a small file: per compressed layer its codebook and bit-packed indices, everything else
as is, with the architecture spec and provenance; `load_exported(path)` rebuilds the module bit for bit.

Written by `python -m landscape.export RUN.h5 --out MODEL` (landscape/cli/export.py); sizes compared by
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
                "tied": {ALIAS: KEY} (only where the model ties tensors: ALIAS, e.g. a head that is the token
                        embedding, is not stored; a reader sets state[ALIAS] = state[KEY], one tensor),
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

Layout: bits.py (constants, ExportError, bit packing, entropy), layers.py (a tensor as codebook + indices and
back), container.py (the safetensors file: write atomically, read and check), model.py (export ↔ model and run:
spec, compressed parameters, provenance), sizes.py (what the file weighs against float32, lzma, zstd, entropy).
"""

from __future__ import annotations

from .bits import (
                   CHUNK,
                   DTYPES,
                   FORMAT,
                   FORMAT_VERSION,
                   MAX_K,
                   SEP,
                   TORCH_DTYPES,
                   ExportError,
                   entropy_bits,
                   pack_bits,
                   packed_length,
                   storage_bits,
                   unpack_bits,
)
from .container import Exported, read_export, write_export
from .layers import Layer, decode_layer, encode_state, encode_tensor
from .model import build_from_spec, compressors, export_run, export_state, load_exported, run_spec
from .sizes import float32_checkpoint_bytes, size_report

__all__ = ["FORMAT", "FORMAT_VERSION", "ExportError", "Layer", "Exported", "pack_bits", "unpack_bits",
           "entropy_bits", "encode_tensor", "decode_layer", "encode_state", "write_export", "read_export",
           "load_exported", "build_from_spec", "run_spec", "export_run", "export_state", "size_report",
           "compressors", "storage_bits", "packed_length", "float32_checkpoint_bytes", "CHUNK", "DTYPES",
           "TORCH_DTYPES", "MAX_K", "SEP"]
