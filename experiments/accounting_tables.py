"""Questions 4 and 6: resource accounting tables, the AdamW memory/FLOPs algebra, and a check against reality.

    uv run python experiments/accounting_tables.py

1. Saves the accounting CLI's reports: results/accounting_gpt2.txt (`python -m cs336_basics.accounting --preset all`)
   and results/accounting_gpt2xl_ctx16384.txt (`... --preset gpt2-xl --context-length 16384`).
2. GPT-2 XL in fp32 as memory = a * batch_size + b, the largest batch in 80 GB, AdamW FLOPs per step, and the
   days for 400K steps at batch 1024 on one A100 (19.5 TFLOP/s) at 50% MFU.
3. Checks the activation algebra on a small model two ways: the bytes autograd really keeps for the backward pass
   (summed by a saved-tensors hook, at batch 2 and 8: the difference / 6 is the part per sequence), and the peak
   RSS of a full training step (forward, backward, AdamW) measured in a fresh process per batch size, whose slope
   over the batch size is the activation memory per sequence.
Writes results/accounting.json.
"""

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

from cs336_basics.atomic import atomic_write_text
from common import ROOT, write_results

SMALL = dict(vocab_size=2048, context_length=256, d_model=256, num_layers=4, num_heads=8, d_ff=None)
RSS_BATCHES = [8, 12, 16, 24, 32]  # below ~8 the peak is the ~1.1 GB reached while importing torch
ADAMW_FLOPS_PER_PARAMETER = 14  # m: 3, v: 4, update m/(sqrt(v)+eps) * lr: 5, decoupled decay: 2


def cli_report(argv: list[str], out: str) -> None:
    from cs336_basics.accounting import main as accounting_main

    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        accounting_main(argv)
    header = f"$ uv run python -m cs336_basics.accounting {' '.join(argv)}\n\n"
    atomic_write_text(Path(out), header + text.getvalue())
    print(f"wrote {out}")


def gpt2_xl_algebra() -> dict:
    import torch

    from cs336_basics.accounting import (
        PRESETS,
        activation_counts,
        memory_bytes,
        parameter_counts,
        training_days,
        training_flops_per_token,
    )

    xl = PRESETS["gpt2-xl"]
    n_params = sum(parameter_counts(xl).values())
    # The closed forms the writeup states (and executes as doctests) must equal the module's counts.
    V, T, d, L, h, f = xl.vocab_size, xl.context_length, xl.d_model, xl.num_layers, xl.num_heads, xl.resolved_d_ff
    assert n_params == 2 * V * d + L * (4 * d * d + 3 * d * f + 2 * d) + d
    assert sum(activation_counts(xl, 1).values()) == L * (10 * T * d + 4 * T * f + 2 * h * T * T) + T * d + 2 * T * V
    fixed = sum(memory_bytes(xl, 0, torch.float32).values())  # parameters + gradients + AdamW state
    per_sequence = memory_bytes(xl, 1, torch.float32)["activations"]
    return {
        "parameters": n_params,
        "parameters_fp32_gb": n_params * 4 / 1e9,
        "memory_gb_a_per_sequence": per_sequence / 1e9,
        "memory_gb_b_fixed": fixed / 1e9,
        "largest_batch_80GB": int((80e9 - fixed) // per_sequence),
        "adamw_flops_per_step": ADAMW_FLOPS_PER_PARAMETER * n_params,
        "training_flops_per_token": training_flops_per_token(xl),
        "days_400k_steps_batch_1024_a100_fp32_50pct_mfu": training_days(xl, 400_000, 1024, 19.5e12, 0.5),
    }


def saved_activation_bytes(batch_size: int) -> int:
    """Bytes of the tensors autograd keeps for backward in one forward pass + loss (parameters excluded)."""
    import torch

    from cs336_basics.model import ModelConfig, TransformerLM
    from cs336_basics.nn_utils import cross_entropy

    torch.manual_seed(0)
    config = ModelConfig(**SMALL)
    model = TransformerLM(config)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params and t.is_floating_point():
            storages[ptr] = t.untyped_storage().nbytes()
        return t

    x = torch.randint(0, config.vocab_size, (batch_size, config.context_length))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        cross_entropy(model(x), x)
    return sum(storages.values())


def measure_rss(batch_size: int) -> None:
    """(In a fresh process.) Peak RSS in bytes of one full training step at this batch size, printed as JSON."""
    import torch

    from cs336_basics.model import ModelConfig, TransformerLM
    from cs336_basics.nn_utils import cross_entropy
    from cs336_basics.training.optimizer import AdamW

    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = ModelConfig(**SMALL)
    model = TransformerLM(config)
    optimizer = AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, config.vocab_size, (batch_size, config.context_length))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    for _ in range(2):  # the second step runs with gradients and AdamW state already allocated
        loss = cross_entropy(model(x), x)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"batch_size": batch_size, "rss_before_bytes": before, "rss_peak_bytes": peak}))


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return slope, my - slope * mx


def small_model_check() -> dict:
    import torch

    from cs336_basics.accounting import activation_counts, memory_bytes
    from cs336_basics.model import ModelConfig

    config = ModelConfig(**SMALL)
    predicted = memory_bytes(config, 1, torch.float32)
    by_component = {k: v * 4 for k, v in activation_counts(config, 1).items()}
    saved = {b: saved_activation_bytes(b) for b in (2, 8)}
    rss = []
    for b in RSS_BATCHES:
        out = subprocess.run([sys.executable, __file__, "--_rss", str(b)], check=True, capture_output=True,
                             text=True, cwd=ROOT).stdout
        rss.append(json.loads(out.strip().splitlines()[-1]))
    above = [r for r in rss if r["rss_peak_bytes"] > 1.01 * r["rss_before_bytes"]]  # the step set the peak
    slope, intercept = linear_fit([r["batch_size"] for r in above], [r["rss_peak_bytes"] for r in above])
    return {
        "config": SMALL,
        "predicted_activation_bytes_per_sequence": predicted["activations"],
        "predicted_activation_bytes_by_component": by_component,
        "predicted_fixed_bytes (params+grads+adam)": predicted["parameters"] + predicted["gradients"]
        + predicted["AdamW state (m, v)"],
        "autograd_saved_bytes": {str(b): v for b, v in saved.items()},
        "autograd_saved_bytes_per_sequence": (saved[8] - saved[2]) / 6,  # the slope: batch-independent parts cancel
        "rss_by_batch": rss,
        "rss_slope_bytes_per_sequence": slope,
        "rss_intercept_bytes": intercept,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--_rss", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    os.chdir(ROOT)
    if args._rss is not None:
        measure_rss(args._rss)
        return
    Path("results").mkdir(exist_ok=True)
    cli_report(["--preset", "all"], "results/accounting_gpt2.txt")
    cli_report(["--preset", "gpt2-xl", "--context-length", "16384"], "results/accounting_gpt2xl_ctx16384.txt")
    results = {"gpt2_xl": gpt2_xl_algebra(), "small_model_check": small_model_check()}
    write_results("accounting", results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
