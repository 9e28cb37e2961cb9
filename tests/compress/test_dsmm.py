"""Differentiable soft min-max loss (DSMM, eq. 1) on the tiny model: the penalty is eq. 1 summed over layers,
its temperature gradient is the one the e^(−α) term balances, training with it shrinks each layer's range,
and the clamp is the chosen PTQ method at the chosen bits."""

import copy
import math

import pytest
import torch

from landscape.compress import make_compressor
from landscape.compress.dsmm import DSMM, DSMMConfig, soft_range
from landscape.compress.ptq import quantize_model
from landscape.models import build_model
from landscape.params import select_params


def prepared(**settings):
    model = build_model("tiny")
    comp = DSMM(DSMMConfig(**settings))
    return comp.prepare(model), comp


def eq1(w: torch.Tensor, alpha: float) -> float:
    """L_DSMM written as in the paper, in float64."""
    w = w.double()
    e_max = torch.exp(alpha * (w - w.max()))
    e_min = torch.exp(-alpha * (w - w.min()))
    return ((w * e_max).sum() / e_max.sum() - (w * e_min).sum() / e_min.sum() + math.exp(-alpha)).item()


@pytest.mark.parametrize("alpha", [0.1, 3.0, 40.0])
def test_penalty_is_eq1_finite_and_differentiable(alpha):
    model, comp = prepared(alpha_init=alpha, strength=0.01)
    loss = comp.penalty(model)
    expected = 0.01 * sum(eq1(p.detach().flatten(), alpha) for p in select_params(model).values())
    assert torch.isfinite(loss) and loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    for name, p in select_params(model).items():
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
        assert torch.isfinite(comp.alphas[name].grad)


def test_soft_range_tends_to_the_range_and_to_zero():
    w = torch.randn(1000, dtype=torch.float64)
    hard = soft_range(w, torch.tensor(1e4, dtype=torch.float64)).item()
    assert hard == pytest.approx((w.max() - w.min()).item(), rel=1e-3)
    assert abs(soft_range(w, torch.tensor(1e-6, dtype=torch.float64)).item()) < 1e-5


def test_temperature_gradient_balances_variance_and_exp_term():
    """∂L_DSMM/∂α = Var_{softmax(αW)}(W) + Var_{softmax(−αW)}(W) − e^(−α): the range term pushes α down, the
    e^(−α) term up."""
    w = torch.randn(500, dtype=torch.float64)
    alpha = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    (soft_range(w, alpha) + torch.exp(-alpha)).backward()
    p_max, p_min = torch.softmax(2.0 * w, 0), torch.softmax(-2.0 * w, 0)

    def var(p):
        return (p * w**2).sum() - (p * w).sum() ** 2

    assert alpha.grad.item() == pytest.approx((var(p_max) + var(p_min) - math.exp(-2.0)).item(), rel=1e-9)


def test_training_shrinks_each_layer_range():
    model, comp = prepared(alpha_init=20.0, strength=1.0)  # α·range ≫ 1: the loss acts on the outliers
    params = select_params(model)
    before = {n: (p.max() - p.min()).item() for n, p in params.items()}
    std_before = {n: p.std().item() for n, p in params.items()}
    opt = torch.optim.SGD([{"params": list(params.values())}, *comp.param_groups()], lr=0.01, momentum=0.9)
    for _ in range(20):
        opt.zero_grad()
        comp.penalty(model).backward()
        opt.step()
    for name, p in params.items():
        assert (p.max() - p.min()).item() < 0.9 * before[name], name
        assert p.std().item() > 0.5 * std_before[name], name  # the range shrinks, not the whole layer
    assert comp.stats(model)["mean_range"] < sum(before.values()) / len(before)


@pytest.mark.parametrize("then", ["uniform", "heq", "kmeans"])
def test_clamp_is_the_ptq_method_and_inputs_unchanged(then):
    model, comp = prepared(then=then, bits=3)
    before = copy.deepcopy(model.state_dict())
    clamped = comp.clamp(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    reference = quantize_model(model, then, 3)
    for name, p in select_params(clamped.model).items():
        assert torch.equal(p, select_params(reference.model)[name])
        assert torch.unique(p).numel() <= 8
    assert clamped.mean_bits() <= 3


def test_alpha_lr_sets_the_temperature_group():
    assert "lr" not in prepared()[1].param_groups()[0]  # None: the trainer's lr
    assert prepared(alpha_lr=0.5)[1].param_groups()[0]["lr"] == 0.5


def test_nan_temperature_is_an_error():
    with pytest.raises(ValueError, match="alpha_init .*temperature.* must be a finite number"):
        DSMMConfig(alpha_init=float("nan"))
    model, comp = prepared()
    with torch.no_grad():
        comp.alphas["conv1.weight"].fill_(float("nan"))
    with pytest.raises(ValueError, match="temperature α of conv1.weight is nan"):
        comp.penalty(model)
    with pytest.raises(ValueError, match="NaN"):
        comp.load_state_dict(comp.state_dict())


@pytest.mark.parametrize("settings,needle", [
    ({"then": "lloyd"}, "then must be a PTQ method .* or a trained one .*got 'lloyd'"),
    ({"then": "lsq", "bits": 1}, "bits must be an integer in 2..8"),
    ({"then": "dkm", "then_settings": {"tau": 0.0}}, "tau"),
    ({"then": "lsq", "then_settings": {"h": 0.1}}, "then_settings: lsq has no setting h"),
    ({"then": "lsq", "then_settings": {"bits": 3}}, "bits and params are DSMM's own"),
    ({"then": "heq", "then_settings": {"tau": 0.1}}, "then_settings apply to then=lsq or dkm only"),
    ({"bits": 0}, "bits must be an integer in 1..16"),
    ({"bits": 17}, "bits must be an integer in 1..16"),
    ({"strength": -1.0}, "strength must be a finite number ≥ 0"),
    ({"alpha_init": float("inf")}, "alpha_init .*must be a finite number"),
    ({"alpha_lr": -1.0}, "alpha_lr must be a finite number ≥ 0"),
])
def test_config_validation(settings, needle):
    with pytest.raises(ValueError, match=needle):
        make_compressor("dsmm", settings)


# -- DSMM trained together with a QAT method (then = lsq | dkm): the DSMM paper's §4 claim -----------------------
def tiny_data(n=32):
    from landscape.data import Split

    g = torch.Generator().manual_seed(0)
    return Split(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(n) % 10)


@pytest.mark.parametrize("then", ["lsq", "dkm"])
def test_with_a_trained_method_the_penalty_adds_and_the_clamp_is_the_methods(then):
    """DSMM + LSQ / DKM: the inner method's forward, learnable state and clamp; DSMM's range term on top. With
    strength 0 the run is the inner method's own, bit for bit."""
    from landscape.trainer import TrainConfig, Trainer

    runs = {}
    for name, comp in (("alone", make_compressor(then, {"bits": 2})),
                       ("dsmm0", make_compressor("dsmm", {"then": then, "bits": 2, "strength": 0.0})),
                       ("dsmm", make_compressor("dsmm", {"then": then, "bits": 2, "strength": 1.0}))):
        torch.manual_seed(0)
        model = build_model("tiny")
        trainer = Trainer(model, tiny_data(), TrainConfig(epochs=1, batch_size=16, lr=0.05), comp)
        trained = trainer.fit()
        runs[name] = (comp, trained, comp.clamp(trained))
    alone, dsmm0, dsmm = runs["alone"], runs["dsmm0"], runs["dsmm"]
    for (_, a, ca), (_, b, cb) in ((alone, dsmm0),):
        for k, v in a.state_dict().items():
            torch.testing.assert_close(b.state_dict()[k], v, rtol=0, atol=0)
        assert {k: v.k for k, v in ca.codebooks.items()} == {k: v.k for k, v in cb.codebooks.items()}
    comp, trained, clamped = dsmm
    inner_keys = set(alone[0].learnable())
    assert inner_keys <= set(comp.learnable())
    assert {k for k in comp.learnable() if k.endswith(".dsmm_alpha")} == {f"{n}.dsmm_alpha" for n in comp.alphas}
    assert all(not any(a in m.__dict__ for a in ("_lsq", "_dkm")) for m in clamped.model.modules())
    assert all(v.k <= 4 for v in clamped.codebooks.values())
    # the range term acted: every layer's range is smaller than without it
    for name in comp.alphas:
        w, w0 = select_params(trained)[name], select_params(alone[1])[name]
        assert (w.max() - w.min()) < (w0.max() - w0.min()), name
    stats = comp.stats(trained)
    assert {"mean_range", "mean_alpha", "mean_bits"} <= set(stats)


@pytest.mark.parametrize("then", ["lsq", "dkm"])
def test_with_a_trained_method_state_round_trips(then):
    model = build_model("tiny")
    comp = make_compressor("dsmm", {"then": then, "bits": 3})
    comp.prepare(model)
    state = copy.deepcopy(comp.state_dict())
    assert set(state) == {"alphas", "then"}
    fresh = make_compressor("dsmm", {"then": then, "bits": 3})
    fresh.prepare(build_model("tiny"))
    with torch.no_grad():
        for a in fresh.alphas.values():
            a.add_(1.0)
    fresh.load_state_dict(state)
    assert all(torch.equal(fresh.alphas[k], v) for k, v in state["alphas"].items())
    assert str(fresh.state_dict()["then"]) == str(state["then"])


def test_cli_then_lsq_with_settings(run_cli, tiny_checkpoint, tmp_path):
    import json

    from conftest import SHARED, assert_one_line_error

    args = ["--arch", "tiny", "--checkpoint", tiny_checkpoint, "--data", SHARED / "data", "--method", "dsmm",
            "--epochs", "1", "--train-batch-size", "64", "--limit-train", "128", "--limit-test", "100", "--json"]
    r = run_cli("train", *args, "--then", "lsq", "--bits", "3", "--then-settings", '{"step_lr": 0.001}',
                "--out", tmp_path / "d.h5")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["method"] == "dsmm" and 1 < summary["mean_bits"] <= 3
    bad = run_cli("train", *args, "--then", "lsq", "--then-settings", "{tau", "--out", tmp_path / "e.h5")
    assert_one_line_error(bad, "expected a JSON object")
    assert not (tmp_path / "e.h5").exists()
