"""Pretraining a character-level language model (`landscape pretrain --dataset text --arch gpt`): the typed spec
(`LMPretrainSpec`) and the job (`pretrain_lm`), on the trainer every other training uses.

The defaults are nanoGPT's CPU setting of `shakespeare_char` (its README; the anchor of ../shared/data/README.md):
the 4 × 4 × 128 GPT with 64 characters of context, 2,000 steps of 12 windows, AdamW (lr 1e-3, β = (0.9, 0.99),
decoupled weight decay 0.1 on the matrices), 100 warm-up steps (5% of 2,000) then cosine decay to lr/10,
gradient norm clipped at 1, no dropout. Differences, on purpose: training windows come from this project's seeded
generator (`text.TrainWindows`), and the validation loss is measured on every non-overlapping window of the
validation split (`text.eval_windows`, fixed), not on nanoGPT's 20 random batches: the two agree in expectation,
ours has no sampling noise. Reported in nats per character, with perplexity and bits per character.

The checkpoint holds the state dict, arch and arch_kwargs (with vocab_size and context), the vocabulary
(`vocab`: its characters in token order) and where it came from (`data`: path, sha256, split sizes), the
training config and the validation numbers after every evaluation.

    >>> spec = LMPretrainSpec(out="runs/gpt.pt")
    >>> spec.train.optimizer, spec.train.warmup, spec.model_kwargs(65)["n_embd"]
    ('adamw', 0.05, 128)
    >>> LMPretrainSpec(out="x.pt", arch="resnet20")
    Traceback (most recent call last):
    ...
    ValueError: arch resnet20 is an image architecture; a language model needs one of: gpt, hf-gpt2, hf-llama
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from .errors import LandscapeError
from .models import LANGUAGE_ARCHS
from .trainer import Callback, ProgressBar, TrainConfig, Trainer

# nanoGPT's shakespeare_char CPU setting (README: --device=cpu --compile=False --eval_iters=20 --log_interval=1
# --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000
# --dropout=0.0), with config/train_shakespeare_char.py's lr 1e-3, min_lr 1e-4, beta2 0.99, warmup 100
NANOGPT_CPU = TrainConfig(epochs=1, batch_size=12, lr=1e-3, momentum=0.9, beta2=0.99, weight_decay=0.1,
                          optimizer="adamw", schedule="onecycle", warmup=0.05, final_lr=0.1, grad_clip=1.0,
                          compile="off")


@dataclass(frozen=True)
class LMPretrainSpec:
    """What `pretrain_lm` trains (module docstring); units beside each field; checked at construction.

    Examples:
        >>> LMPretrainSpec(out="gpt.pt", steps=100).train.lr
        0.001
        >>> LMPretrainSpec(out="gpt.pt", context=0)
        Traceback (most recent call last):
        ...
        ValueError: context must be an integer ≥ 1, got 0
    """

    out: str  # the checkpoint to write (.pt)
    text: str | None = None  # a UTF-8 text file (None: tinyshakespeare.txt from the data roots)
    arch: str = "gpt"  # a language architecture (models.LANGUAGE_ARCHS)
    arch_kwargs: dict[str, Any] = field(default_factory=dict)  # GPTConfig fields; vocab_size and context are set from the text and `context`  # noqa: E501
    checkpoint: str | None = None  # continue a character model's checkpoint (its vocabulary must cover the text; its arch_kwargs are used)  # noqa: E501
    context: int = 64  # characters per training window and per evaluation window
    steps: int = 2000  # optimizer steps (each one batch of train.batch_size windows)
    train: TrainConfig = NANOGPT_CPU  # optimizer, schedule, batch size (windows per step), seed, device
    eval_every: int = 250  # steps between validation evaluations (and one at the end)
    eval_windows: int | None = 200  # windows per evaluation during training (None: all); the final one uses all
    force: bool = False  # overwrite `out`

    def __post_init__(self):
        if self.arch not in LANGUAGE_ARCHS:
            raise ValueError(f"arch {self.arch} is an image architecture; a language model needs one of: "
                             f"{', '.join(LANGUAGE_ARCHS)}")
        for name in ("context", "steps", "eval_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer ≥ 1, got {value!r}")
        if self.eval_windows is not None and self.eval_windows < 1:
            raise ValueError(f"eval_windows must be ≥ 1 or None, got {self.eval_windows}")
        for name in ("vocab_size", "context"):
            if name in self.arch_kwargs:
                raise ValueError(f"arch_kwargs may not set {name}: it comes from the text / the context option")

    def model_kwargs(self, vocab_size: int) -> dict[str, Any]:
        """The model's kwargs: GPTConfig's defaults, then arch_kwargs, with the text's vocabulary and the context.

        Args:
            vocab_size: the text's number of characters.

        Returns:
            GPTConfig's fields.

        Examples:
            >>> LMPretrainSpec(out="x.pt", arch_kwargs={"n_layer": 2}).model_kwargs(65)["n_layer"]
            2
        """
        from .gpt import GPTConfig

        return {**dataclasses.asdict(GPTConfig()), **self.arch_kwargs, "vocab_size": vocab_size,
                "context": self.context}


class Evaluations(Callback):
    """Validation loss every `every` steps (on the first `windows` windows), kept in `history`."""

    def __init__(self, batches, every: int, device, quiet: bool):
        self.batches, self.every, self.device, self.quiet, self.history = batches, every, device, quiet, []
        self.seconds = 0.0  # spent evaluating (not training)

    def on_step_end(self, trainer: Trainer, scalars: dict[str, float]) -> None:
        if trainer.step % self.every == 0 and trainer.step < trainer.total_steps:
            self.measure(trainer)

    def measure(self, trainer: Trainer) -> None:
        from .text import lm_metrics

        start = time.perf_counter()
        m = {"step": trainer.step, **lm_metrics(trainer.model, self.batches, self.device)}
        self.seconds += time.perf_counter() - start
        self.history.append(m)
        if not self.quiet:
            print(f"step {m['step']}: validation loss {m['loss']:.4f} nats/char ({m['tokens']:,} characters)",
                  flush=True)


def char_checkpoint(checkpoint: str):
    """(its Vocab, its arch_kwargs) of a character model's checkpoint, without building the model; a one-line error
    for a checkpoint without a vocabulary (an image model's)."""
    from .models import read_checkpoint, resolve_checkpoint
    from .text import Vocab

    ckpt = read_checkpoint(resolve_checkpoint(checkpoint))
    if "vocab" not in ckpt:
        raise LandscapeError(f"checkpoint {checkpoint} has no character vocabulary: not a language model of "
                             "`landscape pretrain --dataset text`")
    return Vocab(ckpt["vocab"]), dict(ckpt.get("arch_kwargs") or {})


def load_char_model(checkpoint: str, arch: str = "gpt"):
    """(model, its Vocab, its arch_kwargs) of a character model's checkpoint (`char_checkpoint`, then the model);
    a one-line error for a checkpoint without a vocabulary (an image model's) or of another arch."""
    from .models import load_model

    vocab, kwargs = char_checkpoint(checkpoint)
    return load_model(arch, checkpoint, kwargs), vocab, kwargs


def pretrain_lm(spec: LMPretrainSpec, *, progress: bool = True) -> dict[str, Any]:
    """Train the spec's model on its text, evaluate, write the checkpoint (module docstring).

    Examples:
        >>> import dataclasses, pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "t.txt").write_text("to be or not to be, " * 50)
        >>> spec = LMPretrainSpec(out=str(folder / "gpt.pt"), text=str(folder / "t.txt"), context=8, steps=5,
        ...                       arch_kwargs={"n_layer": 1, "n_head": 1, "n_embd": 8},
        ...                       train=dataclasses.replace(NANOGPT_CPU, batch_size=4))
        >>> result = pretrain_lm(spec, progress=False)
        >>> result["parameters"], len(result["history"]), result["val_tokens"]
        (1016, 1, 96)

    Args:
        spec: what to train.
        progress: a progress bar and the validation lines on stdout.

    Returns:
        The summary: out, val_loss, val_perplexity, val_bits_per_char, val_tokens, train_loss (the last step's),
            parameters, seconds (training, without the evaluations), tokens_per_second (trained characters per
            second of training) and history (every evaluation).
    """
    import torch

    from .models import build_model, save_checkpoint
    from .outputs import check_out
    from .text import TrainWindows, eval_windows, lm_loss, lm_metrics, load_text

    out = check_out(spec.out, spec.force)
    dev = torch.device(spec.train.device)
    if spec.checkpoint is None:
        corpus = load_text(spec.text)
        kwargs = spec.model_kwargs(corpus.vocab.size)
        with torch.random.fork_rng():  # the initialisation from the seed, whatever drew numbers before it
            torch.manual_seed(spec.train.seed)
            model = build_model(spec.arch, kwargs)
    else:
        model, vocab, kwargs = load_char_model(spec.checkpoint, spec.arch)
        corpus = load_text(spec.text, vocab=vocab)
        if spec.context > kwargs["context"]:
            raise LandscapeError(f"context {spec.context} is longer than the checkpoint's {kwargs['context']}")
    model = model.to(dev)
    windows = TrainWindows(corpus.train, context=spec.context, batch_size=spec.train.batch_size, steps=spec.steps,
                           seed=spec.train.seed)
    val_all = eval_windows(corpus.val, context=spec.context, batch_size=64)
    val_some = eval_windows(corpus.val, context=spec.context, batch_size=64, limit=spec.eval_windows)
    evals = Evaluations(val_some, spec.eval_every, dev, quiet=not progress)
    last: dict[str, float] = {}

    class Last(Callback):
        def on_step_end(self, trainer, scalars):
            last.update(scalars)

    callbacks = [evals, Last()] + ([ProgressBar()] if progress else [])
    config = dataclasses.replace(spec.train, epochs=1)
    trainer = Trainer(model, windows, config, callbacks=callbacks, loss_fn=lm_loss)
    start = time.perf_counter()
    trained = trainer.fit()
    seconds = time.perf_counter() - start - evals.seconds  # training alone
    final = {"step": trainer.step, **lm_metrics(trained, val_all, dev)}
    evals.history.append(final)
    save_checkpoint(trained.cpu(), out, arch=spec.arch, arch_kwargs=kwargs, vocab=corpus.vocab.chars,
                    data=corpus.record(), config=dataclasses.asdict(config), val_loss=final["loss"],
                    val_history=evals.history)
    return {"out": str(out), "val_loss": final["loss"], "val_perplexity": final["perplexity"],
            "val_bits_per_char": final["bits_per_token"], "val_tokens": final["tokens"],
            "train_loss": last.get("task_loss"), "parameters": sum(p.numel() for p in trained.parameters()),
            "seconds": seconds, "tokens_per_second": spec.steps * spec.train.batch_size * spec.context / seconds,
            "history": evals.history}


def text_run_data(spec: Any, text: str | None, eval_batch_size: int) -> tuple:
    """What `training.run_training` trains and evaluates a language-model run on (`--dataset text`): (training
    windows, validation batches, the data spec to record, the loss). The text is `text` (--data), else the one
    the run recorded, else tinyshakespeare; it is encoded with the checkpoint's vocabulary (refused where that
    cannot encode it) and, for a run that recorded a digest, must be the same file. An epoch is one pass worth of
    characters: ceil(train characters / (batch × context)) random windows of the model's context; `limit_train`
    caps the characters, `limit_test` the validation windows.

    Args:
        spec: the run's `RunSpec` (a language arch; its checkpoint holds the vocabulary).
        text: the text file (--data), or None.
        eval_batch_size: validation windows per batch.

    Returns:
        (TrainWindows, list of (x, y) batches, recorded data spec, `text.lm_loss`).
    """
    import math

    from .text import TrainWindows, eval_windows, lm_loss, recorded_corpus

    if spec.arch not in LANGUAGE_ARCHS:
        raise LandscapeError(f"--dataset text needs a language architecture ({', '.join(LANGUAGE_ARCHS)}), not "
                             f"{spec.arch}")
    if spec.checkpoint is None:
        raise LandscapeError("a language-model run starts from a checkpoint of `landscape pretrain --dataset text` "
                             "(its vocabulary)")
    vocab, kwargs = char_checkpoint(spec.checkpoint)  # run_training has built the model: the vocabulary only
    corpus = recorded_corpus(dict(spec.data or {}), text, vocab)
    context = int(kwargs.get("context", spec.arch_kwargs.get("context", 64)))
    chars = min(len(corpus.train), spec.limit_train or len(corpus.train))
    steps = max(1, math.ceil(chars / (spec.train.batch_size * context)))
    train = TrainWindows(corpus.train, context=context, batch_size=spec.train.batch_size, steps=steps,
                         seed=spec.train.seed)
    test = eval_windows(corpus.val, context=context, batch_size=eval_batch_size, limit=spec.limit_test)
    return train, test, {**corpus.record(), "context": context}, lm_loss
