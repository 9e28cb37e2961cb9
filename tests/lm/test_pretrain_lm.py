"""`landscape pretrain --dataset text --arch gpt` (landscape/lm.py): a tiny GPT on a few kilobytes of
tinyshakespeare learns (validation loss below the uniform ln V), twice the same with one seed, the checkpoint
holds the vocabulary, the data's digest and every evaluation, it continues from its own checkpoint, and bad input
is one line, exit 2, nothing written."""

import json
import math

import pytest
import torch
from conftest import ADAPTED_R20, SHARED, assert_one_line_error

from landscape.lm import LMPretrainSpec, load_char_model
from landscape.models import read_checkpoint

TINY = '{"n_layer": 2, "n_head": 2, "n_embd": 32}'


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "few.txt"
    path.write_text((SHARED / "data" / "tinyshakespeare.txt").read_text()[:6000])
    return path


def pretrain(run_cli, text, out, *extra):
    return run_cli("pretrain", "--dataset", "text", "--arch", "gpt", "--data", text, "--arch-kwargs", TINY,
                   "--context", "16", "--steps", "30", "--eval-every", "10", "--out", out, "--json", *extra)


def test_a_tiny_gpt_learns_and_its_checkpoint_holds_the_vocabulary(run_cli, text, tmp_path):
    r = pretrain(run_cli, text, tmp_path / "a.pt")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    vocab = read_checkpoint(tmp_path / "a.pt")["vocab"]
    assert result["val_loss"] < math.log(len(vocab)) - 0.3  # below a uniform guess over the characters
    assert [h["step"] for h in result["history"]] == [10, 20, 30]
    assert result["history"][-1]["tokens"] == (600 - 1) // 16 * 16  # every window of the last 10%
    ckpt = read_checkpoint(tmp_path / "a.pt")
    assert ckpt["arch"] == "gpt" and ckpt["arch_kwargs"]["vocab_size"] == len(vocab) == len(set(text.read_text()))
    assert ckpt["data"]["train_tokens"] == 5400 and ckpt["config"]["optimizer"] == "adamw"
    assert ckpt["val_loss"] == result["val_loss"]
    torch.rand(7)  # numbers drawn before (an import, another job) do not change the initialisation
    again = pretrain(run_cli, text, tmp_path / "b.pt")
    assert json.loads(again.out)["val_loss"] == result["val_loss"]  # one seed, one result
    model, v, kwargs = load_char_model(str(tmp_path / "a.pt"))
    assert v.chars == vocab and kwargs["n_layer"] == 2 and not model.training
    torch.testing.assert_close(model.head.weight, model.tok.weight)


def test_it_continues_from_its_checkpoint_and_refuses_a_text_it_cannot_encode(run_cli, text, tmp_path):
    assert pretrain(run_cli, text, tmp_path / "a.pt").code == 0
    more = pretrain(run_cli, text, tmp_path / "more.pt", "--checkpoint", tmp_path / "a.pt")
    assert more.code == 0, more.err
    other = tmp_path / "other.txt"
    other.write_text(text.read_text() + "§" * 50)
    bad = pretrain(run_cli, other, tmp_path / "x.pt", "--checkpoint", tmp_path / "a.pt")
    assert_one_line_error(bad, "cannot encode '§'")
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize("argv, needle", [
    (["--dataset", "text", "--arch", "resnet20"], "(gpt, hf-gpt2, hf-llama) train on --dataset text"),
    (["--arch", "gpt"], "--arch gpt with --dataset cifar10"),
    (["--dataset", "text", "--arch", "gpt", "--context", "5000"], "context 5000 is longer than the"),
    (["--dataset", "text", "--arch", "gpt", "--checkpoint", str(ADAPTED_R20)], "has no character vocabulary"),
])
def test_bad_input_is_one_line_and_writes_nothing(run_cli, text, tmp_path, argv, needle):
    r = run_cli("pretrain", "--data", text, *argv, "--out", tmp_path / "x.pt")
    assert_one_line_error(r, needle)
    assert r.code == 2 and not (tmp_path / "x.pt").exists()


def test_the_spec_refuses_what_the_text_decides():
    with pytest.raises(ValueError, match="arch_kwargs may not set vocab_size"):
        LMPretrainSpec(out="x.pt", arch_kwargs={"vocab_size": 3})
