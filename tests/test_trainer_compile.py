"""TrainConfig.compile: when "auto" compiles, the compiled step's loss and gradients equal the eager step's to
float32 round-off, a compiled run resumes bit-identically, and a missing C++ compiler degrades to eager training."""

import dataclasses
import warnings

import pytest
import torch

from landscape.compress import WeightCoupling
from landscape.models import build_model
from landscape.trainer import COMPILE_MIN_STEPS, TrainConfig, Trainer, use_compile

LOSS_TOL, GRAD_TOL = 1e-5, 1e-4  # bench/train.py's "numerically equivalent" (relative); eager float32 is ~2e-5


def trainer(train, compile: str, epochs: int = 1) -> Trainer:
    torch.manual_seed(0)
    config = TrainConfig(epochs=epochs, batch_size=32, lr=0.01, stats_every=2, compile=compile)
    return Trainer(build_model("tiny"), train, config, WeightCoupling(seed=0))


def test_compile_setting_validated_and_defaulted():
    with pytest.raises(ValueError, match="compile"):
        TrainConfig(compile="yes")
    old = {k: v for k, v in dataclasses.asdict(TrainConfig()).items() if k != "compile"}  # a run file before it
    assert TrainConfig(**old).compile == "auto"


def test_auto_compiles_only_long_single_process_cpu_and_cuda_runs():
    auto = TrainConfig()
    assert not use_compile(auto, COMPILE_MIN_STEPS - 1)
    assert not use_compile(auto, COMPILE_MIN_STEPS, distributed_run=True)
    assert use_compile(dataclasses.replace(auto, device="cuda"), COMPILE_MIN_STEPS)  # no C++ check on CUDA
    assert not use_compile(dataclasses.replace(auto, device="cuda"), COMPILE_MIN_STEPS - 1)
    assert not use_compile(dataclasses.replace(auto, device="mps"), COMPILE_MIN_STEPS)
    assert not use_compile(dataclasses.replace(auto, compile="off"), 10**6)


def test_no_cxx_compiler_trains_uncompiled(monkeypatch, cifar):
    from torch._inductor import cpp_builder

    def missing():
        raise RuntimeError("no working C++ compiler")

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", missing)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        t = trainer(cifar[0].subset(64), "on")
    assert not t.compiled and t.forward is t.model


def test_compile_failure_at_first_step_falls_back_to_eager(cifar):
    from torch._inductor.exc import InductorError

    train = cifar[0].subset(64)
    eager = trainer(train, "off")
    t = trainer(train, "off")
    t.compiled = True

    def broken(x):
        raise InductorError(RuntimeError("C++ compile error"), None)

    t.forward = broken  # what a failing torch.compile raises at its first call, before any kernel has run
    x, y = next(iter(t.batches))
    with pytest.warns(RuntimeWarning, match="training uncompiled"):
        got = t.train_step(x, y)
    assert not t.compiled and t.forward is t.model
    assert got == eager.train_step(x, y)
    assert all(torch.equal(a, b) for a, b in zip(t.model.state_dict().values(), eager.model.state_dict().values(),
                                                 strict=True))


def test_compiled_step_matches_eager_and_resumes_bit_identically(cifar):
    """One inductor compile of the tiny model (tens of seconds the first time on a machine, seconds once
    inductor's cache holds it; later trainers in this process reuse it)."""
    train = cifar[0].subset(96)  # 3 steps per epoch
    eager, compiled = trainer(train, "off", epochs=2), trainer(train, "on", epochs=2)
    if not compiled.compiled:
        pytest.skip("torch.compile unavailable here (no C++ compiler)")
    x, y = next(iter(eager.batches))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a silent fallback to eager would make this test vacuous
        a, b = eager.train_step(x, y), compiled.train_step(x, y)
    assert compiled.compiled
    assert abs(a["task_loss"] - b["task_loss"]) <= LOSS_TOL * abs(a["task_loss"])
    assert a["compression_loss"] == b["compression_loss"]  # the penalty is not compiled and saw the same weights
    for (name, p), q in zip(eager.model.named_parameters(), compiled.model.parameters(), strict=True):
        assert (p.grad - q.grad).norm() <= GRAD_TOL * p.grad.norm(), name

    full = trainer(train, "on", epochs=2).fit()  # 6 steps straight
    first = trainer(train, "on", epochs=2)
    for x, y in first.batches.iterate():  # epoch 0 only, as a run killed after step 3
        first.train_step(x, y)
    resumed = trainer(train, "on", epochs=2)
    resumed.load_state_dict(first.state_dict())
    resumed_model = resumed.fit()
    assert resumed.compiled and resumed.step == 6
    assert all(torch.equal(a, b) for a, b in zip(full.state_dict().values(), resumed_model.state_dict().values(),
                                                 strict=True))
