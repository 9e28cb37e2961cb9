"""Hugging Face language models built from a config (`--arch hf-gpt2`, `--arch hf-llama`; landscape/hf.py):
offline, their loss is ours, GPT-2's Conv1D is the linear layer it is to parameter selection, every compressor,
GPTQ and export, and a tied head is one tensor, compressed, stored and counted once. The analyses run on a
language model's run and report its loss in nats per token, never an accuracy."""

import dataclasses
import json

import pytest
import torch
import torch.nn as nn
from conftest import SHARED, assert_one_line_error
from test_any_model import SETTINGS  # each method's smallest settings

pytest.importorskip("transformers")
from transformers.pytorch_utils import Conv1D  # noqa: E402

from landscape.compress.forward import layer_forward, quantized_modules  # noqa: E402
from landscape.errors import LandscapeError  # noqa: E402
from landscape.models import build_model  # noqa: E402
from landscape.params import not_compressed, output_major, select_params  # noqa: E402
from landscape.text import lm_loss  # noqa: E402

SHAPE = {"vocab_size": 13, "context": 8, "n_layer": 2, "n_head": 2, "n_embd": 16}
BLOCK = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")


@pytest.mark.parametrize("arch", ["hf-gpt2", "hf-llama"])
def test_built_offline_their_shifted_loss_is_ours(arch):
    torch.manual_seed(0)
    model = build_model(arch, SHAPE).eval()
    x = torch.randint(0, 13, (3, 8))
    out = model(x, labels=x)
    assert out.logits.shape == (3, 8, 13)
    assert torch.allclose(out.loss, lm_loss(model(x[:, :-1]), x[:, 1:]), atol=1e-6)


def test_gpt2s_conv1d_layers_are_selected_and_its_tied_head_once():
    model = build_model("hf-gpt2", SHAPE)
    assert model.lm_head.weight is model.transformer.wte.weight
    names = list(select_params(model))
    assert names == ["transformer.wte.weight"] + [f"transformer.h.{i}.{p}.weight" for i in (0, 1) for p in BLOCK]
    assert not_compressed(model) == {"transformer.wpe.weight": "Embedding"}
    assert list(select_params(model, "weights,-lm_head.weight")) == names[1:]  # either name of the tied tensor
    layers = quantized_modules(model, names, "lsq")
    assert layers["transformer.wte.weight"] is model.lm_head  # the tied tensor is quantized as the head
    assert isinstance(layers["transformer.h.0.mlp.c_fc.weight"], Conv1D)


def test_llamas_linear_layers_are_selected():
    model = build_model("hf-llama", SHAPE)
    names = select_params(model)
    assert len(names) == 1 + 2 * 7 and "model.embed_tokens.weight" in names and "lm_head.weight" not in names
    assert not_compressed(model) == {}
    with pytest.raises(LandscapeError, match="always has biases"):
        build_model("hf-gpt2", {**SHAPE, "bias": False})


def test_a_conv1d_computes_with_another_weight_as_its_own_forward():
    conv = Conv1D(5, 3)  # 3 inputs → 5 outputs, weight [3, 5]
    x = torch.randn(2, 4, 3)
    assert torch.equal(layer_forward(conv, x, conv.weight), conv(x))
    assert output_major(conv, conv.weight).shape == (5, 3) and output_major(nn.Linear(3, 5), torch.ones(5, 3)).shape \
        == (5, 3)


@pytest.mark.parametrize("grid", ["uniform", "kmeans"])
def test_gptq_sweeps_a_conv1d_as_the_linear_layer_holding_its_transpose(grid):
    """Same inputs, same layer: GPTQ of Conv1D(W) gives exactly the transpose of GPTQ of Linear(Wᵀ)."""
    from landscape.compress.gptq import GPTQConfig, gptq_quantize

    torch.manual_seed(0)
    conv = nn.Sequential(Conv1D(6, 8), nn.ReLU(), Conv1D(3, 6))
    lin = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))
    with torch.no_grad():
        for c, m in zip(conv[::2], lin[::2], strict=True):
            m.weight.copy_(c.weight.T)
            m.bias.copy_(c.bias)
    batches = [(torch.randn(32, 8), torch.zeros(32, dtype=torch.long)) for _ in range(4)]
    config = GPTQConfig(bits=2, grid=grid, calibration_images=128)
    qc, ql = gptq_quantize(conv, batches, config).model, gptq_quantize(lin, batches, config).model
    for c, m, before in zip(qc[::2], ql[::2], lin[::2], strict=True):
        assert torch.equal(c.weight.T, m.weight) and not torch.equal(m.weight, before.weight)
        assert len(torch.unique(c.weight)) <= 4


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny hf-gpt2 and hf-llama pretrained 30 steps on 6 kB of tinyshakespeare (`pretrain_lm`), and the text."""
    from landscape.lm import NANOGPT_CPU, LMPretrainSpec, pretrain_lm

    folder = tmp_path_factory.mktemp("hf")
    text = folder / "few.txt"
    text.write_text((SHARED / "data" / "tinyshakespeare.txt").read_text()[:6000])
    out = {}
    for arch in ("hf-gpt2", "hf-llama"):
        spec = LMPretrainSpec(out=str(folder / f"{arch}.pt"), text=str(text), arch=arch, context=16, steps=30,
                              eval_every=30, arch_kwargs={"n_layer": 2, "n_head": 2, "n_embd": 32},
                              train=dataclasses.replace(NANOGPT_CPU, batch_size=8))
        result = pretrain_lm(spec, progress=False)
        assert result["val_loss"] < 4.0  # ln 55 ≈ 4.0 before training
        out[arch] = folder / f"{arch}.pt"
    return out, text


def run(models, arch, method, out):
    from landscape.specs import RunSpec
    from landscape.trainer import TrainConfig
    from landscape.training import run_training

    checkpoints, text = models
    spec = RunSpec.resolved(str(checkpoints[arch]), arch=arch, method=method, compressor=SETTINGS[method],
                            train=TrainConfig(epochs=1, batch_size=8, lr=0.01, compile="off"),
                            data={"name": "text"}, limit_train=256, limit_test=8)
    return run_training(out, spec, data=str(text), progress=False)


@pytest.mark.parametrize("arch, method", [("hf-gpt2", m) for m in sorted(set(SETTINGS) - {"input-bitwise"})]
                         + [("hf-llama", m) for m in ("weight-coupling", "gptq", "vq")])
def test_every_weight_method_trains_and_clamps_a_transformers_model(models, tmp_path, arch, method):
    import math

    summary = run(models, arch, method, tmp_path / "run.h5")
    assert math.isfinite(summary["loss_clamped"]) and "accuracy_clamped" not in summary
    layers = set(summary["bits_per_layer"])
    if arch == "hf-gpt2":
        assert layers == {"transformer.wte.weight"} | {f"transformer.h.{i}.{p}.weight" for i in (0, 1) for p in BLOCK}
    else:
        assert "model.layers.1.mlp.down_proj.weight" in layers and "lm_head.weight" not in layers


def test_every_analysis_and_the_export_run_on_a_gpt2_run(run_cli, models, tmp_path):
    """Paths, perturbations (keep: no BatchNorm), surfaces, Hessians: nats per token, no accuracy; the export
    stores the tied head once and loads back bit for bit, the head still the embedding."""
    from landscape.codec import load_exported, read_export
    from landscape.store import Run

    path = tmp_path / "run.h5"
    run(models, "hf-gpt2", "weight-coupling", path)
    for command in (["interpolate", "--points", "3"], ["perturb", "--directions", "3"],
                    ["surface", "--plane", "random", "--resolution", "3"], ["hessian", "--top", "1"]):
        r = run_cli(command[0], path, *command[1:], "--json")
        assert r.code == 0, r.err
        assert "accuracy" not in r.out and json.loads(r.out)
        printed = run_cli(command[0], path, *command[1:], "--force")
        assert printed.code == 0 and "accuracy" not in printed.out and "images" not in printed.out, printed.out
    assert "nats/token" in printed.out or "windows" in printed.out
    bad = run_cli("perturb", path, "--directions", "3", "--bn", "recalibrate", "--name", "x")
    assert_one_line_error(bad, "a language model has no BatchNorm statistics")

    r = run_cli("export", path, "--out", tmp_path / "gpt2.safetensors", "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    exported = read_export(tmp_path / "gpt2.safetensors")
    assert exported.manifest["tied"] == {"lm_head.weight": "transformer.wte.weight"}
    model = load_exported(tmp_path / "gpt2.safetensors")
    assert model.lm_head.weight is model.transformer.wte.weight
    clamped = Run(path).state("clamped")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in clamped.items())
    assert report["numel"] == sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    b = report["bytes"]
    assert b["export"] < b["float16_checkpoint"] < b["float32_checkpoint"]
