"""Learning curves: train and validation loss of one or more runs, read from each run's metrics.jsonl.

    uv run python -m cs336_basics.plot runs/a runs/b --x tokens --out learning_curves/a_vs_b.png

Each metrics.jsonl line is one JSON record with "step", "tokens", "time" (seconds) and "train_loss" and/or
"val_loss" (the trainer writes both kinds of record). Drawing uses matplotlib's object API with the Agg
canvas, so no display and no global backend switch are needed.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cs336_basics.atomic import atomic_open

if TYPE_CHECKING:  # matplotlib is imported where a figure is drawn, so --help answers at once
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
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not a text metrics file (invalid UTF-8 at byte offset {e.start})") from None
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


def make_figure(run_dirs: list[str | os.PathLike], x: str = "step", title: str | None = None) -> Figure:
    """One axes: per run (one colour each) the train loss as a line, the validation loss as dots on a dashed
    line."""
    from matplotlib.figure import Figure

    if x not in X_AXES:
        raise ValueError(f"x must be one of {sorted(X_AXES)}, got {x!r}")
    if not run_dirs:
        raise ValueError("no runs to plot")
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.add_subplot()
    for i, run_dir in enumerate(run_dirs):
        records = read_metrics(run_dir)
        name, color = Path(run_dir).resolve().name, f"C{i % 10}"
        train, val = curve(records, x, "train_loss"), curve(records, x, "val_loss")
        if not train[0] and not val[0]:
            raise ValueError(f"{str(run_dir)!r}: metrics.jsonl holds no train_loss or val_loss records")
        if train[0]:
            ax.plot(*train, color=color, alpha=0.6, linewidth=1, label=f"{name} train")
        if val[0]:
            ax.plot(*val, color=color, linestyle="--", marker="o", markersize=3, label=f"{name} val")
    ax.set_xlabel(X_AXES[x][1])
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title or "learning curves")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def plot_runs(
    run_dirs: list[str | os.PathLike],
    x: str = "step",
    out: str | os.PathLike = "learning_curve.png",
    title: str | None = None,
) -> Path:
    """Draw the runs' learning curves (see `make_figure`) into `out` (PNG, PDF, SVG, JPEG... by its suffix,
    written atomically); return its path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    out = Path(out)
    fmt = check_image_path(out)
    fig = make_figure(run_dirs, x, title)
    canvas = FigureCanvasAgg(fig)
    with atomic_open(out, "wb") as f:
        canvas.print_figure(f, format=fmt)
    return out


def check_image_path(out: Path) -> str:
    """The image format that `out`'s suffix names; a ValueError for a directory or an unknown suffix."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if out.is_dir():
        raise ValueError(f"--out {out} is a directory; give an image file such as {out / 'curve.png'}")
    formats = FigureCanvasAgg.get_supported_filetypes()
    fmt = out.suffix.lower().removeprefix(".")
    if fmt not in formats:
        raise ValueError(f"--out {out}: unknown image type {out.suffix or '(no suffix)'!r}; use one of "
                         f"{', '.join('.' + f for f in sorted(formats))}")
    return fmt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m cs336_basics.plot",
        description="Overlay the train/validation loss curves of one or more runs (their metrics.jsonl).",
    )
    parser.add_argument("runs", nargs="+", help="run directories (runs/<name>), each holding a metrics.jsonl")
    parser.add_argument("--x", choices=sorted(X_AXES), default="step", help="x axis (default: %(default)s)")
    parser.add_argument(
        "--out", default=None, help="output image; its suffix picks the format: .png, .pdf, .svg, .jpg ... "
        "(default: learning_curves/<run names joined by _vs_>.png)"
    )
    parser.add_argument("--title", default=None, help="figure title (default: 'learning curves')")
    args = parser.parse_args(argv)
    out = args.out or Path("learning_curves") / (
        "_vs_".join(Path(r).resolve().name for r in args.runs) + ".png"
    )
    try:
        path = plot_runs(args.runs, x=args.x, out=out, title=args.title)
    except ValueError as e:
        parser.error(str(e))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
