"""Seed convergence of a set of runs that differ only in their seed: E[conv] per step, overall and per bin.

    result = convergence(["runs/s0", "runs/s1", "runs/s2"], "held_out.txt", "results/conv")
    # results/conv/convergence.csv, convergence_by_frequency.csv, convergence_by_surprisal.csv, pairs.csv + plots

At each step that every run has a checkpoint of, all seeds score the text window by window and every ordered pair
(i, j) of seeds gets its mean per-token KL(p_i || p_j) (see divergence.py); E[conv] is minus their mean, the spread
their standard deviation. Frequency bins come from the first run's training tokens, surprisal bins from the
reference run's latest checkpoint.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from cs336_basics.analysis.divergence import (
    SURPRISAL_LABELS,
    check_same_vocabulary,
    expected_convergence,
    frequency_bins,
    frequency_label,
    seeds_divergence,
    surprisal_bins,
    training_token_counts,
    unigram_log_probs,
)
from cs336_basics.analysis.outputs import atomic_output
from cs336_basics.analysis.scoring import load_scorer, score_tokens, tokenize_text
from cs336_basics.training.checkpoint import find_latest_checkpoint, list_checkpoints, read_checkpoint
from cs336_basics.training.config import load_config

SEED_ONLY_FIELDS = ("run",)  # config sections that may differ between the seeds of one experiment


def run_config(run: Path) -> dict[str, Any]:
    """The resolved config stored in a run's latest checkpoint."""
    config = read_checkpoint(find_latest_checkpoint(run)).get("config")
    if not isinstance(config, dict):
        raise ValueError(f"the checkpoints of {str(run)!r} hold no config; were they written by the trainer?")
    return config


def run_tokenizer(run: Path):
    """The tokenizer saved with a run (RUN/tokenizer)."""
    from cs336_basics.generate import find_tokenizer
    from cs336_basics.tokenizer import Tokenizer

    return Tokenizer.from_dir(find_tokenizer(find_latest_checkpoint(run)))


def check_seed_runs(runs: list[Path], configs: list[dict[str, Any]]) -> None:
    """Runs must agree on everything but the run section (seed, name, ...) and have different seeds."""
    if len(runs) < 2:
        raise ValueError(f"convergence needs at least 2 runs (seeds), got {len(runs)}")
    first = configs[0]
    for run, config in zip(runs[1:], configs[1:]):
        for section in sorted(set(first) | set(config)):
            if section in SEED_ONLY_FIELDS:
                continue
            a, b = first.get(section, {}), config.get(section, {})
            for key in sorted(set(a) | set(b)):
                if a.get(key) != b.get(key):
                    raise ValueError(f"runs {str(runs[0])!r} and {str(run)!r} differ in {section}.{key} "
                                     f"({a.get(key)!r} vs {b.get(key)!r}), not only in their seed")
    seeds = [c["run"]["seed"] for c in configs]
    for (ra, sa), (rb, sb) in itertools.combinations(zip(runs, seeds), 2):
        if sa == sb:
            raise ValueError(f"runs {str(ra)!r} and {str(rb)!r} have the same seed ({sa})")


def shared_steps(runs: list[Path], steps: list[int] | None = None) -> list[int]:
    """The steps every run has a checkpoint of (or `steps`, each checked to exist in every run)."""
    have = [set(list_checkpoints(run / "checkpoints")) for run in runs]
    if steps is not None:
        for run, run_steps in zip(runs, have):
            missing = [s for s in steps if s not in run_steps]
            if missing:
                raise ValueError(f"run {str(run)!r} has no checkpoint at step {missing[0]} (its checkpoints: "
                                 f"steps {', '.join(map(str, sorted(run_steps))) or 'none'})")
        return sorted(set(steps))
    common = sorted(set.intersection(*have))
    if not common:
        raise ValueError(f"the runs share no checkpoint step ({', '.join(map(str, runs))})")
    return common


def convergence(
    runs: list[str | os.PathLike],
    text: str | os.PathLike,
    out_dir: str | os.PathLike,
    steps: list[int] | None = None,
    reference: int = 0,
    max_tokens: int | None = None,
    batch_size: int = 8,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Compute and write the convergence tables and plots (see the module docstring); return their rows."""
    runs = [Path(r) for r in runs]
    for run in runs:
        if not run.is_dir():
            raise ValueError(f"{str(run)!r} is not a run directory")
    configs = [run_config(run) for run in runs]
    check_seed_runs(runs, configs)
    steps = shared_steps(runs, steps)
    if not 0 <= reference < len(runs):
        raise ValueError(f"--reference must index one of the {len(runs)} runs, got {reference}")

    ref_model, tokenizer, ref_path, _ = load_scorer(runs[reference], device=device)
    for run in runs:
        check_same_vocabulary((str(runs[reference]), tokenizer), (str(run), run_tokenizer(run)))
    ids = tokenize_text(tokenizer, text, max_tokens)
    vocab_size = ref_model.config.vocab_size
    counts = training_token_counts(configs[0], vocab_size, progress=progress)
    freq_of_id = frequency_bins(counts)
    num_freq_bins = int(freq_of_id.max()) + 1
    surprisal = score_tokens(ref_model, ids, batch_size, progress)["surprisal"]  # in position order
    surprisal_of_position = surprisal_bins(surprisal)

    seeds = [c["run"]["seed"] for c in configs]
    rows: dict[str, list[dict[str, Any]]] = {"overall": [], "frequency": [], "surprisal": [], "pairs": []}
    for step in tqdm(steps, unit="step", desc="steps", disable=not progress, dynamic_ncols=True):
        models = [load_scorer(run, step, device)[0] for run in runs]
        d = seeds_divergence(models, ids, freq_of_id, surprisal_of_position, unigram_log_probs(counts).to(device),
                             num_freq_bins, batch_size, progress=False)
        e_conv, spread = expected_convergence(d.pair_kl)
        rows["overall"].append({
            "step": step, "e_conv": e_conv, "spread": spread,
            "kl_uniform": d.kl_uniform.mean(), "kl_uniform_std": d.kl_uniform.std(ddof=1),
            "kl_unigram": d.kl_unigram.mean(), "kl_unigram_std": d.kl_unigram.std(ddof=1),
            "loss": d.loss.mean(), "loss_std": d.loss.std(ddof=1)})
        for name, matrix, tokens, label in (("frequency", d.pair_kl_freq, d.freq_tokens, frequency_label),
                                            ("surprisal", d.pair_kl_surprisal, d.surprisal_tokens,
                                             SURPRISAL_LABELS.__getitem__)):
            for b in range(matrix.shape[-1]):
                e, s = expected_convergence(matrix[:, :, b])
                rows[name].append({"step": step, "bin": b, "label": label(b), "tokens": int(tokens[b]),
                                   "e_conv": e, "spread": s})
        for i, j in itertools.permutations(range(len(runs)), 2):
            rows["pairs"].append({"step": step, "seed_p": seeds[i], "seed_q": seeds[j], "kl": d.pair_kl[i, j]})

    out_dir = Path(out_dir)
    names = {"overall": "convergence", "frequency": "convergence_by_frequency",
             "surprisal": "convergence_by_surprisal", "pairs": "pairs"}
    files = {}
    for key, name in names.items():
        files[key] = out_dir / f"{name}.csv"
        write_csv(files[key], rows[key])
    resolved = load_config(configs[0])
    warmup = round(resolved.schedule.warmup_frac * resolved.total_steps)
    files.update(plot_convergence(rows, out_dir, warmup=warmup, title=f"{len(runs)} seeds, {len(ids) - 1} tokens "
                                  f"of {Path(text).name}"))
    return {"rows": rows, "files": {k: str(v) for k, v in files.items()}, "steps": steps,
            "tokens": len(ids) - 1, "reference": str(ref_path)}


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """rows (dicts with the same keys) as a CSV file, floats with 6 significant digits, written atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else [])
    writer.writeheader()
    for row in rows:
        writer.writerow({k: f"{v:.6g}" if isinstance(v, (float, np.floating)) else v for k, v in row.items()})
    with atomic_output(path) as tmp:
        tmp.write_text(buffer.getvalue())


def plot_convergence(rows: dict[str, list[dict[str, Any]]], out_dir: Path, warmup: int | None = None,
                     title: str = "") -> dict[str, Path]:
    """convergence.png (E[conv] with its spread; KL to uniform / unigram), convergence_by_frequency.png and
    convergence_by_surprisal.png (one line per bin); step axis symmetric-log so that step 0 shows."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def finish(ax, ylabel):
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlabel("step (log scale; 0 = initialisation)")
        ax.set_ylabel(ylabel)
        if warmup:
            ax.axvline(warmup, color="grey", linestyle=":", label=f"end of warmup ({warmup})")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)

    def save(fig, name):
        path = out_dir / name
        FigureCanvasAgg(fig)
        with atomic_output(path) as tmp:
            fig.savefig(tmp, dpi=120, bbox_inches="tight")
        return path

    files = {}
    overall = rows["overall"]
    steps = np.array([r["step"] for r in overall])
    fig = Figure(figsize=(11, 4))
    ax, ax2 = fig.subplots(1, 2)
    e = np.array([r["e_conv"] for r in overall])
    s = np.array([r["spread"] for r in overall])
    ax.plot(steps, e, marker="o", label="E[conv] (mean over seed pairs)")
    ax.fill_between(steps, e - s, e + s, alpha=0.25, label="± 1 std over pairs")
    finish(ax, "E[conv] = -mean KL between seeds (nats)")
    for key, label in (("kl_uniform", "KL(p || uniform)"), ("kl_unigram", "KL(p || unigram)"), ("loss", "loss")):
        ax2.plot(steps, [r[key] for r in overall], marker=".", label=label)
    finish(ax2, "nats per token (mean over seeds)")
    fig.suptitle(f"Seed convergence: {title}")
    files["plot"] = save(fig, "convergence.png")
    for key, what in (("frequency", "target frequency in training data"), ("surprisal", "final surprisal (nats)")):
        fig = Figure(figsize=(7, 4.5))
        ax = fig.subplots()
        labels = {r["bin"]: r["label"] for r in rows[key]}
        for b, label in sorted(labels.items()):
            sel = [r for r in rows[key] if r["bin"] == b and r["tokens"] > 0]
            if sel:
                ax.plot([r["step"] for r in sel], [r["e_conv"] for r in sel], marker=".",
                        label=f"{label} ({sel[0]['tokens']} tokens)")
        finish(ax, "E[conv] (nats)")
        ax.set_title(f"E[conv] by {what}: {title}", fontsize=10)
        files[f"plot_{key}"] = save(fig, f"convergence_by_{key}.png")
    return files
