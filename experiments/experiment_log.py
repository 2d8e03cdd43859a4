"""The experiment log: one row per run under runs/ (from each run's config.json and outcome.json).

    uv run python experiments/experiment_log.py      # writes results/experiment_log.md

A row gives the run directory, the script that made it, what differs from the base model (experiments/common.py),
the budget, and the outcome (final validation loss over the whole validation set, bits per byte, training seconds).
runs/ is not committed, so a checkout holds only the runs made in it: the rows of the previous log whose run
directory is absent are kept as they were (the writeup quotes those runs), and a run present here replaces its row.
"""

import argparse
import json
import math
import os
from pathlib import Path

from cs336_basics.atomic import atomic_write_text
from common import BASE, ROOT, deep_merge, dataset_overrides

SCRIPTS = {"lr_sweep": "lr_sweep.py", "ablations": "ablations.py", "batch_size": "batch_size.py",
           "second_dataset": "second_dataset.py", "own_modification": "own_modification.py",
           "samples": "samples.py", "bytes_vs_subword": "bytes_vs_subword.py"}


def differences(config: dict, base: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in config.items():
        if isinstance(value, dict):
            out += differences(value, base.get(key, {}), f"{prefix}{key}.")
        elif key in base and not _same(base[key], value) and key not in ("name", "out_dir", "log_every", "eval_every",
                                                                 "eval_batches", "sample_tokens"):
            out.append(f"{prefix}{key}={value:.3g}" if isinstance(value, float) else f"{prefix}{key}={value}")
    return out


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9)
    return a == b


def merge_rows(previous: str, rows: dict[str, str]) -> list[str]:
    """The table rows, sorted by run: `rows` (run -> row, the runs present here) plus the rows of the `previous`
    log text whose run is not among them."""
    kept = {line.split("|")[1].strip(): line for line in previous.splitlines() if line.startswith("| runs/")}
    return [row for _, row in sorted({**kept, **rows}.items())]


def main() -> None:
    from cs336_basics.training.config import resolve, to_dict

    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    os.chdir(ROOT)
    header = ["| run | script | differs from the base model | steps x tokens | result | train s |",
              "| --- | --- | --- | --- | --- | ---: |"]
    rows: dict[str, str] = {}
    for outcome_path in sorted(Path("runs").glob("*/*/outcome.json")):
        run = outcome_path.parent
        if (run / "SOURCE").exists():  # a copy of another run's records
            continue
        outcome = json.loads(outcome_path.read_text())
        config = json.loads((run / "config.json").read_text())
        experiment, *tags = run.parent.name.split("-")  # <experiment>[-<dataset>][-steps<N>]
        dataset = next((t for t in tags if not t.startswith("steps")), "shakespeare")
        base = to_dict(resolve(None, overrides=deep_merge(BASE, dataset_overrides(dataset))))
        diff = ", ".join(d for d in differences(config, base) if not d.startswith("schedule.max_steps")) or "-"
        if outcome["status"] == "finished":
            result = f"val loss {outcome['val_loss']:.3f}, {outcome['val_bpb']:.3f} bits/byte"
        else:
            result = f"diverged at step {outcome['at_step']}"
        script = f"`experiments/{SCRIPTS.get(experiment, '?')}`" + (f" --dataset {dataset}" if dataset != "shakespeare"
                                                                   and experiment != "second_dataset" else "")
        rows[str(run)] = (f"| {run} | {script} | {diff} | {outcome['steps']} x {outcome['tokens_per_step']} | "
                          f"{result} | {outcome['seconds']:.0f} |")
    out = Path("results/experiment_log.md")
    table = header + merge_rows(out.read_text() if out.is_file() else "", rows)
    atomic_write_text(out, "\n".join(table) + "\n")
    print("\n".join(table))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
