"""Text corpora (landscape/text.py): the vocabulary and its refusals, nanoGPT's 90/10 split on the real file,
seeded training windows (a function of seed, epoch and batch), fixed non-overlapping evaluation windows, the LM
loss and its metrics, and the bad inputs as one-line errors."""

import math

import pytest
import torch
from conftest import SHARED

from landscape.errors import LandscapeError
from landscape.text import TrainWindows, Vocab, eval_windows, lm_loss, lm_metrics, load_text

SHAKESPEARE = SHARED / "data" / "tinyshakespeare.txt"


def test_tinyshakespeare_splits_as_nanogpt_does():
    corpus = load_text(SHAKESPEARE)
    assert corpus.vocab.size == 65
    assert (len(corpus.train), len(corpus.val)) == (1_003_854, 111_540)  # ../shared/data/README.md
    assert corpus.vocab.decode(corpus.train[:9]) == "First Cit"
    assert corpus.record()["sha256"].startswith("86c4e6aa")


def test_the_default_text_is_the_shared_copy():
    assert load_text().path == str(SHAKESPEARE.resolve())


def few_kb(tmp_path, n=4000):
    path = tmp_path / "few.txt"
    path.write_text(SHAKESPEARE.read_text()[:n])
    return path


def test_training_windows_are_seeded_per_epoch_and_batch_and_shift_by_one(tmp_path):
    corpus = load_text(few_kb(tmp_path))
    a = TrainWindows(corpus.train, context=16, batch_size=4, steps=3, seed=0)
    first = [x for x, _ in a]
    assert all(torch.equal(p, q) for p, q in zip(first, [x for x, _ in a], strict=True))  # re-iterable, same
    assert a.batch(1)[0].equal(first[1])  # batch k alone is batch k of the pass (what a resume skips to)
    a.set_epoch(1)
    assert not torch.equal(next(iter(a))[0], first[0])
    other = TrainWindows(corpus.train, context=16, batch_size=4, steps=3, seed=1)
    assert not torch.equal(next(iter(other))[0], first[0])
    x, y = a.batch(0)
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    text = corpus.vocab.decode(corpus.train)
    for row_x, row_y in zip(x, y, strict=True):  # each window is a piece of the training text
        piece = corpus.vocab.decode(torch.cat([row_x, row_y[-1:]]))
        assert piece in text


def test_evaluation_windows_cover_the_split_once_without_overlap():
    tokens = torch.arange(103)
    batches = eval_windows(tokens, context=10, batch_size=4)
    xs = torch.cat([x for x, _ in batches]).flatten()
    ys = torch.cat([y for _, y in batches]).flatten()
    assert torch.equal(xs, torch.arange(100)) and torch.equal(ys, torch.arange(1, 101))
    assert [len(x) for x, _ in batches] == [4, 4, 2]
    assert sum(len(x) for x, _ in eval_windows(tokens, context=10, batch_size=4, limit=3)) == 3


def test_lm_loss_and_metrics_are_the_mean_cross_entropy_per_character():
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(2, 5, 7, generator=g), torch.randint(0, 7, (2, 5), generator=g)
    expected = -torch.log_softmax(logits, -1).gather(-1, y[..., None]).mean()
    torch.testing.assert_close(lm_loss(logits, y), expected)

    class Output:  # a Hugging Face ModelOutput's logits
        def __init__(self, logits):
            self.logits = logits

    torch.testing.assert_close(lm_loss(Output(logits), y), expected)
    model = torch.nn.Embedding(7, 7)
    batches = eval_windows(torch.randint(0, 7, (41,), generator=g), context=8, batch_size=2)
    m = lm_metrics(model, batches)
    with torch.no_grad():
        direct = torch.cat([lm_loss(model(x), y).reshape(1) * y.numel() for x, y in batches]).sum() / 40
    assert m["tokens"] == 40 and m["loss"] == pytest.approx(float(direct), rel=1e-6)
    assert m["perplexity"] == pytest.approx(math.exp(m["loss"])) and m["bits_per_token"] == pytest.approx(
        m["loss"] / math.log(2))


@pytest.mark.parametrize("content, needle", [
    (b"\xff\xfe abc", "is not UTF-8 text (byte 0xff at offset 0)"),
    (b"", "is empty"),
    (b"abc", "too few to split"),
])
def test_bad_texts_are_one_line_errors(tmp_path, content, needle):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(LandscapeError, match=r"^\S.*" + needle.replace("(", r"\(").replace(")", r"\)")):
        load_text(path)


def test_a_vocabulary_that_does_not_cover_the_text_is_refused(tmp_path):
    path = few_kb(tmp_path)
    without_f = Vocab("".join(sorted(set(path.read_text()) - {"F"})))
    with pytest.raises(LandscapeError, match="cannot encode 'F' \\(1 character of the text\\)"):
        load_text(path, vocab=without_f)


def test_a_context_longer_than_a_split_is_refused(tmp_path):
    corpus = load_text(few_kb(tmp_path))  # 400 validation characters
    with pytest.raises(LandscapeError, match="context 400 is longer than the validation split"):
        eval_windows(corpus.val, context=400, batch_size=4)
    with pytest.raises(LandscapeError, match="context 4000 is longer than the training split"):
        TrainWindows(corpus.train, context=4000, batch_size=4, steps=1)
