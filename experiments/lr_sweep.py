"""Question 8: learning-rate sweep of the base model, up to and past the point where training diverges.

    uv run python experiments/lr_sweep.py [--dataset shakespeare] [--steps 200]

Runs runs/lr_sweep/lr_<rate> for each peak rate (same cosine schedule, warmup 5%, min = peak/10), then draws
learning_curves/lr_sweep.png (every run) and lr_sweep_stable.png (the runs whose training loss never rose above
its first logged value, on a readable scale), and writes results/lr_sweep.json.
"""

from common import parser, plot, runs_dir, setup, train_run, write_results

RATES = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0]


def never_rose(run_dir) -> bool:
    """Whether the training loss stayed at or below its first logged value (no blow-up during warmup)."""
    from cs336_basics.plot import read_metrics

    losses = [r["train_loss"] for r in read_metrics(run_dir) if "train_loss" in r]
    return max(losses) <= losses[0]


def main() -> None:
    args = parser(__doc__).parse_args()
    setup(args)
    outcomes = {}
    for lr in RATES:
        outcomes[f"{lr:g}"] = train_run("lr_sweep", f"lr_{lr:g}", args,
                                        {"schedule": {"max_lr": lr, "min_lr": lr / 10}})
    suffix = "" if args.dataset == "shakespeare" else f"_{args.dataset}"
    out = runs_dir("lr_sweep", args.dataset)
    runs = [out / f"lr_{lr:g}" for lr in RATES]
    plot(runs, f"lr_sweep{suffix}.png", title="learning-rate sweep (all runs)")
    stable = [r for r, o in zip(runs, outcomes.values()) if o["status"] == "finished" and never_rose(r)]
    plot(stable, f"lr_sweep_stable{suffix}.png", title="learning-rate sweep (runs without a loss blow-up)")
    write_results(f"lr_sweep{suffix}", outcomes)


if __name__ == "__main__":
    main()
