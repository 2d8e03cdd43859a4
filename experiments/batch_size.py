"""Question 9: batch sizes from 1 up to what memory allows, at the same number of training tokens, each with its
learning rate re-tuned over three rates.

    uv run python experiments/batch_size.py [--dataset shakespeare] [--steps 200] [--batches 16 128] [--seeds 0 1 2]

Every run sees the same tokens as the base run (--steps x 16 x 128; 409,600 at the base 200 steps), so batch b
runs that / (128 b) steps. The rates tried for batch b are the three grid rates (GRID) around the square-root rule
3e-3 x sqrt(b / 16), a common rule for Adam: its nearest grid rate and the two neighbours. When the best of them is
at an edge, the next grid rate beyond it is tried too, until the best is bracketed by worse rates. Batch 16 at its
rates is exactly the learning-rate sweep's runs (shared). The periodic evaluation covers the whole batches that fit
in 160 validation windows (the base runs' 10 batches of 16), at least one (so 128 windows at batch 64 and 128, 256
at batch 256); the figure compared is the final one, over the whole validation split. The best rate of each batch
size (lowest final loss over the whole validation split, seed 0) is trained once more per extra --seeds value. The
memory limit is reached in practice by experiments/memory_limit.py. Figures: learning_curves/batch_size.png (best
rate per batch size, x = tokens) and batch_size_time.png (x = wall-clock); results/batch_size.json (every rate of
every batch size).
"""

import math
import shutil

from common import BASE, parser, plot, runs_dir, seed_summary, seed_variant, setup, train_run, write_results

BATCHES = [1, 4, 16, 64, 128, 256]
GRID = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
EVAL_WINDOWS = 160


def rates_for(batch: int) -> list[float]:
    """The grid rate nearest (in log) to the square-root rule for `batch`, and its two neighbours, e.g. 16 -> [1e-3,
    3e-3, 1e-2], 128 -> [3e-3, 1e-2, 3e-2]."""
    rule = BASE["schedule"]["max_lr"] * math.sqrt(batch / BASE["data"]["batch_size"])
    i = min(range(1, len(GRID) - 1), key=lambda j: abs(math.log(GRID[j] / rule)))
    return GRID[i - 1 : i + 2]


def beyond_edge(best: float, tried: list[float]) -> float | None:
    """The grid rate past `best` when `best` is the lowest or highest rate tried (so the optimum is not bracketed
    by worse rates on both sides), else None; e.g. best 3e-3 of [3e-4, 1e-3, 3e-3] -> 1e-2."""
    i = GRID.index(best)
    if best == max(tried) and i + 1 < len(GRID):
        return GRID[i + 1]
    if best == min(tried) and i > 0:
        return GRID[i - 1]
    return None


def batch_run(args, batch: int, lr: float, seed: int = 0) -> dict:
    """Batch `batch` at peak rate `lr` (batch 16: the learning-rate sweep's run, copied here under its role)."""
    schedule = {"max_lr": lr, "min_lr": lr / 10}
    if batch == BASE["data"]["batch_size"]:
        outcome = train_run("lr_sweep", f"lr_{lr:g}", args, {"schedule": schedule}, seed=seed)
        view = runs_dir("batch_size", args) / seed_variant(f"batch_{batch}_lr_{lr:g}", seed)
        shutil.copytree(outcome["run_dir"], view, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("checkpoints", "tokenizer"))
        (view / "SOURCE").write_text(f"a copy of {outcome['run_dir']}'s records (the same run)\n")
        return outcome
    tokens = (args.steps or BASE["schedule"]["max_steps"]) * BASE["data"]["batch_size"] * BASE["model"]["context_length"]
    steps = max(1, tokens // (batch * BASE["model"]["context_length"]))
    return train_run("batch_size", f"batch_{batch}_lr_{lr:g}", args, {
        "data": {"batch_size": batch},
        "schedule": {**schedule, "max_steps": steps},
        "run": {"log_every": max(1, 80 // batch), "eval_every": max(5, steps // 8),
                "eval_batches": max(1, EVAL_WINDOWS // batch)},
    }, seed=seed)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--batches", type=int, nargs="+", default=BATCHES, help="batch sizes (default: %(default)s)")
    args = p.parse_args()
    setup(args)
    results, best_runs = {}, []
    out = runs_dir("batch_size", args)
    for b in args.batches:
        by_rate = {f"{lr:g}": batch_run(args, b, lr) for lr in rates_for(b)}
        finished = {k: o for k, o in by_rate.items() if o["status"] == "finished"}
        best = min(finished, key=lambda k: finished[k]["val_loss"]) if finished else None
        while best is not None and (lr := beyond_edge(float(best), [float(k) for k in by_rate])) is not None:
            outcome = by_rate[f"{lr:g}"] = batch_run(args, b, lr)  # best at the edge of the rates tried: one more
            if outcome["status"] != "finished" or outcome["val_loss"] >= finished[best]["val_loss"]:
                break
            best, finished[f"{lr:g}"] = f"{lr:g}", outcome
        by_rate = dict(sorted(by_rate.items(), key=lambda kv: float(kv[0])))
        results[str(b)] = {"rates": by_rate, "best_rate": best}
        if best is not None:
            best_runs.append(out / f"batch_{b}_lr_{best}")
            if len(args.seeds) > 1:
                seeded = [by_rate[best] if s == 0 else batch_run(args, b, float(best), s) for s in args.seeds]
                results[str(b)]["best_over_seeds"] = seed_summary(seeded)
    suffix = ("" if args.dataset == "shakespeare" else f"_{args.dataset}") + (f"_steps{args.steps}" if args.steps
                                                                              else "")
    plot(best_runs, f"batch_size{suffix}.png", x="tokens",
         title="batch size at a fixed token budget (the best of 3-4 rates each, seed 0)")
    plot(best_runs, f"batch_size_time{suffix}.png", x="time", title="batch size: wall-clock (best rate each)")
    write_results(f"batch_size{suffix}", results)


if __name__ == "__main__":
    main()
