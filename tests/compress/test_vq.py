"""VQ-QAT on the tiny model: cosine top-1 assignment, the straight-through training forward (quantized
values, identity gradient to the latent weights, member-sum gradient to the codewords), the commitment
penalty shrinking the assignment distance, the clamp using at most 2^b codewords per layer at b/d bits per
weight, zero padding when d does not divide a layer, and re-seeding of dead entries."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from landscape.compress import make_compressor
from landscape.compress.vq import VQ, LayerVQ, VQConfig, assign, subvectors
from landscape.data import Split
from landscape.models import build_model
from landscape.params import select_params
from landscape.trainer import TrainConfig, Trainer


def prepared(**settings):
    model = build_model("tiny")
    comp = VQ(VQConfig(**settings))
    return comp.prepare(model), comp


def batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_cosine_assignment_is_not_nearest():
    codebook = torch.tensor([[3.0, 0.0], [0.5, 0.5]])
    v = torch.tensor([[0.6, 0.1]])
    assert assign(v, codebook, "cosine").item() == 0  # same direction as (3, 0)
    assert assign(v, codebook, "euclidean").item() == 1  # closer to (0.5, 0.5)


def test_subvectors_zero_pad():
    v = subvectors(torch.arange(1.0, 11.0), 4)
    assert v.shape == (3, 4) and v[2].tolist() == [9.0, 10.0, 0.0, 0.0]


def test_penalty_finite_differentiable_and_is_the_commitment_distance():
    model, comp = prepared(dim=4, codebook_bits=4, strength=0.5)
    loss = comp.penalty(model)
    books = comp.codebooks(model)
    expected = 0.5 * sum(((p.detach().flatten() - books[n].apply()) ** 2).sum().item()
                         for n, p in select_params(model).items())
    assert torch.isfinite(loss) and loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    for name, p in select_params(model).items():
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_training_forward_uses_quantized_weights_with_straight_through_gradients():
    model, comp = prepared(dim=4, codebook_bits=4)
    x, y = batch()
    model.train()
    F.cross_entropy(model(x), y).backward()  # training forward (may re-seed dead entries first)
    clamped = comp.clamp(model).model.train()
    ref_loss = F.cross_entropy(clamped(x), y)
    ref_loss.backward()
    for p in (q for q in model.parameters()):
        p.grad = None
    for layer in comp.layers.values():
        layer.codebook.grad = None
    loss = F.cross_entropy(model(x), y)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-6)  # same values: the quantized network
    loss.backward()
    for name, q in select_params(clamped).items():
        latent = select_params(model)[name]
        torch.testing.assert_close(latent.grad, q.grad)  # identity STE
        layer = comp.layers[name]
        index = assign(subvectors(latent.detach().flatten(), layer.dim), layer.codebook, layer.how)
        grad_sub = subvectors(q.grad.flatten(), layer.dim)
        grad_sub[-1, latent.numel() % layer.dim or layer.dim:] = 0  # padding gets no gradient
        expected = torch.zeros_like(layer.codebook).index_add_(0, index, grad_sub)
        torch.testing.assert_close(layer.codebook.grad, expected)  # member sum to the used codewords


def test_eval_forward_is_the_plain_network_with_latent_weights():
    model, comp = prepared()
    plain = build_model("tiny")
    plain.load_state_dict(model.state_dict())
    assert list(model.state_dict()) == list(plain.state_dict())  # the state dict stays the plain network's
    x, _ = batch()
    torch.testing.assert_close(model.eval()(x), plain.eval()(x))


def test_commitment_penalty_shrinks_the_assignment_distance():
    model, comp = prepared(dim=4, codebook_bits=4, strength=1.0)
    params = select_params(model)
    d0 = comp.stats(model)["assignment_distance"]
    opt = torch.optim.SGD(list(params.values()), lr=0.05)
    for _ in range(10):
        opt.zero_grad()
        comp.penalty(model).backward()
        opt.step()
    assert comp.stats(model)["assignment_distance"] < 0.5 * d0


@pytest.mark.parametrize("dim,bits", [(2, 4), (4, 8), (3, 2)])
def test_clamp_uses_at_most_2_to_the_b_codewords_at_b_over_d_bits(dim, bits):
    model, comp = prepared(dim=dim, codebook_bits=bits)
    before = copy.deepcopy(model.state_dict())
    books_before = {n: layer.codebook.detach().clone() for n, layer in comp.layers.items()}
    clamped = comp.clamp(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(books_before[n], layer.codebook.detach()) for n, layer in comp.layers.items())
    assert not any("_vq" in m.__dict__ for m in clamped.model.modules())  # the plain forward is back
    for name, p in select_params(clamped.model).items():
        sub = subvectors(p.detach().flatten(), dim)
        n, n_sub = p.numel(), len(sub)
        real = sub[:-1] if n % dim else sub  # the padded last sub-vector is compared on its real part below
        rows = torch.unique(real, dim=0)
        assert len(rows) <= 2**bits
        assert all((books_before[name] == r).all(1).any() for r in rows)  # every sub-vector is a codeword
        book = clamped.codebooks[name]
        assert book.entries <= min(2**bits, n_sub)
        assert book.bits == pytest.approx(math.log2(book.entries) * n_sub / n)
        assert torch.equal(book.apply(), p.flatten())
    if (dim, bits) == (2, 4):  # every tiny layer has ≥ 16 sub-vectors of 2 and divides by 2: exactly b/d
        assert clamped.mean_bits() == pytest.approx(2.0)
        assert comp.stats(model)["used_entries"] == 1.0


def test_d_not_dividing_a_layer_is_zero_padded():
    """conv1 of the tiny model has 4·3·3·3 = 108 weights: d = 8 leaves 14 sub-vectors, the last with 4 padded
    zeros; the layer is still fully quantized and pays 14·b bits over 108 weights."""
    model, comp = prepared(dim=8, codebook_bits=3, assign="euclidean")
    clamped = comp.clamp(model)
    book = clamped.codebooks["conv1.weight"]
    assert book.n_sub == 14 and len(book.index) == 108
    assert book.bits == pytest.approx(math.log2(book.entries) * 14 / 108)
    last = select_params(clamped.model)["conv1.weight"].flatten()[104:]
    codebook = comp.layers["conv1.weight"].codebook.detach()
    assert (codebook[:, :4] == last).all(1).any()  # the last real weights are the first 4 of a codeword


def test_dead_entries_are_reseeded_and_reported():
    model, comp = prepared(dim=2, codebook_bits=4)
    layer = comp.layers["layer3.0.conv2.weight"]
    with torch.no_grad():
        layer.codebook.copy_(layer.codebook[:1].expand_as(layer.codebook))  # collapse: 16 copies of one entry
    assert comp.codebooks(model)["layer3.0.conv2.weight"].entries == 1
    model.train()
    model(batch()[0])  # one training forward re-seeds
    assert comp.codebooks(model)["layer3.0.conv2.weight"].entries == 16


def test_trainer_leaves_the_callers_model_alone():
    model = build_model("tiny")
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8, generator=g)
    data = Split(images, torch.arange(32) % 10)
    trainer = Trainer(model, data, TrainConfig(epochs=1, batch_size=16), make_compressor("vq"))
    trainer.fit()
    assert "forward" not in model.__dict__ and not any("_vq" in m.__dict__ for m in model.modules())
    assert any("_vq" in m.__dict__ for m in trainer.model.modules())


@pytest.mark.parametrize("settings,needle", [
    ({"dim": 0}, "dim must be an integer in 1..64"),
    ({"dim": 65}, "dim must be an integer in 1..64"),
    ({"codebook_bits": 0}, "codebook_bits must be an integer in 1..12"),
    ({"codebook_bits": 13}, "codebook_bits must be an integer in 1..12"),
    ({"assign": "dot"}, "assign must be one of cosine, euclidean"),
    ({"dim": 1}, "cosine assignment needs dim ≥ 2"),
    ({"strength": -1.0}, "strength must be a finite number ≥ 0"),
    ({"codebook_lr": float("nan")}, "codebook_lr must be a finite number ≥ 0"),
    ({"init_iters": -1}, "init_iters must be an integer ≥ 0"),
    ({"forward": "dkm"}, "forward must be one of ste, soft"),
    ({"forward": "soft", "tau": 0.0}, "tau .* must be a finite number > 0"),
])
def test_config_validation(settings, needle):
    with pytest.raises(ValueError, match=needle):
        make_compressor("vq", settings)


# -- the soft reconstruction (forward="soft"): the ablation of the top-1 STE ----------------------------------------
@pytest.mark.parametrize("how", ["cosine", "euclidean"])
def test_soft_forward_is_the_attention_weighted_codebook_with_true_gradients(how):
    """W̃ = softmax(s/τ)·C, gradients through A and C (checked by gradcheck in float64), rows of A sum to 1."""
    g = torch.Generator().manual_seed(0)
    theta = torch.randn(9, dtype=torch.float64, generator=g, requires_grad=True)  # 9: the last sub-vector padded
    codebook = torch.nn.Parameter(torch.randn(4, 2, dtype=torch.float64, generator=g))
    lv = LayerVQ(codebook, 2, how, "soft", 0.3, 0.7)
    out = lv.soft(theta)
    v = subvectors(theta.detach().flatten(), 2)
    score = (F.normalize(v, dim=1) @ F.normalize(codebook.detach(), dim=1).T if how == "cosine"
             else -torch.cdist(v, codebook.detach()) / 0.7)
    expected = (torch.softmax(score / 0.3, 1) @ codebook.detach()).flatten()[:9]
    torch.testing.assert_close(out.detach(), expected)
    torch.autograd.gradcheck(lambda t, c: LayerVQ(c, 2, how, "soft", 0.3, 0.7).soft(t), (theta, codebook))


def test_soft_forward_tends_to_the_hard_codeword_as_tau_goes_to_zero():
    model, comp = prepared(dim=2, codebook_bits=4, assign="euclidean", forward="soft", tau=1e-4)
    for name, p in select_params(model).items():
        layer = comp.layers[name]
        soft = subvectors(layer.soft(p.detach()).flatten(), 2)  # (re-seeds dead entries first, as training does)
        hard = subvectors(layer.quantize(p.detach()).flatten(), 2)
        # every sub-vector whose two nearest codewords are more than 20 τ·σ_l apart in distance gets the nearest
        v = subvectors(p.detach().flatten(), 2)
        d = torch.cdist(v, layer.codebook.detach()).sort(1).values
        clear = (d[:, 1] - d[:, 0]) > 20 * 1e-4 * layer.scale
        assert clear.float().mean() > 0.95, name
        torch.testing.assert_close(soft[clear], hard[clear], atol=1e-6, rtol=0)


def test_soft_forward_trains_and_clamps_hard():
    g = torch.Generator().manual_seed(0)
    data = Split(torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(32) % 10)
    comp = make_compressor("vq", {"dim": 2, "codebook_bits": 4, "forward": "soft", "tau": 0.1})
    model = build_model("tiny")
    trainer = Trainer(model, data, TrainConfig(epochs=1, batch_size=16, lr=0.05), comp)
    before = {n: layer.codebook.detach().clone() for n, layer in comp.layers.items()}
    trained = trainer.fit()
    assert all(not torch.equal(before[n], layer.codebook.detach()) for n, layer in comp.layers.items())
    clamped = comp.clamp(trained)
    for name, q in select_params(clamped.model).items():
        assert torch.unique(subvectors(q.detach().flatten(), 2), dim=0).shape[0] <= 16, name
