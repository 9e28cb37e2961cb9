"""Hugging Face `transformers` language models built from a config, offline (`--arch hf-gpt2`, `--arch hf-llama`;
the `[lm]` extra): the same shape fields as our GPT (`gpt.GPTConfig`: vocab_size, context, n_layer, n_head,
n_embd, dropout, bias, tie), so `landscape pretrain --dataset text` trains either one as it trains `--arch gpt`,
and every compressor, PTQ method, analysis and export sees them through parameter selection.

- `gpt2`: `GPT2LMHeadModel(GPT2Config(...))`. Its attention and MLP matrices are `transformers`' Conv1D (weight
  stored `[in, out]`), which `params.is_hf_conv1d` selects and `params.output_major` turns for per-channel
  quantizers and GPTQ; its head is tied to `transformer.wte` (one tensor, compressed and counted once).
  GPT-2 always has biases: `bias=False` is refused.
- `llama`: `LlamaForCausalLM(LlamaConfig(...))`, plain `nn.Linear` throughout, RMSNorm, rotary positions (so
  `context` only bounds the sequence length), SwiGLU MLP. Its MLP width is ⌈(2/3)·4·n_embd⌉ rounded up to a
  multiple of 8 (the LLaMA paper's choice: three matrices of that width hold as many weights as GPT's two of
  4·n_embd), one key/value head per query head (no grouped-query attention at this size).

Both have `bos/eos_token_id = 0`, inside every vocabulary (the defaults, 50256 for GPT-2, would not be; no pad
token: training windows are never padded), and
return a ModelOutput whose `.logits` `text.lm_loss` reads; given `labels=x` their `.loss` is the shifted
cross-entropy, which equals `lm_loss(model(x[:, :-1]), x[:, 1:])` (tests/lm/test_hf.py). Nothing is downloaded:
a config is all they need.

    >>> import torch
    >>> model = gpt2(vocab_size=11, context=8, n_layer=1, n_head=2, n_embd=16)
    >>> model(torch.zeros(2, 8, dtype=torch.long)).logits.shape
    torch.Size([2, 8, 11])
    >>> model.lm_head.weight is model.transformer.wte.weight
    True
"""

from __future__ import annotations

import math

import torch.nn as nn

from .errors import LandscapeError
from .gpt import GPTConfig


def _transformers():
    try:
        import transformers
    except ImportError:
        raise LandscapeError("the Hugging Face architectures need transformers: pip install -e '.[lm]'") from None
    return transformers


def gpt2(**fields) -> nn.Module:
    """A fresh `GPT2LMHeadModel` of GPTConfig's fields (module docstring).

    Args:
        **fields (Any): GPTConfig fields (vocab_size, context, n_layer, n_head, n_embd, dropout, bias, tie).

    Returns:
        The model, in train mode, as transformers initialises it.

    Examples:
        >>> model = gpt2(vocab_size=7, context=4, n_layer=1, n_head=1, n_embd=8)
        >>> type(model.transformer.h[0].attn.c_attn).__name__, tuple(model.transformer.h[0].attn.c_attn.weight.shape)
        ('Conv1D', (8, 24))
    """
    c = GPTConfig(**fields)
    if not c.bias:
        raise ValueError("hf-gpt2 always has biases (bias=False is not a GPT2Config setting)")
    t = _transformers()
    config = t.GPT2Config(vocab_size=c.vocab_size, n_positions=c.context, n_embd=c.n_embd, n_layer=c.n_layer,
                          n_head=c.n_head, resid_pdrop=c.dropout, embd_pdrop=c.dropout, attn_pdrop=c.dropout,
                          tie_word_embeddings=c.tie, bos_token_id=0, eos_token_id=0, pad_token_id=None)
    return t.GPT2LMHeadModel(config)


def llama_mlp_width(n_embd: int) -> int:
    """The SwiGLU width: ⌈(2/3)·4·n_embd⌉ rounded up to a multiple of 8 (module docstring).

    Examples:
        >>> llama_mlp_width(128)
        344
    """
    return 8 * math.ceil(math.ceil(8 * n_embd / 3) / 8)


def llama(**fields) -> nn.Module:
    """A fresh `LlamaForCausalLM` of GPTConfig's fields (module docstring).

    Args:
        **fields (Any): GPTConfig fields (vocab_size, context, n_layer, n_head, n_embd, dropout, bias, tie).

    Returns:
        The model, in train mode, as transformers initialises it.

    Examples:
        >>> model = llama(vocab_size=7, context=4, n_layer=1, n_head=2, n_embd=16)
        >>> model.model.layers[0].mlp.up_proj.out_features, model.lm_head.weight is model.model.embed_tokens.weight
        (48, True)
    """
    c = GPTConfig(**fields)
    t = _transformers()
    config = t.LlamaConfig(vocab_size=c.vocab_size, max_position_embeddings=c.context, hidden_size=c.n_embd,
                           intermediate_size=llama_mlp_width(c.n_embd), num_hidden_layers=c.n_layer,
                           num_attention_heads=c.n_head, num_key_value_heads=c.n_head, attention_dropout=c.dropout,
                           attention_bias=c.bias, mlp_bias=c.bias, tie_word_embeddings=c.tie,
                           bos_token_id=0, eos_token_id=0, pad_token_id=None)
    return t.LlamaForCausalLM(config)
