"""Bad input across every CLI: each case must exit non-zero with a one-line message naming the problem, print
no traceback, and change no file (the temp folder is snapshotted before and after)."""

import shutil
from pathlib import Path

import h5py
import pytest
from conftest import ADAPTED_R20, SHARED, assert_one_line_error

DATA = str(SHARED / "data")
R20 = str(ADAPTED_R20)


def snapshot(folder: Path) -> dict:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def ws(tmp_path, tiny_run, tiny_checkpoint):
    """A workspace: a finished run, an unfinished run, corrupt/foreign files, an existing output."""
    shutil.copy(tiny_run, tmp_path / "run.h5")
    shutil.copy(tiny_run, tmp_path / "unfinished.h5")
    with h5py.File(tmp_path / "unfinished.h5", "a") as f:
        del f["final"]
    (tmp_path / "corrupt.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 100)
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["x"] = [1, 2, 3]
    (tmp_path / "bad-data").mkdir()
    (tmp_path / "empty-data").mkdir()
    (tmp_path / "bad-data" / "cifar10-jpeg.tar.gz").write_bytes(b"not the archive")
    (tmp_path / "truncated.pt").write_bytes(ADAPTED_R20.read_bytes()[:4096])
    (tmp_path / "exists.pt").write_bytes(b"keep me")
    (tmp_path / "a-file").write_bytes(b"")
    shutil.copy(tiny_checkpoint, tmp_path / "tiny.pt")
    return tmp_path


TRAIN = ["--arch", "tiny", "--data", DATA, "--limit-train", "64", "--limit-test", "50", "--epochs", "1"]

CASES = [
    # (tool, args with {ws} placeholders, words the message must contain)
    ("evaluate", ["--checkpoint", R20, "--data", "{ws}/nowhere"], ["does not exist"]),
    ("evaluate", ["--checkpoint", R20, "--data", "{ws}/bad-data"], ["checksum"]),
    ("evaluate", ["--checkpoint", R20, "--data", "{ws}/empty-data"],
     ["not found in --data", "empty-data/cifar10-jpeg.tar.gz", "empty-data/cifar-10-batches-py/", "nowhere else"]),
    ("evaluate", ["--checkpoint", "{ws}/truncated.pt", "--data", DATA], ["cannot be read"]),
    ("evaluate", ["--arch", "resnet32", "--checkpoint", R20, "--data", DATA], ["does not fit", "missing"]),
    ("evaluate", ["--arch", "resnet7", "--checkpoint", R20, "--data", DATA], ["unknown arch"]),
    ("evaluate", ["--checkpoint", R20, "--data", DATA, "--limit", "0"], ["--limit", "≥ 1"]),
    ("evaluate", ["--checkpoint", R20, "--device", "cuda:7"], ["device"]),
    ("ptq", ["--method", "heq", "--bits", "0", "--checkpoint", R20, "--out", "{ws}/q.pt"], ["bits"]),
    ("ptq", ["--method", "heq", "--bits", "17", "--checkpoint", R20, "--out", "{ws}/q.pt"], ["bits"]),
    ("ptq", ["--method", "heq", "--bits", "4", "--checkpoint", R20, "--out", "{ws}/exists.pt"], ["exists", "--force"]),
    ("ptq", ["--method", "heq", "--bits", "4", "--checkpoint", R20, "--out", "{ws}/a-file/q.pt"], ["not a folder"]),
    ("pretrain", ["--checkpoint", R20, "--epochs", "0", "--out", "{ws}/p.pt"], ["--epochs"]),
    ("pretrain", ["--checkpoint", R20, "--lr", "nan", "--out", "{ws}/p.pt", "--data", DATA], ["lr"]),
    ("train", [*TRAIN, "--checkpoint", "{ws}/tiny.pt", "--h", "-0.1", "--out", "{ws}/t.h5"], ["h must be"]),
    ("train", [*TRAIN, "--checkpoint", "{ws}/tiny.pt", "--w", "0", "--out", "{ws}/t.h5"], ["w must be"]),
    ("train", [*TRAIN, "--checkpoint", "{ws}/tiny.pt", "--w", "nan", "--out", "{ws}/t.h5"], ["w must be"]),
    ("train", [*TRAIN, "--checkpoint", "{ws}/tiny.pt", "--n-bins", "1000", "--out", "{ws}/t.h5"], ["power of two"]),
    ("train", [*TRAIN, "--checkpoint", "{ws}/tiny.pt", "--lr", "-1", "--out", "{ws}/t.h5"], ["lr"]),
    ("train", [*TRAIN, "--checkpoint", "{ws}/tiny.pt", "--bits", "3", "--out", "{ws}/t.h5"], ["does not apply"]),
    ("train", [*TRAIN, "--checkpoint", "{ws}/tiny.pt", "--out", "{ws}/run.h5"], ["exists", "--force"]),
    ("train", [*TRAIN, "--checkpoint", "{ws}/tiny.pt", "--method", "centroid", "--bits", "0", "--out", "{ws}/t.h5"],
     ["bits"]),
    ("train", [*TRAIN, "--checkpoint", "{ws}/tiny.pt", "--method", "dsmm", "--alpha-init", "nan", "--out",
               "{ws}/t.h5"], ["alpha"]),
    ("train", [*TRAIN, "--checkpoint", "{ws}/tiny.pt", "--limit-train", "10", "--out", "{ws}/t.h5"],
     ["fewer than one batch"]),
    ("train", ["--resume", "{ws}/corrupt.h5"], ["not a readable HDF5"]),
    ("train", ["--resume", "{ws}/foreign.h5"], ["not a landscape run file"]),
    ("train", ["--resume", "{ws}/run.h5"], ["finished"]),
    ("interpolate", ["{ws}/unfinished.h5", "--data", DATA, "--limit", "20"], ["final"]),
    ("interpolate", ["{ws}/run.h5", "--points", "1", "--data", DATA], ["points"]),
    ("interpolate", ["{ws}/run.h5", "--split", "validation", "--data", DATA], ["split"]),
    ("interpolate", ["{ws}/run.h5", "pretrained", R20, "--data", DATA, "--limit", "20"], ["shape"]),
    ("interpolate", ["{ws}/foreign.h5", "--data", DATA], ["not a landscape run file"]),
    ("perturb", ["{ws}/run.h5", "--directions", "0", "--data", DATA], ["directions"]),
    ("perturb", ["{ws}/corrupt.h5", "--directions", "2", "--data", DATA], ["not a readable HDF5"]),
    ("perturb", ["{ws}/unfinished.h5", "--directions", "2", "--data", DATA, "--limit", "20"], ["final"]),
]


@pytest.mark.parametrize("tool,args,needles", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input(ws, run_cli, tool, args, needles):
    before = snapshot(ws)
    result = run_cli(tool, *[a.replace("{ws}", str(ws)) for a in args])
    assert_one_line_error(result, *needles)
    assert snapshot(ws) == before, "a file was created or changed"


def test_at_least_twenty_distinct_cases_over_every_cli():
    assert len(CASES) >= 20
    assert {c[0] for c in CASES} == {"evaluate", "ptq", "pretrain", "train", "interpolate", "perturb"}
