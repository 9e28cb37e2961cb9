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
    ({"then": "lloyd"}, "unknown PTQ method 'lloyd'"),
    ({"bits": 0}, "bits must be an integer in 1..16"),
    ({"bits": 17}, "bits must be an integer in 1..16"),
    ({"strength": -1.0}, "strength must be a finite number ≥ 0"),
    ({"alpha_init": float("inf")}, "alpha_init .*must be a finite number"),
    ({"alpha_lr": -1.0}, "alpha_lr must be a finite number ≥ 0"),
])
def test_config_validation(settings, needle):
    with pytest.raises(ValueError, match=needle):
        make_compressor("dsmm", settings)
