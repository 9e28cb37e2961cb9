"""A small GPT (`--arch gpt`), written to be read top to bottom: token and learned position embeddings, `n_layer`
pre-LayerNorm blocks (causal self-attention, then a GELU MLP of width 4·n_embd, each on a residual branch), a
final LayerNorm and a linear head to the vocabulary. It follows nanoGPT's model (the reference of the char-level
numbers in ../shared/data/README.md) in its shapes, initialisation (normal std 0.02, residual projections
0.02/√(2·n_layer)) and weight tying (the head's weight is the token embedding's, one tensor).

Every matrix is an `nn.Linear` (q, k and v as one `attn.qkv` of 3·n_embd outputs, as nanoGPT's `c_attn`), so
parameter selection, PTQ, every compressor and export see a Transformer's layers as they see a ResNet's. The
forward returns logits [batch, time, vocab]; the loss is `landscape.text.lm_loss`.

    >>> model = GPT(GPTConfig(vocab_size=11, context=8, n_layer=2, n_head=2, n_embd=16))
    >>> model(torch.zeros(3, 8, dtype=torch.long)).shape
    torch.Size([3, 8, 11])
    >>> model.head.weight is model.tok.weight, sum(p.numel() for p in model.parameters())
    (True, 6896)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class GPTConfig:
    """The GPT's shape; defaults are nanoGPT's CPU char-level setting (4 × 4 × 128, 64 characters of context).
    Checked at construction.

    Examples:
        >>> GPTConfig().n_embd // GPTConfig().n_head
        32
        >>> GPTConfig(n_embd=30, n_head=4)
        Traceback (most recent call last):
        ...
        ValueError: n_embd 30 must be a multiple of n_head 4
    """

    vocab_size: int = 65  # tokens (tinyshakespeare: 65 characters)
    context: int = 64  # the longest sequence, in tokens (learned positions 0…context−1)
    n_layer: int = 4  # Transformer blocks
    n_head: int = 4  # attention heads per block
    n_embd: int = 128  # residual stream width
    dropout: float = 0.0  # on attention weights and residual branches while training (nanoGPT's CPU run: 0)
    bias: bool = True  # biases in the Linear layers and LayerNorms (nanoGPT's default)
    tie: bool = True  # the head's weight is the token embedding (one tensor)

    def __post_init__(self):
        for name in ("vocab_size", "context", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer ≥ 1, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} must be a multiple of n_head {self.n_head}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class SelfAttention(nn.Module):
    """Causal multi-head self-attention: one Linear to q, k, v; scaled dot-product attention with a causal mask;
    one Linear back to the residual stream."""

    def __init__(self, c: GPTConfig):
        super().__init__()
        self.n_head, self.dropout = c.n_head, c.dropout
        self.qkv = nn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
        self.proj = nn.Linear(c.n_embd, c.n_embd, bias=c.bias)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        return self.drop(self.proj(y.transpose(1, 2).reshape(b, t, d)))


class MLP(nn.Module):
    """n_embd → 4·n_embd → GELU → n_embd."""

    def __init__(self, c: GPTConfig):
        super().__init__()
        self.up = nn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias)
        self.down = nn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.down(F.gelu(self.up(x))))


class Block(nn.Module):
    """x + attn(LN(x)), then + mlp(LN(x)): pre-LayerNorm."""

    def __init__(self, c: GPTConfig):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(c.n_embd, bias=c.bias), SelfAttention(c)
        self.ln2, self.mlp = nn.LayerNorm(c.n_embd, bias=c.bias), MLP(c)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """The model (module docstring). `GPT(**fields)` also works, as `--arch gpt --arch-kwargs` calls it.

    Args:
        config: its shape (None: `GPTConfig(**fields)`).
        **fields (Any): GPTConfig fields, where `config` is None.

    Examples:
        >>> GPT(n_layer=1, n_head=2, n_embd=8, vocab_size=5, context=4).config.n_layer
        1
    """

    def __init__(self, config: GPTConfig | None = None, **fields):
        super().__init__()
        c = self.config = config or GPTConfig(**fields)
        self.tok = nn.Embedding(c.vocab_size, c.n_embd)
        self.pos = nn.Embedding(c.context, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.ln = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2's scaled init of the residual projections
            if name.endswith(("attn.proj.weight", "mlp.down.weight")):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * c.n_layer))
        if c.tie:
            self.head.weight = self.tok.weight

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, 0.0, 0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def kwargs(self) -> dict:
        """The fields that rebuild this model (`--arch-kwargs`, stored with a checkpoint).

        Returns:
            GPTConfig's fields as a dict.

        Examples:
            >>> GPT(n_layer=1, n_head=2, n_embd=8).kwargs()["n_embd"]
            8
        """
        return asdict(self.config)

    def forward(self, idx: Tensor) -> Tensor:
        """Next-token logits of every position.

        Args:
            idx: int64 token ids [batch, time], time ≤ context.

        Returns:
            Logits [batch, time, vocab_size].

        Examples:
            >>> GPT(n_layer=1, n_head=2, n_embd=8, vocab_size=5, context=4)(torch.zeros(2, 3, dtype=torch.long)).shape
            torch.Size([2, 3, 5])
        """
        t = idx.shape[1]
        if t > self.config.context:
            raise ValueError(f"a sequence of {t} tokens is longer than the model's context {self.config.context}")
        x = self.drop(self.tok(idx) + self.pos(torch.arange(t, device=idx.device)))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))
