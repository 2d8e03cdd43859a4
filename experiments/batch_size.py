"""Question 9: batch sizes from 1 up to what memory allows, at the same number of training tokens.

    uv run python experiments/batch_size.py [--dataset shakespeare]

Every run sees the same 409,600 tokens (the base budget: 200 steps x 16 x 128), so batch b runs 3200 / b steps;
evaluation covers the same 20,480 validation tokens at every batch size; the peak rate grows with sqrt(b / 16)
from the base 3e-3 (capped at 1e-2), a common rule for Adam. The memory limit on this CPU is argued in the writeup
from the accounting module (activations grow linearly with b). Figures: learning_curves/batch_size.png
(x = tokens seen) and batch_size_time.png (x = wall-clock); results/batch_size.json.
"""

import math

from common import BASE, baseline_run, parser, plot, runs_dir, setup, train_run, write_results

TOKENS = 409_600
BATCHES = [1, 4, 16, 64, 256]


def main() -> None:
    args = parser(__doc__).parse_args()
    setup(args)
    context = BASE["model"]["context_length"]
    outcomes, runs = {}, []
    out = runs_dir("batch_size", args.dataset)
    for b in BATCHES:
        steps = TOKENS // (b * context)
        lr = min(1e-2, BASE["schedule"]["max_lr"] * math.sqrt(b / 16))
        if b == BASE["data"]["batch_size"]:  # exactly the base run
            run, outcomes[str(b)] = baseline_run(args, "batch_size", f"batch_{b}")
            runs.append(run)
            continue
        outcomes[str(b)] = train_run("batch_size", f"batch_{b}", args, {
            "data": {"batch_size": b},
            "schedule": {"max_steps": steps, "max_lr": lr, "min_lr": lr / 10},
            "run": {"log_every": max(1, 80 // b), "eval_every": max(5, steps // 8), "eval_batches": max(1, 160 // b)},
        })
        runs.append(out / f"batch_{b}")
    suffix = "" if args.dataset == "shakespeare" else f"_{args.dataset}"
    plot(runs, f"batch_size{suffix}.png", x="tokens", title="batch size at a fixed token budget")
    plot(runs, f"batch_size_time{suffix}.png", x="time", title="batch size: wall-clock")
    write_results(f"batch_size{suffix}", outcomes)


if __name__ == "__main__":
    main()
