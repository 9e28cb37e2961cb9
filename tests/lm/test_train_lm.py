"""`landscape train --dataset text` on a tiny pretrained GPT: soft quantization trains and clamps it, the run file
records the text and its vocabulary, every state's metric is the validation loss (no accuracy anywhere in the
summary or the printout), and bad input is one line, exit 2, no run file."""

import json

import h5py
import pytest
import torch
from conftest import ADAPTED_R20, assert_one_line_error
from test_any_model import SETTINGS  # each method's smallest settings

from landscape.store import Run


@pytest.fixture(scope="module")
def gpt(tiny_gpt):
    """A tiny GPT pretrained 30 steps on 6 kB of tinyshakespeare, and that text (conftest.tiny_gpt)."""
    return tiny_gpt


def train(run_cli, gpt, out, *extra):
    checkpoint, text = gpt
    return run_cli("train", "--dataset", "text", "--data", text, "--arch", "gpt", "--checkpoint", checkpoint,
                   "--method", "weight-coupling", "--h", "0.05", "--w", "0.3", "--epochs", "1", "--train-batch-size",
                   "8", "--limit-train", "1024", "--compile", "off", "--stats-every", "4", "--out", out, *extra)


def test_soft_quantization_trains_and_clamps_a_gpt_with_the_loss_as_its_metric(run_cli, gpt, tmp_path):
    r = train(run_cli, gpt, tmp_path / "run.h5", "--json")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert not any(k.startswith("accuracy") for k in summary)
    assert summary["steps"] == 8  # ceil(1,024 characters / (8 windows × 16))
    assert summary["loss_clamped"] > 0 and summary["n_test"] == (600 - 1) // 16
    assert 0 < summary["mean_bits"] < 32 and "blocks.0.attn.qkv.weight" in summary["bits_per_layer"]
    run = Run(tmp_path / "run.h5")
    assert run.config["data"]["name"] == "text" and run.config["data"]["context"] == 16
    assert run.config["data"]["vocab"] == "".join(sorted(set(gpt[1].read_text())))
    assert run.config["arch_kwargs"]["n_layer"] == 2  # the checkpoint's shape, recorded
    with h5py.File(tmp_path / "run.h5") as f:
        assert "final" in f
    printed = train(run_cli, gpt, tmp_path / "again.h5")
    assert printed.code == 0 and "validation loss" in printed.out and "accuracy" not in printed.out


@pytest.mark.parametrize("extra, needle", [
    (["--recalibrate-bn", "2"], "gpt has no BatchNorm layer to re-estimate"),
])
def test_bad_options_are_one_line_and_write_nothing(run_cli, gpt, tmp_path, extra, needle):
    r = train(run_cli, gpt, tmp_path / "x.h5", *extra)
    assert_one_line_error(r, needle)
    assert not (tmp_path / "x.h5").exists()


def test_architecture_and_dataset_must_match(run_cli, gpt, tmp_path):
    checkpoint, text = gpt
    image_on_text = run_cli("train", "--dataset", "text", "--data", text, "--arch", "resnet20", "--checkpoint",
                            ADAPTED_R20, "--out", tmp_path / "a.h5")
    assert_one_line_error(image_on_text, "--dataset text needs a language architecture")
    gpt_on_images = run_cli("train", "--arch", "gpt", "--checkpoint", checkpoint, "--out", tmp_path / "b.h5")
    assert_one_line_error(gpt_on_images, "gpt is a language model: train it on --dataset text")
    other = tmp_path / "other.txt"
    other.write_text(text.read_text() + "¤" * 40)
    uncovered = run_cli("train", "--dataset", "text", "--data", other, "--arch", "gpt", "--checkpoint", checkpoint,
                        "--out", tmp_path / "c.h5")
    assert_one_line_error(uncovered, "cannot encode '¤'")
    assert not any((tmp_path / n).exists() for n in ("a.h5", "b.h5", "c.h5"))


@pytest.mark.parametrize("method", sorted(set(SETTINGS) - {"input-bitwise"}))
def test_every_weight_method_trains_and_clamps_the_gpt(method, gpt, tmp_path):
    """Every method that quantizes weights trains the GPT on text and clamps it (issue 24; vq-nas is issue 26's
    "works on the language-model path"): finite validation losses, bits for every block's Linear layers."""
    import math as m

    from landscape.specs import RunSpec
    from landscape.trainer import TrainConfig
    from landscape.training import run_training

    checkpoint, text = gpt
    spec = RunSpec.resolved(str(checkpoint), arch="gpt", method=method, compressor=SETTINGS[method],
                            train=TrainConfig(epochs=1, batch_size=8, lr=0.01, compile="off"),
                            data={"name": "text"}, limit_train=256, limit_test=8)
    summary = run_training(tmp_path / "run.h5", spec, data=str(text), progress=False)
    assert summary["steps"] == 2 and summary["n_test"] == 8
    assert m.isfinite(summary["loss_clamped"]) and "accuracy_clamped" not in summary
    assert {f"blocks.{i}.{p}.weight" for i in (0, 1) for p in ("attn.qkv", "attn.proj", "mlp.up", "mlp.down")} \
        <= set(summary["bits_per_layer"])


@pytest.mark.parametrize("method", ["uniform", "kmeans", "gptq"])
def test_ptq_of_a_gpt_is_measured_by_its_validation_loss(run_cli, gpt, tmp_path, method):
    """`landscape ptq --dataset text`: the quantized GPT's validation loss (no accuracy), its checkpoint keeps the
    vocabulary and loads back; GPTQ calibrates on the first training windows."""
    from landscape.lm import load_char_model

    checkpoint, text = gpt
    r = run_cli("ptq", "--dataset", "text", "--data", text, "--arch", "gpt", "--checkpoint", checkpoint, "--method",
                method, "--bits", "3", "--calibration-images" if method == "gptq" else "--limit", "20",
                "--out", tmp_path / "q.pt", "--json")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    assert "accuracy" not in result and result["loss"] > 0 and result["mean_effective_bits"] <= 3
    assert result["tokens"] == (20 if method != "gptq" else (600 - 1) // 16) * 16
    if method == "gptq":
        assert result["calibration_windows"] == 20
    model, vocab, _ = load_char_model(str(tmp_path / "q.pt"))
    assert len(torch.unique(model.blocks[0].mlp.up.weight)) <= 8 and vocab.size == len(set(text.read_text()))
    bad = run_cli("ptq", "--dataset", "text", "--data", text, "--arch", "gpt", "--checkpoint", checkpoint,
                  "--method", method, "--bits", "3", "--recalibrate-bn", "1", "--out", tmp_path / "x.pt")
    assert_one_line_error(bad, "has no BatchNorm layer")
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize("method, group", [("rtn", None), ("rtn", "16"), ("hqq", "16")])
def test_groupwise_ptq_of_a_gpt_counts_its_scales_in_the_bits(run_cli, gpt, tmp_path, method, group):
    """`landscape ptq --method rtn|hqq [--group-size G]` on the GPT: 3-bit indices plus two 16-bit numbers per group
    (32 inputs per row of every layer but the MLP's down projection, 128)."""
    checkpoint, text = gpt
    extra = ["--group-size", group] if group else []
    r = run_cli("ptq", "--dataset", "text", "--data", text, "--arch", "gpt", "--checkpoint", checkpoint, "--method",
                method, "--bits", "3", *extra, "--out", tmp_path / "q.pt", "--json")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    assert "accuracy" not in result and result["loss"] > 0 and result["index_bits"] == 3
    bits = result["bits_per_layer"]
    assert bits["blocks.0.attn.qkv.weight"] == 3 + 32 / (16 if group else 32)
    assert bits["blocks.0.mlp.down.weight"] == 3 + 32 / (16 if group else 128)
    bad = run_cli("ptq", "--dataset", "text", "--data", text, "--arch", "gpt", "--checkpoint", checkpoint, "--method",
                  method, "--bits", "3", "--group-size", "48", "--out", tmp_path / "x.pt")
    assert_one_line_error(bad, "group size 48 does not divide the 32 inputs of tok.weight")
    assert not (tmp_path / "x.pt").exists()


def test_the_lm_ptq_table_has_every_method_at_every_bit_width(gpt, tmp_path):
    """figures.LMPTQTable (analyses/table_lm_ptq.py): one row per method × bits plus full precision, the loss in
    nats per token, group-wise bits with their scales; the blocks-only selection leaves the tied tensor as it is."""
    import csv

    from landscape.figures import LMPTQTable, make

    checkpoint, text = gpt
    spec = LMPTQTable(checkpoint=str(checkpoint), text=str(text), bits=(2, 3), methods=("uniform", "gptq", "rtn/g16",
                      "hqq"), calibration=16, limit=8, out_dir=str(tmp_path), params="weights,-tok.weight")
    result = make(spec)
    rows = list(csv.DictReader(open(tmp_path / "lm_ptq.csv")))
    assert len(rows) == 1 + 4 * 2 and rows[0]["method"] == "full precision"
    assert {r["method"] for r in rows[1:]} == {"uniform", "gptq", "rtn/g16", "hqq"}
    g16 = [r for r in rows if r["method"] == "rtn/g16"]
    assert float(g16[0]["mean_effective_bits"]) == pytest.approx(2 + 32 / 16)
    assert all(float(r["loss"]) > 0 for r in rows) and "accuracy" not in rows[0]
    assert (tmp_path / "lm_ptq.png").is_file() and "| hqq |" in "\n".join(result.lines)
    with pytest.raises(ValueError, match="rtn and hqq optionally with /gG"):
        LMPTQTable(checkpoint=str(checkpoint), methods=("kmeans/g64",))
