"""python -m landscape.export and landscape.codec: bit packing, the export file, the loaded model bit-identical to
the run's clamped model, the sizes it reports, and one clear line (exit 2, nothing written) for bad input."""

import hashlib
import importlib
import json
import math
import shutil
import sys

import h5py
import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn as nn
from conftest import REPO, SHARED, assert_one_line_error

from landscape import codec
from landscape.codec import ExportError, load_exported, pack_bits, read_export, unpack_bits
from landscape.errors import LandscapeError
from landscape.models import build_model
from landscape.store import Run

N_TEST = 200


@pytest.fixture
def run(tiny_run, tmp_path):
    """A writable copy of the tiny (weight-coupling) run."""
    return shutil.copy(tiny_run, tmp_path / "run.h5")


@pytest.fixture(scope="module")
def images(cifar):
    return cifar[1].subset(N_TEST)


def _logits(model, images):
    from landscape.data import Batches

    with torch.no_grad():
        return torch.cat([model(x) for x, _ in Batches(images, 100, train=False)])


def _snapshot(folder):
    return sorted((p.name, p.stat().st_size) for p in folder.rglob("*"))


def _same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.reshape(-1).view(torch.uint8),
                                                                   b.reshape(-1).view(torch.uint8))


# ------------------------------------------------------------------------------------------------ bit packing


@pytest.mark.parametrize("bits", range(17))
def test_pack_unpack_round_trip_for_every_width(bits):
    rng = np.random.default_rng(bits)
    ks = {1} if bits == 0 else {2**bits, int(rng.integers(2 ** (bits - 1) + 1, 2**bits + 1))}
    for k in ks:
        assert codec.storage_bits(k) == bits
        for n in (0, 1, 7, 8, 9, int(rng.integers(10, 3000))):
            idx = rng.integers(0, k, n)
            if n:
                idx[0], idx[-1] = k - 1, 0  # the largest index K - 1 = 2^b - 1 included
            packed = pack_bits(idx, bits)
            assert packed.dtype == np.uint8 and packed.size == math.ceil(n * bits / 8)
            np.testing.assert_array_equal(unpack_bits(packed, bits, n), idx)


def test_bit_order_is_little_endian_and_chunks_join(monkeypatch):
    # indices 1, 2, 3 at 2 bits: bits (1,0) (0,1) (1,1) → stream 1,0,0,1,1,1,0,0 → byte 1 + 8 + 16 + 32 = 57
    assert pack_bits(np.array([1, 2, 3]), 2).tolist() == [57]
    # 5 = 0b101 → 1,0,1 and 6 = 0b110 → 0,1,1 (least significant first): 6 bits, two zero bits of padding
    assert pack_bits(np.array([5, 6]), 3).tolist() == [0b00_110_101]
    idx = np.random.default_rng(0).integers(0, 2**5, 1000)
    whole = pack_bits(idx, 5)
    monkeypatch.setattr(codec.bits, "CHUNK", 16)  # many chunks: the same bytes
    np.testing.assert_array_equal(pack_bits(idx, 5), whole)
    np.testing.assert_array_equal(unpack_bits(whole, 5, 1000), idx)


def test_pack_unpack_reject_bad_input():
    with pytest.raises(ValueError, match="lie in"):
        pack_bits(np.array([0, 4]), 2)
    with pytest.raises(ValueError, match="expected 2"):
        unpack_bits(np.zeros(3, np.uint8), 4, 4)
    with pytest.raises(ValueError, match="padding"):
        unpack_bits(np.array([0b1000_0000], np.uint8), 3, 2)  # 6 bits used, bit 7 set


def test_entropy_matches_scipy_and_stays_below_log2_k():
    rng = np.random.default_rng(1)
    for k in (1, 2, 5, 16, 300):
        counts = rng.integers(1, 50, k)
        h = codec.entropy_bits(counts)
        assert h == pytest.approx(scipy.stats.entropy(counts, base=2), abs=1e-12)
        assert 0 <= h <= math.log2(k)
    assert codec.entropy_bits([7, 7, 7, 7]) == 2.0


# ------------------------------------------------------------------------------------------------ encoding


def test_codebook_keeps_every_bit_pattern():
    w = torch.tensor([0.5, -0.0, 0.0, 0.5, -1.25, 0.0, -0.0, 3.0])
    layer = codec.encode_tensor("w", w.repeat(64))
    assert layer.encoding == "scalar" and layer.k == 5 and layer.bits == 3  # -0.0 and +0.0 are two entries
    assert _same_bits(codec.decode_layer(layer), w.repeat(64))
    assert layer.codebook.tolist() == sorted(layer.codebook.tolist())


def test_vector_codes_with_a_partial_last_subvector():
    cb = torch.randn(16, 3)
    idx = torch.randint(0, 16, (400,))
    w = cb[idx].flatten()[:1000]  # 1000 = 333·3 + 1: the last sub-vector holds one weight
    layer = codec.encode_tensor("w", w, vector_dim=3)
    assert layer.encoding == "vector" and layer.k <= 16 and layer.n == 334 and layer.bits == 4
    assert _same_bits(codec.decode_layer(layer), w)
    # a last partial sub-vector that starts no codeword gets an entry of its own
    w2 = torch.cat([w[:999], torch.tensor([123.0])])
    layer2 = codec.encode_tensor("w", w2, vector_dim=3)
    assert layer2.k == layer.k + 1 and _same_bits(codec.decode_layer(layer2), w2)
    # without vector_dim the same tensor is coded per scalar (up to 48 values)
    assert codec.encode_tensor("w", w).encoding == "scalar"


def test_layers_not_worth_packing_are_stored_as_is():
    reason = codec.encode_tensor("w", torch.randn(100))
    assert isinstance(reason, str) and "not smaller" in reason
    assert "> 4" in codec.encode_tensor("w", torch.arange(10.0).repeat(100), max_k=4)
    assert "not floating point" in codec.encode_tensor("w", torch.arange(10))
    one = codec.encode_tensor("w", torch.full((3, 3), 0.25))
    assert one.k == 1 and one.bits == 0 and one.packed_bytes == 0
    assert _same_bits(codec.decode_layer(one), torch.full((3, 3), 0.25))


# ----------------------------------------------------------------------------------------- the tiny run


def test_export_is_bit_identical_to_the_runs_clamped_model(run_cli, run, tmp_path, images):
    out = tmp_path / "out" / "tiny.safetensors"
    r = run_cli("export", run, "--out", out, "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    model = load_exported(out)
    assert not model.training
    clamped = Run(run).model("clamped")
    for key, value in clamped.state_dict().items():
        assert _same_bits(model.state_dict()[key], value), key
    assert torch.equal(_logits(model, images), _logits(clamped, images))

    # every compressed layer is encoded, K as in the run's clusters, entropy ≤ log2 K ≤ b
    clusters = Run(run).clusters()
    layers = {row["layer"]: row for row in report["layers"]}
    assert set(layers) == set(clusters)
    for name, row in layers.items():
        assert row["encoding"] == "scalar" and row["k"] == len(clusters[name][0]) == row["run_clusters"]
        assert row["bits"] == math.ceil(math.log2(row["k"])) and row["packed_bytes"] == math.ceil(
            row["weights"] * row["bits"] / 8)
        assert 0 < row["entropy_bits"] <= row["log2_k"] + 1e-12 <= row["bits"] + 1e-12
    # sizes: real bytes, the file is exactly header + packed indices + codebooks + tensors stored as is
    b = report["bytes"]
    assert b["export"] == out.stat().st_size
    assert b["export"] == b["export_header"] + sum(r["packed_bytes"] + r["codebook_bytes"]
                                                   for r in layers.values()) + b["raw_tensors"]
    assert b["export_lzma"] < b["export"] < b["float32_checkpoint"]
    # the encoded layers shrink by ~32/b (codebooks aside); on this 5k-parameter model the header and BN weigh more
    encoded = sum(r["packed_bytes"] for r in layers.values())
    floats = sum(r["float_bytes"] for r in layers.values())
    assert encoded * 32 / report["mean_bits_per_weight"] == pytest.approx(floats, rel=0.01)
    assert b["float32_checkpoint"] / b["export"] > 2.5
    assert b["entropy_ideal"] < b["export"] - b["export_header"]
    assert report["provenance"]["run"] == str(run) and report["state"] == "clamped"
    assert report["provenance"]["run_sha256"] == hashlib.sha256(run.read_bytes()).hexdigest()
    assert report["spec"] == {"arch": "tiny", "kwargs": {}, "wrapper": None}

    # the text report, and --check reading the file back
    r = run_cli("export", "--check", out)
    assert r.code == 0, r.err
    assert "layer1.0.conv1.weight" in r.out and "float32 checkpoint" in r.out and "lzma" in r.out


def test_compressed_state_is_stored_as_is_and_force_overwrites(run_cli, run, tmp_path):
    out = tmp_path / "c.safetensors"
    out.write_text("old")
    r = run_cli("export", run, "--state", "compressed", "--out", out, "--force", "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert all(row["encoding"] == "raw" and "stored as is" in row["note"] for row in report["layers"])
    state = read_export(out).state
    for key, value in Run(run).state("compressed").items():
        assert _same_bits(state[key], value)
    r = run_cli("export", run, "--state", "compressed", "--out", out)  # without --force: refused
    assert r.code == 2 and "exists" in r.err


def test_recalibrated_state(run_cli, run, tmp_path, images):
    with h5py.File(run, "a") as f:  # as train --recalibrate-bn writes it: the clamped weights, other BN statistics
        f.copy("final/clamped", "final/recalibrated")
        for name, ds in f["final/recalibrated"].items():
            if name.endswith("running_var"):
                ds[...] = np.asarray(ds) * 1.5
    out = tmp_path / "r.safetensors"
    r = run_cli("export", run, "--state", "recalibrated", "--out", out, "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["state"] == "recalibrated"
    recalibrated = Run(run).model("recalibrated")
    logits = _logits(load_exported(out), images)
    assert torch.equal(logits, _logits(recalibrated, images))
    assert not torch.equal(logits, _logits(Run(run).model("clamped"), images))


def _train(tmp_path, checkpoint, name, *method):
    from landscape.train import main

    out = tmp_path / f"{name}.h5"
    assert main(["--arch", "tiny", "--checkpoint", str(checkpoint), "--data", str(SHARED / "data"), "--epochs", "1",
                 "--train-batch-size", "64", "--limit-train", "128", "--limit-test", "50", "--lr", "0.01",
                 "--checkpoint-every", "100", "--compile", "off", "--out", str(out), "--json", *method]) == 0
    return out


def test_vq_run_exports_vector_codebooks(tmp_path, tiny_checkpoint, images):
    run = _train(tmp_path, tiny_checkpoint, "vq", "--method", "vq", "--dim", "2", "--codebook-bits", "3",
                 "--assign", "euclidean")
    out = codec.export_run(run, tmp_path / "vq.safetensors")
    report = codec.size_report(out)
    rows = [row for row in report["layers"] if row["encoding"] != "raw"]
    assert rows and all(row["encoding"] == "vector" and row["dim"] == 2 and row["k"] <= 8 for row in rows)
    assert all(row["bits_per_weight"] <= 1.5 + 1e-9 for row in rows)  # 3 bits per 2 weights (+ a padded tail)
    clamped = Run(run).model("clamped")
    assert torch.equal(_logits(load_exported(out), images), _logits(clamped, images))


def test_input_bitwise_run_exports_float_weights_and_its_quantizer(run_cli, tmp_path, tiny_checkpoint, images):
    run = _train(tmp_path, tiny_checkpoint, "inp", "--method", "input-bitwise", "--input-bits", "2")
    out = tmp_path / "inp.safetensors"
    r = run_cli("export", run, "--out", out)
    assert r.code == 0, r.err
    assert "inputs, not its weights" in r.out
    report = codec.size_report(out)
    assert report["layers"] == [] and report["spec"]["wrapper"]["method"] == "input-bitwise"
    model = load_exported(out)
    assert "quantizer.levels" in model.state_dict()
    assert torch.equal(_logits(model, images), _logits(Run(run).model("clamped"), images))


def test_runs_of_any_model(tmp_path, run_cli):
    """A model given as a Python object loads from a template; a package.module:factory spec only when trusted."""
    import landscape as ls

    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(16, 12, generator=g), torch.randint(0, 4, (16,), generator=g)) for _ in range(3)]
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 4))
    linear = nn.Linear(12, 4)
    x = torch.randn(64, 12, generator=g)
    for net, arch, kwargs in [(mlp, None, None), (linear, "torch.nn:Linear", {"in_features": 12, "out_features": 4})]:
        name = "object" if arch is None else "factory"
        run = ls.compress_model(net, batches, batches[:1], out=tmp_path / f"{name}.h5", method="ptq", bits=2,
                                epochs=1, progress=False, arch=arch, arch_kwargs=kwargs)
        out = codec.export_run(run.path, tmp_path / f"{name}.safetensors")
        clamped = run.model("clamped", template=net)
        with pytest.raises(ExportError, match="template" if arch is None else "trust_spec=True"):
            load_exported(out)
        loaded = load_exported(out, template=net) if arch is None else load_exported(out, trust_spec=True)
        with torch.no_grad():
            assert torch.equal(loaded(x), clamped(x))
        assert all(r["k"] <= 4 for r in codec.size_report(out)["layers"])
    assert_one_line_error(run_cli("export", "--check", out), "trust")
    r = run_cli("export", "--check", out, "--trust-spec", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["spec"] == {"arch": "torch.nn:Linear", "kwargs": {"in_features": 12, "out_features": 4},
                                         "wrapper": None}


# -------------------------------------------------------------------------------------------- bad input


def test_bad_runs_one_line_and_nothing_written(run_cli, run, tmp_path):
    folder = run.parent
    with h5py.File(run, "a") as f:
        del f["final/clamped"]
    before = _snapshot(folder)
    out = folder / "new" / "m.safetensors"
    for args, needles in [
        ([run, "--out", out], ["no /final/clamped"]),
        ([run, "--state", "recalibrated", "--out", out], ["no /final/recalibrated", "--recalibrate-bn"]),
        ([folder / "missing.h5", "--out", out], ["does not exist"]),
        ([run, "--out", run, "--force"], []),
        ([run, "--state", "pretrained", "--out", out], ["--state"]),
        ([run], ["--out"]),
        (["--check", out, "--out", out], ["--check"]),
    ]:
        assert_one_line_error(run_cli("export", *args), *needles)
        assert _snapshot(folder) == before


def test_export_refuses_to_overwrite_its_run(run_cli, run):
    assert_one_line_error(run_cli("export", run, "--out", run, "--force"), "run file itself")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """An export of a tiny model whose conv1 has K = 5 (3 bits: indices 5..7 are representable but invalid)."""
    torch.manual_seed(0)
    state = build_model("tiny").state_dict()
    w = state["conv1.weight"]
    state["conv1.weight"] = torch.tensor([-0.5, -0.25, 0.0, 0.25, 0.5])[torch.arange(w.numel()) % 5].view_as(w)
    path = tmp_path_factory.mktemp("exp") / "m.safetensors"
    codec.export_state(path, state, arch="tiny", compressed=["conv1.weight"], state_name="clamped")
    return path, state


def _parts(path):
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__")
    buffer = data[8 + n:]
    tensors = {k: np.frombuffer(buffer[v["data_offsets"][0]:v["data_offsets"][1]], np.uint8).copy()
               for k, v in header.items()}
    return meta, header, tensors


def _rewrite(src, dst, *, manifest=None, meta=None, tensors=None):
    """A copy of an export with its manifest, metadata or some tensors' bytes changed (a valid checksum)."""
    old_meta, header, data = _parts(src)
    new_meta = {k: v for k, v in old_meta.items() if k != "sha256"}
    if manifest:
        m = json.loads(new_meta["manifest"])
        manifest(m)
        new_meta["manifest"] = json.dumps(m)
    new_meta.update(meta or {})
    entries = []
    for name, entry in header.items():
        raw = (tensors or {}).get(name, data[name])
        dtype = codec.TORCH_DTYPES[entry["dtype"]]
        shape = entry["shape"] if name not in (tensors or {}) else [len(raw)]
        entries.append((name, torch.from_numpy(raw).view(dtype).reshape(shape)))
    dst.write_bytes(codec.container._encode_file(entries, new_meta))
    return dst


def test_the_rewrite_helper_alone_changes_nothing(exported, tmp_path):
    path, state = exported
    copy = _rewrite(path, tmp_path / "same.safetensors")
    assert copy.read_bytes() == path.read_bytes()
    loaded = load_exported(copy).state_dict()
    assert all(_same_bits(loaded[k], v) for k, v in state.items())


def _bad_copies(path, tmp_path):
    data = path.read_bytes()
    _, header, tensors = _parts(path)
    flipped = bytearray(data)
    flipped[-1] ^= 0xFF
    k_packed = tensors["conv1.weight:indices"].copy()
    k_packed[0] = (k_packed[0] & 0b1111_1000) | 7  # first index → 7 ≥ K = 5
    padded = tensors["conv1.weight:indices"].copy()
    padded[-1] |= 0x80  # 108 indices × 3 bits = 324 bits: the last byte uses 4, bit 7 is padding
    cases = {
        "truncated": (lambda p: p.write_bytes(data[:-10]), ["truncated"]),
        "empty": (lambda p: p.write_bytes(b""), ["too short"]),
        "garbage": (lambda p: p.write_bytes(b"\x10" + bytes(7) + b"not json" * 4), ["not JSON"]),
        "flipped": (lambda p: p.write_bytes(bytes(flipped)), ["SHA-256"]),
        "version": (lambda p: _rewrite(path, p, meta={"format_version": "2"}), ["format version", "reads version 1"]),
        "format": (lambda p: _rewrite(path, p, meta={"format": "other"}), ["not a landscape export"]),
        "packed length": (lambda p: _rewrite(path, p, tensors={"conv1.weight:indices": k_packed[:-1]}),
                          ["packed bytes", "expected"]),
        "index ≥ K": (lambda p: _rewrite(path, p, tensors={"conv1.weight:indices": k_packed}), ["index 7 ≥ K = 5"]),
        "padding": (lambda p: _rewrite(path, p, tensors={"conv1.weight:indices": padded}), ["padding"]),
        "bits": (lambda p: _rewrite(path, p, manifest=lambda m: m["layers"]["conv1.weight"].update(bits=4)),
                 ["4 bits per index for K = 5"]),
        "arch": (lambda p: _rewrite(path, p, manifest=lambda m: m["spec"].update(arch="resnet20")),
                 ["does not fit", "resnet20"]),
        "unknown arch": (lambda p: _rewrite(path, p, manifest=lambda m: m["spec"].update(arch="vgg")),
                         ["unknown architecture 'vgg'"]),
        "factory": (lambda p: _rewrite(path, p, manifest=lambda m: m["spec"].update(arch="os:system")),
                    ["names the factory os:system", "trust_spec"]),
        "object": (lambda p: _rewrite(path, p, manifest=lambda m: m["spec"].update(arch="<my.Net>")),
                   ["Python object", "template"]),
        "kwargs": (lambda p: _rewrite(path, p, manifest=lambda m: m["spec"].update(kwargs={"depth": 8})),
                   ["with kwargs", "depth"]),
    }
    for name, (make, needles) in cases.items():
        target = tmp_path / f"{name.replace(' ', '_')}.safetensors"
        make(target)
        yield name, target, needles


def test_bad_exports_one_line_errors(exported, tmp_path, run_cli):
    path, _ = exported
    seen = 0
    for name, target, needles in _bad_copies(path, tmp_path):
        with pytest.raises(ExportError) as e:
            load_exported(target)
        message = str(e.value)
        assert "\n" not in message and str(target) in message, name
        for needle in needles:
            assert needle in message, (name, message)
        before = _snapshot(tmp_path)
        assert_one_line_error(run_cli("export", "--check", target, "--json"), *needles)
        assert _snapshot(tmp_path) == before
        seen += 1
    assert seen == 15
    assert_one_line_error(run_cli("export", "--check", tmp_path / "none.safetensors"), "does not exist")


# ---------------------------------------------------------------------------------------- the table script


def test_table_export_script(tiny_run, tiny_checkpoint, tmp_path, capsys):
    sys.path.insert(0, str(REPO / "analyses"))
    try:
        script = importlib.import_module("table_export")
        out = tmp_path / "fig"
        args = ["--run", str(tiny_run), "--ptq", "kmeans:2", "--arch", "tiny", "--checkpoint", str(tiny_checkpoint),
                "--data", str(SHARED / "data"), "--limit", "50", "--batch-size", "50", "--out-dir", str(out)]
        assert script.main(args) == 0
        printed = capsys.readouterr().out
        with pytest.raises(LandscapeError, match="exists"):  # outputs checked before any work
            script.main(args)
    finally:
        sys.path.remove(str(REPO / "analyses"))
    import csv

    with open(out / "export_table.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows][:1] == ["weight-coupling h=0.5 w=0.5, 2 epochs"] and len(rows) == 2
    assert rows[1]["method"] == "ptq kmeans 2 bits"
    for row in rows:
        assert int(row["export_bytes"]) < int(row["float32_bytes"]) and row["outputs_identical"] == "True"
        assert float(row["mean_entropy_bits"]) <= float(row["mean_log2_k"]) + 1e-9
    config = json.loads((out / "export_table.config.json").read_text())
    assert config["run"] == [str(tiny_run)] and config["ptq"] == ["kmeans:2"] and config["rows"] == 2
    assert "| weight-coupling h=0.5 w=0.5, 2 epochs |" in printed and "float32" in printed


def test_zstd_column_when_a_zstd_module_is_there(exported, monkeypatch):
    """The report uses `zstandard` where it is installed (not a dependency: a stand-in module here)."""
    import lzma
    import types

    path, _ = exported
    assert codec.size_report(path)["bytes"]["export_zstd"] is None or "zstandard" in sys.modules
    fake = types.ModuleType("zstandard")
    levels = []

    class ZstdCompressor:
        def __init__(self, level):
            levels.append(level)

        def compress(self, data):
            return lzma.compress(data, preset=0)

    fake.ZstdCompressor = ZstdCompressor
    monkeypatch.setitem(sys.modules, "zstandard", fake)
    report = codec.size_report(path)
    assert report["bytes"]["export_zstd"] == len(lzma.compress(path.read_bytes(), preset=0)) and levels == [19]
    assert report["ratio_vs_float32"]["export_zstd"] == report["bytes"]["float32_checkpoint"] / report["bytes"][
        "export_zstd"]
