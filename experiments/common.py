"""Shared pieces of the experiment scripts: datasets, the small base model, running and plotting.

Every experiment trains the same small model (BASE below) with the package's Trainer, so one script = one set of
runs under runs/<experiment>[-<dataset>]/<variant>/, each a normal run directory (config.json, metrics.jsonl, ...).
A run that already finished with the same configuration is reused, so rerunning a script only redraws its figures;
--force retrains. --steps N (a smaller budget) puts the runs under runs/<experiment>[-<dataset>]-steps<N>/, and
--seeds 0 1 2 trains the comparisons a script marks as key once per seed (runs <variant>-seed<s> for s > 0) and
summarizes them as mean ± spread (`seed_summary`).

Datasets: "shakespeare" (bundled, the default), "code" (the Python standard library's .py files, built on first use
by benchmarks/corpora.py), and "tinystories" / "owt" when data/TinyStoriesV2-GPT4-*.txt / data/owt_*.txt exist.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for benchmarks.corpora; the package itself is installed

from benchmarks.corpora import python_stdlib  # noqa: E402
from cs336_basics.atomic import atomic_write_text  # noqa: E402
from cs336_basics.scaling.sweep import deep_merge  # noqa: E402 - re-exported for the experiment scripts

CODE_CORPUS_BYTES = 30_000_000  # the first 30 MB of the standard library in path order (of ~31.5 MB), no repetition

# The model every training experiment starts from: the bundled preset's recipe shrunk to ~1.3M parameters so that a
# 200-step run takes ~1.5 minutes on one loaded CPU core.
BASE: dict[str, Any] = {
    "model": {"vocab_size": 2048, "context_length": 128, "d_model": 128, "num_layers": 4, "num_heads": 4,
              "d_ff": None},
    "schedule": {"max_lr": 3e-3, "min_lr": 3e-4, "warmup_frac": 0.05, "max_steps": 200},
    "data": {"batch_size": 16},
    "run": {"log_every": 5, "eval_every": 25, "eval_batches": 10, "checkpoint_every": 10_000,
            "sample_tokens": 64},
}


def dataset_overrides(name: str) -> dict[str, Any]:
    """The data (and, for the assignment's corpora, vocabulary) settings of a dataset name."""
    if name == "shakespeare":
        return {"data": {"train_path": "data/shakespeare.txt.gz", "valid_path": None, "valid_fraction": 0.05},
                "run": {"sample_prompt": "ROMEO.\n"}}
    if name == "code":
        path = python_stdlib(CODE_CORPUS_BYTES).relative_to(ROOT)
        return {"data": {"train_path": str(path), "valid_path": None, "valid_fraction": 0.05},
                "run": {"sample_prompt": "def "}}
    if name == "tinystories":
        return {"model": {"vocab_size": 10_000},
                "data": {"train_path": "data/TinyStoriesV2-GPT4-train.txt",
                         "valid_path": "data/TinyStoriesV2-GPT4-valid.txt"},
                "run": {"sample_prompt": "Once upon a time"}}
    if name == "owt":
        return {"model": {"vocab_size": 32_000},
                "data": {"train_path": "data/owt_train.txt", "valid_path": "data/owt_valid.txt"},
                "run": {"sample_prompt": "The"}}
    raise ValueError(f"unknown dataset {name!r}")


def parser(description: str, dataset: str = "shakespeare") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--dataset", default=dataset, choices=["shakespeare", "code", "tinystories", "owt"])
    p.add_argument("--steps", type=int, default=None, help="override every run's step budget")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1 is fastest for these small models on a busy 2-core machine)")
    p.add_argument("--force", action="store_true", help="retrain runs that already finished")
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="seeds for the script's key comparisons (default: 0 only); others run with seed 0")
    return p


def setup(args: argparse.Namespace) -> None:
    """Run from the repository root (relative data paths) with the requested number of threads."""
    import torch

    os.chdir(ROOT)
    torch.set_num_threads(args.threads)


def runs_dir(experiment: str, args: argparse.Namespace) -> Path:
    """runs/<experiment>[-<dataset>][-steps<N>]: runs at another budget never mix with the base budget's."""
    name = experiment if args.dataset == "shakespeare" else f"{experiment}-{args.dataset}"
    return Path("runs") / (name + (f"-steps{args.steps}" if getattr(args, "steps", None) else ""))


def finished(run_dir: Path, config: dict | None = None) -> dict | None:
    """The run's outcome.json if it completed (or diverged) before with `config` (when given), else None."""
    path = run_dir / "outcome.json"
    if not path.is_file():
        return None
    if config is not None and json.loads((run_dir / "config.json").read_text()) != config:
        return None
    return json.loads(path.read_text())


def seed_variant(variant: str, seed: int) -> str:
    return variant if seed == 0 else f"{variant}-seed{seed}"


def train_run(experiment: str, variant: str, args: argparse.Namespace, *overrides: dict, seed: int = 0) -> dict:
    """Train BASE + dataset + overrides as runs/<experiment>[-<dataset>]/<variant>[-seed<s>]; return its outcome.

    The outcome (final val loss / bits per byte over the whole validation split, or the step and message of a
    divergence) is also written to outcome.json in the run directory, which marks the run as done for later
    invocations with the same configuration.
    """
    from cs336_basics.training.config import resolve, to_dict
    from cs336_basics.training.trainer import Trainer, TrainingDiverged, describe

    out_dir = runs_dir(experiment, args)
    variant = seed_variant(variant, seed)
    run_dir = out_dir / variant
    budget = {"schedule": {"max_steps": args.steps}} if args.steps else {}
    # --steps sets the base budget; a run's own max_steps (batch_size.py's same-tokens rule, own_modification.py's
    # calibrated count) is derived from it and wins
    settings = deep_merge(BASE, dataset_overrides(args.dataset), budget, *overrides,
                          {"run": {"name": variant, "out_dir": str(out_dir), "seed": seed}})
    config = resolve(None, overrides=settings)
    if not args.force and (outcome := finished(run_dir, to_dict(config))) is not None:
        print(f"{run_dir}: done before ({outcome['status']}), reusing it")
        return outcome
    shutil.rmtree(run_dir, ignore_errors=True)
    trainer = Trainer(config)
    print(f"{run_dir}: {describe(trainer)}", flush=True)
    outcome: dict[str, Any] = {"variant": variant, "run_dir": str(run_dir),
                               "parameters": sum(p.numel() for p in trainer.model.parameters()),
                               "tokens_per_step": config.tokens_per_step, "steps": trainer.total_steps,
                               "seed": seed}
    try:
        summary = trainer.train()
        outcome.update(status="finished", val_loss=summary["final_val_loss"], val_bpb=summary["final_val_bpb"],
                       seconds=summary["time"], peak_flops=summary["peak_flops"],
                       peak_flops_source=summary["peak_flops_source"])
    except TrainingDiverged as e:
        outcome.update(status="diverged", at_step=trainer.step + 1, message=str(e), seconds=trainer.elapsed)
    atomic_write_text(run_dir / "outcome.json", json.dumps(outcome, indent=2) + "\n")
    print(f"{run_dir}: {outcome['status']} {outcome.get('val_loss', '')}", flush=True)
    return outcome


def seed_summary(outcomes: list[dict]) -> dict:
    """Mean ± spread of the final whole-split figures over seeds: mean, sample standard deviation, min and max
    (None where fewer than two seeds finished), and each seed's value."""
    done = [o for o in outcomes if o["status"] == "finished"]
    summary: dict[str, Any] = {"seeds": [o["seed"] for o in outcomes], "finished": len(done)}
    for key in ("val_loss", "val_bpb"):
        values = [o[key] for o in done]
        summary[key] = {"values": values, "mean": statistics.fmean(values) if values else None,
                        "std": statistics.stdev(values) if len(values) > 1 else None,
                        "min": min(values, default=None), "max": max(values, default=None)}
    return summary


def seeded_runs(experiment: str, variant: str, args: argparse.Namespace, *overrides: dict) -> dict:
    """train_run once per --seeds value; the seed-0 outcome plus "over_seeds": seed_summary of all of them."""
    outcomes = [train_run(experiment, variant, args, *overrides, seed=seed) for seed in args.seeds]
    first = outcomes[0] if args.seeds[0] == 0 else train_run(experiment, variant, args, *overrides)
    return {**first, "over_seeds": seed_summary(outcomes)} if len(args.seeds) > 1 else first


def baseline_run(args: argparse.Namespace, experiment: str, name: str = "baseline") -> tuple[Path, dict]:
    """The base model at the base rate: the learning-rate sweep's run at that rate (trained there if missing).

    The ablations, the batch-size sweep (at batch 16) and the second-dataset comparison all share it; each gets a
    copy of its metrics and config under runs/<experiment>/<name>/ so that plots label it by its role.
    """
    lr = BASE["schedule"]["max_lr"]
    outcome = seeded_runs("lr_sweep", f"lr_{lr:g}", args, {"schedule": {"max_lr": lr, "min_lr": lr / 10}})
    source = runs_dir("lr_sweep", args) / f"lr_{lr:g}"
    view = runs_dir(experiment, args) / name
    view.mkdir(parents=True, exist_ok=True)
    for file in ("metrics.jsonl", "config.json", "outcome.json"):
        shutil.copyfile(source / file, view / file)
    atomic_write_text(view / "SOURCE", f"a copy of {source}'s records (the same run)\n")
    return view, outcome


def plot(runs: list[Path], out: str, x: str = "step", title: str | None = None, metric: str = "loss",
         ymax: float | None = None) -> None:
    """learning_curves/<out> through the plot CLI (`python -m cs336_basics.plot RUN ... --x X --out OUT`); the
    title gets a second line saying what was trained (data, model size, batch: plot.default_title)."""
    from cs336_basics.plot import default_title
    from cs336_basics.plot import main as plot_main

    argv = [str(r) for r in runs] + ["--x", x, "--out", str(Path("learning_curves") / out), "--metric", metric]
    if title:
        setup_line = default_title(runs).partition("\n")[2]
        argv += ["--title", f"{title}\n{setup_line}" if setup_line else title]
    if ymax is not None:
        argv += ["--ymax", f"{ymax:g}"]
    print("python -m cs336_basics.plot " + " ".join(argv))
    plot_main(argv)


def write_results(name: str, data: Any) -> Path:
    """results/<name>.json (small summaries the writeup quotes)."""
    path = Path("results") / f"{name}.json"
    path.parent.mkdir(exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}")
    return path
