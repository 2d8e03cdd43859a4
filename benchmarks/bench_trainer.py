"""Trainer overhead on the default (shakespeare) run's shape: Trainer.train() tokens/s vs raw training steps.

- raw: the same model and optimizer, nothing else: forward, our cross_entropy, backward, clip, AdamW, on batches
  made before the clock starts.
- trainer: Trainer.train() for --steps steps: batches drawn from the memory-mapped token file, tqdm, metrics.jsonl,
  periodic evaluation and checkpoints at the default run's rates (eval_every, eval_batches and checkpoint_every
  scaled from its step count to --steps). Its tokens/s is over the training loop (summary["loop_time"]); the
  end-of-run work (whole-validation-set eval, plot, sample) is a fixed cost, reported as a share of a default run.

Repetitions interleave raw and trainer so that load from other processes biases both alike; medians are printed.

    uv run python benchmarks/bench_trainer.py [--steps 60] [--reps 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from cs336_basics.training.config import DEFAULT_PRESET, merge, resolve
from cs336_basics.model import TransformerLM
from cs336_basics.nn_utils import clip_gradients, cross_entropy
from cs336_basics.training.optimizer import AdamW
from cs336_basics.training.trainer import Trainer, param_groups


def raw_tokens_per_s(trainer: Trainer, steps: int) -> float:
    """Throughput of bare steps of a fresh copy of the trainer's model (same shape, same optimizer settings)."""
    config = trainer.config
    model = TransformerLM(config.model).to(trainer.device)
    opt = AdamW(param_groups(model, config.optim.weight_decay), lr=config.schedule.max_lr,
                betas=(config.optim.beta1, config.optim.beta2), eps=config.optim.eps)
    # Fresh batches made before the clock starts (one batch repeated would be memorised, and the tiny gradients
    # of a memorised batch run at a different speed).
    batches = [trainer.next_batch() for _ in range(steps + 2)]

    def step():
        x, y = batches.pop()
        loss = cross_entropy(model(x), y)
        loss.backward()
        clip_gradients(model.parameters(), config.optim.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()  # the trainer reads the loss every step too

    for _ in range(2):  # warm-up: first-touch allocations
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * config.tokens_per_step / (time.perf_counter() - start)


def scaled_config(steps: int, out_dir: str):
    """The default run with --steps steps and its periodic work at the same rate per step."""
    default = resolve(DEFAULT_PRESET)
    scale = steps / default.total_steps
    run = default.run
    return default, merge(default, {
        "schedule": {"max_steps": steps},
        "run": {"out_dir": out_dir, "eval_every": max(1, round(run.eval_every * scale)),
                "eval_batches": max(1, round(run.eval_batches * scale)),
                "checkpoint_every": max(1, round(run.checkpoint_every * scale)),
                "sample_tokens": max(1, round(run.sample_tokens * scale))},
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps per repetition")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions of raw and trainer")
    args = parser.parse_args()

    raw, loop, end_costs = [], [], []
    with tempfile.TemporaryDirectory() as out_dir:
        default, config = scaled_config(args.steps, out_dir)
        for rep in range(args.reps):
            trainer = Trainer(merge(config, {"run": {"name": f"rep{rep}"}}), progress=False)
            if rep % 2 == 0:  # alternate which goes first, so neither always runs on a warmer machine
                raw.append(raw_tokens_per_s(trainer, args.steps))
            summary = trainer.train()
            if rep % 2 == 1:
                raw.append(raw_tokens_per_s(trainer, args.steps))
            loop.append(summary["tokens"] / summary["loop_time"])
            end_costs.append(summary["time"] - summary["loop_time"])
            print(f"rep {rep}: raw {raw[-1]:,.0f} tok/s, trainer {loop[-1]:,.0f} tok/s", flush=True)

    m = default.model
    raw_med, loop_med, end_med = statistics.median(raw), statistics.median(loop), statistics.median(end_costs)
    default_seconds = default.total_steps * default.tokens_per_step / loop_med
    print(f"\nshape: {DEFAULT_PRESET} preset, d_model {m.d_model}, {m.num_layers} layers, context {m.context_length}, "
          f"batch {default.data.batch_size} ({default.tokens_per_step} tokens/step), {trainer.device}, "
          f"{torch.get_num_threads()} threads, {args.steps} steps x {args.reps} reps")
    print("| measure | tokens/s |")
    print("| --- | --- |")
    print(f"| raw step (forward+backward+clip+AdamW) | {raw_med:,.0f} |")
    print(f"| Trainer.train() loop (data, logging, eval, checkpoints) | {loop_med:,.0f} |")
    print(f"\ntrainer/raw = {loop_med / raw_med:.3f}  (overhead {100 * (1 - loop_med / raw_med):.1f}%)")
    print(f"end of run (whole-set eval, plot, sample): {end_med:.1f}s = {100 * end_med / default_seconds:.1f}% of a "
          f"default run's ~{default_seconds:.0f}s of training")


if __name__ == "__main__":
    main()
