"""PARQ / hard QAT / BinaryRelax (torchao.prototype.parq's QuantOptimizer around the trainer's SGD) on the tiny
model: after the hard projection every selected weight lies on at most 2^b values per layer and the clamp equals
the trained model; the caller's model is untouched and BN parameters and biases are not quantized; the optimizer
is what the scheduler and checkpoints act on (resume is bit-identical); the CLI trains and stores it; bad settings
are one-line errors."""

import copy
import io
import json
import sys

import pytest
import torch
from conftest import SHARED, assert_one_line_error

from landscape.compress import METHODS, make_compressor
from landscape.compress.parq import PARQ, BinaryRelax, BinaryRelaxConfig, PARQConfig
from landscape.errors import LandscapeError
from landscape.models import build_model
from landscape.params import select_params
from landscape.store import Run
from landscape.trainer import TrainConfig, Trainer

pytest.importorskip("torchao.prototype.parq")


def batches(n=4, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 3, 32, 32, generator=g), torch.randint(0, 10, (size,), generator=g)) for _ in range(n)]


def trainer(method="parq", epochs=2, schedule="constant", **settings):
    torch.manual_seed(0)
    model = build_model("tiny")
    config = TrainConfig(epochs=epochs, lr=0.05, schedule=schedule, stats_every=2, compile="off")
    return model, Trainer(model, batches(), config, make_compressor(method, settings))


def equal_states(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


@pytest.mark.parametrize("method,settings", [
    ("parq", {"prox": "hard", "bits": 2}),
    ("parq", {"prox": "hard", "bits": 3, "quantizer": "lsb"}),
    ("parq", {"bits": 2, "anneal_start": 1, "anneal_end": 5}),  # PARQ's annealing ends within the 8 steps
    ("binaryrelax", {"bits": 1, "anneal_start": 2, "anneal_end": 6, "quantizer": "lsb"}),
])
def test_after_the_hard_projection_weights_lie_on_2_to_the_b_values_and_the_clamp_equals_them(method, settings):
    _, t = trainer(method, **settings)
    assert type(t.optimizer).__name__ == "QuantOptimizer"
    trained = t.fit()
    bits = settings["bits"]
    for name, p in select_params(trained).items():
        assert torch.unique(p).numel() <= 2**bits, name
    clamped = t.compressor.clamp(trained)
    assert equal_states(clamped.model, trained)  # the clamp of a copy is the network the optimizer left
    assert set(clamped.codebooks) == set(select_params(trained))
    assert 0 < clamped.mean_bits() <= bits
    for name, book in clamped.codebooks.items():
        assert torch.equal(book.apply().view_as(select_params(trained)[name]), select_params(trained)[name])


def test_before_annealing_ends_the_clamp_projects_onto_the_grid():
    _, t = trainer("parq", bits=2, anneal_start=0, anneal_end=1000)  # 8 steps: still soft
    trained = t.fit()
    assert any(torch.unique(p).numel() > 4 for p in select_params(trained).values())
    clamped = t.compressor.clamp(trained)
    assert all(torch.unique(p).numel() <= 4 for p in select_params(clamped.model).values())
    assert not equal_states(clamped.model, trained) and clamped.mean_bits() <= 2


def test_input_model_untouched_and_only_selected_weights_quantized():
    model, t = trainer("parq", prox="hard", bits=1)
    before = copy.deepcopy(model.state_dict())
    trained = t.fit()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the trainer deep-copies
    chosen = {id(p) for p in select_params(trained).values()}
    quantized = [g for g in t.optimizer.param_groups if "quant_bits" in g]
    assert len(quantized) == 1 and quantized[0]["quant_bits"] == 1
    assert {id(p) for p in quantized[0]["params"]} == chosen
    everything = {id(p) for g in t.optimizer.param_groups for p in g["params"]}
    assert everything == {id(p) for p in trained.parameters()}  # every parameter still trained, once
    others = {n: p for n, p in trained.named_parameters() if id(p) not in chosen}
    assert others and any(n.endswith(".bias") for n in others) and any("bn" in n for n in others)
    for name, p in others.items():  # BN scales/shifts and biases: trained, not on a 2-value grid
        assert not torch.equal(p, before[name]), name
        assert torch.unique(p).numel() > 2, name
    assert t.compressor.penalty(trained).item() == 0.0


def test_the_scheduler_drives_the_learning_rate_the_optimizer_steps():
    _, t = trainer("parq", schedule="onecycle", prox="hard")
    lrs = []
    for x, y in t.batches.iterate():
        t.train_step(x, y)
        lrs.append([g["lr"] for g in t.optimizer.base_optimizer.param_groups])
    assert all(len(set(step)) == 1 for step in lrs)  # the quantized and the unquantized group move together
    assert lrs[0][0] != lrs[-1][0]


def test_resume_mid_run_is_bit_identical():
    settings = {"bits": 2, "anneal_start": 1, "anneal_end": 7, "quant_period": 3}
    _, full = trainer("parq", schedule="onecycle", **settings)
    full_model = full.fit()  # 8 steps straight
    _, first = trainer("parq", schedule="onecycle", **settings)
    for x, y in first.batches.iterate():  # epoch 0 only (4 steps, mid-annealing), as a run killed there
        first.train_step(x, y)
    blob = io.BytesIO()
    torch.save(first.state_dict(), blob)  # what the run file stores for --resume
    _, resumed = trainer("parq", schedule="onecycle", **settings)
    resumed.load_state_dict(torch.load(io.BytesIO(blob.getvalue()), weights_only=False))
    resumed_model = resumed.fit()
    assert resumed.step == 8 and resumed.optimizer.num_steps == 8
    assert equal_states(full_model, resumed_model)
    latent = [full.optimizer.state[p]["latent"] for p in select_params(full_model).values()]
    assert all(torch.equal(a, resumed.optimizer.state[p]["latent"])
               for a, p in zip(latent, select_params(resumed_model).values(), strict=True))


def test_registry_labels_and_bits_setting():
    assert METHODS["parq"] == (PARQ, PARQConfig) and METHODS["binaryrelax"] == (BinaryRelax, BinaryRelaxConfig)
    assert PARQ.display_name() == "PARQ" and BinaryRelax.display_name() == "BinaryRelax"
    assert PARQ.settings_for_bits(3) == {"bits": 3}
    assert make_compressor("binaryrelax").config.prox == "binaryrelax"


@pytest.mark.parametrize("settings,needle", [
    ({"bits": 0}, "bits"), ({"bits": 16}, "bits"), ({"bits": 2.5}, "bits"), ({"prox": "ste"}, "prox"),
    ({"quantizer": "uniform"}, "quantizer"), ({"warmup_steps": -1}, "warmup_steps"),
    ({"anneal_start": 5, "anneal_end": 5}, "anneal_end"), ({"steepness": 0.0}, "steepness"),
    ({"steepness": float("nan")}, "steepness"), ({"quant_period": 0}, "quant_period"),
    ({"params": "bogus"}, "selection"),
])
def test_bad_settings_are_one_line_value_errors(settings, needle):
    with pytest.raises(ValueError, match=needle) as e:
        make_compressor("parq", settings)
    assert "\n" not in str(e.value)


def test_binaryrelax_takes_its_prox_only():
    with pytest.raises(ValueError, match="binaryrelax") as e:
        BinaryRelaxConfig(prox="parq")
    assert "\n" not in str(e.value)


def test_missing_torchao_is_a_one_line_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchao.prototype.parq", None)  # import fails
    comp = make_compressor("parq")  # constructing needs no torchao
    with pytest.raises(LandscapeError, match=r"pip install -e '\.\[qat\]'") as e:
        comp.codebooks(build_model("tiny"))
    assert "\n" not in str(e.value)


def cli_args(checkpoint, out, method, *extra):
    return ["--arch", "tiny", "--checkpoint", checkpoint, "--data", SHARED / "data", "--method", method,
            "--epochs", "1", "--train-batch-size", "64", "--limit-train", "128", "--limit-test", "100",
            "--checkpoint-every", "1", "--out", out, "--json", *extra]


@pytest.mark.parametrize("method,extra", [("parq", ["--prox", "hard", "--bits", "2"]),
                                          ("binaryrelax", ["--bits", "2", "--anneal-end", "1"])])
def test_cli_trains_and_the_clamped_state_is_the_trained_one(method, extra, run_cli, tiny_checkpoint, tmp_path,
                                                             cifar):
    out = tmp_path / f"{method}.h5"
    r = run_cli("train", *cli_args(tiny_checkpoint, out, method, *extra))
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["method"] == method and summary["steps"] == 2
    run = Run(out)
    compressed, clamped = run.state("compressed"), run.state("clamped")
    names = list(run.bits()["effective"])
    assert names and all(torch.unique(clamped[n]).numel() <= 4 for n in names)
    assert all(torch.equal(compressed[n], clamped[n]) for n in names)  # hard from step 1 / annealing ended
    assert run.bits()["mean_effective"] <= 2


def test_cli_bad_setting_is_one_line(run_cli, tiny_checkpoint, tmp_path):
    r = run_cli("train", *cli_args(tiny_checkpoint, tmp_path / "bad.h5", "parq", "--prox", "ste"))
    assert_one_line_error(r, "prox")
