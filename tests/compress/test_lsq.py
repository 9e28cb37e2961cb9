"""LSQ on the tiny model: the forward round(clip(w/s, −Q_n, Q_p))·s, the gradients of paper eq. 3 (STE to w, the
step's gradient scaled by g = 1/√(N·Q_p)), the clamp at ≤ 2^b levels equal to the training forward, a short
training that moves the step sizes, resume, config checks; and PACT's clipping gradient (∂y/∂α = 1 above α)."""

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import SHARED, assert_one_line_error

from landscape.compress import METHODS, make_compressor
from landscape.compress.lsq import LSQ, LSQConfig, init_step, levels, lsq_quantize, pact
from landscape.data import Batches, Split
from landscape.metrics import evaluate
from landscape.models import build_model
from landscape.params import select_params
from landscape.store import Run
from landscape.trainer import TrainConfig, Trainer


def prepared(**settings):
    torch.manual_seed(0)
    model = build_model("tiny")
    comp = LSQ(LSQConfig(**settings))
    return comp.prepare(model), comp


def batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_registered():
    assert METHODS["lsq"] == (LSQ, LSQConfig) and LSQ.display_name() == "LSQ"
    assert LSQ.settings_for_bits(3) == {"bits": 3}


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_forward_and_gradients_are_the_papers_formulas(bits):
    qn, qp = levels(bits)
    assert (qn, qp) == (2 ** (bits - 1), 2 ** (bits - 1) - 1)
    g = torch.Generator().manual_seed(bits)
    w = torch.randn(40, generator=g, dtype=torch.float64).requires_grad_()
    s = torch.tensor(1.2 / qn, dtype=torch.float64, requires_grad=True)  # range from −1.2σ: both sides hit
    scale = 1 / math.sqrt(w.numel() * qp)
    q = lsq_quantize(w, s, bits, scale)
    v = w.detach() / s.detach()
    assert torch.equal(q.detach(), torch.round(torch.clamp(v, -qn, qp)) * s.detach())
    upstream = torch.randn(40, generator=g, dtype=torch.float64)
    q.backward(upstream)
    below, above = v < -qn, v > qp
    inside = ~(below | above)
    assert below.any() and above.any() and inside.any()  # the test covers all three cases of eq. 3
    torch.testing.assert_close(w.grad, upstream * inside)  # STE: 1 inside the range, 0 outside
    dq_ds = torch.where(inside, -v + torch.round(v), torch.where(below, -float(qn), float(qp)))  # eq. 3
    torch.testing.assert_close(s.grad, (upstream * dq_ds).sum() * scale)


def test_initial_step_is_the_papers():
    model, comp = prepared(bits=3)
    for name, p in select_params(model).items():
        layer = comp.layers[name]
        torch.testing.assert_close(layer.step.detach(), 2 * p.detach().abs().mean() / math.sqrt(3))
        assert layer.g == pytest.approx(1 / math.sqrt(p.numel() * 3))
        torch.testing.assert_close(init_step(p, 3), layer.step.detach())


def test_training_forward_is_the_clamped_network_and_eval_is_plain():
    model, comp = prepared(bits=3)
    x, y = batch()
    clamped = comp.clamp(model)
    quantized = {n: comp.layers[n].quantize(p).detach() for n, p in select_params(model).items()}
    for name, p in select_params(clamped.model).items():
        assert torch.equal(p, quantized[name])  # the clamp is the training forward's ŵ, bit for bit
    ref = clamped.model.train()(x)
    torch.testing.assert_close(model.train()(x), ref, rtol=0, atol=0)
    plain = build_model("tiny")
    plain.load_state_dict(model.state_dict())
    assert list(model.state_dict()) == list(plain.state_dict())
    torch.testing.assert_close(model.eval()(x), plain.eval()(x))


@pytest.mark.parametrize("bits", [2, 3, 5])
def test_clamp_has_at_most_2_to_the_b_levels_and_leaves_the_model_alone(bits):
    model, comp = prepared(bits=bits)
    before = copy.deepcopy(model.state_dict())
    steps = {n: layer.step.detach().clone() for n, layer in comp.layers.items()}
    books = comp.codebooks(model)
    clamped = comp.clamp(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # codebooks/clamp: no mutation
    assert all(torch.equal(steps[n], layer.step.detach()) for n, layer in comp.layers.items())
    assert any("_lsq" in m.__dict__ for m in model.modules())  # the trained module keeps its forward
    assert not any("_lsq" in m.__dict__ for m in clamped.model.modules())  # the copy has the plain forward
    qn, qp = levels(bits)
    for name, p in select_params(clamped.model).items():
        values = torch.unique(p)
        assert len(values) <= 2**bits
        grid = torch.arange(-qn, qp + 1).float() * steps[name]
        assert all((grid == v).any() for v in values)  # on the grid s·{−Q_n..Q_p}
        book = books[name]
        assert torch.equal(book.values, values) and book.counts.sum() == p.numel() and (book.counts > 0).all()
        assert torch.equal(book.apply(), p.flatten())
    assert 1 < clamped.mean_bits() <= bits


def test_edge_bits_set_the_first_and_last_layer_apart():
    model, comp = prepared(bits=2, edge_bits=8)
    names = list(select_params(model))
    assert [comp.layers[n].bits for n in names] == [8] + [2] * (len(names) - 2) + [8]


def test_penalty_is_a_zero_scalar():
    model, comp = prepared()
    loss = comp.penalty(model)
    assert loss.shape == () and loss.item() == 0.0


def test_short_training_moves_the_step_sizes_and_resumes():
    torch.manual_seed(0)
    model = build_model("tiny")
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8, generator=g)
    data = Split(images, torch.arange(32) % 10)
    comp = make_compressor("lsq", {"bits": 3, "step_lr": 1.0, "act_bits": 4, "pact_lr": 1.0})
    trainer = Trainer(model, data, TrainConfig(epochs=2, batch_size=16, stats_every=1), comp)
    init = {n: layer.step.detach().clone() for n, layer in comp.layers.items()}
    trainer.fit()
    assert "forward" not in model.__dict__ and not any("_lsq" in m.__dict__ for m in model.modules())
    moved = [n for n, layer in comp.layers.items() if not torch.equal(layer.step.detach(), init[n])]
    assert moved == list(comp.layers)  # every step size was trained
    assert set(comp.learnable()) == {f"{n}.step" for n in comp.layers} | {
        f"{n}.alpha" for n, layer in comp.layers.items() if layer.alpha is not None}
    assert any(layer.alpha.item() != 6.0 for layer in comp.layers.values() if layer.alpha is not None)
    stats = trainer.last_stats
    assert stats["step_ratio"] != 1.0 and math.isfinite(stats["mean_alpha"])
    assert 1 < comp.clamp(trainer.model).mean_bits() <= 3

    state = trainer.state_dict()
    fresh_comp = make_compressor("lsq", {"bits": 3, "step_lr": 1.0, "act_bits": 4, "pact_lr": 1.0})
    fresh = Trainer(model, data, TrainConfig(epochs=2, batch_size=16), fresh_comp)
    fresh.load_state_dict(state)
    for name, layer in comp.layers.items():
        assert torch.equal(fresh_comp.layers[name].step, layer.step)
        if layer.alpha is not None:
            assert torch.equal(fresh_comp.layers[name].alpha, layer.alpha)
    x, _ = batch()
    torch.testing.assert_close(fresh_comp.clamp(fresh.model).model.eval()(x), comp.clamp(trainer.model).model.eval()(x))


def test_state_dict_round_trip_and_a_state_that_does_not_fit():
    model, comp = prepared(act_bits=2)
    with torch.no_grad():
        for layer in comp.layers.values():
            layer.step.mul_(1.5)
            if layer.alpha is not None:
                layer.alpha.add_(1.0)
    state = comp.state_dict()
    other_model, other = prepared(act_bits=2)
    other.load_state_dict(state)
    for name, layer in comp.layers.items():
        assert torch.equal(other.layers[name].step, layer.step)
        assert (layer.alpha is None) == (other.layers[name].alpha is None)
        if layer.alpha is not None:
            assert torch.equal(other.layers[name].alpha, layer.alpha)
    bad = {"steps": {"nope.weight": torch.tensor(1.0)}, "alphas": {}}
    with pytest.raises(ValueError, match="does not fit"):
        other.load_state_dict(bad)


def test_pact_skips_the_first_layer_and_clips_the_others():
    model, comp = prepared(act_bits=4)
    assert comp.layers["conv1.weight"].alpha is None  # its input is the image
    assert all(layer.alpha is not None for name, layer in comp.layers.items() if name != "conv1.weight")
    _, off = prepared()
    assert all(layer.alpha is None for layer in off.layers.values())


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_pact_gradients_and_range(bits):
    x = torch.tensor([-2.0, -0.1, 0.3, 0.9, 1.2, 1.5, 3.0, 7.0], requires_grad=True)
    alpha = torch.tensor(1.5, requires_grad=True)
    y = pact(x, alpha, bits)
    assert (y >= 0).all() and (y <= alpha).all()
    n = 2**bits - 1
    expected = torch.round(torch.clamp(x.detach(), 0, 1.5) * n / 1.5) * 1.5 / n
    torch.testing.assert_close(y.detach(), expected)
    assert len(torch.unique(y.detach())) <= 2**bits
    upstream = torch.arange(1.0, 9.0)
    y.backward(upstream)
    above = x.detach() >= 1.5
    assert alpha.grad.item() == pytest.approx(upstream[above].sum().item())  # ∂y/∂α = 1 where x ≥ α, else 0
    torch.testing.assert_close(x.grad, upstream * ((x.detach() > 0) & ~above))  # STE on (0, α)


def test_pact_in_the_training_forward():
    model, comp = prepared(act_bits=2, pact_alpha_init=0.5)  # about the activations' scale: some above α
    x, y = batch()
    F.cross_entropy(model.train()(x), y).backward()
    for name, layer in comp.layers.items():
        if layer.alpha is not None:
            assert layer.alpha.grad is not None and layer.alpha.grad.abs() > 0, name
        assert layer.step.grad is not None and torch.isfinite(layer.step.grad), name


@pytest.mark.parametrize("settings,needle", [
    ({"bits": 1}, "bits must be an integer in 2..8"),
    ({"bits": 9}, "bits must be an integer in 2..8"),
    ({"edge_bits": 1}, "edge_bits must be an integer in 2..8 or None"),
    ({"step_lr": -1.0}, "step_lr must be a finite number ≥ 0 or None"),
    ({"step_lr": float("nan")}, "step_lr must be a finite number ≥ 0 or None"),
    ({"act_bits": 0}, "act_bits must be an integer in 1..8 or None"),
    ({"act_bits": 9}, "act_bits must be an integer in 1..8 or None"),
    ({"pact_alpha_init": 0.0}, "pact_alpha_init must be a finite number > 0"),
    ({"pact_lr": float("inf")}, "pact_lr must be a finite number ≥ 0 or None"),
    ({"pact_decay": -0.1}, "pact_decay must be a finite number ≥ 0"),
])
def test_config_validation(settings, needle):
    with pytest.raises(ValueError, match=needle) as info:
        make_compressor("lsq", settings)
    assert "\n" not in str(info.value)


def train_args(checkpoint, out, *extra):
    return ["--arch", "tiny", "--checkpoint", checkpoint, "--data", SHARED / "data", "--method", "lsq",
            "--epochs", "1", "--train-batch-size", "64", "--limit-train", "128", "--limit-test", "100",
            "--checkpoint-every", "1", "--out", out, "--json", *extra]


@pytest.mark.parametrize("extra", [[], ["--bits", "3", "--act-bits", "4", "--step-lr", "0.01"]])
def test_cli_run_file_is_analysable(extra, run_cli, tiny_checkpoint, tmp_path, cifar):
    """As tests/cli/test_methods_cli.py does for the other methods: `train --method lsq` writes a run file whose
    rebuilt models have the accuracies /eval records, and the step sizes are stored at every checkpoint."""
    out = tmp_path / "lsq.h5"
    r = run_cli("train", *train_args(tiny_checkpoint, out, *extra))
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["method"] == "lsq" and summary["steps"] == 2
    run = Run(out)
    assert not bool(run.attrs["prepared"])
    test = Batches(cifar[1].subset(100), 500, train=False)
    evals = run.evals()
    for which in ("pretrained", "compressed", "clamped"):
        assert evaluate(run.model(which), test)["accuracy"] == pytest.approx(evals[which]["accuracy"], abs=1e-9)
    bits = 3 if extra else 4
    clamped = run.state("clamped")
    assert all(torch.unique(clamped[n]).numel() <= 2**bits for n in run.bits()["effective"])
    assert 1 < summary["mean_bits"] <= bits
    steps = run.compressor_state(2)
    assert "conv1.weight.step" in steps and ("layer1.0.conv1.weight.alpha" in steps) == bool(extra)


def test_cli_bad_setting_is_a_one_line_error(run_cli, tiny_checkpoint, tmp_path):
    r = run_cli("train", *train_args(tiny_checkpoint, tmp_path / "bad.h5", "--bits", "1"))
    assert_one_line_error(r, "bits must be an integer in 2..8")


def test_a_layer_of_equal_weights_is_a_one_line_error():
    """All zeros give no step size 2⟨|w|⟩/√Q_p > 0, all equal c ≠ 0 a step whose grid misses c (w/s = √Q_p/2
    rounds to 0 at 2 bits): both are refused, naming the layer and how to leave it out."""
    for value in (0.0, 0.25):
        model = build_model("tiny")
        with torch.no_grad():
            model.conv1.weight.fill_(value)
        with pytest.raises(ValueError, match=rf"lsq: every weight of conv1.weight is {value:g}.*"
                                             r"--params weights,-conv1.weight"):
            make_compressor("lsq", {"bits": 2}).prepare(model)
