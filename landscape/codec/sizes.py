"""What an export weighs: its bytes, the float32 checkpoint, lzma / zstd / ideal entropy coding, per layer."""

from __future__ import annotations

import lzma
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from .bits import FORMAT, FORMAT_VERSION, LZMA_PRESET, ZSTD_LEVEL
from .container import read_export

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


def float16_checkpoint_bytes(state: Mapping[str, Tensor]) -> int:
    """Bytes on disk of `torch.save` of the state with every floating tensor in float16 (the LLM field's usual
    full-precision reference; integer buffers as they are, tied tensors once)."""
    half = {}
    seen: dict[int, Tensor] = {}  # a tied tensor converted once, so torch.save still stores it once
    for key, t in state.items():
        if t.is_floating_point():
            half[key] = seen.setdefault(id(t), t.half())
        else:
            half[key] = t
    return float32_checkpoint_bytes(half)


def size_report(path: str | os.PathLike) -> dict:
    """Sizes of an export file against the float32 checkpoint of the same state (landscape/codec/__init__.py), per layer
    and in total; a JSON-able dict. Per layer, k / log2_k / bits / entropy_bits are per *index* (one index per
    weight, or per d weights for vector codes); the *_per_weight fields divide by the weights. The means
    (mean_log2_k, mean_bits_per_weight, ...) are over the encoded layers, weighted by their weights, in bits per
    weight; "with_codebook" adds the codebooks' bytes.

    Args:
        path: the export file.

    Returns:
        The report: "bytes" (export, float32, lzma, …), "layers" (one row each), the means, "spec", "provenance".

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
        >>> report = size_report(path)
        >>> sizes = report["bytes"]
        >>> report["compressed_weights"], report["mean_bits_per_weight"], sizes["export"] < sizes["float32_checkpoint"]
        (108, 2.0, True)
        >>> tmp.cleanup()
    """
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
    tied = exported.manifest.get("tied") or {}
    own = {k: t for k, t in exported.state.items() if k not in tied}  # a tied tensor counts once
    sizes = {"float32_checkpoint": float32, "float16_checkpoint": float16_checkpoint_bytes(exported.state),
             "float32_tensors": sum(t.numel() * t.element_size()
                                                                   for t in own.values()),
             "export": len(data), "export_header": exported.header_bytes, "export_lzma": xz,
             "export_zstd": len(zstd(data)) if zstd else None, "entropy_ideal": round(entropy_ideal),
             "raw_tensors": raw_tensor_bytes}
    ratios = {k: (float32 / v if v else None) for k, v in sizes.items()
              if k in ("export", "export_lzma", "export_zstd", "entropy_ideal")}
    manifest = exported.manifest
    return {"file": str(path), "format": FORMAT, "format_version": FORMAT_VERSION, "state": manifest["state"],
            "spec": manifest["spec"], "provenance": manifest.get("provenance", {}),
            "numel": sum(t.numel() for t in own.values()),
            "compressed_weights": n_compressed, "encoded_weights": n_encoded,
            "mean_log2_k": mean("log2_k_per_weight"), "mean_bits_per_weight": mean("bits_per_weight"),
            "mean_entropy_bits_per_weight": mean("entropy_bits_per_weight"),
            "mean_bits_per_weight_with_codebook": mean("bits_per_weight_with_codebook"),
            "bytes": sizes, "ratio_vs_float32": ratios, "layers": rows,
            "lzma": "xz preset 9|extreme", "zstd": zstd_label}
