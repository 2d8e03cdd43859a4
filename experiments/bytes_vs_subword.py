"""Tokenizer-free vs subword models at equal training compute (issue 8; SpaceByte, Slagle 2024, Table 1 in small).

    uv run python experiments/bytes_vs_subword.py --datasets shakespeare            # the grid: 2 sizes each
    uv run python experiments/bytes_vs_subword.py --datasets code --sizes s         # the smaller size only
    (options: --budget FLOPS, --archs ..., --force; the summary covers every finished run at the budget)

On each corpus (the first 2 MB of the bundled Shakespeare and of the Python-stdlib code corpus, 5% held out), trains
five architectures at the same training-FLOP budget (2e11 by default), each at a small grid of sizes:

    subword      Transformer over the corpus's own 1,024-token BPE, context 64 tokens
    bytes        Transformer over bytes, full causal attention, context 256 bytes
    windowed     the same with a 64-byte attention window
    sb-periodic  SpaceByte with a patch every 4 bytes (the paper's fixed-P ablation)
    spacebyte    SpaceByte with patches at word boundaries (patch_starts)

Training FLOPs are the accounting module's matmul FLOPs (3x forward; windowed attention counted over its window,
SpaceByte's global blocks over global_context = 64 positions per 256 bytes), per byte of training text: steps =
budget / (training FLOPs per byte x bytes per step), with the BPE model's bytes per token measured on its own
validation split. Every model: batch 16, AdamW, peak learning rate 3e-3 with 5% warmup and cosine decay to 3e-4.

Outputs: runs/bytes_vs_subword-<dataset>/<arch>-<size>/ (normal run directories), results/bytes_vs_subword.json
and .md (the table: best size per architecture, val bits per byte on the whole validation split, inference FLOPs
per byte), learning_curves/bytes_vs_subword_<dataset>.png (val bpb against training FLOPs, best size of each) and
learning_curves/bytes_vs_subword_flops.png (bpb against inference FLOPs per byte, every run).
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from common import ROOT, dataset_overrides, deep_merge, write_results

EXPERIMENT = "bytes_vs_subword"
BUDGET = 2e11  # training FLOPs per run: ~1.5 min per run on one core of the shared 2-core machine
MAX_BYTES = 2_000_000
BYTE_CONTEXT, SUBWORD_CONTEXT, BATCH = 256, 64, 16
SB = {"global_context": 64, "num_local_heads": 2}

# Two sizes per architecture: (name, model overrides)
GRID: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "subword": [("s", {"d_model": 48, "num_layers": 2, "num_heads": 2}),
                ("m", {"d_model": 64, "num_layers": 3, "num_heads": 2})],
    "bytes": [("s", {"d_model": 48, "num_layers": 2, "num_heads": 2}),
              ("m", {"d_model": 64, "num_layers": 2, "num_heads": 2})],
    "windowed": [("s", {"d_model": 48, "num_layers": 2, "num_heads": 2, "attention_window": 64}),
                 ("m", {"d_model": 64, "num_layers": 2, "num_heads": 2, "attention_window": 64})],
    "sb-periodic": [("s", {"d_model": 64, "num_layers": 2, "num_heads": 2, "attention_window": 64,
                           "spacebyte": {**SB, "d_local": 32, "num_local_layers": 2, "patching": "periodic",
                                         "patch_size": 4}}),
                    ("m", {"d_model": 96, "num_layers": 2, "num_heads": 3, "attention_window": 64,
                           "spacebyte": {**SB, "d_local": 48, "num_local_layers": 2, "patching": "periodic",
                                         "patch_size": 4}})],
    "spacebyte": [("s", {"d_model": 64, "num_layers": 2, "num_heads": 2, "attention_window": 64,
                         "spacebyte": {**SB, "d_local": 32, "num_local_layers": 2, "patching": "spacelike"}}),
                  ("m", {"d_model": 96, "num_layers": 2, "num_heads": 3, "attention_window": 64,
                         "spacebyte": {**SB, "d_local": 48, "num_local_layers": 2, "patching": "spacelike"}})],
}
PAPER_TABLE_1 = {"subword": "1.013 (GPT-2) / 0.989 (SentencePiece)", "bytes": "1.138", "windowed": "1.089",
                 "sb-periodic": "1.112", "spacebyte": "1.009"}


def run_settings(arch: str, model: dict[str, Any], dataset: str) -> dict[str, Any]:
    byte_level = arch != "subword"
    common = {
        "model": {"vocab_size": 257 if byte_level else 1024, "d_ff": None, "attn_backend": "torch",
                  "context_length": BYTE_CONTEXT if byte_level else SUBWORD_CONTEXT,
                  "arch": "spacebyte" if arch.startswith("sb") or arch == "spacebyte" else "transformer", **model},
        "schedule": {"max_lr": 3e-3, "min_lr": 3e-4, "warmup_frac": 0.05},
        "data": {"max_bytes": MAX_BYTES, "batch_size": BATCH, "tokenizer": "bytes" if byte_level else "bpe"},
        "run": {"log_every": 10, "eval_batches": 4, "checkpoint_every": 100_000, "sample_tokens": 200 if byte_level
                else 60},
    }
    return deep_merge(dataset_overrides(dataset), common)


def train_one(arch: str, size: str, model: dict, dataset: str, budget: float, force: bool) -> dict[str, Any]:
    from cs336_basics.accounting import flops_per_byte
    from cs336_basics.training.config import resolve
    from cs336_basics.training.corpus import prepare_data
    from cs336_basics.training.trainer import Trainer

    out_dir = Path("runs") / f"{EXPERIMENT}-{dataset}"
    run_dir = out_dir / (f"{arch}-{size}" + budget_suffix(budget))
    outcome_path = run_dir / "outcome.json"
    if outcome_path.is_file() and not force and json.loads(outcome_path.read_text()).get("budget") == budget:
        print(f"{run_dir}: done before, reusing it", flush=True)
        return json.loads(outcome_path.read_text())
    shutil.rmtree(run_dir, ignore_errors=True)
    settings = run_settings(arch, model, dataset)
    config = resolve(None, overrides=settings)
    prepared = prepare_data(config.data, config.model.vocab_size, progress=False)
    bytes_per_token = prepared.valid_num_bytes / prepared.valid_num_tokens
    per_byte = flops_per_byte(config.model, bytes_per_token)
    bytes_per_step = BATCH * config.model.context_length * bytes_per_token
    steps = max(1, round(budget / (per_byte["training"] * bytes_per_step)))
    settings = deep_merge(settings, {"schedule": {"max_steps": steps},
                                     "run": {"name": run_dir.name, "out_dir": str(out_dir),
                                             "eval_every": max(1, steps // 8)}})
    trainer = Trainer(resolve(None, overrides=settings), progress=False)
    start = time.perf_counter()
    summary = trainer.train()
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    left_out = [r["left_out_frac"] for r in records if "left_out_frac" in r]
    outcome = {
        "arch": arch, "size": size, "dataset": dataset, "budget": budget, "model": settings["model"],
        "parameters": sum(p.numel() for p in trainer.model.parameters()),
        "status": "finished", "bytes_per_token": bytes_per_token, "steps": steps,
        "tokens_per_step": BATCH * config.model.context_length,
        "train_bytes": steps * bytes_per_step, "training_flops": steps * bytes_per_step * per_byte["training"],
        "inference_flops_per_byte": per_byte["inference"], "training_flops_per_byte": per_byte["training"],
        "val_bpb": summary["final_val_bpb"], "val_loss": summary["final_val_loss"],
        "left_out_frac": sum(left_out) / len(left_out) if left_out else 0.0,
        "seconds": time.perf_counter() - start,
        "sample": (run_dir / "sample.txt").read_text(),
    }
    outcome_path.write_text(json.dumps(outcome, indent=2) + "\n")
    print(f"{run_dir}: {steps} steps, val_bpb {outcome['val_bpb']:.4f} in {outcome['seconds']:.0f}s", flush=True)
    return outcome


def unigram_bpb(dataset: str) -> float:
    """A reference point: bits per byte of the validation text under the training text's byte frequencies."""
    import numpy as np

    from cs336_basics.training.config import resolve
    from cs336_basics.training.corpus import prepare_data

    config = resolve(None, overrides=run_settings("bytes", GRID["bytes"][0][1], dataset))
    prepared = prepare_data(config.data, config.model.vocab_size, progress=False)
    train, valid = (np.load(path) for path in (prepared.train_tokens, prepared.valid_tokens))
    counts = np.bincount(train[train < 256], minlength=256) + 1.0  # add-one: no byte has probability 0
    return float(-np.log2(counts[valid[valid < 256]] / counts.sum()).mean())


def budget_suffix(budget: float) -> str:
    """"" at the default budget, else e.g. "-6e+11": runs and summaries of other budgets get their own names."""
    return "" if budget == BUDGET else f"-{budget:.0e}"


def curve_points(outcome: dict) -> tuple[list[float], list[float]]:
    """(training FLOPs, val bpb) at each periodic evaluation and, last, the final one on the whole split."""
    run_dir = Path("runs") / f"{EXPERIMENT}-{outcome['dataset']}" / (f"{outcome['arch']}-{outcome['size']}"
                                                                       + budget_suffix(outcome["budget"]))
    flops_per_step = outcome["training_flops"] / outcome["steps"]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    # the final figure is final_val_bpb (val_bpb in the records of runs trained before that key existed)
    points = [(r["step"] * flops_per_step, r.get("final_val_bpb", r.get("val_bpb"))) for r in records
              if "val_bpb" in r or "final_val_bpb" in r]
    return [p[0] for p in points], [p[1] for p in points]


def plot(outcomes: list[dict], best: dict[tuple[str, str], dict], datasets: list[str], suffix: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    Path("learning_curves").mkdir(exist_ok=True)
    for dataset in datasets:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for arch in GRID:
            if (arch, dataset) in best:
                xs, ys = curve_points(best[(arch, dataset)])
                # periodic points: the first run.eval_batches batches; the star: the whole validation split
                line, = ax.plot(xs[:-1], ys[:-1], marker=".", label=f"{arch} ({best[(arch, dataset)]['size']})")
                ax.plot(xs[-1:], ys[-1:], marker="*", markersize=11, color=line.get_color())
        ax.set_xscale("log")
        ax.set_xlabel("training FLOPs")
        ax.set_ylabel("validation bits per byte")
        ax.set_title(f"{outcomes[0]['budget']:.0e} training FLOPs each, {dataset} (best size of each)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(f"learning_curves/{EXPERIMENT}_{dataset}{suffix}.png", dpi=120)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    markers = {"shakespeare": "o", "code": "s"}
    colors = dict(zip(GRID, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for o in outcomes:
        ax.scatter(o["inference_flops_per_byte"], o["val_bpb"], marker=markers.get(o["dataset"], "^"),
                   color=colors[o["arch"]], label=f"{o['arch']}, {o['dataset']}")
        ax.annotate(o["size"], (o["inference_flops_per_byte"], o["val_bpb"]), fontsize=7)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=7, ncol=2)
    ax.set_xscale("log")
    ax.set_xlabel("inference FLOPs per byte")
    ax.set_ylabel("validation bits per byte")
    ax.set_title(f"every run at {outcomes[0]['budget']:.0e} training FLOPs")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(f"learning_curves/{EXPERIMENT}_flops{suffix}.png", dpi=120)
    plt.close(fig)


def table(best: dict[tuple[str, str], dict], datasets: list[str], budget: float, unigram: dict[str, float]) -> str:
    lines = [f"Validation bits per byte at {budget:.0e} training FLOPs (the best of the sizes trained, named in "
             "brackets; inference FLOPs per byte and parameters of that size)", "",
             "| architecture | " + " | ".join(f"{d} bpb | {d} FLOPs/byte | {d} params" for d in datasets)
             + " | paper (PG-19, 1e19 FLOPs) |",
             "|---" * (2 + 3 * len(datasets)) + "|"]
    for arch in GRID:
        cells = []
        for d in datasets:
            o = best.get((arch, d))
            cells += ([f"{o['val_bpb']:.3f} ({o['size']})", f"{o['inference_flops_per_byte'] / 1e3:,.0f}K",
                       f"{o['parameters'] / 1e3:,.0f}K"] if o else ["-", "-", "-"])
        lines.append(f"| {arch} | " + " | ".join(cells) + f" | {PAPER_TABLE_1[arch]} |")
    cells = [cell for d in datasets for cell in (f"{unigram[d]:.3f}", "-", "-")]
    lines.append("| (reference: byte unigram of the training text) | " + " | ".join(cells) + " | - |")
    return "\n".join(lines)


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", type=float, default=BUDGET, help="training FLOPs per run (default: %(default)g)")
    p.add_argument("--datasets", nargs="+", default=["shakespeare", "code"], choices=["shakespeare", "code"])
    p.add_argument("--archs", nargs="+", default=list(GRID), choices=list(GRID))
    p.add_argument("--sizes", nargs="+", default=["s", "m"], choices=["s", "m"],
                   help="sizes of the grid to train now (the summary takes every finished run at this budget)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    p.add_argument("--force", action="store_true", help="retrain runs that already finished")
    args = p.parse_args()
    import os

    import torch

    os.chdir(ROOT)
    torch.set_num_threads(args.threads)
    for dataset in args.datasets:
        for arch in args.archs:
            for size, model in GRID[arch]:
                if size in args.sizes:
                    train_one(arch, size, model, dataset, args.budget, args.force)
    outcomes = []
    for path in sorted(Path("runs").glob(f"{EXPERIMENT}-*/*/outcome.json")):
        outcome = json.loads(path.read_text())
        if outcome.get("budget") == args.budget:
            # the fields experiments/experiment_log.py reads (runs of an earlier version of this script lack them)
            outcome.setdefault("status", "finished")
            outcome.setdefault("tokens_per_step", BATCH * outcome["model"]["context_length"])
            path.write_text(json.dumps(outcome, indent=2) + "\n")
            outcomes.append(outcome)
    datasets = [d for d in ["shakespeare", "code"] if any(o["dataset"] == d for o in outcomes)]
    best: dict[tuple[str, str], dict] = {}
    for o in outcomes:
        key = (o["arch"], o["dataset"])
        if key not in best or o["val_bpb"] < best[key]["val_bpb"]:
            best[key] = o
    suffix = budget_suffix(args.budget).replace("-", "_")
    plot(outcomes, best, datasets, suffix)
    unigram = {d: unigram_bpb(d) for d in datasets}
    text = table(best, datasets, args.budget, unigram)
    print(text)
    write_results(EXPERIMENT + suffix, {"budget_training_flops": args.budget, "byte_unigram_bpb": unigram,
                                        "runs": outcomes,
                               "best": {f"{a}/{d}": o["size"] for (a, d), o in best.items()}})
    Path("results", f"{EXPERIMENT}{suffix}.md").write_text(
        text + "\n\nReproduce: uv run python experiments/bytes_vs_subword.py"
        + (f" --budget {args.budget:g} --datasets {' '.join(datasets)} --sizes {' '.join(args.sizes)}\n"
           if args.budget != BUDGET else
           " --datasets shakespeare; uv run python experiments/bytes_vs_subword.py --datasets code --sizes s\n"))
    if any(not math.isfinite(o["val_bpb"]) for o in outcomes):
        sys.exit("some run diverged")


if __name__ == "__main__":
    main()
