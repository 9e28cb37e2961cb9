import pytest
import torch
from conftest import ADAPTED_R20, MODELS, PUBLIC_R20

from landscape.data import Batches
from landscape.errors import CheckpointError
from landscape.metrics import evaluate
from landscape.models import ARCHS, build_model, load_model, read_checkpoint, save_checkpoint


@pytest.mark.parametrize("arch,n_params", [("resnet20", 269_722), ("resnet32", 464_154), ("resnet44", 658_586),
                                           ("resnet56", 853_018)])
def test_parameter_counts_match_he_et_al(arch, n_params):
    model = build_model(arch)
    assert sum(p.numel() for p in model.parameters()) == n_params
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_tiny_model_is_small_and_runs():
    model = build_model("tiny")
    assert sum(p.numel() for p in model.parameters()) < 10_000
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_public_resnet20_accuracy_on_first_1000_jpeg_test_images(cifar):
    _, test = cifar
    result = evaluate(load_model("resnet20", PUBLIC_R20), Batches(test.subset(1000), 500, train=False))
    assert result["n"] == 1000
    assert result["accuracy"] >= 0.78


def test_public_resnet56_loads():
    model = load_model("resnet56", MODELS / "resnet56-4bfd9763.th")
    assert model.layer3[8].conv2.weight.shape == (64, 64, 3, 3)


def test_wrong_arch_names_the_keys(tmp_path):
    with pytest.raises(CheckpointError, match=r"missing: .*layer1\.3") as err:
        load_model("resnet32", PUBLIC_R20)
    assert "does not fit" in str(err.value)
    with pytest.raises(CheckpointError, match="unexpected"):
        load_model("resnet20", MODELS / "resnet56-4bfd9763.th")


def test_sha_prefix_in_name_is_checked(tmp_path):
    renamed = tmp_path / "resnet20-deadbeef.th"
    renamed.write_bytes(PUBLIC_R20.read_bytes())
    with pytest.raises(CheckpointError, match="sha256"):
        read_checkpoint(renamed)


def test_truncated_and_missing_checkpoints(tmp_path):
    cut = tmp_path / "cut.pt"
    cut.write_bytes(ADAPTED_R20.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_model("resnet20", cut)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model("resnet20", tmp_path / "none.pt")
    with pytest.raises(CheckpointError, match="unknown arch"):
        build_model("resnet1000")


def test_save_roundtrip_records_arch(tmp_path):
    model = build_model("tiny")
    save_checkpoint(model, tmp_path / "t.pt", arch="tiny", note="x")
    again = load_model("tiny", tmp_path / "t.pt")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True))
    with pytest.raises(CheckpointError, match="is a tiny, not a resnet20"):
        load_model("resnet20", tmp_path / "t.pt")
    assert set(ARCHS) >= {"resnet20", "resnet56", "tiny"}
