"""Throughput of our TransformerLM against HF transformers' LlamaForCausalLM of the identical shape (CPU, fp32).

    uv run python benchmarks/bench_model.py            # full run (~10 minutes on 2 cores)
    uv run python benchmarks/bench_model.py --quick    # smoke run: tiny model, one repetition, no compile

Both sides train with torch.optim.AdamW and our cross_entropy, so only the model differs. Repetitions of the
contestants are interleaved (ours, HF, ours, HF, ...) so that load from other processes biases both alike; the
table reports the median tokens/s of each and the ratio ours / reference.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from hf_llama import hf_llama  # benchmarks/ sibling (scripts run from this folder)
from transformers import LlamaForCausalLM

from cs336_basics.model import ModelConfig, TransformerLM
from cs336_basics.nn_utils import cross_entropy


def logits_fn(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    if isinstance(model, LlamaForCausalLM):
        return lambda x: model(input_ids=x, use_cache=False).logits
    return model


@dataclass
class Contestant:
    name: str
    run: Callable[[], None]  # one step (train or forward)


def make_contestant(name: str, model: torch.nn.Module, batch: torch.Tensor, train: bool) -> Contestant:
    forward = logits_fn(model)
    x, y = batch[:, :-1], batch[:, 1:]
    if not train:

        def run():
            with torch.no_grad():
                forward(x)

        return Contestant(name, run)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def run():
        loss = cross_entropy(forward(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return Contestant(name, run)


def measure(
    contestants: list[Contestant], tokens_per_step: int, reps: int, steps: int, warmup: int
) -> dict[str, float]:
    """Median tokens/s of each contestant, repetitions interleaved across contestants."""
    for c in contestants:
        for _ in range(warmup):
            c.run()
    rates: dict[str, list[float]] = {c.name: [] for c in contestants}
    for _ in range(reps):
        for c in contestants:
            start = time.perf_counter()
            for _ in range(steps):
                c.run()
            rates[c.name].append(steps * tokens_per_step / (time.perf_counter() - start))
    return {name: statistics.median(r) for name, r in rates.items()}


def build_models(config: ModelConfig, compile_ours: bool) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    models = {
        "ours torch": TransformerLM(config.__class__(**{**config.__dict__, "attn_backend": "torch"})),
        "HF sdpa": hf_llama(config, "sdpa", use_cache=False),
        "ours scratch": TransformerLM(config.__class__(**{**config.__dict__, "attn_backend": "scratch"})),
        "HF eager": hf_llama(config, "eager", use_cache=False),
    }
    if compile_ours:
        for backend in ("torch", "scratch"):
            model = TransformerLM(config.__class__(**{**config.__dict__, "attn_backend": backend}))
            models[f"ours {backend} compiled"] = torch.compile(model)
    return models


# (ours, reference, the target ratio of training throughput)
PAIRS = [
    ("ours torch", "HF sdpa", 1.0),
    ("ours scratch", "HF eager", 1.0),
    ("ours torch compiled", "HF sdpa", 1.1),
    ("ours scratch compiled", "HF sdpa", 1.1),
]


def run_scenario(label: str, config: ModelConfig, batch_size: int, train: bool, args) -> list[list[str]]:
    models = build_models(config, compile_ours=not args.quick and not args.no_compile)
    batch = torch.randint(0, config.vocab_size, (batch_size, config.context_length + 1))
    contestants = [make_contestant(name, model, batch, train) for name, model in models.items()]
    tokens = batch_size * config.context_length
    rates = measure(contestants, tokens, args.reps, args.steps, args.warmup)
    rows = []
    for ours, ref, target in PAIRS:
        if ours in rates:
            ratio = rates[ours] / rates[ref]
            verdict = f">= {target:.1f}x {'ok' if ratio >= target else 'BELOW'}" if train else "-"
            rows.append(
                [label, ours, f"{rates[ours]:,.0f}", ref, f"{rates[ref]:,.0f}", f"{ratio:.2f}x", verdict]
            )
    print(format_rows(rows), flush=True)
    return rows


def format_rows(rows: list[list[str]]) -> str:
    headers = ["scenario", "ours", "tok/s", "reference", "tok/s", "ratio", "target"]
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def fmt(cells: list[str]) -> str:
        return " | ".join(
            c.ljust(w) if i in (0, 1, 3) else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        )

    return "\n".join([fmt(headers), "-+-".join("-" * w for w in widths), *map(fmt, rows)])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: tiny model, 1 repetition, no compile"
    )
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile contestants")
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions per contestant")
    parser.add_argument("--steps", type=int, default=2, help="steps per repetition")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per contestant first")
    parser.add_argument(
        "--only", choices=["train", "forward", "long"], action="append", help="run only these scenarios"
    )
    args = parser.parse_args()
    if args.quick:
        args.reps, args.steps, args.warmup = 1, 1, 1
        config = ModelConfig(vocab_size=500, context_length=64, d_model=64, num_layers=2, num_heads=4)
        long_config, batch_size = ModelConfig(**{**config.__dict__, "context_length": 128}), 4
    else:
        config = ModelConfig(
            vocab_size=10000, context_length=256, d_model=512, num_layers=4, num_heads=16, d_ff=1344
        )
        long_config, batch_size = ModelConfig(**{**config.__dict__, "context_length": 1024}), 8
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; shape: {config}", flush=True)
    scenarios = args.only or ["train", "forward", "long"]
    rows = []
    if "train" in scenarios:
        rows += run_scenario(
            f"train T={config.context_length} B={batch_size}", config, batch_size, True, args
        )
    if "forward" in scenarios:
        rows += run_scenario(
            f"forward T={config.context_length} B={batch_size}", config, batch_size, False, args
        )
    if "long" in scenarios:
        # same tokens per step as the short scenario: a quarter of the sequences, four times as long
        long_batch = max(1, batch_size * config.context_length // long_config.context_length)
        label = f"train T={long_config.context_length} B={long_batch}"
        rows += run_scenario(label, long_config, long_batch, True, args)
    print("\nSummary\n" + format_rows(rows))


if __name__ == "__main__":
    main()
