"""VQ/linear search (`--method vq-nas`, compress/vq_nas.py) on the tiny model: the relaxation's weights, the
mixture forward and its gradients (α, the latent weights, the codebooks), the size and budget terms, the end of
the search and the fixed configuration afterwards, the chosen configuration's size, the clamp, resume, the run
file's namespaced scalars, the figure, and the bad inputs as one-line errors (also through the CLI). Plus VQ-QAT's
`layer_stats`. The tiny model's layers have 108, 144, 144, 288, 576, 1152, 2304 and 160 weights: d = 2 and 4
divide all of them, d = 3 not linear.weight."""

import copy
import csv
import importlib
import json
import math
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO, SHARED, assert_one_line_error

from landscape.compress import make_compressor
from landscape.compress.vq import VQ, LayerVQ, VQConfig
from landscape.compress.vq_nas import (
    VQNAS,
    LinearGrid,
    VQNASConfig,
    chosen_configuration,
    parse_candidates,
)
from landscape.figures import make
from landscape.figures.nas_allocation import NASAllocationFigure
from landscape.models import build_model
from landscape.params import select_params
from landscape.store import SCALARS, Run
from landscape.trainer import TrainConfig, Trainer

SMALL = "vq:4x2,lin:2,lin:8"  # 2, 2 and 8 bits per weight on every tiny layer


def prepared(**settings):
    torch.manual_seed(0)
    model = build_model("tiny")
    nas = VQNAS(VQNASConfig(**{"candidates": SMALL, **settings}))
    return nas.prepare(model), nas


def batches(n_batches=4, n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g))
            for _ in range(n_batches)]


def trainer(settings, *, epochs=2, data=None, stats_every=1):
    torch.manual_seed(0)
    nas = make_compressor("vq-nas", {"candidates": SMALL, **settings})
    config = TrainConfig(epochs=epochs, lr=0.01, compile="off", stats_every=stats_every)
    return Trainer(build_model("tiny"), data if data is not None else batches(), config, nas), nas


class Record:
    """A trainer callback keeping every step's compressor stats and the configuration."""

    def __init__(self):
        self.stats, self.configs = {}, {}

    def on_train_start(self, t): ...
    def on_epoch_end(self, t): ...
    def on_train_end(self, t): ...

    def on_step_end(self, t, scalars):
        if "nas:bits" in scalars:
            self.stats[t.step] = {k: scalars[k] for k in scalars}
            self.configs[t.step] = t.compressor.configuration()


# ------------------------------------------------------------------------------------------ candidates, config


def test_candidates_parse_with_their_bits_as_the_export_counts_them():
    cands = parse_candidates(" vq:4x2 , vq:8x4,lin:3")
    assert [c.name for c in cands] == ["vq:4x2", "vq:8x4", "lin:3"]
    assert [c.nominal_bits for c in cands] == [2.0, 2.0, 3.0]
    assert cands[0].bits_per_weight(11) == pytest.approx(4 * 6 / 11)  # ceil(11/2) indices of 4 bits
    assert VQNASConfig().candidate_set == parse_candidates("vq:4x2,vq:6x2,vq:8x2,vq:4x4,vq:6x4,vq:8x4,"
                                                           "lin:2,lin:3,lin:4,lin:8")


@pytest.mark.parametrize("settings,needle", [
    ({"candidates": ""}, "candidates is empty"),
    ({"candidates": " , "}, "candidates is empty"),
    ({"candidates": "vq:4"}, "'vq:4' is not vq:<b>x<d> or lin:<b>"),
    ({"candidates": "vq:4x2,kmeans:3"}, "'kmeans:3' is not"),
    ({"candidates": "vq:13x2"}, "vq:13x2 needs b in 1..12"),
    ({"candidates": "lin:0"}, "lin:0 needs b in 1..16"),
    ({"candidates": "lin:2,lin:2"}, "lin:2 given more than once"),
    ({"candidates": "vq:4x1"}, "cosine assignment needs d ≥ 2"),
    ({"budget_bits": 0.5}, "budget_bits 0.5 is below the smallest candidate's 1 bits per weight (vq:4x4)"),
    ({"budget_bits": -1.0}, "budget_bits must be a finite number ≥ 0"),
    ({"size_penalty": float("nan")}, "size_penalty must be a finite number ≥ 0"),
    ({"relaxation": "sparsemax"}, "relaxation must be one of softmax, gumbel"),
    ({"tau": 0.0}, "tau must be a finite number > 0"),
    ({"arch_lr": 0.0}, "arch_lr must be a finite number > 0"),
    ({"search_steps": 0}, "search_steps must be an integer ≥ 1"),
    ({"assign": "dot"}, "assign must be one of cosine, euclidean"),
])
def test_bad_settings_are_one_line_value_errors(settings, needle):
    with pytest.raises(ValueError) as info:
        make_compressor("vq-nas", settings)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_a_candidate_whose_d_does_not_divide_a_layer_is_refused_or_skipped():
    with pytest.raises(ValueError) as info:
        VQNAS(VQNASConfig(candidates="vq:4x3,lin:2")).prepare(build_model("tiny"))
    assert "vq:4x3" in str(info.value) and "linear.weight" in str(info.value) and "\n" not in str(info.value)
    nas = VQNAS(VQNASConfig(candidates="vq:4x3,lin:2", skip_indivisible=True))
    with pytest.warns(UserWarning, match="linear.weight .* leaves out vq:4x3"):
        nas.prepare(build_model("tiny"))
    assert [c.name for c in nas.layers["linear.weight"].candidates] == ["lin:2"]
    assert [c.name for c in nas.layers["conv1.weight"].candidates] == ["vq:4x3", "lin:2"]
    assert nas.layers["linear.weight"].positions == (1,)


def test_a_budget_below_the_smallest_configuration_is_refused_at_prepare():
    # 4716 weights reach 4/3 bits with vq:4x3, linear.weight (160) only 2 with lin:2: at least 1.355 bits
    nas = VQNAS(VQNASConfig(candidates="vq:4x3,lin:2", skip_indivisible=True, budget_bits=1.34))
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"budget_bits 1.34 is below 1.355 bits") as info:
        nas.prepare(build_model("tiny"))
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------- the relaxation


@pytest.mark.parametrize("relaxation", ["softmax", "gumbel"])
def test_relaxation_weights_are_a_distribution_per_layer(relaxation):
    model, nas = prepared(relaxation=relaxation, tau=0.5)
    with torch.no_grad():
        for layer in nas.layers.values():
            layer.alpha.copy_(torch.tensor([0.5, -1.0, 2.0]))
    for layer in nas.layers.values():
        draws = torch.stack([layer.relaxed().detach() for _ in range(5)])
        assert (draws >= 0).all()
        torch.testing.assert_close(draws.sum(1), torch.ones(5))
        torch.testing.assert_close(layer.probs().sum(), torch.tensor(1.0))
        if relaxation == "softmax":
            assert torch.equal(draws[0], layer.probs().detach()) and torch.equal(draws[0], draws[1])
        else:
            assert not torch.equal(draws[0], draws[1])  # a fresh Gumbel sample every forward


def test_search_forward_is_the_mixture_and_gradients_reach_alpha_weights_and_codebooks():
    model, nas = prepared(size_penalty=0.5)
    with torch.no_grad():
        for layer in nas.layers.values():
            layer.alpha.copy_(torch.tensor([0.3, -0.2, 0.1]))
    layer, theta = nas.layers["layer1.0.conv1.weight"], model.layer1[0].conv1.weight
    p = layer.probs().detach()
    expected = sum(p[k] * layer.quantize(k, theta).detach() for k in range(3))
    torch.testing.assert_close(layer.train_weight(theta).detach(), expected)
    x, y = batches(1)[0]
    (F.cross_entropy(model.train()(x), y) + nas.penalty(model)).backward()
    for name, p in select_params(model).items():
        layer = nas.layers[name]
        assert torch.isfinite(layer.alpha.grad).all() and layer.alpha.grad.abs().sum() > 0, name
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
        vq = layer.quantizers[0]
        assert isinstance(vq, LayerVQ) and vq.codebook.grad.abs().sum() > 0, name


def test_eval_forward_is_the_plain_network_and_the_state_dict_stays_its_own():
    model, nas = prepared()
    plain = build_model("tiny")
    plain.load_state_dict(model.state_dict())
    assert list(model.state_dict()) == list(plain.state_dict())
    x, _ = batches(1)[0]
    torch.testing.assert_close(model.eval()(x), plain.eval()(x))


def test_penalty_is_the_size_the_budget_hinge_and_the_weighted_commitment():
    model, nas = prepared(strength=0.0, size_penalty=2.0)
    sizes = {n: p.numel() for n, p in select_params(model).items()}
    expected = sum(sizes[n] * float((nas.layers[n].probs() * nas.layers[n].bits).sum()) for n in sizes) / sum(
        sizes.values())
    assert expected == pytest.approx(4.0)  # uniform p over 2, 2 and 8 bits
    assert nas.penalty(model).item() == pytest.approx(2.0 * expected)
    _, under = prepared(strength=0.0, budget_bits=5.0, budget_penalty=3.0)
    _, over = prepared(strength=0.0, budget_bits=2.5, budget_penalty=3.0)
    assert under.penalty(model).item() == 0.0 and over.penalty(model).item() == pytest.approx(3.0 * 1.5)
    model, nas = prepared(strength=0.5)
    with torch.no_grad():
        commit = sum(float(nas.layers[n].probs()[k]) * ((p - nas.layers[n].quantize(k, p)) ** 2).sum()
                     for n, p in select_params(model).items() for k in range(3))
    loss = nas.penalty(model)
    assert loss.item() == pytest.approx(0.5 * float(commit), rel=1e-5)
    loss.backward()
    assert all(layer.alpha.grad is None for layer in nas.layers.values())  # sg(p): α learns nothing from it
    assert model.conv1.weight.grad.abs().sum() > 0  # the latent weights are pulled to the reconstructions


# ------------------------------------------------------------------------------------------ search, freeze


def test_the_search_ends_at_search_steps_and_the_configuration_then_stays_fixed():
    t, nas = trainer({"search_steps": 3, "size_penalty": 1.0})  # 4 batches × 2 epochs = 8 steps
    record = Record()
    t.callbacks.append(record)
    alphas, books = {}, {}

    class AtFreeze:
        def on_train_start(self, t): ...
        def on_epoch_end(self, t): ...
        def on_train_end(self, t): ...

        def on_step_end(self, t, scalars):
            if t.step == 3:
                alphas.update({n: layer.alpha.detach().clone() for n, layer in nas.layers.items()})
                books.update({n: [q.codebook.detach().clone() for q in layer.quantizers if isinstance(q, LayerVQ)]
                              for n, layer in nas.layers.items()})

    t.callbacks.append(AtFreeze())
    t.fit()
    assert nas.step == 8 and nas.frozen_at == 3 and not nas.searching
    assert [record.stats[s]["nas:searching"] for s in range(1, 9)] == [1.0, 1.0] + [0.0] * 6
    assert all(record.configs[s] == record.configs[3] for s in range(3, 9))
    assert record.configs[3] == {n: layer.candidates[int(alphas[n].argmax())].name for n, layer in nas.layers.items()}
    for name, layer in nas.layers.items():
        assert torch.equal(layer.alpha.detach(), alphas[name])  # α in no graph after the freeze: no drift
        kept = layer.candidates[layer.choice]
        for c, q, before in zip([c for c in layer.candidates if c.kind == "vq"],
                                [q for q in layer.quantizers if isinstance(q, LayerVQ)], books[name], strict=True):
            assert torch.equal(q.codebook.detach(), before) or c == kept  # only the kept codebook still learns
    assert record.stats[8]["nas:expected_bits"] == pytest.approx(record.stats[3]["nas:expected_bits"])


def test_the_chosen_configuration_size_is_the_reported_size():
    t, nas = trainer({"search_steps": 2})
    model = t.fit()
    stats, clamped = nas.stats(model), nas.clamp(model)
    assert clamped.mean_bits() == pytest.approx(stats["mean_bits"])
    assert stats["nas:bits"] == pytest.approx(nas.expected_bits().item())  # E[bits] of the one-hot choice
    assert clamped.mean_bits() <= stats["nas:bits"] + 1e-9
    for name, layer in nas.layers.items():
        c, book = layer.candidates[layer.choice], clamped.codebooks[name]
        entries = getattr(book, "entries", book.k)
        assert stats[f"layer:{name}:bits"] == c.nominal_bits
        if entries == 2**c.bits:  # every entry in use: the clamp's bits are the candidate's
            assert clamped.bits[name] == pytest.approx(c.nominal_bits)
        assert nas.candidates[int(stats[f"layer:{name}:choice"])] == c


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_budget_is_respected_by_every_choice_and_the_size_falls_with_lambda(optimizer):
    expected = {}
    lr = {"arch_optimizer": optimizer, "arch_lr": 0.5 if optimizer == "adam" else 0.1}
    for settings in ({}, {"size_penalty": 5.0}, {"budget_bits": 2.5, "budget_penalty": 100.0}):
        t, nas = trainer({"search_steps": 6, **lr, **settings})
        record = Record()
        t.callbacks.append(record)
        t.fit()
        expected[json.dumps(settings)] = record.stats[6]["nas:expected_bits"]
        if "budget_bits" in settings:  # the chosen configuration, searching or frozen, never exceeds it
            assert max(s["nas:bits"] for s in record.stats.values()) <= 2.5
            assert record.stats[6]["nas:expected_bits"] < expected["{}"]
    plain, lam = expected["{}"], expected['{"size_penalty": 5.0}']
    assert lam < plain - 0.5


def test_a_budget_as_target_pulls_a_small_configuration_up_to_it():
    """budget_mode="target": μ·|E_p − B| raises E_p[bits] towards B from below, where the hinge feels nothing."""
    sizes = {}
    for mode in ("hinge", "target"):
        t, nas = trainer({"search_steps": 6, "arch_lr": 0.5, "budget_bits": 6.0, "budget_penalty": 100.0,
                          "budget_mode": mode})
        with torch.no_grad():  # start every layer at the 2-bit candidates
            for layer in nas.layers.values():
                layer.alpha.copy_(torch.tensor([2.0, 2.0, -2.0]))
        record = Record()
        t.callbacks.append(record)
        t.fit()
        sizes[mode] = record.stats[6]["nas:expected_bits"]
        assert record.stats[6]["nas:bits"] <= 6.0
    assert sizes["target"] > sizes["hinge"] + 1.0
    with pytest.raises(ValueError, match="budget_mode must be one of hinge, target"):
        VQNASConfig(budget_mode="soft")


def test_annealing_sharpens_p_towards_the_argmax_and_the_expected_size_towards_its_bits():
    t, nas = trainer({"search_steps": 4, "anneal": 0.01, "arch_lr": 1e-6}, epochs=1)  # α stays where it is set
    with torch.no_grad():
        for layer in nas.layers.values():
            layer.alpha.copy_(torch.tensor([0.3, 0.0, -0.3]))
    start = float(nas.expected_bits())
    record = Record()
    t.callbacks.append(record)
    t.fit()
    assert nas.temperature() == pytest.approx(0.01) and all(layer.temperature == pytest.approx(0.01)
                                                            for layer in nas.layers.values())
    for layer in nas.layers.values():  # nearly one-hot on the argmax
        assert float(layer.probs().max()) > 0.99
    last = record.stats[max(record.stats)]
    assert abs(last["nas:expected_bits"] - last["nas:bits"]) < 0.05 < abs(start - last["nas:bits"])
    with pytest.raises(ValueError, match=r"anneal must be in \(0, 1\]"):
        VQNASConfig(anneal=0.0)


def test_within_budget_is_the_most_probable_configuration_that_fits():
    """Against brute force over every configuration of three layers (random p, random sizes): the decode's
    log-probability is the best of those that fit wherever the Lagrangian reaches it, and it always fits."""
    import itertools

    from landscape.compress.vq_nas import within_budget

    g = torch.Generator().manual_seed(0)
    bits = [torch.tensor([1.0, 2.0, 3.0, 4.0])] * 3
    exact = 0
    for _ in range(40):
        log_p = [torch.log_softmax(3 * torch.randn(4, generator=g), 0) for _ in range(3)]
        sizes = [int(n) for n in torch.randint(10, 1000, (3,), generator=g)]
        budget = float(torch.empty(()).uniform_(1.0, 4.0, generator=g))
        ks = within_budget(log_p, bits, sizes, budget)
        size = sum(n * float(b[k]) for k, b, n in zip(ks, bits, sizes, strict=True)) / sum(sizes)
        assert size <= budget + 1e-9
        fits = [c for c in itertools.product(range(4), repeat=3)
                if sum(n * float(b[k]) for k, b, n in zip(c, bits, sizes, strict=True)) / sum(sizes) <= budget + 1e-9]
        best = max(sum(float(lp[k]) for k, lp in zip(c, log_p, strict=True)) for c in fits)
        got = sum(float(lp[k]) for k, lp in zip(ks, log_p, strict=True))
        assert got <= best + 1e-9
        exact += abs(got - best) < 1e-9
    assert exact >= 30  # the relaxation is exact at most budgets (it can miss a point inside the hull)
    assert within_budget(log_p, bits, sizes, 0) == [int(torch.argmax(lp)) for lp in log_p]


def test_adam_moves_alpha_by_about_arch_lr_per_step_and_stops_at_the_freeze():
    t, nas = trainer({"search_steps": 3, "arch_optimizer": "adam", "arch_lr": 0.05}, epochs=2)
    t.fit()
    moved = max(float(layer.alpha.abs().max()) for layer in nas.layers.values())
    assert 0.01 < moved <= 3 * 0.05 * 1.5  # three Adam steps of about lr each (at most lr on the first)
    assert all(layer.alpha.grad is None for layer in nas.layers.values())
    assert not any(p is layer.alpha for g in t.optimizer.param_groups for p in g["params"]
                   for layer in nas.layers.values())


def test_clamp_has_at_most_2_to_the_b_entries_and_the_callers_model_is_untouched():
    torch.manual_seed(0)
    model = build_model("tiny")
    before = copy.deepcopy(model.state_dict())
    nas = make_compressor("vq-nas", {"candidates": "vq:4x2,lin:3"})
    t = Trainer(model, batches(2), TrainConfig(epochs=1, lr=0.01, compile="off"), nas)
    with torch.no_grad():  # alternate the choices: VQ and linear layers in one network
        for i, layer in enumerate(nas.layers.values()):
            layer.alpha.copy_(torch.tensor([1.0, 0.0] if i % 2 else [0.0, 1.0]))
    trained = t.fit()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any("_nas" in m.__dict__ for m in model.modules())
    clamped = nas.clamp(trained)
    assert not any("_nas" in m.__dict__ for m in clamped.model.modules())
    kinds = set()
    for name, w in select_params(clamped.model).items():
        c = nas.layers[name].candidates[nas.choices()[name]]
        kinds.add(c.kind)
        if c.kind == "vq":
            assert len(torch.unique(w.detach().flatten().view(-1, 2), dim=0)) <= 2**4, name
        else:
            assert len(torch.unique(w)) <= 2**3, name
        torch.testing.assert_close(w.detach().flatten(), clamped.codebooks[name].apply())
    assert kinds == {"vq", "lin"}


def test_linear_grid_is_uniform_ptq_s_grid():
    from landscape.quantize import uniform

    theta = torch.randn(500)
    grid = LinearGrid.fit(theta, 3)
    torch.testing.assert_close(grid.quantize(theta), uniform(theta, 3).apply())
    constant = LinearGrid.fit(torch.full((4,), 0.5), 2)
    assert constant.quantize(torch.tensor([0.1, 0.9])).tolist() == [0.5, 0.5]


# ------------------------------------------------------------------------------------- state, resume, stats


@pytest.mark.parametrize("search_steps", [1, 3])  # frozen before the checkpoint, or after the resume
def test_state_dict_round_trip_and_resume_continue_exactly(search_steps):
    settings = {"search_steps": search_steps, "relaxation": "gumbel", "size_penalty": 1.0}
    data = batches(2)
    straight, nas_a = trainer(settings, epochs=2, data=data)
    straight.fit()
    first, _ = trainer(settings, epochs=1, data=data)
    first.fit()
    state = copy.deepcopy(first.state_dict())
    resumed, nas_c = trainer(settings, epochs=2, data=data)
    resumed.load_state_dict(state)
    resumed.fit()
    assert (nas_c.step, nas_c.frozen_at) == (nas_a.step, nas_a.frozen_at) == (4, search_steps)
    assert nas_c.configuration() == nas_a.configuration()
    for (k, a), (_, c) in zip(nas_a.state_dict()["alphas"].items(), nas_c.state_dict()["alphas"].items(),
                              strict=True):
        torch.testing.assert_close(a, c, rtol=0, atol=0, msg=k)
    for k, v in straight.model.state_dict().items():
        torch.testing.assert_close(v, resumed.model.state_dict()[k], rtol=0, atol=0, msg=k)
    other = VQNAS(nas_a.config)
    other.prepare(build_model("tiny"))
    other.load_state_dict(nas_a.state_dict())
    assert other.configuration() == nas_a.configuration() and other.frozen_at == nas_a.frozen_at
    bad = nas_a.state_dict()
    bad["alphas"]["conv1.weight"] = torch.zeros(5)
    with pytest.raises(ValueError, match="α of conv1.weight of shape"):
        other.load_state_dict(bad)


def test_stats_measure_the_chosen_candidate_per_layer():
    model, nas = prepared()
    first = nas.stats(model)
    assert math.isnan(first["layer:conv1.weight:changed"])
    choices = nas.choices()
    for name, layer in nas.layers.items():
        c = layer.candidates[choices[name]]
        k = 2**c.bits
        entries = first[f"layer:{name}:entries"]
        assert 1 <= entries <= k and first[f"layer:{name}:dead"] == k - entries
        assert 1 <= first[f"layer:{name}:perplexity"] <= entries + 1e-9
        assert 0 < first[f"layer:{name}:rel_error"] < 1.5
    assert nas.stats(model)["layer:conv1.weight:changed"] == 0.0  # nothing moved
    assert first["nas:entropy"] == pytest.approx(math.log2(3))
    assert first["nas:vq_fraction"] == 1.0  # argmax of a uniform α: the first candidate, vq:4x2
    quiet = VQNAS(VQNASConfig(candidates=SMALL, layer_stats=False))
    stats = quiet.stats(quiet.prepare(build_model("tiny")))
    assert "layer:conv1.weight:choice" in stats and not any(k.endswith(":perplexity") for k in stats)


def test_vq_layer_stats_are_off_by_default_and_measure_each_layer():
    torch.manual_seed(0)
    plain = VQ(VQConfig(dim=2, codebook_bits=4))
    model = plain.prepare(build_model("tiny"))
    assert not any(":" in k for k in plain.stats(model))
    vq = VQ(VQConfig(dim=2, codebook_bits=4, layer_stats=True))
    model = vq.prepare(build_model("tiny"))
    first = vq.stats(model)
    assert math.isnan(first["layer:conv1.weight:changed"])
    assert 1 <= first["layer:conv1.weight:perplexity"] <= first["layer:conv1.weight:entries"] <= 16
    assert first["layer:conv1.weight:dead"] == 16 - first["layer:conv1.weight:entries"]
    with torch.no_grad():
        model.conv1.weight.add_(0.2 * torch.randn_like(model.conv1.weight))
    moved = vq.stats(model)
    assert 0 < moved["layer:conv1.weight:changed"] <= 1 and moved["layer:linear.weight:changed"] == 0.0


# ----------------------------------------------------------------------------------- CLI, run file, figure


def train_args(checkpoint, out, *extra):
    return ["--arch", "tiny", "--checkpoint", checkpoint, "--data", SHARED / "data", "--method", "vq-nas",
            "--epochs", "1", "--train-batch-size", "32", "--limit-train", "128", "--limit-test", "100",
            "--checkpoint-every", "2", "--stats-every", "1", "--out", out, "--json", *extra]


@pytest.fixture(scope="module")
def nas_run(tmp_path_factory, tiny_checkpoint):
    """A vq-nas run of the tiny model through the CLI's main: 4 steps, the search ends after 2."""
    from landscape.train import main

    out = tmp_path_factory.mktemp("nas") / "nas.h5"
    assert main([str(a) for a in train_args(tiny_checkpoint, out, "--candidates", "vq:4x2,vq:6x4,lin:2,lin:4",
                                            "--search-steps", "2", "--size-penalty", "1.0", "--arch-lr", "1.0")]) == 0
    return out


def test_export_stores_each_vq_layer_as_its_chosen_vector_code(nas_run, tmp_path):
    """`landscape export` reads each layer's chosen candidate: a vq:b×d layer is stored as a d-vector code (≤ 2^b
    codewords of d weights), a linear one as a scalar code, so the exported size follows the chosen bits."""
    from landscape.codec import export_run, read_export
    from landscape.compress.vq_nas import chosen_configuration

    chosen = chosen_configuration(nas_run)
    layers = read_export(export_run(nas_run, tmp_path / "nas.safetensors")).layers
    for name, layer in chosen.items():
        kind, _, spec = layer["choice"].partition(":")
        if kind == "vq" and name in layers:
            bits, dim = (int(v) for v in spec.split("x"))
            assert layers[name].encoding == "vector" and layers[name].dim == dim, name
            assert layers[name].k <= 2**bits, name
        elif name in layers:
            assert layers[name].encoding == "scalar", name


def test_cli_run_file_holds_the_configuration_and_the_per_layer_scalars(nas_run):
    run = Run(nas_run)
    assert run.method == "vq-nas" and run.steps() == [2, 4]
    scalars = run.scalars()
    assert set(SCALARS) <= set(scalars)
    n = len(scalars["step"])
    assert n == 4 and all(len(v) == n for v in scalars.values())
    assert scalars["nas:searching"].tolist() == [1.0, 0.0, 0.0, 0.0]
    for name in run.bits()["effective"]:
        for metric in ("choice", "bits", "entries", "dead", "perplexity", "changed", "rel_error"):
            assert f"layer:{name}:{metric}" in scalars, (name, metric)
    layers = chosen_configuration(run)
    assert list(layers) == list(run.bits()["effective"])
    candidates = VQNASConfig(**run.config["compressor"]).candidate_set
    bits = 0.0
    for name, layer in layers.items():
        assert sum(layer["p"]) == pytest.approx(1.0) and layer["candidates"] == [c.name for c in candidates]
        assert layer["choice"] == layer["candidates"][max(range(4), key=lambda k: layer["p"][k])]
        assert candidates[int(scalars[f"layer:{name}:choice"][-1])].name == layer["choice"]
        bits += layer["bits"][layer["candidates"].index(layer["choice"])] * layer["numel"]
    assert bits / sum(layer["numel"] for layer in layers.values()) == pytest.approx(scalars["nas:bits"][-1])
    assert run.bits()["mean_effective"] == pytest.approx(scalars["mean_bits"][-1])
    assert "conv1.weight.vq6x4.codebook" in run.compressor_state(4)


def test_other_methods_run_files_keep_the_fixed_scalars(tmp_path, run_cli, tiny_checkpoint):
    out = tmp_path / "vq.h5"
    r = run_cli("train", *[a if a != "vq-nas" else "vq" for a in train_args(tiny_checkpoint, out)])
    assert r.code == 0, r.err
    assert sorted(Run(out).scalars()) == sorted(SCALARS)
    from landscape.errors import LandscapeError

    with pytest.raises(LandscapeError, match="is a vq run, not vq-nas"):
        make(NASAllocationFigure(out_dir=str(tmp_path / "fig"), run=str(out), quiet=True))


@pytest.mark.parametrize("extra,needle", [
    (["--candidates", ""], "candidates is empty"),
    (["--candidates", "vq:4x2,lin"], "'lin' is not vq:<b>x<d> or lin:<b>"),
    (["--budget-bits", "0.5"], "below the smallest candidate"),
    (["--candidates", "vq:4x3,lin:2"], "vq:4x3 (d = 3) does not divide linear.weight"),
    (["--relaxation", "hard"], "relaxation must be one of"),
])
def test_cli_bad_inputs_exit_2_with_one_line_and_nothing_written(extra, needle, run_cli, tiny_checkpoint, tmp_path):
    out = tmp_path / "bad.h5"
    r = run_cli("train", *train_args(tiny_checkpoint, out, *extra))
    assert r.code == 2
    assert_one_line_error(r, needle)
    assert not out.exists()


def test_the_figure_draws_the_configuration_and_p(nas_run, tmp_path):
    spec = NASAllocationFigure(out_dir=str(tmp_path), run=str(nas_run), quiet=True)
    result = make(spec)
    assert set(result.outputs) == {"png", "csv"} and spec.paths()[".png"].stat().st_size > 0
    with open(spec.paths()[".csv"]) as f:
        rows = list(csv.DictReader(f))
    layers = chosen_configuration(Run(nas_run))
    assert len(rows) == 4 * len(layers)
    assert {r["layer"]: r["candidate"] for r in rows if r["chosen"] == "1"} == {n: v["choice"]
                                                                                 for n, v in layers.items()}
    assert result.summary["chosen"] == {n: v["choice"] for n, v in layers.items()}
    assert result.summary["mean_bits"] == pytest.approx(Run(nas_run).scalars()["nas:bits"][-1])
    with pytest.raises(ValueError, match="give a vq-nas run file"):
        NASAllocationFigure(run="")


def test_the_figure_script(nas_run, tmp_path, capsys):
    sys.path.insert(0, str(REPO / "analyses"))
    try:
        script = importlib.import_module("fig_nas")
    finally:
        sys.path.remove(str(REPO / "analyses"))
    assert script.main(["--run", str(nas_run), "--out-dir", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["layers"] == 8
    with pytest.raises(SystemExit):  # --run is required
        script.main(["--out-dir", str(tmp_path)])
