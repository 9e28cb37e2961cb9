import pytest
import torch

from landscape.data import CLASSES, MEAN, STD, Batches, Split, augment, load_cifar10, normalize
from landscape.errors import DataNotFound


def test_shapes_labels_and_class_order(cifar):
    train, test = cifar
    assert train.images.shape == (50_000, 3, 32, 32) and train.images.dtype == torch.uint8
    assert test.images.shape == (10_000, 3, 32, 32)
    assert train.labels.dtype == torch.int64
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert torch.bincount(train.labels).tolist() == [5000] * 10
    assert CLASSES[:3] == ("airplane", "automobile", "bird") and len(CLASSES) == 10
    # round-robin order: any prefix is class-balanced
    assert test.labels[:20].tolist() == list(range(10)) * 2
    assert torch.bincount(test.subset(1000).labels).tolist() == [100] * 10


def test_images_are_real_pictures(cifar):
    """Decoded pixels are not constant and sky-blue airplanes are bluer than frogs on average."""
    _, test = cifar
    x = test.images.float()
    assert x.std() > 40
    blue_minus_red = (x[:, 2] - x[:, 0]).mean(dim=(1, 2))
    assert blue_minus_red[test.labels == 0].mean() > blue_minus_red[test.labels == 6].mean() + 10


def test_checksum_failure_message(tmp_path):
    (tmp_path / "cifar10-jpeg.tar.gz").write_bytes(b"not an archive")
    with pytest.raises(DataNotFound, match="checksum mismatch"):
        load_cifar10(tmp_path)


def test_missing_data_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.delenv("LANDSCAPE_DATA", raising=False)
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    import landscape.data as d

    monkeypatch.setattr(d, "data_roots", lambda data=None: [tmp_path / "env", tmp_path / "cache"])
    with pytest.raises(DataNotFound, match="looked in") as err:
        load_cifar10()
    assert "env" in str(err.value) and "download" in str(err.value)
    with pytest.raises(DataNotFound, match="does not exist"):
        load_cifar10(tmp_path / "nowhere")


def test_an_explicit_data_dir_is_the_only_place_searched(tmp_path, monkeypatch):
    """--data DIR (and a set $LANDSCAPE_DATA) is authoritative: a DIR without the data is an error naming DIR and
    the files looked for, even though the default places hold data; --download downloads into DIR."""
    import landscape.data as d

    loaded = []
    monkeypatch.setattr(d, "_load_jpeg_archive", lambda archive: loaded.append(archive) or "archive")
    monkeypatch.setattr(d, "_load_torchvision", lambda root, download: loaded.append((root, download)) or "tv")
    monkeypatch.delenv("LANDSCAPE_DATA", raising=False)
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache" / d.TORCHVISION_DIR).mkdir(parents=True)  # a default place that holds data
    assert load_cifar10() in ("archive", "tv")  # control: without --data the defaults are searched
    empty, good = tmp_path / "empty", tmp_path / "good"
    empty.mkdir()
    good.mkdir()
    (good / d.ARCHIVE_NAME).write_bytes(b"")
    loaded.clear()

    with pytest.raises(DataNotFound) as err:
        load_cifar10(empty)
    message = str(err.value)
    assert "\n" not in message and f"--data {empty}:" in message and "nowhere else" in message
    assert f"{empty / d.ARCHIVE_NAME} and {empty / d.TORCHVISION_DIR}/" in message
    assert "--download" in message and not loaded
    assert d.data_roots(empty) == [empty.resolve()]

    monkeypatch.setenv("LANDSCAPE_DATA", str(empty))  # an explicit $LANDSCAPE_DATA: the same rule
    with pytest.raises(DataNotFound, match=r"not found in \$LANDSCAPE_DATA=.*nowhere else.*unset it"):
        load_cifar10()
    monkeypatch.setenv("LANDSCAPE_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFound, match=r"\$LANDSCAPE_DATA=.*nowhere does not exist"):
        load_cifar10()
    assert load_cifar10(good) == "archive" and loaded == [good.resolve() / d.ARCHIVE_NAME]  # --data wins over it
    monkeypatch.setenv("LANDSCAPE_DATA", "")  # empty counts as unset
    assert load_cifar10() in ("archive", "tv")

    loaded.clear()
    assert load_cifar10(empty, download=True) == "tv" and loaded == [(empty.resolve(), True)]
    loaded.clear()
    assert load_cifar10(tmp_path / "new", download=True) == "tv" and loaded == [((tmp_path / "new").resolve(), True)]
    with pytest.raises(DataNotFound, match="is a file, not a folder"):
        load_cifar10(good / d.ARCHIVE_NAME)


def test_torchvision_layout_is_read(tmp_path, cifar, monkeypatch):
    """A cifar-10-batches-py root (what torchvision's download=True produces) is found before the archive."""
    import pickle

    import numpy as np

    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    _, test = cifar
    data = test.images[:20].reshape(20, -1).numpy()  # the pickles hold CHW planes per row
    batch = {"data": data, "labels": test.labels[:20].tolist()}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(root / name, "wb") as f:
            pickle.dump(batch, f)
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(CLASSES)}, f)
    # torchvision checks the md5 of each file: patch the integrity check for this synthetic root
    import torchvision.datasets.cifar as tv

    monkeypatch.setattr(tv, "check_integrity", lambda *a, **k: True)
    monkeypatch.setattr(tv.CIFAR10, "_check_integrity", lambda self: True)
    train2, test2 = load_cifar10(tmp_path)
    assert torch.equal(test2.images, test.images[:20]) and torch.equal(test2.labels, test.labels[:20])
    assert len(train2) == 100 and np.all(train2.labels.numpy()[:20] == test.labels[:20].numpy())


def test_normalize_matches_checkpoint_statistics():
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    out = normalize(x)
    for c in range(3):
        assert out[0, c, 0, 0].item() == pytest.approx((1 - MEAN[c]) / STD[c], rel=1e-6)


def test_augment_is_a_padded_crop_with_optional_flip():
    g = torch.Generator().manual_seed(0)
    img = (torch.arange(3 * 32 * 32).view(1, 3, 32, 32) % 250 + 1).to(torch.uint8).repeat(16, 1, 1, 1)
    out = augment(img, g)
    assert out.shape == img.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(img[0], (4, 4, 4, 4))
    seen_flips = set()
    for i in range(16):
        matches = [(dy, dx, f) for dy in range(9) for dx in range(9) for f in (False, True)
                   if torch.equal(out[i], (lambda c: c.flip(-1) if f else c)(padded[:, dy:dy + 32, dx:dx + 32]))]
        assert matches, f"output {i} is not a crop of the zero-padded input"
        seen_flips.add(matches[0][2])
    assert seen_flips == {False, True}
    same = [augment(img, torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    assert torch.equal(same[0], same[1]) and not torch.equal(same[0], same[2])


def test_batches_seeded_limit_and_resume(cifar):
    train, _ = cifar
    split = train.subset(300)
    a = Batches(split, 64, train=True, seed=3)
    b = Batches(split, 64, train=True, seed=3)
    xa = [x for x, _ in a]
    xb = [x for x, _ in b]
    assert len(xa) == 5 and all(torch.equal(p, q) for p, q in zip(xa, xb, strict=True))
    tail = [x for x, _ in b.iterate(start=3)]
    assert all(torch.equal(p, q) for p, q in zip(xa[3:], tail, strict=True))
    b.set_epoch(1)
    assert not torch.equal(next(iter(b))[0], xa[0])
    ev = Batches(split, 100, train=False)
    labels = torch.cat([y for _, y in ev])
    assert torch.equal(labels, split.labels)
    with pytest.raises(ValueError, match="empty"):
        Batches(Split(split.images[:0], split.labels[:0]), 10, train=False)
