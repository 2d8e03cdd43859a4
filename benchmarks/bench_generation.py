"""Decoding speed: our generate loop with the KV cache, against the same loop recomputing the prefix for
every token, and against HF transformers' LlamaForCausalLM.generate (with its cache) of the identical shape
(CPU, fp32).

    uv run python benchmarks/bench_generation.py            # TinyStories-sized model (~2 minutes on 2 cores)
    uv run python benchmarks/bench_generation.py --quick    # smoke run: tiny model, one repetition

Greedy decoding of exactly --new-tokens tokens (no end-of-text stop) after a --prompt-tokens prompt, batch 1.
Repetitions are interleaved across contestants so load from other processes biases all alike; the table gives
the median new tokens/s and the ratio of ours (cached) to each reference.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from hf_llama import hf_llama  # benchmarks/ sibling (scripts run from this folder)

from cs336_basics.generation import generate_ids
from cs336_basics.model import ModelConfig, TransformerLM


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny model, one repetition")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions per contestant")
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (default: %(default)s)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        config = ModelConfig(vocab_size=500, context_length=64, d_model=64, num_layers=2, num_heads=4)
        args.reps, args.prompt_tokens, args.new_tokens = 1, 8, 32
    else:
        config = ModelConfig(
            vocab_size=10000, context_length=256, d_model=512, num_layers=4, num_heads=16, d_ff=1344
        )
    torch.manual_seed(0)
    ours, hf = TransformerLM(config).eval(), hf_llama(config).eval()
    prompt = torch.randint(0, config.vocab_size, (1, args.prompt_tokens))
    n = args.new_tokens

    def hf_generate():
        with torch.inference_mode():
            out = hf.generate(
                prompt,
                max_new_tokens=n,
                min_new_tokens=n,
                do_sample=False,
                eos_token_id=None,
                pad_token_id=0,
                use_cache=True,
            )
        assert out.shape[1] == prompt.shape[1] + n

    contestants = {
        "ours, KV cache": lambda: generate_ids(ours, prompt.tolist(), n, temperature=0, eot_id=None),
        "ours, recompute": lambda: generate_ids(
            ours, prompt.tolist(), n, temperature=0, eot_id=None, use_cache=False
        ),
        "HF generate (cache)": hf_generate,
    }
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); {config}; "
        f"prompt {args.prompt_tokens}, "
        f"{n} new tokens",
        flush=True,
    )
    for run in contestants.values():  # warm-up
        run()
    rates: dict[str, list[float]] = {name: [] for name in contestants}
    for _ in range(args.reps):
        for name, run in contestants.items():
            start = time.perf_counter()
            run()
            rates[name].append(n / (time.perf_counter() - start))
    ours_rate = statistics.median(rates["ours, KV cache"])
    print(f"{'contestant':<22} {'new tok/s':>10}  ours(cache) / this")
    for name, r in rates.items():
        print(f"{name:<22} {statistics.median(r):>10.1f}  {ours_rate / statistics.median(r):.2f}x")


if __name__ == "__main__":
    main()
