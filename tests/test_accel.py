"""landscape/accel.py and what the trainer takes from it: determinism switches that a job sets and gives back,
bf16 autocast of the task forward, RNG states per device, the study workers' GPUs, and steps that leave their
scalars on the device until someone reads them. A GPU runs the device-only halves (bench/gpu_check.py)."""

import dataclasses
import io
import os

import pytest
import torch
from test_trainer import tiny_fit

from landscape import accel, distributed
from landscape.compress import WeightCoupling, WeightCouplingConfig
from landscape.trainer import StepScalars, TrainConfig


def flags():
    return (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
            torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)


def test_determinism_sets_the_switches_and_restores_them(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = flags()
    with accel.determinism(True, "cuda"):
        assert flags() == (True, True, False, False, False)
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert flags() == before
    with accel.determinism(False, "cuda"):
        assert torch.backends.cudnn.benchmark and not torch.are_deterministic_algorithms_enabled()
    assert flags() == before
    with pytest.raises(RuntimeError, match="boom"), accel.determinism(True, "cpu"):
        raise RuntimeError("boom")
    assert flags() == before  # given back on an error too


def test_deterministic_training_on_cpu_is_bit_identical_to_the_default(cifar):
    """Every kernel the trainer uses on CPU is deterministic already: the switch must change no number there
    (and must not hit an op without a deterministic kernel)."""
    train = cifar[0].subset(64)
    wc = WeightCouplingConfig(estimator="subsampled", n_pairs=5000)
    a = tiny_fit(train, WeightCoupling(wc), epochs=2)[1].fit()
    b = tiny_fit(train, WeightCoupling(wc), epochs=2, deterministic=True)[1].fit()
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not torch.are_deterministic_algorithms_enabled()  # the trainer gave the switch back


def test_bf16_autocasts_the_task_forward_only(cifar):
    train = cifar[0].subset(64)
    _, fp32 = tiny_fit(train, WeightCoupling())
    _, bf16 = tiny_fit(train, WeightCoupling(), precision="bf16")
    x, y = next(iter(fp32.batches))
    a, b = fp32.train_step(x, y), bf16.train_step(x, y)
    assert a["task_loss"] != b["task_loss"] and b["task_loss"] == pytest.approx(a["task_loss"], rel=2e-2)
    assert b["compression_loss"] == a["compression_loss"]  # the penalty stays float32: the same number
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in bf16.model.parameters())
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp16")


def test_step_scalars_stay_on_the_device_until_read(cifar):
    _, trainer = tiny_fit(cifar[0].subset(64), WeightCoupling())
    x, y = next(iter(trainer.batches))
    scalars = trainer.step_scalars(x, y)
    assert isinstance(scalars, StepScalars) and scalars._device  # nothing read yet
    assert set(scalars) == {"task_loss", "compression_loss", "lr"}
    loss = scalars["task_loss"]
    assert isinstance(loss, float) and not scalars._device  # one read fetched them all
    lazy = StepScalars({"a": torch.tensor(1.5)}, {"b": 2.0})
    assert dict(lazy) == {"a": 1.5, "b": 2.0} and lazy.get("c", 3) == 3


def test_a_non_finite_loss_is_caught_between_reads(cifar):
    """Off the CPU the trainer checks the loss every stats_every steps, not every step; the check itself is the
    same on any device (here forced by calling it)."""
    from landscape.trainer import TrainingDiverged

    _, trainer = tiny_fit(cifar[0].subset(64), WeightCoupling())
    trainer._finite &= torch.tensor(False)
    trainer.step = 3
    with pytest.raises(TrainingDiverged, match="between steps 0 and 3"):
        trainer.check_finite()


def test_rng_state_round_trip_and_cuda_state_ignored_on_cpu(cifar):
    state = accel.rng_state("cpu")
    assert set(state) == {"cpu"}
    first = torch.rand(3)
    accel.set_rng_state({**state, "cuda": torch.zeros(16, dtype=torch.uint8)}, "cpu")  # a GPU run resumed on CPU
    assert torch.equal(torch.rand(3), first)
    _, trainer = tiny_fit(cifar[0].subset(64), WeightCoupling())
    saved = trainer.state_dict()
    assert "cuda_rng" not in saved  # a CPU run stores the CPU state only
    blob = io.BytesIO()
    torch.save({**saved, "cuda_rng": torch.zeros(16, dtype=torch.uint8)}, blob)
    trainer.load_state_dict(torch.load(io.BytesIO(blob.getvalue()), weights_only=False))  # no error: ignored
    assert trainer.step == saved["step"]


def test_weight_coupling_draws_on_the_weights_device_and_saves_which():
    comp = WeightCoupling(WeightCouplingConfig(estimator="subsampled"), seed=3)
    cpu = torch.device("cpu")
    g = comp._generator(cpu)
    assert g is comp.generator and g.device == cpu
    g.manual_seed(7)
    state = comp.state_dict()
    assert state["generator_device"] == "cpu"
    other = WeightCoupling(WeightCouplingConfig(estimator="subsampled"), seed=3)
    other.load_state_dict(state)
    assert torch.equal(torch.rand(4, generator=other.generator), torch.rand(4, generator=comp.generator))
    legacy = {k: v for k, v in comp.state_dict().items() if k != "generator_device"}  # a run file from before
    other.load_state_dict(legacy)
    assert other.generator.device == cpu


def test_torchrun_maps_every_cuda_device_to_the_local_rank(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.device_for("cuda") == torch.device("cuda", 1)
    assert distributed.device_for("cuda:0") == torch.device("cuda", 1)
    assert distributed.device_for("cpu") == torch.device("cpu")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert distributed.device_for("cuda:1") == torch.device("cuda", 0)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "each rank uses cuda:LOCAL_RANK" in err[0]  # said once, by local rank 0
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert distributed.device_for("cuda:1") == torch.device("cuda", 1)  # one process: as asked


def test_study_workers_share_out_the_gpus():
    assert [accel.worker_device("cuda", i, gpus=2) for i in range(4)] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert accel.worker_device("cuda:1", 3, gpus=2) == "cuda:1"
    assert accel.worker_device("cpu", 3, gpus=2) == "cpu"
    assert accel.worker_device("cuda", 1, gpus=0) == "cuda"  # no GPU: cli.device's one-line error says so


def test_old_run_settings_get_the_defaults():
    old = {k: v for k, v in dataclasses.asdict(TrainConfig()).items() if k not in ("precision", "deterministic")}
    config = TrainConfig(**old)
    assert config.precision == "fp32" and config.deterministic is False
