"""Question 8: learning-rate sweep of the base model, up to and past the point where training diverges.

    uv run python experiments/lr_sweep.py [--dataset shakespeare] [--steps 200] [--seeds 0 1 2] [--rates ...]

Runs runs/lr_sweep/lr_<rate> for each peak rate (same cosine schedule, warmup 5%, min = peak/10), then draws
learning_curves/lr_sweep.png (every run, the y-axis clipped at ln(vocab) + 0.5, a little above the loss of a
uniform guess, so a blown-up run does not flatten the others; the runs cut off are named on the figure) and
lr_sweep_stable.png (the runs whose training loss never rose above its first logged value), and writes
results/lr_sweep.json. The key rates (KEY_RATES, the best ones) are trained once per --seeds value.
"""

import json
import math

from common import parser, plot, runs_dir, seeded_runs, setup, train_run, write_results

RATES = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0]
KEY_RATES = [1e-3, 3e-3, 1e-2]


def never_rose(run_dir) -> bool:
    """Whether the training loss stayed at or below its first logged value (no blow-up during warmup)."""
    from cs336_basics.plot import read_metrics

    losses = [r["train_loss"] for r in read_metrics(run_dir) if "train_loss" in r]
    return max(losses) <= losses[0]


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--rates", type=float, nargs="+", default=RATES, help="peak learning rates (default: %(default)s)")
    args = p.parse_args()
    setup(args)
    outcomes = {}
    for lr in args.rates:
        schedule = {"schedule": {"max_lr": lr, "min_lr": lr / 10}}
        run = seeded_runs if lr in KEY_RATES else train_run
        outcomes[f"{lr:g}"] = run("lr_sweep", f"lr_{lr:g}", args, schedule)
    suffix = ("" if args.dataset == "shakespeare" else f"_{args.dataset}") + (f"_steps{args.steps}" if args.steps
                                                                              else "")
    out = runs_dir("lr_sweep", args)
    runs = [out / f"lr_{lr:g}" for lr in args.rates]
    ymax = math.log(json.loads((runs[0] / "config.json").read_text())["model"]["vocab_size"]) + 0.5
    plot(runs, f"lr_sweep{suffix}.png", title="learning-rate sweep (seed 0)", ymax=ymax)
    stable = [r for r, o in zip(runs, outcomes.values()) if o["status"] == "finished" and never_rose(r)]
    plot(stable, f"lr_sweep_stable{suffix}.png", title="learning-rate sweep (runs without a loss blow-up, seed 0)")
    write_results(f"lr_sweep{suffix}", outcomes)


if __name__ == "__main__":
    main()
