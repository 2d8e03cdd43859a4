"""Compute-optimal scaling on the bundled Shakespeare at CPU scale: an IsoFLOP sweep and both Chinchilla fits.

    uv run python experiments/scaling.py                 # ~20-30 min on a shared 2-core CPU (2 workers, 1 thread each)
    uv run python experiments/scaling.py --dry-run       # the table of runs and the time estimate only

Four budgets C = 1e10 .. 3e11 FLOPs (1.5 decades), six to eight model sizes per budget from a ladder of ten (each budget's
window slides up the ladder, so the expected optimum stays inside). Each run trains for C / (its training FLOPs per
step) steps: `schedule.max_steps = "{C}/flops"`, an expression the sweep resolves per model. The sweep lives in
runs/scaling/isoflop/ (restartable: rerunning skips finished runs); results/scaling/ gets the spec, sweep.csv and
fits.json; learning_curves/ the IsoFLOP, optimum and Pareto plots and the training curves of each budget.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BUDGETS = [1e10, 3e10, 1e11, 3e11]
# (d_model, num_layers): non-embedding parameters from 0.8k to 330k at vocab 512, context 64.
LADDER = [(8, 1), (12, 1), (16, 1), (24, 1), (32, 1), (32, 2), (48, 2), (64, 2), (64, 3), (96, 3)]
# Each budget's window of rungs [first, last): six sizes, widened downwards where the first pass (six sizes from
# rungs 0, 2, 3, 4) found the smallest size best, so that the minimum is bracketed.
WINDOWS = [(0, 6), (0, 8), (2, 9), (4, 10)]


def spec() -> dict:
    zipped: dict[str, list] = {"C": [], "model.d_model": [], "model.num_layers": []}
    for (first, last), c in zip(WINDOWS, BUDGETS):
        for d, layers in LADDER[first:last]:
            zipped["C"].append(c)
            zipped["model.d_model"].append(d)
            zipped["model.num_layers"].append(layers)
    return {
        "name": "isoflop",
        "out_dir": "runs/scaling",
        "base": {
            "preset": "shakespeare",
            "overrides": {
                "model": {"vocab_size": 512, "context_length": 64, "num_heads": "max(1, d/16)", "d_ff": "8*d/3",
                          "attn_backend": "torch"},
                "schedule": {"max_steps": "{C}/flops", "max_lr": 3e-3, "min_lr": 3e-4, "warmup_frac": 0.05},
                "data": {"max_bytes": 2_000_000, "batch_size": 16},
                "run": {"log_every": 10, "eval_every": "max(1, steps/4)", "eval_batches": 4,
                        "checkpoint_every": 250, "sample_tokens": 32},
            },
        },
        "zip": zipped,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workers", type=int, default=2, help="parallel runs (1 torch thread each on 2 cores)")
    p.add_argument("--dry-run", action="store_true", help="print the runs and the time estimate, train nothing")
    p.add_argument("--bootstrap", type=int, default=500, help="bootstrap resamples for the intervals")
    args = p.parse_args()
    os.chdir(ROOT)
    from cs336_basics.plot import plot_runs
    from cs336_basics.scaling.report import analyze, summary_text
    from cs336_basics.scaling.sweep import dry_run_table, load_spec, resolve_points, run_sweep

    results, curves = Path("results/scaling"), Path("learning_curves")
    results.mkdir(parents=True, exist_ok=True)
    (results / "spec.json").write_text(json.dumps(spec(), indent=2) + "\n")
    sweep = load_spec(results / "spec.json")
    print(f"sweep spec: {results / 'spec.json'}  (same as: uv run python -m cs336_basics.sweep "
          f"{results / 'spec.json'} --workers {args.workers})")
    if args.dry_run:
        print(dry_run_table(resolve_points(sweep), args.workers))
        return 0
    rows = run_sweep(sweep, args.workers)
    shutil.copyfile(sweep.sweep_dir / "sweep.csv", results / "sweep.csv")
    fits = analyze(results / "sweep.csv", results, bootstrap=args.bootstrap)
    for png in results.glob("*.png"):  # the figures live with the other learning curves
        shutil.move(str(png), curves / f"scaling_{png.name}")
    print(summary_text(fits))
    for c in BUDGETS:
        runs = [sweep.sweep_dir / r["run"] for r in rows if r["C"] == c and r["status"] == "done"]
        if runs:
            plot_runs(runs, x="tokens", out=curves / f"scaling_curves_C={c:g}.png",
                      title=f"training curves at C = {c:g} FLOPs")
    failed = [r for r in rows if r["status"] != "done"]
    for r in failed:
        print(f"not done: {r['run']}: {r['status']} {r.get('error', '')}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
