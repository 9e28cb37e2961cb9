"""Pretraining speed of a character-level GPT: characters per second of the toolkit's training step
(`Trainer.train_step`, what `landscape pretrain --dataset text` runs) against a plain PyTorch loop, side by side in
one run, and how far their weights drift apart.

Both train their own copy of the same GPT (nanoGPT's CPU shape by default: 4 layers × 4 heads × 128 wide, 64
characters of context, batch 12) on the same batches (`text.TrainWindows` over tinyshakespeare's training split,
random tokens when the text is not found) with the same optimizer: AdamW (lr 1e-3, β = (0.9, 0.99), weight decay
0.1 on the matrices), gradient norm clipped at 1, eager (no torch.compile). The plain loop is nanoGPT's inner
loop: forward, cross-entropy, `zero_grad(set_to_none=True)`, backward, `clip_grad_norm_`, `step`; the trainer's
step adds its finiteness check, its scalars and its LR scheduler step (constant here, so both see lr 1e-3).

A third side, "soft-quant", is the trainer's step with the soft-quantization loss on every selected weight (weight
coupling, `--h`/`--w`, its default estimator; the tied embedding/head included), on a third copy: the cost of the
method per step, against the same plain step (the issue's goal: ≤ 1.10×). Its weights are not in the drift.

Timing: medians over interleaved rounds (each side steps once per round on the round's batch, the order rotating
each round) after one untimed warm-up round; characters/s = batch × context / median step. "drift": after the
rounds, ‖Θ_trainer − Θ_plain‖ / ‖Θ_plain − Θ_0‖ (0 when both compute the same updates).

    python bench/lm.py [--rounds 50] [--quick] [--json] [--device cpu] [--layers 4 --heads 4 --width 128 --context 64
                        --batch 12] [--h 0.05 --w 0.3]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import statistics
import sys
import time

import torch

from landscape import distributed
from landscape.compress import make_compressor
from landscape.gpt import GPT, GPTConfig
from landscape.lm import NANOGPT_CPU
from landscape.text import TrainWindows, lm_loss, load_text
from landscape.trainer import Trainer, make_optimizer, model_groups


def batches(context: int, batch: int, n: int, vocab: int):
    """n training batches of tinyshakespeare (random tokens over `vocab` when the text is not found)."""
    try:
        corpus = load_text()
        return TrainWindows(corpus.train, context=context, batch_size=batch, steps=n), corpus.vocab.size, "text"
    except Exception:  # no local copy: the same shapes from random tokens
        g = torch.Generator().manual_seed(0)
        data = [(torch.randint(0, vocab, (batch, context), generator=g),
                 torch.randint(0, vocab, (batch, context), generator=g)) for _ in range(n)]
        return data, vocab, "random tokens"


def flat(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten().double() for p in model.parameters()])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/lm.py", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=50, help="timed rounds (default: 50; --quick: 10)")
    p.add_argument("--quick", action="store_true", help="10 rounds")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--device", default="cpu")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--h", type=float, default=0.05, help="soft-quant side: the coupling's h (default: 0.05)")
    p.add_argument("--w", type=float, default=0.3, help="soft-quant side: the coupling's w (default: 0.3)")
    args = p.parse_args(argv)
    rounds = 10 if args.quick else args.rounds
    dev = distributed.usable_device(args.device)
    data, vocab, source = batches(args.context, args.batch, rounds + 1, 65)
    data = [(x.to(dev), y.to(dev)) for x, y in data]
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=vocab, context=args.context, n_layer=args.layers, n_head=args.heads,
                          n_embd=args.width)).to(dev)
    start = flat(model)
    config = dataclasses.replace(NANOGPT_CPU, schedule="constant", device=str(dev))
    soft = Trainer(copy.deepcopy(model), data, config, loss_fn=lm_loss,
                   compressor=make_compressor("weight-coupling", {"h": args.h, "w": args.w}))
    trainer = Trainer(model, data, config, loss_fn=lm_loss)
    plain = copy.deepcopy(model).train()
    optimizer = make_optimizer(model_groups(plain, config), config)

    def plain_step(x, y):
        loss = lm_loss(plain(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(plain.parameters(), config.grad_clip)
        optimizer.step()
        return float(loss.detach())

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    sides = {"trainer": lambda x, y: trainer.train_step(x, y), "plain": plain_step,
             "soft-quant": lambda x, y: soft.train_step(x, y)}
    times = {k: [] for k in sides}
    for r, (x, y) in enumerate(data):
        order = list(sides)[r % 3:] + list(sides)[:r % 3]  # each side first in a third of the rounds
        for name in order:
            sync()
            t0 = time.perf_counter()
            sides[name](x, y)
            sync()
            if r:
                times[name].append(time.perf_counter() - t0)
    median = {k: statistics.median(v) for k, v in times.items()}
    chars = args.batch * args.context
    drift = float((flat(trainer.model) - flat(plain)).norm() / (flat(plain) - start).norm())
    result = {"device": str(dev), "data": source, "rounds": rounds,
              "parameters": sum(q.numel() for q in plain.parameters()),
              "shape": f"{args.layers}x{args.heads}x{args.width}, context {args.context}, batch {args.batch}",
              "rows": [{"loop": k, "median_step_s": median[k], "chars_per_s": chars / median[k],
                        "vs_plain": median[k] / median["plain"]} for k in sides], "drift": drift,
              "threads": torch.get_num_threads()}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"GPT {result['shape']} ({result['parameters']:,} parameters) on {source}, {dev}, "
              f"{result['threads']} threads, median of {rounds} interleaved rounds")
        print("| loop | step (ms) | characters/s | × plain |\n|---|---|---|---|")
        for row in result["rows"]:
            print(f"| {row['loop']} | {1e3 * row['median_step_s']:.2f} | {row['chars_per_s']:,.0f} | "
                  f"{row['vs_plain']:.3f} |")
        print(f"drift after {rounds + 1} steps: {drift:.2e} (‖Θ_trainer − Θ_plain‖ / ‖Θ_plain − Θ_0‖)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
