"""landscape.datasets: image folders through the same uint8 splits (decode, resize + centre crop, class-balanced
order, cache keyed by the files), normalization stated or measured, and the CLIs on an image folder end to end
(pretrain from scratch → train → interpolate reading the run's own data settings)."""

import json

import numpy as np
import pytest
import torch
from conftest import assert_one_line_error

from landscape.data import MEAN, STD, Batches
from landscape.datasets import load_data
from landscape.errors import DataNotFound
from landscape.store import Run

CLASSES = ("ant", "bee", "cat")


def make_tree(root, per_class=(5, 4, 6), test=3, size=(20, 14), seed=0):
    """root/train/<class>/*.png and root/test/<class>/*.png: class c's images have mean brightness ≈ 60 + 60c."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, counts in (("train", per_class), ("test", (test,) * len(CLASSES))):
        for c, (name, n) in enumerate(zip(CLASSES, counts, strict=True)):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = np.clip(rng.normal(60 + 60 * c, 20, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return root


def test_image_folder_decodes_balances_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "cache"))
    tree = make_tree(tmp_path / "tree")
    train, test = load_data("imagefolder", tree, image_size=8)
    assert train.images.shape == (15, 3, 8, 8) and train.images.dtype == torch.uint8 and len(test) == 9
    # round-robin over classes, in file order within a class; classes that run out drop out
    assert train.labels.tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 2, 2]
    brightness = train.images.float().mean((1, 2, 3))
    assert all(brightness[train.labels == c].mean() > brightness[train.labels == c - 1].mean() for c in (1, 2))
    # measured normalization: the training split's channel statistics
    pixels = train.images.double() / 255
    assert np.allclose(train.mean, pixels.mean((0, 2, 3)).numpy(), atol=1e-6)
    assert np.allclose(train.std, pixels.std((0, 2, 3)).numpy(), atol=1e-6)
    x, _ = next(iter(Batches(train, 15, train=False)))
    assert abs(float(x.mean())) < 1e-5  # standardized with its own statistics
    assert len(list((tmp_path / "cache").glob("imagefolder-*.npz"))) == 1
    again, _ = load_data("imagefolder", tree, image_size=8)  # from the cache
    assert torch.equal(again.images, train.images)
    (tree / "train" / "ant" / "extra.png").write_bytes((tree / "train" / "ant" / "000.png").read_bytes())
    changed, _ = load_data("imagefolder", tree, image_size=8)  # an edited tree is decoded again
    assert len(changed) == 16 and len(list((tmp_path / "cache").glob("imagefolder-*.npz"))) == 2
    stated, _ = load_data("imagefolder", tree, image_size=8, normalization="imagenet")
    assert stated.mean == MEAN and stated.std == STD
    given, _ = load_data("imagefolder", tree, image_size=8, normalization="0.5,0.5,0.5,0.25,0.25,0.25")
    assert given.mean == (0.5, 0.5, 0.5) and given.std == (0.25, 0.25, 0.25)


def test_image_folder_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataNotFound, match="train/<class>"):
        load_data("imagefolder", tmp_path)
    tree = make_tree(tmp_path / "tree")
    (tree / "test" / "dog").mkdir()
    (tree / "test" / "dog" / "x.png").write_bytes((tree / "test" / "ant" / "000.png").read_bytes())
    with pytest.raises(DataNotFound, match="differ"):
        load_data("imagefolder", tree)
    with pytest.raises(ValueError, match="normalization"):
        load_data("cifar10", None, normalization="0,0,0,1,1")
    with pytest.raises(ValueError, match="unknown dataset"):
        load_data("mnist")


def test_cifar100_missing_offline_is_one_clear_error(tmp_path):
    with pytest.raises(DataNotFound, match="CIFAR-100 not found.*--download"):
        load_data("cifar100", tmp_path)


def test_clis_on_an_image_folder(tmp_path, run_cli, monkeypatch):
    """From scratch on an image folder (3 classes, 8 × 8 pixels), then soft quantization, then a path: the run records
    its data (dataset, size, classes, the normalization's numbers) and the analysis reads it without being told."""
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "cache"))
    tree = make_tree(tmp_path / "tree", per_class=(12, 12, 12), test=4)
    data = ["--dataset", "imagefolder", "--data", str(tree), "--image-size", "8"]
    arch = ["--arch", "tiny", "--arch-kwargs", '{"num_classes": 3}']
    pre = run_cli("pretrain", *arch, *data, "--epochs", "1", "--train-batch-size", "12", "--out", tmp_path / "p.pt",
                  "--json")
    assert pre.code == 0, pre.err
    run = tmp_path / "run.h5"
    trained = run_cli("train", *arch, *data, "--checkpoint", tmp_path / "p.pt", "--epochs", "1", "--train-batch-size",
                      "12", "--h", "0.5", "--w", "0.5", "--out", run, "--json")
    assert trained.code == 0, trained.err
    recorded = Run(run).config["data"]
    assert recorded["name"] == "imagefolder" and recorded["image_size"] == 8 and recorded["classes"] == 3
    assert Run(run).arch_kwargs == {"num_classes": 3} and Run(run).evals()["clamped"]["n"] == 12
    path = run_cli("interpolate", run, "--points", "2", "--data", str(tree), "--json")  # no --dataset: the run's
    assert path.code == 0, path.err
    out = json.loads(path.out)
    assert out["test"]["loss"][-1] == pytest.approx(Run(run).evals()["clamped"]["loss"], rel=1e-5)
    bad = run_cli("evaluate", *arch, "--checkpoint", tmp_path / "p.pt", "--dataset", "imagefolder", "--data",
                  tmp_path / "nowhere")
    assert_one_line_error(bad, "nowhere")
