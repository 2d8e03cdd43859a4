"""Seed convergence at small scale: do the four phases of Fehlauer, Mahowald & Pimentel (2025) appear?

    uv run python experiments/seed_convergence.py [--seeds 5] [--steps 512] [--tokens 4096]

Trains --seeds copies of a small model (d_model 64, 2 layers, context 64, batch 16, vocabulary 2048) on the bundled
Shakespeare that differ only in run.seed, each keeping "log2" checkpoints (steps 0, 1, 2, 4, ..., and the last),
then runs `python -m cs336_basics.analyze convergence` on the first --tokens tokens of the held-out split
(The Two Gentlemen of Verona onwards). Runs: runs/seed_convergence/seed_<k> (reused when finished; --force
retrains). Figures: learning_curves/seed_convergence*.png; numbers: results/seed_convergence/*.csv and
results/seed_convergence.json. Budget: about 10 minutes on one loaded CPU core for 5 seeds x 512 steps.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from common import deep_merge, parser, setup, train_run, write_results

EXPERIMENT = "seed_convergence"
SMALL = {
    "model": {"vocab_size": 2048, "context_length": 64, "d_model": 64, "num_layers": 2, "num_heads": 4,
              "d_ff": None},
    "schedule": {"max_lr": 3e-3, "min_lr": 3e-4, "warmup_frac": 0.1},
    "data": {"batch_size": 16},
    "run": {"checkpoint_steps": "log2", "checkpoint_every": 1_000_000, "eval_every": 1_000_000,
            "log_every": 16, "sample_tokens": 32},
}


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--seeds", type=int, default=5, help="number of seeds (default: %(default)s)")
    p.add_argument("--tokens", type=int, default=4096, help="held-out tokens scored (default: %(default)s)")
    p.set_defaults(steps=512)
    args = p.parse_args()
    if args.dataset != "shakespeare":
        p.error("this experiment uses the bundled Shakespeare only")
    setup(args)
    from cs336_basics.analysis import convergence
    from cs336_basics.training.config import resolve
    from cs336_basics.training.corpus import prepare_data

    started = time.perf_counter()
    outcomes = [train_run(EXPERIMENT, f"seed_{seed}", args, deep_merge(SMALL, {"run": {"seed": seed}}))
                for seed in range(args.seeds)]
    train_seconds = time.perf_counter() - started
    runs = [Path(o["run_dir"]) for o in outcomes]
    # The held-out text: the validation split the runs were evaluated on (never trained on).
    config = resolve(None, overrides=deep_merge(SMALL, {"data": {"train_path": "data/shakespeare.txt.gz",
                                                                 "valid_path": None, "valid_fraction": 0.05}}))
    held_out = Path(prepare_data(config.data, config.model.vocab_size, progress=False).valid_tokens).with_suffix(
        ".txt")
    out = Path("results") / EXPERIMENT
    print(f"python -m cs336_basics.analyze convergence {' '.join(map(str, runs))} --text {held_out} "
          f"--max-tokens {args.tokens} --out {out}", flush=True)
    result = convergence(runs, held_out, out, max_tokens=args.tokens, batch_size=8)
    for key in ("plot", "plot_frequency", "plot_surprisal"):
        src = Path(result["files"][key])
        shutil.move(src, Path("learning_curves") / f"{EXPERIMENT}{src.stem.removeprefix('convergence')}.png")

    overall = result["rows"]["overall"]
    peak = max(overall[1:], key=lambda r: r["e_conv"])  # after the initialisation
    trough = min(overall, key=lambda r: r["e_conv"])
    write_results(EXPERIMENT, {
        "seeds": args.seeds, "steps": args.steps, "tokens_scored": result["tokens"],
        "warmup_steps": round(SMALL["schedule"]["warmup_frac"] * args.steps),
        "final_val_loss": [o.get("val_loss") for o in outcomes],
        "train_seconds": round(train_seconds), "analysis_seconds": round(time.perf_counter() - started - train_seconds),
        "e_conv": {r["step"]: round(float(r["e_conv"]), 4) for r in overall},
        "spread": {r["step"]: round(float(r["spread"]), 4) for r in overall},
        "kl_uniform": {r["step"]: round(float(r["kl_uniform"]), 4) for r in overall},
        "kl_unigram": {r["step"]: round(float(r["kl_unigram"]), 4) for r in overall},
        "loss": {r["step"]: round(float(r["loss"]), 4) for r in overall},
        "highest_e_conv_after_init": {"step": peak["step"], "e_conv": round(float(peak["e_conv"]), 4)},
        "lowest_e_conv": {"step": trough["step"], "e_conv": round(float(trough["e_conv"]), 4)},
        "by_frequency": {f"{r['label']} @ {r['step']}": round(float(r["e_conv"]), 4)
                         for r in result["rows"]["frequency"] if r["tokens"] > 0},
        "by_surprisal": {f"{r['label']} @ {r['step']}": round(float(r["e_conv"]), 4)
                         for r in result["rows"]["surprisal"] if r["tokens"] > 0},
    })


if __name__ == "__main__":
    main()
