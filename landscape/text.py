"""Text corpora for character-level language models (`--dataset text`): a UTF-8 file, its character vocabulary,
nanoGPT's split, training windows drawn at random from a seeded generator, and fixed evaluation windows.

  * Vocabulary: the sorted distinct characters of the whole file (tinyshakespeare: 65), stored with every
    checkpoint trained on it (`Vocab.chars`); a model's vocabulary must cover a text to be evaluated on it.
  * Split: the first 90% of the characters train, the last 10% validate (nanoGPT's `shakespeare_char`:
    1,003,854 and 111,540 characters of tinyshakespeare).
  * Training batches (`TrainWindows`): `steps` batches per epoch of `batch_size` windows of `context + 1`
    characters at uniformly random offsets; x is a window's first `context` characters, y the same shifted by one.
    Batch k of epoch e comes from a generator seeded by (seed, e, k): the order is a function of the epoch, so a
    resumed run draws the same batches (the trainer's `Loader` contract).
  * Evaluation batches (`eval_windows`): the split cut into consecutive, non-overlapping windows of `context`
    targets from its start (the last partial window dropped), so every number is reproducible and every character
    but the first is a target once. nanoGPT estimates its loss on random windows instead; both average the loss
    over positions 1…context of a window, so the two agree in expectation.

The metric of a language model is the mean cross-entropy per predicted character in nats (`lm_metrics`), with
its perplexity exp(loss) and bits per character loss / ln 2 (one character = one token here).

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.txt"
    >>> _ = path.write_text("hello world, " * 40)
    >>> corpus = load_text(path)
    >>> corpus.vocab.chars, len(corpus.train), len(corpus.val)
    (' ,dehlorw', 468, 52)
    >>> x, y = next(iter(TrainWindows(corpus.train, context=8, batch_size=2, steps=1)))
    >>> x.shape, bool((x[:, 1:] == y[:, :-1]).all())
    (torch.Size([2, 8]), True)
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import DataNotFound, LandscapeError

TRAIN_FRACTION = 0.9  # nanoGPT's split: the first 90% of the characters train, the rest validate
DEFAULT_TEXT = "tinyshakespeare.txt"  # looked for in the data roots (../shared/data/ first)


@dataclass(frozen=True)
class Vocab:
    """A character vocabulary: token i is `chars[i]` (sorted, distinct).

    Examples:
        >>> v = Vocab.of("abca")
        >>> v.chars, v.encode("cab").tolist(), v.decode(torch.tensor([2, 0]))
        ('abc', [2, 0, 1], 'ca')
        >>> v.encode("abd")
        Traceback (most recent call last):
        ...
        landscape.errors.LandscapeError: the vocabulary (3 characters) cannot encode 'd' (1 character of the text)
    """

    chars: str

    def __post_init__(self):
        if not self.chars:
            raise LandscapeError("an empty vocabulary")
        if "".join(sorted(set(self.chars))) != self.chars:
            raise LandscapeError("a vocabulary's characters must be sorted and distinct")

    @classmethod
    def of(cls, text: str) -> Vocab:
        """The vocabulary of a text: its distinct characters, sorted.

        Args:
            text: the text.

        Returns:
            The `Vocab`.

        Examples:
            >>> Vocab.of("hello").chars
            'ehlo'
        """
        return cls("".join(sorted(set(text))))

    @property
    def size(self) -> int:
        """The number of tokens (characters).

        Examples:
            >>> Vocab("abc").size
            3
        """
        return len(self.chars)

    def missing(self, text: str) -> str:
        """The characters of `text` this vocabulary lacks, sorted.

        Args:
            text: the text to check.

        Returns:
            The missing characters ("" when the vocabulary covers the text).

        Examples:
            >>> Vocab("abc").missing("cadet")
            'det'
        """
        return "".join(sorted(set(text) - set(self.chars)))

    def encode(self, text: str) -> Tensor:
        """int64 token ids of `text`; a one-line LandscapeError naming what it cannot encode.

        Args:
            text: the text.

        Returns:
            A 1-D int64 tensor, one id per character.

        Examples:
            >>> Vocab("abc").encode("cab").tolist()
            [2, 0, 1]
        """
        missing = self.missing(text)
        if missing:
            shown = repr(missing[:20]) + ("…" if len(missing) > 20 else "")
            raise LandscapeError(f"the vocabulary ({self.size} characters) cannot encode {shown} ({len(missing)} "
                                 f"character{'s' * (len(missing) > 1)} of the text)")
        table = {c: i for i, c in enumerate(self.chars)}
        return torch.tensor([table[c] for c in text], dtype=torch.int64)

    def decode(self, ids: Tensor) -> str:
        """The text of token ids.

        Args:
            ids: token ids (any shape; read in order).

        Returns:
            The characters.

        Examples:
            >>> Vocab("abc").decode(torch.tensor([[2, 0], [1, 1]]))
            'cabb'
        """
        return "".join(self.chars[int(i)] for i in ids.flatten())


@dataclass(frozen=True)
class Corpus:
    """A text file as tokens: its vocabulary, the training and validation token tensors, where it came from."""

    vocab: Vocab
    train: Tensor  # int64 token ids, the first TRAIN_FRACTION of the characters
    val: Tensor  # the rest
    path: str
    sha256: str

    def record(self) -> dict:
        """What a run file or checkpoint stores of the data: name, path, digest, vocabulary, split sizes."""
        return {"name": "text", "path": self.path, "sha256": self.sha256, "vocab": self.vocab.chars,
                "train_tokens": len(self.train), "val_tokens": len(self.val)}


def default_text() -> Path:
    """../shared/data/tinyshakespeare.txt (or the first data root holding it): the default corpus."""
    from .data import data_roots

    for root in data_roots():
        if (root / DEFAULT_TEXT).is_file():
            return root / DEFAULT_TEXT
    raise DataNotFound(f"no {DEFAULT_TEXT} in the data roots ({', '.join(map(str, data_roots()))}); give --data "
                       "FILE (any UTF-8 text)")


def load_text(path: str | os.PathLike | None = None, *, vocab: Vocab | None = None) -> Corpus:
    """Read a UTF-8 text file (default: `default_text()`), tokenize it by characters and split it 90/10.

    Examples:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.txt"
        >>> _ = path.write_text("abcdefghij" * 2)
        >>> corpus = load_text(path)
        >>> len(corpus.train), corpus.val.tolist()
        (18, [8, 9])
        >>> load_text(path, vocab=Vocab("abc"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        landscape.errors.LandscapeError: the vocabulary (3 characters) cannot encode 'defghij' (7 characters ...

    Args:
        path: the file.
        vocab: a model's vocabulary to encode with (a checkpoint's); None: the file's own characters.

    Returns:
        The `Corpus`; a one-line LandscapeError for a missing, non-UTF-8 or empty file, a text too short to split,
        or characters `vocab` lacks.
    """
    path = Path(path) if path is not None else default_text()
    if not path.is_file():
        raise DataNotFound(f"{path}: no such text file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LandscapeError(f"{path} is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start:,})") from None
    if not text:
        raise LandscapeError(f"{path} is empty")
    n_train = int(TRAIN_FRACTION * len(text))
    if n_train < 2 or len(text) - n_train < 2:
        raise LandscapeError(f"{path} has {len(text)} characters: too few to split 90/10 into two parts of ≥ 2")
    vocab = vocab or Vocab.of(text)
    tokens = vocab.encode(text)
    return Corpus(vocab, tokens[:n_train], tokens[n_train:], str(path), hashlib.sha256(raw).hexdigest())


def check_context(tokens: Tensor, context: int, what: str) -> None:
    """A one-line LandscapeError where `tokens` holds no window of context + 1 characters."""
    if not isinstance(context, int) or context < 1:
        raise LandscapeError(f"context must be an integer ≥ 1, got {context!r}")
    if len(tokens) < context + 1:
        raise LandscapeError(f"context {context} is longer than the {what} split ({len(tokens):,} characters, "
                             f"a window needs {context + 1})")


class TrainWindows:
    """`steps` batches per epoch of `batch_size` random windows (module docstring); batch k of epoch e is drawn
    from a generator seeded by (seed, e, k). A re-iterable of (x, y) int64 [batch, context] pairs for the trainer.

    Args:
        tokens: the training split's token ids.
        context: characters per window (x and y are `context` long).
        batch_size: windows per batch.
        steps: batches per epoch.
        seed: the generator's seed.

    Examples:
        >>> tokens = torch.arange(100)
        >>> a = TrainWindows(tokens, context=4, batch_size=3, steps=2, seed=1)
        >>> b = TrainWindows(tokens, context=4, batch_size=3, steps=2, seed=1)
        >>> all(torch.equal(p[0], q[0]) for p, q in zip(a, b)), len(a)
        (True, 2)
        >>> a.set_epoch(1)
        >>> torch.equal(next(iter(a))[0], next(iter(b))[0])
        False
    """

    def __init__(self, tokens: Tensor, *, context: int, batch_size: int, steps: int, seed: int = 0):
        check_context(tokens, context, "training")
        if batch_size < 1 or steps < 1:
            raise LandscapeError(f"batch_size and steps must be ≥ 1, got {batch_size} and {steps}")
        self.tokens, self.context, self.batch_size, self.steps, self.seed = tokens, context, batch_size, steps, seed
        self.epoch = 0

    def __len__(self) -> int:
        return self.steps

    def set_epoch(self, epoch: int) -> None:
        """Draw the batches of epoch `epoch` from now on (the trainer calls it before each epoch).

        Args:
            epoch: the epoch, from 0.

        Examples:
            >>> windows = TrainWindows(torch.arange(50), context=4, batch_size=2, steps=1)
            >>> windows.set_epoch(3)
            >>> windows.epoch
            3
        """
        self.epoch = epoch

    def batch(self, k: int) -> tuple[Tensor, Tensor]:
        """Batch k of the current epoch.

        Args:
            k: the batch's position in the epoch.

        Returns:
            (x, y): int64 [batch_size, context], y the windows shifted by one character.

        Examples:
            >>> x, y = TrainWindows(torch.arange(50), context=4, batch_size=2, steps=1).batch(0)
            >>> bool((y - x == 1).all())
            True
        """
        g = torch.Generator().manual_seed(((self.seed * 1_000_003 + self.epoch) * 1_000_033 + k) % 2**63)
        starts = torch.randint(0, len(self.tokens) - self.context, (self.batch_size,), generator=g)
        windows = torch.stack([self.tokens[s:s + self.context + 1] for s in starts.tolist()])
        return windows[:, :-1], windows[:, 1:]

    def __iter__(self):
        return (self.batch(k) for k in range(self.steps))


def eval_windows(tokens: Tensor, *, context: int, batch_size: int, limit: int | None = None,
                 what: str = "validation") -> list[tuple[Tensor, Tensor]]:
    """The split's consecutive non-overlapping windows (module docstring) in batches of `batch_size`.

    Args:
        tokens: the split's token ids.
        context: targets per window.
        batch_size: windows per batch.
        limit: the first `limit` windows only (None: all).
        what: the split's name, for the error.

    Returns:
        (x, y) int64 batches; a one-line LandscapeError where the split holds no window.

    Examples:
        >>> [(x.tolist(), y.tolist()) for x, y in eval_windows(torch.arange(8), context=3, batch_size=5)]
        [([[0, 1, 2], [3, 4, 5]], [[1, 2, 3], [4, 5, 6]])]
    """
    check_context(tokens, context, what)
    n = (len(tokens) - 1) // context
    if limit is not None:
        n = min(n, limit)
    x = tokens[: n * context].view(n, context)
    y = tokens[1: n * context + 1].view(n, context)
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, n, batch_size)]


@dataclass(frozen=True)
class TextSplit:
    """One split of a corpus as the analyses see it (what `data.Split` is for images): its fixed, non-overlapping
    windows of `context` characters (`eval_windows`); `limit` counts windows, not characters.

    Examples:
        >>> split = TextSplit(torch.arange(20), context=4)
        >>> len(split), len(split.subset(2)), [tuple(x.shape) for x, _ in split.batches(3)]
        (4, 2, [(3, 4), (1, 4)])
    """

    tokens: Tensor  # int64 token ids of the split
    context: int  # characters per window
    limit: int | None = None  # the first `limit` windows only (None: all)
    what: str = "validation"  # the split's name, for errors

    def __len__(self) -> int:
        n = (len(self.tokens) - 1) // self.context
        return n if self.limit is None else min(n, self.limit)

    def subset(self, limit: int | None) -> TextSplit:
        """The first `limit` windows (None: all of them).

        Args:
            limit: windows to keep.

        Returns:
            The shorter split.

        Examples:
            >>> len(TextSplit(torch.arange(100), context=9).subset(3))
            3
        """
        if limit is None:
            return self
        return TextSplit(self.tokens, self.context, limit if self.limit is None else min(limit, self.limit),
                         self.what)

    def batches(self, batch_size: int, device: str | torch.device = "cpu") -> list[tuple[Tensor, Tensor]]:
        """The windows as (x, y) batches on `device`, in order (`eval_windows`).

        Args:
            batch_size: windows per batch.
            device: where the batches go.

        Returns:
            (x, y) int64 [≤ batch_size, context] pairs.

        Examples:
            >>> x, y = TextSplit(torch.arange(9), context=4).batches(8)[0]
            >>> x.tolist(), y.tolist()
            ([[0, 1, 2, 3], [4, 5, 6, 7]], [[1, 2, 3, 4], [5, 6, 7, 8]])
        """
        return [(x.to(device), y.to(device)) for x, y in
                eval_windows(self.tokens, context=self.context, batch_size=batch_size, limit=self.limit,
                             what=self.what)]


def is_text(data: Any) -> bool:
    """Whether `data` belongs to a language model: a `TextSplit`, or a recorded data spec {"name": "text", ...}
    (a run file's, a checkpoint's or a RunSpec's `data`). The one test every entry point uses to tell a language
    model's run from a classifier's.

    Args:
        data: a split, a data spec (mapping), or anything else (then False).

    Returns:
        True for a language model's data.

    Examples:
        >>> is_text({"name": "text", "path": "a.txt"}), is_text({"name": "cifar10"}), is_text({})
        (True, False, False)
        >>> is_text(TextSplit(torch.arange(9), context=4))
        True
    """
    if isinstance(data, TextSplit):
        return True
    return isinstance(data, Mapping) and data.get("name") == "text"


def evaluation_batches(split: Any, batch_size: int, device: str | torch.device = "cpu") -> Any:
    """Unaugmented evaluation batches of a split, in order: a `TextSplit`'s windows (`batch_size` windows each),
    or a `data.Split`'s normalized images (`data.Batches`).

    Args:
        split: a `TextSplit` or a `landscape.data.Split`.
        batch_size: examples (windows or images) per batch.
        device: where the batches go.

    Returns:
        A list of (x, y) batches, or a `data.Batches`.

    Examples:
        >>> [tuple(x.shape) for x, _ in evaluation_batches(TextSplit(torch.arange(13), context=4), 2)]
        [(2, 4), (1, 4)]
    """
    from .data import Batches

    if isinstance(split, TextSplit):
        return split.batches(batch_size, device)
    return Batches(split, batch_size, train=False, device=device)


def example_unit(data: Any) -> str:
    """What one evaluation example of `data` is called in titles and tables: "windows" for a language model's
    data (`is_text`), "images" otherwise.

    Args:
        data: a split or a data spec.

    Returns:
        "windows" or "images".

    Examples:
        >>> example_unit({"name": "text"}), example_unit({})
        ('windows', 'images')
    """
    return "windows" if is_text(data) else "images"


def loss_for(split: Any) -> Any:
    """The loss every evaluation of `split` uses: `lm_loss` (next-token cross-entropy, nats per token) for a
    language model's data (`is_text`), None (a classifier's cross-entropy) otherwise.

    Args:
        split: a split or a data spec.

    Returns:
        `lm_loss` or None.

    Examples:
        >>> loss_for({"name": "text"}).__name__, loss_for({"name": "cifar10"})
        ('lm_loss', None)
    """
    return lm_loss if is_text(split) else None


def recorded_corpus(spec: Mapping[str, Any], path: str | os.PathLike | None, vocab: Vocab) -> Corpus:
    """The text a run recorded ({"path", "sha256", ...}), read from `path` where given (else the recorded path,
    else tinyshakespeare) and encoded with `vocab`; a one-line LandscapeError if it is not the same file (sha256).

    Args:
        spec: the run's recorded data spec ({} for a new run).
        path: another place to read it from (--data), or None.
        vocab: the model's vocabulary.

    Returns:
        The `Corpus`.
    """
    corpus = load_text(path or spec.get("path"), vocab=vocab)
    if spec.get("sha256") and spec["sha256"] != corpus.sha256:
        raise LandscapeError(f"{corpus.path} is not the text this run trained on (sha256 differs)")
    return corpus


def recorded_splits(spec: Mapping[str, Any], path: str | os.PathLike | None = None) -> tuple[TextSplit, TextSplit]:
    """(train, validation) `TextSplit`s of the text a language-model run recorded ({"name": "text", "path",
    "sha256", "vocab", "context"}), encoded with its vocabulary; `path` (--data) replaces the recorded path and
    must be the same text (its sha256).

    Args:
        spec: the run's recorded data spec.
        path: another place to read the same text from (None: the recorded path).

    Returns:
        (train, validation) windows of the recorded context.
    """
    corpus = recorded_corpus(spec, path, Vocab(spec["vocab"]))
    context = int(spec["context"])
    return TextSplit(corpus.train, context, what="training"), TextSplit(corpus.val, context)


def logits_of(output) -> Tensor:
    """A model's logits: the tensor itself, or `.logits` of a Hugging Face ModelOutput (or a tuple's first)."""
    if isinstance(output, Tensor):
        return output
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, tuple | list):
        return output[0]
    raise TypeError(f"cannot read logits from a {type(output).__name__}")


def lm_loss(output: Any, targets: Tensor) -> Tensor:
    """Mean cross-entropy (nats) of next-token logits [batch, time, vocab] against targets [batch, time].

    Args:
        output: the model's output: logits, or a Hugging Face ModelOutput with `.logits`.
        targets: the next tokens.

    Returns:
        A 0-d float32 tensor (the trainer's loss).

    Examples:
        >>> logits = torch.zeros(2, 3, 4)
        >>> round(float(lm_loss(logits, torch.zeros(2, 3, dtype=torch.long))), 4) == round(math.log(4), 4)
        True
    """
    logits = logits_of(output)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))


@torch.no_grad()
def lm_metrics(model: torch.nn.Module, batches: Iterable, device: str | torch.device = "cpu") -> dict[str, float]:
    """A language model's validation numbers on fixed batches: loss (mean nats per predicted token), perplexity
    exp(loss), bits_per_token loss / ln 2 (= bits per character for a character model), tokens.

    Args:
        model: the language model (evaluated in eval mode; its mode is restored).
        batches: (x, y) batches, e.g. `eval_windows`.
        device: where the batches are moved.

    Returns:
        {"loss", "perplexity", "bits_per_token", "tokens"}.

    Examples:
        >>> model = torch.nn.Sequential(torch.nn.Embedding(5, 5))  # uniform logits after zeroing
        >>> _ = torch.nn.init.zeros_(model[0].weight)
        >>> m = lm_metrics(model, eval_windows(torch.arange(5).repeat(4), context=4, batch_size=2))
        >>> round(m["perplexity"], 6), m["tokens"]
        (5.0, 16)
    """
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for x, y in batches:
            x, y = x.to(device), y.to(device)
            logits = logits_of(model(x))
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                                           reduction="sum"))
            count += y.numel()
    finally:
        model.train(was_training)
    loss = total / count
    return {"loss": loss, "perplexity": math.exp(loss), "bits_per_token": loss / math.log(2), "tokens": count}
