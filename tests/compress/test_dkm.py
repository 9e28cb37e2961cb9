"""DKM on the tiny model: the attention and the iterative differentiable k-means (rows summing to 1, centroids the
attention-weighted means, τ → 0 the k-means reconstruction), gradients through the iterations (checked against
finite differences and an explicit formula: not an STE), the soft training forward, the hard clamp with at most
2^b values per layer, training through the Trainer and the CLI, the config checks, the state round trip, and
(where coremltools is installed) agreement with Apple's DKMPalettizer."""

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import SHARED, assert_one_line_error

from landscape.compress import METHODS, make_compressor
from landscape.compress.dkm import DKM, DKMConfig, LayerDKM, attention, distance, refine
from landscape.compress.vq import subvectors
from landscape.data import Batches, Split
from landscape.metrics import evaluate
from landscape.models import build_model
from landscape.params import select_params, with_params
from landscape.quantize import kmeans
from landscape.store import Run
from landscape.trainer import TrainConfig, Trainer


def prepared(**settings):
    model = build_model("tiny")
    comp = DKM(DKMConfig(**settings))
    return comp.prepare(model), comp


def batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


def fresh(layer: LayerDKM, **changes) -> LayerDKM:
    return LayerDKM(**{**vars(layer), "centroids": layer.centroids.clone(), **changes})


def test_registry_and_settings_for_bits():
    assert METHODS["dkm"] == (DKM, DKMConfig) and DKM.display_name() == "DKM"
    assert DKM.settings_for_bits(2) == {"bits": 2}
    assert make_compressor("dkm", DKM.settings_for_bits(2)).config.bits == 2


def test_attention_rows_sum_to_one_and_centroids_are_the_attention_weighted_means():
    g = torch.Generator().manual_seed(1)
    v, c = torch.randn(50, 1, generator=g), torch.randn(4, 1, generator=g)
    assert torch.allclose(attention(v, c, 0.3).sum(1), torch.ones(50))
    torch.testing.assert_close(distance(v, c), (v - c.T).abs())
    a, new, done = refine(v, c, 0.3, 3, 0.0)
    assert done == 3
    torch.testing.assert_close(a.sum(1), torch.ones(50))
    torch.testing.assert_close(new, (a.T @ v) / a.sum(0)[:, None])  # C = AᵀW / Aᵀ1 under the returned A
    torch.testing.assert_close(a, attention(v, refine(v, c, 0.3, 2, 0.0)[1], 0.3))  # A is of the previous C
    v2, c2 = torch.randn(30, 3, generator=g), torch.randn(5, 3, generator=g)
    torch.testing.assert_close(distance(v2, c2), torch.cdist(v2, c2))
    torch.testing.assert_close(distance(v2, c2, "squared"), torch.cdist(v2, c2) ** 2)
    w = torch.ones(30)
    w[-1] = 0.0  # a padded sub-vector: assigned, but left out of the update
    a2, new2, _ = refine(v2, c2, 0.5, 1, 0.0, w)
    torch.testing.assert_close(new2, ((a2 * w[:, None]).T @ v2) / (a2 * w[:, None]).sum(0)[:, None])
    assert refine(v, c, 0.3, 50, 1e9)[2] == 1  # ε: stops once no centroid moves more
    far = torch.cat([c, torch.tensor([[1e4]])])  # no attention mass: keeps its value instead of 0/0
    assert refine(v, far, 0.3, 1, 0.0)[1][-1].item() == 1e4


def test_tau_to_zero_gives_the_kmeans_reconstruction():
    model, comp = prepared(bits=3)
    name = "layer3.0.conv2.weight"
    p = select_params(model)[name].detach()
    layer = comp.layers[name]
    hard = kmeans(p.flatten(), 3).apply()
    torch.testing.assert_close(layer.hard(p), hard)  # right after prepare the clamp is k-means
    errors = [(fresh(layer, tau=tau).soft(p, update=False).flatten() - hard).abs().mean().item()
              for tau in (1.0, 0.1, 0.01, 1e-7)]
    assert errors == sorted(errors, reverse=True) and errors[0] > 10 * errors[2]
    torch.testing.assert_close(fresh(layer, tau=1e-7).soft(p, update=False).flatten(), hard, atol=1e-5, rtol=0)
    gap = comp.stats(model)["soft_hard_gap"]
    cold = DKM(DKMConfig(bits=3, tau=1e-7))
    cold_model = cold.prepare(build_model("tiny"))
    assert 0 < gap and cold.stats(cold_model)["soft_hard_gap"] < 1e-3 * gap


def explicit(w, c, tau, iters):
    """Algorithm 1 written out for scalars: A = softmax(−|w − c|/τ), C = Σ_i A_ij w_i / Σ_i A_ij, W̃ = A·C."""
    for _ in range(iters):
        a = torch.exp(-(w[:, None] - c[None, :]).abs() / tau)
        a = a / a.sum(1, keepdim=True)
        c = (a * w[:, None]).sum(0) / a.sum(0)
    return (a * c[None, :]).sum(1)


def test_gradients_flow_through_the_iterations_and_are_not_the_identity():
    w = torch.tensor([-0.9, -0.5, -0.1, 0.2, 0.35, 1.1], dtype=torch.float64, requires_grad=True)
    c = torch.tensor([[-0.6], [0.4]], dtype=torch.float64)
    layer = LayerDKM(c.clone(), dim=1, scale=1.0, tau=0.3, iters=3, eps=0.0)
    soft = layer.soft(w, update=False)
    torch.testing.assert_close(soft, explicit(w, c.flatten(), 0.3, 3))
    g = torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0, 0.25], dtype=torch.float64)
    (grad,) = torch.autograd.grad((soft * g).sum(), w)
    (ref,) = torch.autograd.grad((explicit(w, c.flatten(), 0.3, 3) * g).sum(), w)
    torch.testing.assert_close(grad, ref)
    assert torch.autograd.gradcheck(lambda t: layer.soft(t, update=False), (w,))  # finite differences
    jac = torch.autograd.functional.jacobian(lambda t: layer.soft(t, update=False), w)
    assert (jac - torch.eye(6, dtype=torch.float64)).abs().max() > 0.1  # not the STE's identity
    assert (jac - torch.diag(torch.diag(jac))).abs().max() > 1e-3  # weights interact through the centroids
    one = LayerDKM(c.clone(), dim=1, scale=1.0, tau=0.3, iters=1, eps=0.0)
    (g1,) = torch.autograd.grad((one.soft(w, update=False) * g).sum(), w)
    assert (g1 - grad).abs().max() > 1e-4  # later iterations change the gradient: it flows through them


def test_training_forward_uses_the_soft_reconstruction_and_advances_the_centroids():
    model, comp = prepared(bits=2)
    before = {n: layer.centroids.clone() for n, layer in comp.layers.items()}
    snapshot = {n: fresh(layer) for n, layer in comp.layers.items()}
    x, y = batch()
    soft = {n: snapshot[n].soft(p.detach(), update=False) for n, p in select_params(model).items()}
    reference = with_params(model, soft)
    for m in reference.modules():
        m.__dict__.pop("forward", None), m.__dict__.pop("_dkm", None)
    model.train(), reference.train()
    out = model(x)
    torch.testing.assert_close(out, reference(x))
    F.cross_entropy(out, y).backward()
    for name, p in select_params(model).items():
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert any(not torch.equal(before[n], layer.centroids) for n, layer in comp.layers.items())
    assert all(not layer.centroids.requires_grad for layer in comp.layers.values())
    penalty = comp.penalty(model)
    assert penalty.dim() == 0 and penalty.item() == 0.0 and penalty.device == out.device


def test_eval_forward_is_the_plain_network_with_latent_weights():
    model, comp = prepared()
    plain = build_model("tiny")
    plain.load_state_dict(model.state_dict())
    assert list(model.state_dict()) == list(plain.state_dict())
    x, _ = batch()
    torch.testing.assert_close(model.eval()(x), plain.eval()(x))


@pytest.mark.parametrize("bits,dim", [(1, 1), (2, 1), (4, 1), (3, 2), (4, 3)])
def test_clamp_uses_at_most_2_to_the_b_values_and_leaves_the_model_alone(bits, dim):
    model, comp = prepared(bits=bits, dim=dim)
    model.train()
    model(batch()[0])  # move the centroids off their k-means init
    state = copy.deepcopy(model.state_dict())
    cents = {n: layer.centroids.clone() for n, layer in comp.layers.items()}
    books = comp.codebooks(model)
    clamped = comp.clamp(model)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(cents[n], layer.centroids) for n, layer in comp.layers.items())
    assert all("_dkm" in m.__dict__ for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    assert not any("_dkm" in m.__dict__ or "forward" in m.__dict__ for m in clamped.model.modules())
    for name, q in select_params(clamped.model).items():
        sub = subvectors(q.detach().flatten(), dim)
        real = sub[:-1] if q.numel() % dim else sub
        rows = torch.unique(real, dim=0)
        assert len(rows) <= 2**bits
        assert all((cents[name] == r).all(1).any() for r in rows)  # every (sub-)vector is a centroid
        nearest = distance(subvectors(state[name].flatten(), dim), cents[name]).argmin(1)
        torch.testing.assert_close(q.flatten(), cents[name][nearest].flatten()[: q.numel()])  # argmin assignment
        assert torch.equal(books[name].apply(), q.flatten())
        if dim == 1:
            assert books[name].k <= 2**bits and books[name].bits <= bits
        else:
            assert books[name].entries <= 2**bits
    if dim == 1:
        assert clamped.mean_bits() <= bits


def test_trainer_trains_and_leaves_the_callers_model_alone():
    model = build_model("tiny")
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8, generator=g)
    data = Split(images, torch.arange(32) % 10)
    comp = make_compressor("dkm")
    trainer = Trainer(model, data, TrainConfig(epochs=2, batch_size=16, lr=0.05), comp)
    init = {n: layer.centroids.clone() for n, layer in comp.layers.items()}
    pretrained = copy.deepcopy(model.state_dict())
    trainer.fit()
    assert all(torch.equal(pretrained[k], v) for k, v in model.state_dict().items())
    assert "forward" not in model.__dict__ and not any("_dkm" in m.__dict__ for m in model.modules())
    assert any("_dkm" in m.__dict__ for m in trainer.model.modules())
    assert any(not torch.equal(init[n], layer.centroids) for n, layer in comp.layers.items())
    assert any(not torch.equal(pretrained[k], v) for k, v in trainer.model.state_dict().items())
    stats = comp.stats(trainer.model)
    assert all(math.isfinite(v) for v in stats.values()) and 1 <= stats["mean_iters"] <= 5
    assert comp.param_groups() == [] and comp.learnable() == {}
    assert comp.clamp(trainer.model).mean_bits() <= 4


def test_state_dict_round_trip():
    model, comp = prepared(bits=3)
    model.train()
    for seed in range(3):
        model(batch(seed=seed)[0])
    state = comp.state_dict()
    other_model, other = prepared(bits=3)
    other_model.load_state_dict(model.state_dict())
    other.load_state_dict(copy.deepcopy(state))
    for name, layer in comp.layers.items():
        assert torch.equal(other.layers[name].centroids, layer.centroids) and other.layers[name].scale == layer.scale
    assert all(torch.equal(a.apply(), b.apply()) for a, b in zip(comp.codebooks(model).values(),
                                                                  other.codebooks(other_model).values(), strict=True))
    x, _ = batch(seed=9)
    torch.testing.assert_close(other_model.train()(x), model.train()(x))  # resumed training forward is the same
    bad = copy.deepcopy(state)
    bad["centroids"]["conv1.weight"] = torch.zeros(3, 1)
    with pytest.raises(ValueError, match="DKM state has centroids for conv1.weight"):
        other.load_state_dict(bad)
    with pytest.raises(RuntimeError, match="prepare"):
        DKM().codebooks(build_model("tiny"))


@pytest.mark.parametrize("settings,needle", [
    ({"bits": 0}, "bits must be an integer in 1..8"),
    ({"bits": 9}, "bits must be an integer in 1..8"),
    ({"dim": 0}, "dim must be an integer in 1..64"),
    ({"tau": 0.0}, "tau (the DKM temperature τ) must be a finite number > 0"),
    ({"tau": float("inf")}, "tau (the DKM temperature τ) must be a finite number > 0"),
    ({"iters": 0}, "iters must be an integer in 1..100"),
    ({"eps": -1.0}, "eps (the DKM stopping tolerance, in units of σ_l) must be a finite number ≥ 0"),
    ({"eps": float("nan")}, "eps (the DKM stopping tolerance, in units of σ_l) must be a finite number ≥ 0"),
    ({"distance": "cosine"}, "distance must be one of euclidean, squared"),
    ({"bogus": 1}, "method dkm has no setting bogus"),
])
def test_config_validation(settings, needle):
    with pytest.raises(ValueError) as info:
        make_compressor("dkm", settings)
    assert needle in str(info.value) and "\n" not in str(info.value)


def train_args(checkpoint, out, *extra):
    return ["--arch", "tiny", "--checkpoint", checkpoint, "--data", SHARED / "data", "--method", "dkm",
            "--epochs", "1", "--train-batch-size", "64", "--limit-train", "128", "--limit-test", "100",
            "--checkpoint-every", "1", "--out", out, "--json", *extra]


def test_cli_trains_dkm_and_its_run_file_is_analysable(run_cli, tiny_checkpoint, tmp_path, cifar):
    out = tmp_path / "dkm.h5"
    r = run_cli("train", *train_args(tiny_checkpoint, out, "--bits", "3", "--tau", "0.1"))
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["method"] == "dkm" and summary["steps"] == 2
    run = Run(out)
    assert run.config["compressor"]["bits"] == 3 and run.config["compressor"]["tau"] == 0.1
    test = Batches(cifar[1].subset(100), 500, train=False)
    evals = run.evals()
    for which in ("pretrained", "compressed", "clamped"):
        assert evaluate(run.model(which), test)["accuracy"] == pytest.approx(evals[which]["accuracy"], abs=1e-9)
    bits = run.bits()
    assert max(bits["effective"].values()) <= 3
    clamped = run.state("clamped")
    assert all(torch.unique(clamped[name]).numel() <= 8 for name in bits["effective"])
    assert_one_line_error(run_cli("train", *train_args(tiny_checkpoint, tmp_path / "x.h5", "--tau", "0")),
                          "tau (the DKM temperature τ) must be a finite number > 0")


def test_matches_coremltools_dkm_palettizer():
    """One Linear layer, 4 bits, one iteration, squared distance (coremltools'): from the same centroids the
    soft weights, the new centroids and the gradients agree, and so does the final hard assignment."""
    palettization = pytest.importorskip("coremltools.optimize.torch.palettization")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 64))
    config = palettization.DKMPalettizerConfig.from_dict({"global_config": {
        "n_bits": 4, "cluster_dim": 1, "weight_threshold": 0, "kmeans_max_iter": 1, "palett_tau": 1e-4,
        "milestone": 0}})
    palettizer = palettization.DKMPalettizer(net, config)
    ours_model = palettizer.prepare()
    ours_model.train()
    palettizer.step()
    ours_model(torch.randn(8, 64))  # coremltools' k-means init and first DKM iteration
    fake = ours_model[0].weight_fake_quant
    w = ours_model[0].weight.detach().clone()
    sigma = float(w.std())
    layer = LayerDKM(fake.centroids[0].detach().float().clone(), 1, sigma, 1e-4 / sigma**2, 1, 0.0, "squared")
    w1, w2 = w.clone().requires_grad_(), w.clone().requires_grad_()
    mine, theirs = layer.soft(w1), fake(w2)
    torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)
    torch.testing.assert_close(layer.centroids, fake.centroids[0].float(), atol=1e-5, rtol=0)
    g = torch.randn_like(w)
    (mine * g).sum().backward()
    (theirs * g).sum().backward()
    assert ((w1.grad - w2.grad).norm() / w2.grad.norm()).item() < 1e-3
    final = palettizer.finalize(inplace=False)[0].weight.detach().flatten()
    theirs_index = distance(final[:, None], layer.centroids).argmin(1)
    assert torch.equal(layer.assign(w), theirs_index)
    torch.testing.assert_close(layer.hard(w), final, atol=1e-5, rtol=0)
