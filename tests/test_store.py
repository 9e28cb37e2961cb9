"""The run file: schema, complete checkpoints, reader API, and refusal of foreign files."""

import json
import shutil

import h5py
import pytest
import torch

from landscape.errors import RunFileError
from landscape.models import load_model
from landscape.params import select_params
from landscape.store import SCALARS, Run


def test_schema_groups_and_attributes(tiny_run):
    with h5py.File(tiny_run, "r") as f:
        for key in ("pretrained", "checkpoints", "scalars", "final/compressed", "final/clamped", "final/clusters",
                    "final/bits", "eval/pretrained", "eval/compressed", "eval/clamped"):
            assert key in f, key
        attrs = dict(f.attrs)
        assert {"config", "seed", "method", "arch", "version", "git_commit", "created"} <= set(attrs)
        config = json.loads(attrs["config"])
        assert config["compressor"]["h"] == 0.5 and config["train"]["epochs"] == 2
        assert f["checkpoints/00000002"].attrs["complete"] == 1
        assert f["checkpoints/00000002/layer1.0.conv1.weight"].shape == (4, 4, 3, 3)
        assert set(f["scalars"]) == set(SCALARS)
        assert f["scalars/task_loss"].shape == (8,)


def test_reader_returns_states_and_models(tiny_run, tiny_checkpoint):
    run = Run(tiny_run)
    pre = run.model("pretrained")
    ref = load_model("tiny", tiny_checkpoint)
    assert all(torch.equal(a, b) for a, b in zip(pre.state_dict().values(), ref.state_dict().values(), strict=True))
    last = run.state(run.steps()[-1])
    compressed = run.state("compressed")
    assert all(torch.equal(last[k], compressed[k]) for k in compressed)
    clamped = run.model("clamped")
    clusters = run.clusters()
    bits = run.bits()
    for name, p in select_params(clamped).items():
        values, counts = clusters[name]
        assert torch.unique(p).numel() == len(values) == len(counts)
        assert counts.sum() == p.numel()
    assert bits["mean_effective"] <= bits["mean_storage"]
    scalars = run.scalars()
    assert scalars["step"].tolist() == list(range(1, 9))
    assert run.evals()["clamped"]["n"] == 200


def test_torn_checkpoint_is_not_listed(tiny_run, tmp_path):
    copy = tmp_path / "torn.h5"
    shutil.copy(tiny_run, copy)
    with h5py.File(copy, "a") as f:
        f["checkpoints/00000008"].attrs["complete"] = 0
    run = Run(copy)
    assert run.steps() == [2, 4, 6]
    with pytest.raises(RunFileError, match="no complete checkpoint at step 8"):
        run.state(8)


def test_foreign_and_missing_files(tmp_path):
    with pytest.raises(RunFileError, match="does not exist"):
        Run(tmp_path / "none.h5")
    (tmp_path / "junk.h5").write_bytes(b"junk")
    with pytest.raises(RunFileError, match="not a readable HDF5"):
        Run(tmp_path / "junk.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(RunFileError, match="not a landscape run file"):
        Run(tmp_path / "other.h5")


def test_unfinished_run_says_so(tiny_run, tmp_path):
    copy = tmp_path / "unfinished.h5"
    shutil.copy(tiny_run, copy)
    with h5py.File(copy, "a") as f:
        del f["final"]
    with pytest.raises(RunFileError, match="no /final/clamped"):
        Run(copy).state("clamped")
