"""Cost of a trial: images/s of one plain and one soft-quant SGD step under the options that could make it faster on
this CPU, each option's loss and gradients checked against float64 and against today's step, beside the roofline.

A step is one full `Trainer.train_step`: forward, cross-entropy (+ the coupling penalty for soft-quant:
weight-coupling, h 0.05, w 0.3, default histogram estimator), finiteness check, backward, SGD with Nesterov
momentum, on a batch of 128 CIFAR-10 training images (augmented as in training; random images when no CIFAR copy
is found). Models: ResNet-20 and ResNet-56 from ../shared/models when present (else a random init).

Options (each is its own Trainer on a copy of the same model; process-wide settings are set around each call):
  baseline       today's step: eager, torch's default thread count (= TrainConfig(compile="off"))
  1-thread       eager, torch.set_num_threads(1)
  channels-last  eager, model and inputs in torch.channels_last memory format
  flush-denormal eager, torch.set_flush_denormal(True)
  compile        TrainConfig(compile="on"): torch.compile (inductor, C++/OpenMP kernels) of forward and backward
  compile-1-thread  the same at 1 thread (as each of two 1-thread study workers runs)
  compile+cl     (full run only) compile on a channels_last model and inputs
  bf16-convs     eager, oneDNN computes float32 convolutions in bfloat16 (AMX here): a reference, not equivalent

Timing: medians of interleaved rounds (every option steps once per round on the round's batch, the order rotated
each round), after one untimed warm-up round (where compiling happens); the first step of each option is reported
as well. Every option trains its own copy on the same batch sequence, so after the rounds the weights of an option
vs the baseline's show how far the trajectories drift apart ("trajectory": ‖Θ − Θ_base‖ / ‖Θ_base − Θ_0‖).

Equivalence: the task loss and the gradient of every parameter tensor (task + penalty) for one step from the same
weights on the same batch, vs the same step computed eagerly in float64 ("err": |ΔL|/|L| and the max over tensors
of ‖Δg‖/‖g‖) and vs the baseline's float32 step ("vs base"). An option is called numerically equivalent when both
errors are at most 2× the baseline float32 step's own errors vs float64 (its round-off: ~1e-5 on ResNet-20,
~1e-3 on ResNet-56), or below 1e-5 (loss) and 1e-4 (gradient). 1 vs 2 threads, which nobody calls a different
computation, differ by up to 1.7× in these errors.

Compile cost (compile options only): the first step minus a steady step, in a fresh process with an empty inductor
cache ("cold": the first run of a model and batch shape on a machine) and in a second process that finds the
first one's cache ("warm": every later run). The benchmark uses its own temporary cache directory.

Data preparation: the median time `Batches` takes to produce one training batch (index, augment, normalize), which
Trainer.fit does serially before each step. Not options here: the per-step `.item()` reads (on CPU a plain read,
no device to synchronize with) and the SGD update (~1 ms of a step in a profile).

Roofline: FLOPs per image of forward and of forward + backward (torch.utils.flop_counter, convolutions and the
linear layer), and this CPU's peak float32 rate estimated as cores × clock × 2 FMA units × SIMD lanes × 2 (clock
from /proc/cpuinfo; the FMA-unit count is an assumption): "% peak" = achieved FLOP/s / that peak.

Methods (`--only methods`, or after the options in a plain run): the eager step (the baseline option) of every
training method of the comparison (compress.METHODS at 4 bits where the method has a bit setting; soft
quantization at the paper's h 0.05, w 0.3; the rows of METHOD_ROWS), timed in the same interleaved rounds as the
plain step on the same batches, as a ratio to the plain step ("× plain": what a trial of the method costs per
step relative to plain fine-tuning). GPTQ and the PTQ baselines have no training step of their own (a GPTQ run
is plain fine-tuning, then its calibration at the clamp) and are not rows.

Device (--device, default cpu): the models, batches and steps of every option run there (TrainConfig.device), and
every timing synchronizes the device before reading the clock, at start and at end. The float64 reference runs on
the same device; FLOPs are counted on a CPU copy (the count does not depend on the device). Off the CPU the
roofline is not estimated ("% peak" is "-": CPU only) and the CPU-only options are skipped with a note: the thread
counts (1-thread, compile-1-thread), flush-denormal and bf16-convs (oneDNN's float32 precision; a CPU setting).
channels-last and compile+cl run on CUDA as well (cuDNN has channels-last kernels).

    python bench/train.py [--quick] [--json] [--arch resnet20 resnet56] [--device cpu] [--only options|methods]
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from landscape import cli  # noqa: E402
from landscape.compress import make_compressor  # noqa: E402
from landscape.data import Split, load_cifar10  # noqa: E402
from landscape.errors import DataNotFound  # noqa: E402
from landscape.models import build_model, load_model  # noqa: E402
from landscape.trainer import COMPILE_MIN_STEPS, TrainConfig, Trainer, use_compile  # noqa: E402

MODELS = REPO.parent / "shared" / "models"
CHECKPOINTS = {"resnet20": "resnet20-cifar10jpeg.pt", "resnet56": "resnet56-4bfd9763.th"}
SOFT = {"h": 0.05, "w": 0.3}  # soft quantization: the paper's setting
BATCH = 128
# "numerically equivalent": errors vs the float64 step within MARGIN × the baseline float32 step's own errors, or
# below LOSS_TOL / GRAD_TOL (relative). The margin admits a thread-count change (1 vs 2 threads: up to 1.7x here).
LOSS_TOL, GRAD_TOL, MARGIN = 1e-5, 1e-4, 2.0
DEFAULT_THREADS = torch.get_num_threads()
RUN_STEPS = (156, 390)  # run lengths the compile payoff is reported for (20,000 images; one epoch of 50,000)


@dataclass(frozen=True)
class Option:
    name: str
    compile: str = "off"  # TrainConfig.compile
    threads: int = 0  # torch threads (0: torch's default)
    channels_last: bool = False
    flush_denormal: bool = False
    bf16: bool = False  # oneDNN float32 convolutions in bfloat16


OPTIONS = [
    Option("baseline"),
    Option("1-thread", threads=1),
    Option("channels-last", channels_last=True),
    Option("flush-denormal", flush_denormal=True),
    Option("compile", compile="on"),
    Option("compile-1-thread", compile="on", threads=1),
    Option("compile+cl", compile="on", channels_last=True),
    Option("bf16-convs", bf16=True),
]
QUICK_SKIP = {"compile+cl"}  # a second cold compile per model: full run only
# options that change only CPU settings (torch's CPU threads, the CPU's denormal mode, oneDNN's precision): skipped
# on other devices
CPU_ONLY = {"1-thread", "compile-1-thread", "flush-denormal", "bf16-convs"}


def sync(dev: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read after it times the work, not its launch."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


@contextlib.contextmanager
def applied(opt: Option):
    """The option's process-wide settings for the duration of one step."""
    threads = torch.get_num_threads()
    torch.set_num_threads(opt.threads or DEFAULT_THREADS)
    if opt.flush_denormal:
        torch.set_flush_denormal(True)
    if opt.bf16:
        torch.backends.mkldnn.fp32_precision = "bf16"
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.set_flush_denormal(False)
        if opt.bf16:
            torch.backends.mkldnn.fp32_precision = "none"


def layout(x: torch.Tensor, opt: Option) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if opt.channels_last else x


def base_model(arch: str) -> tuple[torch.nn.Module, str]:
    ckpt = MODELS / CHECKPOINTS.get(arch, "")
    if arch in CHECKPOINTS and ckpt.is_file():
        return load_model(arch, ckpt), ckpt.name
    torch.manual_seed(0)
    return build_model(arch), "random init"


def training_images(data, n: int) -> tuple[Split, str]:
    try:
        return load_cifar10(data)[0].subset(n), "CIFAR-10 train"
    except DataNotFound:
        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
        return Split(images, torch.randint(0, 10, (n,), generator=g)), "random uint8 images"


# the methods table: row label → (registered method, its settings); 4 bits where the method has a bit setting
METHOD_ROWS = {
    "soft quantization": ("weight-coupling", SOFT),
    "CWC": ("centroid", {"bits": 4}),
    "DSMM → HEQ": ("dsmm", {"bits": 4}),
    "LSQ": ("lsq", {"bits": 4}),
    "LSQ + PACT (4-bit inputs)": ("lsq", {"bits": 4, "act_bits": 4}),
    "PARQ": ("parq", {"bits": 4}),
    "BinaryRelax": ("binaryrelax", {"bits": 4}),
    "DKM": ("dkm", {"bits": 4}),
    "DSMM + LSQ": ("dsmm", {"bits": 4, "then": "lsq"}),
    "DSMM + DKM": ("dsmm", {"bits": 4, "then": "dkm"}),
    "VQ-QAT (d 2, 8-bit index)": ("vq", {"dim": 2, "codebook_bits": 8}),
    "VQ-QAT, soft A·C": ("vq", {"dim": 2, "codebook_bits": 8, "forward": "soft"}),
    "bitwise input (3 bits)": ("input-bitwise", {}),
    "VQ/linear NAS, searching (vq:8x2, lin:4)": ("vq-nas", {"candidates": "vq:8x2,lin:4", "budget_bits": 4.0}),
}


def make_trainer(model, split: Split, opt: Option, soft: bool | tuple[str, dict], dev: torch.device,
                 dtype=torch.float32) -> Trainer:
    """A Trainer on `dev` (model and batches there) with the option's compile and memory format; `soft`: the
    soft-quant penalty (True), none (False), or a (method, settings) of the methods table."""
    model = copy.deepcopy(model).to(dev, dtype)
    if opt.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if isinstance(soft, tuple):
        compressor = make_compressor(*soft)
    else:
        compressor = make_compressor("weight-coupling", SOFT) if soft else None
    config = TrainConfig(epochs=1, batch_size=BATCH, stats_every=10**9, compile=opt.compile, device=str(dev))
    with warnings_as_notes():
        return Trainer(model, split, config, compressor)


@contextlib.contextmanager
def warnings_as_notes():
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        print(f"note: {w.message}", file=sys.stderr)


# ----------------------------------------------------------------------------------------------- roofline


def cpu_peak() -> dict:
    """Estimated peak float32 FLOP/s: cores × GHz × 2 FMA units × lanes × 2 FLOPs per FMA."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    mhz = [float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", text, re.M)]
    flags = set(re.search(r"^flags\s*:(.*)$", text, re.M).group(1).split()) if "flags" in text else set()
    model = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    ghz = max(mhz) / 1000 if mhz else None
    peak = cores * ghz * 1e9 * 2 * lanes * 2 if ghz else None
    return {"cores": cores, "ghz": ghz, "fp32_lanes": lanes, "fma_units": 2, "peak_flops": peak,
            "cpu": model.group(1).strip() if model else None, "amx_bf16": "amx_bf16" in flags}


def flops_per_image(model) -> dict:
    """Forward and forward + backward FLOPs per image (FlopCounterMode: 2 per multiply-add of conv/linear), counted
    on a CPU copy whatever --device is: the count is the same on every device."""
    from torch.utils.flop_counter import FlopCounterMode

    model = copy.deepcopy(model).cpu().train()
    x = torch.randn(BATCH, 3, 32, 32)
    with FlopCounterMode(display=False) as fwd:
        out = model(x)
    with FlopCounterMode(display=False) as bwd:
        F.cross_entropy(out, torch.zeros(BATCH, dtype=torch.long)).backward()
    f, b = fwd.get_total_flops() / BATCH, bwd.get_total_flops() / BATCH
    return {"forward": f, "train": f + b}


# ----------------------------------------------------------------------------------------------- equivalence


def loss_and_grads(trainer: Trainer, x, y, opt: Option, task_only: bool = False) -> tuple[float, dict]:
    """The task loss of one train_step and every parameter's gradient of its total loss (task + penalty), before
    the optimizer, as float64. task_only: the gradient of the task loss alone."""
    model = trainer.model.train()
    model.zero_grad(set_to_none=True)
    dtype = next(model.parameters()).dtype
    with applied(opt), warnings_as_notes():
        task = F.cross_entropy(trainer._forward(layout(x.to(dtype), opt)), y)
        loss = task
        if trainer.compressor is not None and not task_only:
            loss = loss + trainer.compressor.penalty(model).to(dtype)
        loss.backward()
    return task.item(), {k: p.grad.detach().double().clone() for k, p in model.named_parameters()}


def penalty_grads(trainer: Trainer) -> dict:
    model = trainer.model
    model.zero_grad(set_to_none=True)
    trainer.compressor.penalty(model).backward()
    return {k: p.grad.detach().double().clone() if p.grad is not None else torch.zeros_like(p, dtype=torch.float64)
            for k, p in model.named_parameters()}


def compare(a: tuple[float, dict], ref: tuple[float, dict]) -> dict:
    (la, ga), (lr, gr) = a, ref
    per = {k: float((ga[k] - gr[k]).norm() / gr[k].norm()) if gr[k].norm() > 0 else float(ga[k].norm()) for k in gr}
    worst = max(per, key=per.get)
    return {"loss_rel": abs(la - lr) / abs(lr), "grad_rel": per[worst], "grad_worst": worst,
            "grad_median": statistics.median(per.values())}


def equivalence(model, split: Split, x, y, options: list[Option], dev: torch.device) -> dict:
    """Per kind (plain, soft) and option: task-loss and gradient errors vs float64 and vs the baseline. The
    float64 reference is one eager pass (task) plus the penalty's gradient in float64 for the soft step, on `dev`
    like the steps it judges (float64 is exact enough on any device; moving it would only add copies)."""
    f64 = Option("float64")
    t64 = make_trainer(model, split, f64, True, dev, torch.float64)
    task64 = loss_and_grads(t64, x, y, f64, task_only=True)
    pen64 = penalty_grads(t64)
    refs = {"plain": task64, "soft": (task64[0], {k: g + pen64[k] for k, g in task64[1].items()})}
    out = {}
    for kind, ref in refs.items():
        rows, base = {}, None
        for opt in options:
            got = loss_and_grads(make_trainer(model, split, opt, kind == "soft", dev), x, y, opt)
            base = base or got
            rows[opt.name] = {"task_loss": got[0], "vs_float64": compare(got, ref), "vs_baseline": compare(got, base)}
        own = rows[options[0].name]["vs_float64"]  # the baseline float32 step's own round-off
        for row in rows.values():
            e = row["vs_float64"]
            row["equivalent"] = (e["loss_rel"] <= max(LOSS_TOL, MARGIN * own["loss_rel"])
                                 and e["grad_rel"] <= max(GRAD_TOL, MARGIN * own["grad_rel"]))
        out[kind] = rows
    return out


# ----------------------------------------------------------------------------------------------- timing


def interleaved(steps: dict, options: dict, batches: list, rounds: int, budget_s: float, min_rounds: int,
                dev: torch.device):
    """Median step time of each fn over rounds after one untimed warm-up round; also each one's first step. Each
    step's work on `dev` is synchronized before the clock is read, at start and at end."""
    names, times, first = list(steps), {k: [] for k in steps}, {}
    t_start, r = time.perf_counter(), 0
    while r < 1 + rounds and (r < 1 + min_rounds or time.perf_counter() - t_start < budget_s):
        x, y = batches[r % len(batches)]
        for name in names[r % len(names):] + names[: r % len(names)]:
            opt = options[name]
            with applied(opt):
                sync(dev)
                t0 = time.perf_counter()
                steps[name](layout(x, opt), y)  # the memory-format conversion is part of the option's step
                sync(dev)
                dt = time.perf_counter() - t0
            if r == 0:
                first[name] = dt
            else:
                times[name].append(dt)
        r += 1
    return {k: statistics.median(v) for k, v in times.items()}, first, r - 1


def data_prep(trainer: Trainer, n: int) -> float:
    """Median seconds to produce one training batch (index, augment, normalize; on the trainer's device): on the
    step's critical path."""
    it, times = trainer.batches.iterate(), []
    for _ in range(n):
        sync(trainer.device)
        t0 = time.perf_counter()
        next(it)
        sync(trainer.device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def trajectory(trainer: Trainer, base: Trainer, start: dict) -> float:
    """‖Θ − Θ_base‖ / ‖Θ_base − Θ_0‖ over all parameters after the same steps on the same batches."""
    num = den = 0.0
    for (k, p), (_, q) in zip(trainer.model.named_parameters(), base.model.named_parameters(), strict=True):
        num += float((p.detach().double() - q.detach().double()).square().sum())
        den += float((q.detach().double() - start[k].to(q.device).double()).square().sum())
    return (num / den) ** 0.5 if den > 0 else float("nan")


PROBE = """
import json, statistics, sys, time, torch
sys.path.insert(0, sys.argv[1])
sys.argv = sys.argv[:1] + sys.argv[2:]
import train as bench
model, _ = bench.base_model(sys.argv[1 + 0])
split, _ = bench.training_images(None if sys.argv[2] == "-" else sys.argv[2], 4 * bench.BATCH)
opt = bench.Option("probe", compile="on", channels_last=sys.argv[3] == "1")
dev = torch.device(sys.argv[4])
trainer = bench.make_trainer(model, split, opt, True, dev)
batches = [(bench.layout(x, opt), y) for x, y in trainer.batches.iterate()]
times = []
for x, y in batches:
    bench.sync(dev)
    t0 = time.perf_counter()
    trainer.train_step(x, y)
    bench.sync(dev)
    times.append(time.perf_counter() - t0)
print(json.dumps({"first_step_s": times[0], "step_s": statistics.median(times[1:]), "compiled": trainer.compiled}))
"""


def compile_probe(arch: str, data, channels_last: bool, dev: torch.device) -> dict:
    """Compile cost in a fresh process on `dev`: first step minus a steady step (inductor cache: the benchmark's
    own)."""
    cmd = [sys.executable, "-c", PROBE, str(Path(__file__).parent), arch, str(data) if data else "-",
           "1" if channels_last else "0", str(dev)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["compile_s"] = max(out["first_step_s"] - out["step_s"], 0.0)
    return out


def bench_arch(arch: str, args, options: list[Option], log) -> dict:
    model, source = base_model(arch)
    split, data_source = training_images(args.data, (args.rounds + 2) * BATCH)
    log(f"{arch} ({source}), {data_source}")
    compile_cost, probed = {}, {}
    for opt in options:  # one probe per compiled graph (the thread count does not change it)
        if opt.compile == "on" and opt.channels_last not in probed:
            log(f"  {opt.name}: compile cost, cold then warm cache (fresh processes)")
            cold = compile_probe(arch, args.data, opt.channels_last, args.dev)
            warm = compile_probe(arch, args.data, opt.channels_last, args.dev)
            probed[opt.channels_last] = {"cold": cold, "warm": warm}
        if opt.compile == "on":
            compile_cost[opt.name] = probed[opt.channels_last]
    trainers, names = {}, {}
    for opt in options:
        for soft in (False, True):
            key = f"{opt.name}/{'soft' if soft else 'plain'}"
            trainers[key], names[key] = make_trainer(model, split, opt, soft, args.dev), opt
    batches = list(trainers["baseline/plain"].batches.iterate())
    x0, y0 = batches[-1]  # not one of the timed rounds' batches (none is used twice when rounds fit)
    log("  equivalence (float64 reference: eager, slow)")
    equiv = equivalence(model, split, x0, y0, options, args.dev)
    start = {k: v.detach().clone() for k, v in model.named_parameters()}
    log(f"  timing: up to {args.rounds} interleaved rounds of {len(trainers)} steps")
    steps = {k: t.train_step for k, t in trainers.items()}
    med, first, rounds = interleaved(steps, names, batches[:-1], args.rounds, args.budget, args.min_rounds, args.dev)
    prep = data_prep(trainers["baseline/plain"], min(8, len(batches)))
    flops = flops_per_image(model)
    rows = {}
    for opt in options:
        for kind in ("plain", "soft"):
            key = f"{opt.name}/{kind}"
            rows.setdefault(opt.name, {})[kind] = {
                "step_s": med[key], "images_per_s": BATCH / med[key], "first_step_s": first[key],
                "speedup": med[f"baseline/{kind}"] / med[key],
                "achieved_flops": flops["train"] * BATCH / med[key],
                "trajectory": trajectory(trainers[key], trainers[f"baseline/{kind}"], start),
                "compiled": trainers[key].compiled, **equiv[kind][opt.name]}
    payoff = {}
    for name, cost in compile_cost.items():
        ref = "1-thread" if names[f"{name}/soft"].threads == 1 and "1-thread/soft" in med else "baseline"
        saved = med[f"{ref}/soft"] - med[f"{name}/soft"]
        payoff[name] = {"vs": ref, "saved_per_step_s": saved}
        for which in ("cold", "warm"):
            c = cost[which].get("compile_s")
            if c is None:
                continue
            payoff[name][f"break_even_steps_{which}"] = c / saved if saved > 0 else None
            for n in RUN_STEPS:
                payoff[name][f"net_s_{n}_steps_{which}"] = n * saved - c
    return {"model": source, "data": data_source, "rounds": rounds, "flops_per_image": flops, "options": rows,
            "compile_cost": compile_cost, "compile_payoff": payoff, "data_prep_s": prep,
            "data_prep_fraction": prep / med["baseline/soft"]}


def bench_methods(arch: str, args, log) -> dict:
    """Median eager step of every row of METHOD_ROWS and of the plain step, interleaved on the same batches."""
    model, source = base_model(arch)
    split, data_source = training_images(args.data, (args.rounds + 2) * BATCH)
    base = next(o for o in OPTIONS if o.name == "baseline")
    trainers = {"plain": make_trainer(model, split, base, False, args.dev)}
    for label, row in METHOD_ROWS.items():
        trainers[label] = make_trainer(model, split, base, row, args.dev)
    batches = list(trainers["plain"].batches.iterate())
    log(f"{arch} ({source}), {data_source}: methods, up to {args.rounds} interleaved rounds of {len(trainers)} steps")
    steps = {k: t.train_step for k, t in trainers.items()}
    med, first, rounds = interleaved(steps, dict.fromkeys(steps, base), batches, args.rounds, args.budget,
                                     args.min_rounds, args.dev)
    rows = {k: {"method": METHOD_ROWS[k][0] if k in METHOD_ROWS else None,
                "settings": METHOD_ROWS[k][1] if k in METHOD_ROWS else {}, "step_s": med[k],
                "images_per_s": BATCH / med[k], "first_step_s": first[k], "vs_plain": med[k] / med["plain"]}
            for k in trainers}
    return {"model": source, "data": data_source, "rounds": rounds, "rows": rows}


def print_methods(result: dict) -> None:
    for arch, r in result["methods"].items():
        print(f"\n{arch} ({r['model']}): step of every method (eager, default threads), batch {BATCH} of {r['data']}, "
              f"median of {r['rounds']} interleaved rounds")
        print(f"{'method':<42}{'ms':>9}{'img/s':>8}{'× plain':>9}{'first ms':>10}")
        for name, v in r["rows"].items():
            print(f"{name:<42}{v['step_s'] * 1e3:>9.1f}{v['images_per_s']:>8.0f}{v['vs_plain']:>9.2f}"
                  f"{v['first_step_s'] * 1e3:>10.0f}")


def default_option(dev: torch.device) -> str:
    """The option TrainConfig's default picks on this machine and device for a single-process run of
    COMPILE_MIN_STEPS steps."""
    with warnings_as_notes():
        return "compile" if use_compile(TrainConfig(device=str(dev)), COMPILE_MIN_STEPS) else "baseline"


def fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def print_tables(result: dict) -> None:
    m = result["machine"]
    on_cpu = m["device"] == "cpu"
    peak = m["peak_flops"] if on_cpu else None  # the estimate is the CPU's: no roofline for another device
    print(f"device: {m['device']} ({m['device_name']})")
    print(f"{m['cpu']}: {m['cores']} cores, torch {m['torch']}, default threads {m['default_threads']}; "
          f"load average {m['loadavg_before']} before, {m['loadavg_after']} after")
    if peak:
        print(f"peak float32 (estimate): {m['cores']} cores × {m['ghz']:.2f} GHz × {m['fma_units']} FMA units × "
              f"{m['fp32_lanes']} lanes × 2 = {peak / 1e9:.0f} GFLOP/s")
    else:
        print("peak float32: not estimated (" + ("no clock rate in /proc/cpuinfo" if on_cpu else
              f"the roofline estimate is CPU only; the steps ran on {m['device']}") + "): '% peak' is '-'")
    if m["skipped_cpu_only"]:
        print(f"skipped on {m['device']} (CPU-only options): {', '.join(m['skipped_cpu_only'])}")
    for arch, r in result["archs"].items():
        fl = r["flops_per_image"]
        roof = f"; roofline {peak / fl['train']:.0f} images/s" if peak else ""
        print(f"\n{arch} ({r['model']}), batch {BATCH} of {r['data']}, median of {r['rounds']} interleaved rounds. "
              f"FLOPs/image: forward {fl['forward'] / 1e6:.1f} M, training step {fl['train'] / 1e6:.1f} M "
              f"({fl['train'] / fl['forward']:.2f}× forward){roof}")
        print(f"{'option':<17}{'step':<6}{'ms':>8}{'img/s':>8}{'× base':>8}{'% peak':>8}{'first ms':>10}"
              f"{'loss err':>10}{'grad err':>10}{'median':>9}{'vs base':>10}{'equiv':>7}{'traject.':>10}")
        for name, kinds in r["options"].items():
            for kind, v in kinds.items():
                e64, eb = v["vs_float64"], v["vs_baseline"]
                pct = f"{100 * v['achieved_flops'] / peak:>7.0f}%" if peak else f"{'-':>8}"
                print(f"{name:<17}{kind:<6}{v['step_s'] * 1e3:>8.1f}{v['images_per_s']:>8.0f}{v['speedup']:>8.2f}"
                      f"{pct}{v['first_step_s'] * 1e3:>10.0f}"
                      f"{e64['loss_rel']:>10.1e}{e64['grad_rel']:>10.1e}{e64['grad_median']:>9.1e}{eb['grad_rel']:>10.1e}"
                      f"{'yes' if v['equivalent'] else 'NO':>7}{v['trajectory']:>10.1e}")
        for name, cost in r["compile_cost"].items():
            pay = r["compile_payoff"][name]
            c, w = cost["cold"].get("compile_s"), cost["warm"].get("compile_s")
            if c is None or w is None:
                print(f"{name}: compile probe failed: {cost['cold'].get('error') or cost['warm'].get('error')}")
                continue
            nets = ", ".join(f"{n} steps {pay[f'net_s_{n}_steps_cold']:+.0f} s cold / "
                             f"{pay[f'net_s_{n}_steps_warm']:+.0f} s warm" for n in RUN_STEPS)
            print(f"{name}: compiling costs {c:.1f} s cold, {w:.1f} s warm (new process, inductor cache); "
                  f"saves {pay['saved_per_step_s'] * 1e3:.0f} ms per soft-quant step vs {pay['vs']}: break-even "
                  f"{fmt(pay['break_even_steps_cold'], '.0f')} steps cold, {fmt(pay['break_even_steps_warm'], '.0f')} "
                  f"warm; net over {nets}")
        print(f"data preparation (index, augment, normalize; serial, before each step): {r['data_prep_s'] * 1e3:.1f} "
              f"ms per batch = {100 * r['data_prep_fraction']:.1f}% of a baseline soft-quant step")
    d = result["default"]
    print(f"\nerrors: relative, vs the step in float64 (loss: task loss; grad: max and median over parameter tensors "
          f"of ‖Δg‖/‖g‖); 'vs base' = max vs the baseline's float32 step. equiv: both errors ≤ {MARGIN:g}× the "
          f"baseline's own, or ≤ {LOSS_TOL:g} (loss) / {GRAD_TOL:g} (grad). 'traject.' = ‖Θ − Θ_base‖ / "
          f"‖Θ_base − Θ_0‖ after the timed steps")
    print(f"default: TrainConfig(compile={TrainConfig().compile!r}) → '{d['option']}' for runs of ≥ "
          f"{COMPILE_MIN_STEPS} steps here (baseline below that)")
    for arch, t in d["soft_speedup"].items():
        print(f"  {arch}: soft-quant {t['images_per_s']:.0f} images/s vs today's {t['baseline_images_per_s']:.0f}: "
              f"{t['ratio']:.2f}× (target ≥ 1.3×)")


def main(argv: list[str] | None = None) -> int:
    p = cli.Parser("bench/train.py", __doc__)
    p.add_argument("--quick", action="store_true", help="4 timed rounds, no compile+cl option (a few minutes)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--arch", nargs="+", default=["resnet20", "resnet56"], help="models (default: resnet20 resnet56)")
    p.add_argument("--rounds", type=cli.positive_int, default=None, help="timed rounds (default: 4 quick, 20 full)")
    p.add_argument("--data", default=None, help="CIFAR-10 folder (default: see landscape.data)")
    p.add_argument("--device", default="cpu",
                   help="torch device the timed work runs on, e.g. cpu, cuda, cuda:1 (default: cpu)")
    p.add_argument("--only", choices=["options", "methods"], default=None,
                   help="only the options study (the speed-up options, equivalence, compile cost) or only the "
                        "methods table (every method's step vs the plain step); default: both")
    args = p.parse_args(argv)
    args.dev = cli.device(args.device)
    args.rounds = args.rounds or (4 if args.quick else 20)
    args.min_rounds, args.budget = (min(3, args.rounds), 60.0) if args.quick else (min(10, args.rounds), 600.0)
    t0 = time.perf_counter()
    log = (lambda *a: None) if args.json else (
        lambda *a: print(f"[{time.perf_counter() - t0:5.0f} s]", *a, file=sys.stderr, flush=True))
    options = [o for o in OPTIONS if not (args.quick and o.name in QUICK_SKIP)]
    skipped = [o.name for o in options if args.dev.type != "cpu" and o.name in CPU_ONLY]
    options = [o for o in options if o.name not in skipped]
    if skipped:
        log(f"skipped on {args.dev} (CPU-only options): {', '.join(skipped)}")
    cache = tempfile.mkdtemp(prefix="bench-train-inductor-")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # read by inductor at each use; children inherit it
    load_before = os.getloadavg()
    try:
        archs = {arch: bench_arch(arch, args, options, log) for arch in args.arch} if args.only != "methods" else {}
        methods = {arch: bench_methods(arch, args, log) for arch in args.arch} if args.only != "options" else {}
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    dev = args.dev
    result = {"machine": {**cpu_peak(), "device": str(dev),
                          "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type,
                          "skipped_cpu_only": skipped, "torch": torch.__version__, "default_threads": DEFAULT_THREADS,
                          "loadavg_before": [round(v, 2) for v in load_before],
                          "loadavg_after": [round(v, 2) for v in os.getloadavg()]},
              "tolerance": {"loss_rel": LOSS_TOL, "grad_rel": GRAD_TOL, "margin_over_baseline": MARGIN}, "archs": archs,
              "methods": methods}
    option = default_option(dev)
    result["default"] = {"option": option, "compile_min_steps": COMPILE_MIN_STEPS, "soft_speedup": {
        arch: {"images_per_s": r["options"][option]["soft"]["images_per_s"],
               "baseline_images_per_s": r["options"]["baseline"]["soft"]["images_per_s"],
               "ratio": r["options"][option]["soft"]["speedup"]} for arch, r in archs.items()}}
    if args.json:
        cli.print_json(result)
    else:
        if archs:
            print_tables(result)
        if methods:
            print_methods(result)
    return 0


if __name__ == "__main__":
    cli.run(main, "bench/train.py")
