"""The built-in GPT (landscape/gpt.py, `--arch gpt`): shapes and nanoGPT's parameter count, causality (a token
never sees a later one), the tied head, every matrix a Linear (what parameter selection and the compressors
see), a context too long refused, and the config's checks."""

import pytest
import torch
import torch.nn as nn

from landscape.errors import CheckpointError
from landscape.gpt import GPT, GPTConfig
from landscape.models import build_model
from landscape.params import select_params


def tiny(**kw):
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=13, context=16, n_layer=2, n_head=2, n_embd=32, **kw))


def test_nanogpts_cpu_model_has_its_parameter_count():
    model = build_model("gpt", {})  # 4 × 4 × 128, 65 characters, context 64
    n = sum(p.numel() for p in model.parameters())
    assert n - 64 * 128 == 801_664  # nanoGPT prints 0.80M (it leaves out the position embeddings)


def test_a_token_never_sees_a_later_one():
    model = tiny().eval()
    x = torch.randint(0, 13, (2, 16), generator=torch.Generator().manual_seed(1))
    changed = x.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % 13
    a, b = model(x), model(changed)
    torch.testing.assert_close(a[:, :10], b[:, :10])
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_the_head_is_the_token_embedding_and_every_matrix_is_a_linear():
    model = tiny()
    assert model.head.weight is model.tok.weight
    untied = tiny(tie=False)
    assert untied.head.weight is not untied.tok.weight
    linears = {n for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    assert {"blocks.0.attn.qkv", "blocks.0.attn.proj", "blocks.0.mlp.up", "blocks.0.mlp.down", "head"} <= linears
    selected = select_params(model)
    assert "blocks.1.mlp.down.weight" in selected and all(p.dim() == 2 for p in selected.values())


def test_residual_projections_start_smaller():
    model = tiny()
    std = {n: float(p.detach().std()) for n, p in model.named_parameters() if p.dim() == 2}
    assert std["blocks.0.mlp.down.weight"] < 0.6 * std["blocks.0.mlp.up.weight"]


def test_bad_shapes_and_settings_are_refused():
    with pytest.raises(ValueError, match="longer than the model's context 16"):
        tiny()(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="n_embd 30 must be a multiple of n_head 4"):
        GPTConfig(n_embd=30, n_head=4)
    with pytest.raises(CheckpointError, match="arch 'gpt' with kwargs .*n_layers"):
        build_model("gpt", {"n_layers": 2})
