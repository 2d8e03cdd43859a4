"""Shared pieces of the experiment scripts: datasets, the small base model, running and plotting.

Every experiment trains the same small model (BASE below) with the package's Trainer, so one script = one set of
runs under runs/<experiment>[-<dataset>]/<variant>/, each a normal run directory (config.json, metrics.jsonl, ...).
A run that already finished is reused, so rerunning a script only redraws its figures; --force retrains.

Datasets: "shakespeare" (bundled, the default), "code" (the Python standard library's .py files, built on first use
by benchmarks/corpora.py), and "tinystories" / "owt" when data/TinyStoriesV2-GPT4-*.txt / data/owt_*.txt exist.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for benchmarks.corpora; the package itself is installed

from benchmarks.corpora import python_stdlib  # noqa: E402
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
    return p


def setup(args: argparse.Namespace) -> None:
    """Run from the repository root (relative data paths) with the requested number of threads."""
    import torch

    os.chdir(ROOT)
    torch.set_num_threads(args.threads)


def runs_dir(experiment: str, dataset: str) -> Path:
    return Path("runs") / (experiment if dataset == "shakespeare" else f"{experiment}-{dataset}")


def finished(run_dir: Path) -> dict | None:
    """The run's outcome.json if it completed (or diverged) before, else None."""
    path = run_dir / "outcome.json"
    return json.loads(path.read_text()) if path.is_file() else None


def train_run(experiment: str, variant: str, args: argparse.Namespace, *overrides: dict) -> dict:
    """Train BASE + dataset + overrides as runs/<experiment>[-<dataset>]/<variant>; return its outcome.

    The outcome (final val loss / bits per byte, or the step and message of a divergence) is also written to
    outcome.json in the run directory, which marks the run as done for later invocations.
    """
    from cs336_basics.config import resolve
    from cs336_basics.trainer import Trainer, TrainingDiverged, describe

    out_dir = runs_dir(experiment, args.dataset)
    run_dir = out_dir / variant
    if not args.force and (outcome := finished(run_dir)) is not None:
        print(f"{run_dir}: done before ({outcome['status']}), reusing it")
        return outcome
    shutil.rmtree(run_dir, ignore_errors=True)
    budget = {"schedule": {"max_steps": args.steps}} if args.steps else {}
    settings = deep_merge(BASE, dataset_overrides(args.dataset), *overrides, budget,
                          {"run": {"name": variant, "out_dir": str(out_dir)}})
    config = resolve(None, overrides=settings)
    trainer = Trainer(config)
    print(f"{run_dir}: {describe(trainer)}", flush=True)
    outcome: dict[str, Any] = {"variant": variant, "run_dir": str(run_dir),
                               "parameters": sum(p.numel() for p in trainer.model.parameters()),
                               "tokens_per_step": config.tokens_per_step, "steps": trainer.total_steps}
    try:
        summary = trainer.train()
        outcome.update(status="finished", val_loss=summary["val_loss"], val_bpb=summary["val_bpb"],
                       seconds=summary["time"])
    except TrainingDiverged as e:
        outcome.update(status="diverged", at_step=trainer.step + 1, message=str(e), seconds=trainer.elapsed)
    (run_dir / "outcome.json").write_text(json.dumps(outcome, indent=2) + "\n")
    print(f"{run_dir}: {outcome['status']} {outcome.get('val_loss', '')}", flush=True)
    return outcome


def baseline_run(args: argparse.Namespace, experiment: str, name: str = "baseline") -> tuple[Path, dict]:
    """The base model at the base rate: the learning-rate sweep's run at that rate (trained there if missing).

    The ablations, the batch-size sweep (at batch 16) and the second-dataset comparison all share it; each gets a
    copy of its metrics and config under runs/<experiment>/<name>/ so that plots label it by its role.
    """
    lr = BASE["schedule"]["max_lr"]
    outcome = train_run("lr_sweep", f"lr_{lr:g}", args, {"schedule": {"max_lr": lr, "min_lr": lr / 10}})
    source = runs_dir("lr_sweep", args.dataset) / f"lr_{lr:g}"
    view = runs_dir(experiment, args.dataset) / name
    view.mkdir(parents=True, exist_ok=True)
    for file in ("metrics.jsonl", "config.json", "outcome.json"):
        shutil.copyfile(source / file, view / file)
    (view / "SOURCE").write_text(f"a copy of {source}'s records (the same run)\n")
    return view, outcome


def plot(runs: list[Path], out: str, x: str = "step", title: str | None = None) -> None:
    """learning_curves/<out> through the plot CLI (`python -m cs336_basics.plot RUN ... --x X --out OUT`)."""
    from cs336_basics.plot import main as plot_main

    argv = [str(r) for r in runs] + ["--x", x, "--out", str(Path("learning_curves") / out)]
    if title:
        argv += ["--title", title]
    print("python -m cs336_basics.plot " + " ".join(argv))
    plot_main(argv)


def write_results(name: str, data: Any) -> Path:
    """results/<name>.json (small summaries the writeup quotes)."""
    path = Path("results") / f"{name}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}")
    return path
