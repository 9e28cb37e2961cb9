"""Trainer: never mutates its input, determinism, callbacks, coupling actually clusters, bad config."""

import copy

import pytest
import torch

from landscape.compress import WeightCoupling, WeightCouplingConfig
from landscape.models import build_model
from landscape.trainer import Callback, TrainConfig, Trainer, TrainingDiverged


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_train_start(self, trainer):
        self.events.append("start")

    def on_step_end(self, trainer, scalars):
        self.events.append(("step", trainer.step, sorted(scalars)))

    def on_epoch_end(self, trainer):
        self.events.append("epoch")

    def on_train_end(self, trainer):
        self.events.append("end")


def tiny_fit(train, compressor=None, callbacks=(), **kw):
    torch.manual_seed(0)
    model = build_model("tiny")
    config = TrainConfig(**{"epochs": 1, "batch_size": 32, "lr": 0.01, "stats_every": 2, **kw})
    return model, Trainer(model, train, config, compressor, callbacks)


def test_callbacks_order_and_input_model_unchanged(cifar):
    train = cifar[0].subset(96)
    rec = Recorder()
    model, trainer = tiny_fit(train, WeightCoupling(), [rec], epochs=2)
    before = copy.deepcopy(model.state_dict())
    trained = trainer.fit()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not all(torch.equal(before[k], v) for k, v in trained.state_dict().items())
    assert rec.events[0] == "start" and rec.events[-1] == "end" and rec.events.count("epoch") == 2
    steps = [e for e in rec.events if isinstance(e, tuple)]
    assert [s[1] for s in steps] == list(range(1, 7))
    assert "mean_bits" in steps[1][2] and "mean_bits" not in steps[0][2]
    assert {"task_loss", "compression_loss", "lr"} <= set(steps[0][2])


def test_same_seed_same_weights(cifar):
    train = cifar[0].subset(64)
    a = tiny_fit(train, WeightCoupling(seed=0))[1].fit()
    b = tiny_fit(train, WeightCoupling(seed=0))[1].fit()
    c = tiny_fit(train, WeightCoupling(seed=0), seed=1)[1].fit()
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


def test_strong_coupling_collapses_distinct_values(cifar):
    """With strong coupling the tiny model's weights coalesce: far fewer clusters than at the start."""
    train = cifar[0].subset(128)
    wc = WeightCoupling(WeightCouplingConfig(h=0.5, w=0.5, estimator="sorted"))
    model, trainer = tiny_fit(train, wc, epochs=8, lr=0.01, momentum=0.9)
    start = WeightCoupling().stats(model)["mean_clusters"]
    trained = trainer.fit()
    end = wc.stats(trained)["mean_clusters"]
    assert end < 0.5 * start, (start, end)


def test_onecycle_schedule_warms_up_and_decays(cifar):
    model, trainer = tiny_fit(cifar[0].subset(320), schedule="onecycle", warmup=0.2, epochs=1, lr=0.1)
    lrs = []

    class LR(Callback):
        def on_step_end(self, t, scalars):
            lrs.append(scalars["lr"])

    trainer.callbacks.append(LR())
    trainer.fit()
    peak = lrs.index(max(lrs))
    assert max(lrs) == pytest.approx(0.1) and 0 < peak < len(lrs) - 1
    assert lrs[0] < lrs[peak] and lrs[-1] < 0.1 * lrs[peak]


def test_adamw_decays_the_matrices_only_and_the_schedule_ends_at_final_lr():
    """AdamW as nanoGPT sets it up: decoupled weight decay on the matrices (dim ≥ 2) and none on biases or norms;
    onecycle ends at final_lr × the peak; clipping bounds the global gradient norm before each step."""
    from landscape.gpt import GPT, GPTConfig
    from landscape.text import lm_loss

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=7, context=8, n_layer=1, n_head=1, n_embd=8))
    g = torch.Generator().manual_seed(0)
    data = [(torch.randint(0, 7, (4, 8), generator=g), torch.randint(0, 7, (4, 8), generator=g)) for _ in range(10)]
    config = TrainConfig(epochs=1, lr=0.01, optimizer="adamw", weight_decay=0.1, beta2=0.99, schedule="onecycle",
                         warmup=0.1, final_lr=0.1, grad_clip=0.05, compile="off")
    norms, lrs = [], []

    class Watch(Callback):
        def on_step_end(self, t, scalars):
            lrs.append(scalars["lr"])

    trainer = Trainer(model, data, config, callbacks=[Watch()], loss_fn=lm_loss)
    opt = trainer.optimizer
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["betas"] == (0.9, 0.99)
    decayed = {id(p) for group in opt.param_groups if group["weight_decay"] > 0 for p in group["params"]}
    assert decayed == {id(p) for p in trainer.model.parameters() if p.dim() >= 2}
    opt.register_step_pre_hook(lambda *_: norms.append(float(torch.linalg.vector_norm(torch.stack(
        [p.grad.norm() for p in trainer.model.parameters() if p.grad is not None])))))
    trainer.fit()
    assert max(norms) <= 0.05 * (1 + 1e-4)
    schedule = [trainer._lr_factor(s) for s in range(10)]
    assert schedule[-1] > 0.1 and min(schedule) >= 0.1 and schedule[0] == pytest.approx(1.0)


def test_divergence_is_reported(cifar):
    model, trainer = tiny_fit(cifar[0].subset(64), lr=1e30)  # the first step overflows float32 weights
    with pytest.raises(TrainingDiverged, match="lower lr"):
        trainer.fit()


@pytest.mark.parametrize("kw,needle", [({"epochs": 0}, "epochs"), ({"lr": -1.0}, "lr"), ({"lr": float("nan")}, "lr"),
                                       ({"momentum": 1.0}, "momentum"), ({"schedule": "cyclic"}, "schedule"),
                                       ({"optimizer": "adam"}, "optimizer"), ({"final_lr": 1.5}, "final_lr"),
                                       ({"grad_clip": -1.0}, "grad_clip")])
def test_config_validation(kw, needle):
    with pytest.raises(ValueError, match=needle):
        TrainConfig(**kw)


def test_too_few_images_for_one_batch(cifar):
    with pytest.raises(ValueError, match="fewer than one batch"):
        tiny_fit(cifar[0].subset(10), batch_size=32)
