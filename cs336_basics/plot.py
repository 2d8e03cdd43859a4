"""Learning curves: train and validation loss of one or more runs, read from each run's metrics.jsonl.

    uv run python -m cs336_basics.plot runs/a runs/b --x tokens --out learning_curves/a_vs_b.png

Each metrics.jsonl line is one JSON record with "step", "tokens", "time" (seconds) and "train_loss" and/or
"val_loss" (the trainer writes both kinds of record). "val_loss" points are all measured on the same sample of
validation windows, so they form one curve; the whole-split figure at the end ("final_val_loss") is another
measurement and is drawn as a separate star. `--metric bpb` draws validation bits per byte instead of loss.
Drawing uses matplotlib's object API with the Agg canvas, so no display and no global backend switch are needed.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

X_AXES = {
    "step": ("step", "optimizer step"),
    "tokens": ("tokens", "tokens seen"),
    "time": ("time", "wall-clock (min)"),
}


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of RUN/metrics.jsonl. A truncated last line (a run killed mid-write) is skipped with a
    warning; any other malformed line is a ValueError naming the file and line."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise ValueError(f"{str(run_dir)!r} has no metrics.jsonl: is it a run directory?")
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if number == len(lines):
                warnings.warn(f"{path}: skipping a truncated last line", stacklevel=2)
                break
            raise ValueError(f"{path}, line {number}: not valid JSON ({e})") from e
    return records


def curve(records: list[dict[str, Any]], x: str, y: str) -> tuple[list[float], list[float]]:
    """(xs, ys) over the records that hold `y`, e.g.
    curve([{"step": 1, "train_loss": 2.5}], "step", "train_loss") -> ([1], [2.5]). Time is in minutes."""
    key = X_AXES[x][0]
    points = [(r[key], r[y]) for r in records if r.get(y) is not None and key in r]
    xs = [p[0] / 60 if x == "time" else p[0] for p in points]
    return xs, [p[1] for p in points]


METRICS = {  # --metric: (train key or None, periodic validation key, final whole-split key, axis label)
    "loss": ("train_loss", "val_loss", "final_val_loss", "loss (nats/token)"),
    "bpb": (None, "val_bpb", "final_val_bpb", "validation bits per byte"),
}


def read_config(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """RUN/config.json as a dict, or None when the run has none (or it is unreadable: a title is not worth an
    error)."""
    try:
        return json.loads((Path(run_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def describe_setup(config: dict[str, Any]) -> tuple[str, str, str]:
    """What a run trained on, for a title: (data, model, batch), e.g. ("shakespeare.txt.gz", "1.33M-parameter model
    (d_model 128, 4 layers)", "batch 16 x 128 tokens, 200 steps")."""
    from cs336_basics.accounting import parameter_counts  # lazily: it loads torch
    from cs336_basics.model import ModelConfig

    model, data = config["model"], config["data"]
    params = sum(parameter_counts(ModelConfig(**model)).values())
    return (Path(data["train_path"]).name,
            f"{params / 1e6:.2f}M-parameter model (d_model {model['d_model']}, {model['num_layers']} layers)",
            f"batch {data['batch_size']} x {model['context_length']} tokens, {_steps(config)} steps")


def _steps(config: dict[str, Any]) -> int:
    """The run's length in optimizer steps (as TrainConfig.total_steps computes it)."""
    schedule, data = config["schedule"], config["data"]
    if schedule.get("max_steps") is not None:
        return schedule["max_steps"]
    tokens_per_step = data["batch_size"] * data.get("grad_accum_steps", 1) * config["model"]["context_length"]
    return max(1, schedule["total_tokens"] // tokens_per_step)


def default_title(run_dirs: list[str | os.PathLike]) -> str:
    """The run name(s) and, from config.json, the data, model and batch they share (or which of them differ)."""
    names = [Path(r).resolve().name for r in run_dirs]
    head = names[0] if len(names) == 1 else f"{len(names)} runs: {', '.join(names)}"
    configs = [read_config(r) for r in run_dirs]
    if any(c is None for c in configs):
        return head
    setups = [describe_setup(c) for c in configs]
    parts = [part[0] if len(set(part)) == 1 else f"{what} differ"
             for part, what in zip(zip(*setups), ("data", "models", "batches"))]
    return f"{head}\n{', '.join(parts)}"


def make_figure(run_dirs: list[str | os.PathLike], x: str = "step", title: str | None = None,
                metric: str = "loss", ymax: float | None = None) -> Figure:
    """One axes: per run (one colour each) the train loss as a line, the periodic validation points (one fixed
    sample of windows) as dots on a dashed line, the final whole-split figure as a star.

    metric="bpb" draws validation bits per byte (validation only: training records have no byte counts).
    `ymax` clips the y-axis (a diverging run would otherwise squash the others); the runs cut off are named.
    """
    if x not in X_AXES:
        raise ValueError(f"x must be one of {sorted(X_AXES)}, got {x!r}")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
    if not run_dirs:
        raise ValueError("no runs to plot")
    train_key, val_key, final_key, ylabel = METRICS[metric]
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.add_subplot()
    clipped = []
    for i, run_dir in enumerate(run_dirs):
        records = read_metrics(run_dir)
        name, color = Path(run_dir).resolve().name, f"C{i % 10}"
        train = curve(records, x, train_key) if train_key else ([], [])
        val, final = curve(records, x, val_key), curve(records, x, final_key)
        if not train[0] and not val[0] and not final[0]:
            wanted = " or ".join(k for k in (train_key, val_key, final_key) if k)
            raise ValueError(f"{str(run_dir)!r}: metrics.jsonl holds no {wanted} records")
        if train[0]:
            ax.plot(*train, color=color, alpha=0.6, linewidth=1, label=f"{name} train")
        if val[0]:
            ax.plot(*val, color=color, linestyle="--", marker="o", markersize=3, label=f"{name} val (sample)")
        if final[0]:
            ax.plot(*final, color=color, linestyle="none", marker="*", markersize=12, markeredgecolor="black",
                    markeredgewidth=0.6, label=f"{name} final (whole split)")
        if ymax is not None and max(train[1] + val[1] + final[1]) > ymax:
            clipped.append(name)
    ax.set_xlabel(X_AXES[x][1])
    ax.set_ylabel(ylabel)
    if ymax is not None:
        ax.set_ylim(top=ymax)
        if clipped:
            ax.text(0.99, 0.99, f"y clipped at {ymax:g}; leaves the axes: {', '.join(clipped)}",
                    transform=ax.transAxes, ha="right", va="top", fontsize=8)
    ax.set_title(title or default_title(run_dirs), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def plot_runs(
    run_dirs: list[str | os.PathLike],
    x: str = "step",
    out: str | os.PathLike = "learning_curve.png",
    title: str | None = None,
    metric: str = "loss",
    ymax: float | None = None,
) -> Path:
    """Draw the runs' learning curves (see `make_figure`) into the PNG `out`; return its path."""
    fig = make_figure(run_dirs, x, title, metric, ymax)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig).print_png(str(out))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m cs336_basics.plot",
        description="Overlay the train/validation loss curves of one or more runs (their metrics.jsonl).",
    )
    parser.add_argument("runs", nargs="+", help="run directories (runs/<name>), each holding a metrics.jsonl")
    parser.add_argument("--x", choices=sorted(X_AXES), default="step", help="x axis (default: %(default)s)")
    parser.add_argument(
        "--out", default=None, help="output PNG (default: learning_curves/<run names joined by _vs_>.png)"
    )
    parser.add_argument("--title", default=None,
                        help="figure title (default: the run names, data and model size from config.json)")
    parser.add_argument("--metric", choices=sorted(METRICS), default="loss",
                        help="loss: train and validation loss; bpb: validation bits per byte (default: %(default)s)")
    parser.add_argument("--ymax", type=float, default=None, help="clip the y-axis at this value")
    args = parser.parse_args(argv)
    out = args.out or Path("learning_curves") / (
        "_vs_".join(Path(r).resolve().name for r in args.runs) + ".png"
    )
    try:
        path = plot_runs(args.runs, x=args.x, out=out, title=args.title, metric=args.metric, ymax=args.ymax)
    except ValueError as e:
        parser.error(str(e))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
