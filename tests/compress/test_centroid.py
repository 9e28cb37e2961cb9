"""Centroid–weight coupling (workshop paper §3.2, eq. 3–4) on the tiny model: the penalty is eq. 3, its
gradients are the ones eq. 4 steps with (η1 = lr·λ, η2 = centroid_lr·λ), training shrinks the
weight–centroid distance, and the clamp has at most K = 2^bits values, each weight on its nearest
centroid."""

import copy
import math

import pytest
import torch

from landscape.compress import make_compressor
from landscape.compress.centroid import Centroid, CentroidConfig
from landscape.models import build_model
from landscape.params import select_params


def prepared(**settings):
    model = build_model("tiny")
    comp = Centroid(CentroidConfig(**settings))
    return comp.prepare(model), comp


def brute_force_penalty(comp, model):
    """λ Σ_l Σ_i min_α |C_α − θ_i|^ρ with the full weight × centroid matrix."""
    total = 0.0
    for name, p in select_params(model).items():
        d = (p.detach().double().flatten()[:, None] - comp.centroids[name].detach().double()[None, :]).abs()
        total += (d ** comp.config.rho).min(1).values.sum().item()
    return comp.config.strength * total


@pytest.mark.parametrize("rho", [0.5, 1.0, 2.0, 3.0])
def test_penalty_is_eq3_finite_and_differentiable(rho):
    model, comp = prepared(bits=2, rho=rho, strength=0.3)
    loss = comp.penalty(model)
    assert torch.isfinite(loss) and loss.item() == pytest.approx(brute_force_penalty(comp, model), rel=1e-5)
    loss.backward()
    for name, p in select_params(model).items():
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
        assert torch.isfinite(comp.centroids[name].grad).all()


def test_centroids_start_at_kmeans_and_bits_are_log2_k():
    from landscape.quantize import kmeans

    model, comp = prepared(bits=3)
    for name, p in select_params(model).items():
        assert torch.equal(comp.centroids[name].detach(), kmeans(p.detach().flatten(), 3).values)
        assert len(comp.centroids[name]) == 8  # every tiny-model layer has > 8 distinct weights
    clamped = comp.clamp(model)
    assert clamped.bits == {name: 3.0 for name in comp.centroids}


def test_gradients_are_those_of_eq4():
    """ρ = 1: ∂L_C/∂C_α = λ Σ_{i ∈ α} sign(C_α − θ_i) and ∂L_C/∂θ_i = λ sign(θ_i − C_a(i)); one plain SGD step
    (no momentum) moves the centroids by centroid_lr·λ·Σ sign and the weights by lr·λ·sign."""
    lam, lr, clr = 0.2, 0.01, 1e-3
    model, comp = prepared(bits=2, rho=1.0, strength=lam, centroid_lr=clr)
    name, p = "layer1.0.conv1.weight", select_params(model)["layer1.0.conv1.weight"]
    theta0, c0 = p.detach().flatten().clone(), comp.centroids[name].detach().clone()
    nearest = (theta0[:, None] - c0[None, :]).abs().argmin(1)
    sign = torch.sign(theta0 - c0[nearest])
    groups = [{"params": list(model.parameters())}, *comp.param_groups()]
    opt = torch.optim.SGD(groups, lr=lr)
    opt.zero_grad()
    comp.penalty(model).backward()
    opt.step()
    expected_c = c0 - clr * lam * torch.zeros_like(c0).index_add_(0, nearest, -sign)
    torch.testing.assert_close(comp.centroids[name].detach(), expected_c)
    torch.testing.assert_close(p.detach().flatten(), theta0 - lr * lam * sign)
    assert comp.param_groups()[0]["weight_decay"] == 0.0


def test_training_pulls_weights_onto_centroids():
    """A few SGD steps on the penalty alone shrink the mean weight–centroid distance and the number of
    distinct weight values (counted on a 1e-3 grid)."""
    model, comp = prepared(bits=2, rho=1.0, strength=1.0, centroid_lr=1e-4)
    params = select_params(model)

    def distance():
        return comp.stats(model)["mean_centroid_distance"]

    def distinct():
        return sum(torch.unique(torch.round(p.detach() / 1e-3)).numel() for p in params.values())

    d0, n0 = distance(), distinct()
    opt = torch.optim.SGD([{"params": list(params.values())}, *comp.param_groups()], lr=0.005, momentum=0.9)
    for _ in range(30):
        opt.zero_grad()
        comp.penalty(model).backward()
        opt.step()
    assert distance() < 0.5 * d0
    assert distinct() < 0.7 * n0


def test_clamp_is_nearest_centroid_and_inputs_unchanged():
    model, comp = prepared(bits=2)
    with torch.no_grad():  # move the centroids off the k-means solution so that "nearest" is really tested
        for c in comp.centroids.values():
            c.add_(0.01 * torch.randn_like(c))
    before = copy.deepcopy(model.state_dict())
    cents = {k: v.detach().clone() for k, v in comp.centroids.items()}
    clamped = comp.clamp(model)
    comp.codebooks(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(cents[k], v.detach()) for k, v in comp.centroids.items())
    for name, p in select_params(clamped.model).items():
        theta, c = before[name].flatten(), cents[name]
        expected = c[(theta[:, None] - c[None, :]).abs().argmin(1)]
        assert torch.equal(p.flatten(), expected)
        assert torch.unique(p).numel() <= 4 and clamped.codebooks[name].k == torch.unique(p).numel()
        assert clamped.bits[name] == pytest.approx(math.log2(clamped.codebooks[name].k))
    for name, value in clamped.model.state_dict().items():  # BN and biases untouched
        if name not in cents:
            assert torch.equal(value, before[name])


def test_rho_below_one_is_finite_on_a_centroid():
    model, comp = prepared(bits=2, rho=0.5)
    p = select_params(model)["conv1.weight"]
    with torch.no_grad():
        p.view(-1)[:5] = comp.centroids["conv1.weight"][0]  # weights exactly on a centroid
    comp.penalty(model).backward()
    assert torch.isfinite(p.grad).all() and (p.grad.view(-1)[:5] == 0).all()


def test_state_dict_restores_in_place():
    model, comp = prepared(bits=2)
    state = comp.state_dict()
    held = comp.param_groups()[0]["params"]
    with torch.no_grad():
        for c in comp.centroids.values():
            c.zero_()
    comp.load_state_dict(state)
    assert all(a is b for a, b in zip(held, comp.centroids.values(), strict=True))
    assert all(torch.equal(state["centroids"][k], v.detach()) for k, v in comp.centroids.items())


def test_penalty_before_prepare_is_an_error():
    with pytest.raises(RuntimeError, match="prepare"):
        Centroid().penalty(build_model("tiny"))


@pytest.mark.parametrize("settings,needle", [
    ({"bits": 0}, "K = 2^bits centroids, K ≥ 2"),
    ({"bits": 17}, "bits must be an integer in 1..16"),
    ({"bits": 2.5}, "bits must be an integer"),
    ({"rho": 0.0}, "rho must be a finite number > 0"),
    ({"rho": -1.0}, "rho must be a finite number > 0"),
    ({"rho": float("nan")}, "rho must be a finite number > 0"),
    ({"strength": -0.1}, "strength must be a finite number ≥ 0"),
    ({"centroid_lr": float("inf")}, "centroid_lr must be a finite number ≥ 0"),
])
def test_config_validation(settings, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace(")", r"\)").replace("^", r"\^")):
        make_compressor("centroid", settings)
