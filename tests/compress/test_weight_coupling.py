"""The weight-coupling compressor: layer scaling, penalty = Σ_l h_l E_l, clamping, bad input."""

import copy
import math

import pytest
import torch

from landscape import coupling
from landscape.compress import WeightCoupling, WeightCouplingConfig, make_compressor
from landscape.models import build_model
from landscape.params import select_params


def test_layer_scaling_follows_sigma_and_size():
    model = build_model("tiny")
    wc = WeightCoupling(WeightCouplingConfig(h=0.05, w=0.3, alpha=0.66))
    wc.prepare(model)
    for name, p in select_params(model).items():
        s = wc.scales[name]
        assert s.n == p.numel()
        assert s.w == pytest.approx(0.3 * p.detach().double().std().item())
        assert s.h == pytest.approx(0.05 * p.numel() ** -0.66)


def test_penalty_is_sum_of_scaled_exact_energies():
    torch.manual_seed(1)
    model = build_model("tiny").double()
    wc = WeightCoupling(WeightCouplingConfig(estimator="exact"))
    wc.prepare(model)
    expected = sum(wc.scales[n].h * coupling.energy_exact(p.detach().flatten(), wc.scales[n].w)
                   for n, p in select_params(model).items())
    assert wc.penalty(model).item() == pytest.approx(expected.item(), rel=1e-12)


@pytest.mark.parametrize("estimator", ["histogram", "sorted", "subsampled", "subset"])
def test_estimators_agree_with_exact_on_the_model(estimator):
    torch.manual_seed(2)
    model = build_model("tiny").double()
    exact = WeightCoupling(WeightCouplingConfig(estimator="exact"))
    exact.prepare(model)
    other = WeightCoupling(WeightCouplingConfig(estimator=estimator))
    other.prepare(model)
    ref = exact.penalty(model).item()
    if estimator in ("subsampled", "subset"):  # unbiased: the mean of 200 draws, within 4 standard errors
        draws = torch.tensor([other.penalty(model).item() for _ in range(200)])
        assert abs(draws.mean().item() - ref) < 4 * draws.std().item() / math.sqrt(200)
    else:
        assert other.penalty(model).item() == pytest.approx(ref, rel=1e-3)


@pytest.mark.parametrize("estimator", ["histogram", "sorted"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_batched_penalty_equals_per_layer_sum(estimator, dtype):
    """penalty() evaluates all layers in one batched call; it must equal sum_l h_l layer_energy(l), value and
    gradient (sorted: exact; histogram: to rounding, the batch shares one FFT length)."""
    torch.manual_seed(4)
    model = build_model("tiny").to(dtype)
    wc = WeightCoupling(WeightCouplingConfig(estimator=estimator))
    wc.prepare(model)
    params = select_params(model)
    batched = wc.penalty(model)
    batched.backward()
    grads = {n: p.grad.clone() for n, p in params.items()}
    model.zero_grad(set_to_none=True)
    looped = sum(sc.h * wc.layer_energy(n, params[n].flatten()) for n, sc in wc.scales.items())
    looped.backward()
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    assert batched.dtype == dtype and batched.item() == pytest.approx(looped.item(), rel=tol)
    for n, p in params.items():
        scale = p.grad.abs().max().item()
        assert torch.allclose(grads[n], p.grad, rtol=0, atol=tol * scale), n
        if estimator == "sorted" and dtype == torch.float64:
            assert torch.equal(grads[n], p.grad), n


def test_constant_layer_is_left_out_and_nan_weights_are_refused():
    model = build_model("tiny")
    with torch.no_grad():
        model.conv1.weight.fill_(0.1)
    wc = WeightCoupling()
    wc.prepare(model)
    assert "conv1.weight" not in wc.scales and len(wc.scales) == len(select_params(model)) - 1
    assert torch.isfinite(wc.penalty(model))
    assert wc.codebooks(model)["conv1.weight"].k == 1
    with torch.no_grad():
        model.linear.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        WeightCoupling().prepare(model)


@pytest.mark.parametrize("settings,needle", [
    ({"h": -0.1}, "h must be"), ({"w": 0.0}, "w must be"), ({"w": float("nan")}, "w must be"),
    ({"n_bins": 1000}, "power of two"), ({"n_bins": 32}, r"2\^6"),
    ({"estimator": "magic"}, "unknown estimator"), ({"n_min": 0}, "n_min"),
    ({"cluster_bits": 0}, "cluster_bits"),
])
def test_config_validation(settings, needle):
    with pytest.raises(ValueError, match=needle):
        make_compressor("weight-coupling", settings)


def test_unknown_setting_names_the_method():
    with pytest.raises(ValueError, match="has no setting"):
        make_compressor("weight-coupling", {"bits": 3})


def test_clamp_exact_cluster_counts_and_input_unchanged():
    torch.manual_seed(3)
    model = build_model("tiny")
    before = copy.deepcopy(model.state_dict())
    wc = WeightCoupling(WeightCouplingConfig(n_min=10))
    clamped = wc.clamp(model)
    for name, p in select_params(clamped.model).items():
        book = clamped.codebooks[name]
        assert torch.unique(p).numel() == book.k
        assert book.counts.min().item() >= min(10, p.numel())
        assert clamped.bits[name] == (pytest.approx(math.log2(book.k)) if book.k > 1 else 0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    weights = {n: len(b.index) for n, b in clamped.codebooks.items()}
    manual = sum(clamped.bits[n] * weights[n] for n in weights) / sum(weights.values())
    assert clamped.mean_bits() == pytest.approx(manual)
    assert clamped.mean_bits(storage=True) >= clamped.mean_bits()
