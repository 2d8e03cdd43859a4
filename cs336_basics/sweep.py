"""Run a sweep of training runs: `uv run python -m cs336_basics.sweep SPEC.json [--workers N] [--dry-run]`.

A thin wrapper over cs336_basics.scaling.sweep (the spec format is documented there and in the README).
"""

from __future__ import annotations

import argparse
import sys

from cs336_basics.scaling.expressions import HELP as EXPRESSION_HELP


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cs336_basics.sweep",
        description="Train every point of a sweep spec (a base config, grid axes = every combination, zip axes = "
        "lists walked together) as run directories under OUT_DIR/NAME/, in parallel worker processes, and write "
        "OUT_DIR/NAME/sweep.csv (one row per run). Rerunning skips finished runs, resumes killed ones from their "
        "checkpoints and retries failed ones.",
        epilog="Axis values and base overrides may be expressions; an axis without a dot (e.g. C) is a sweep "
        "variable that replaces {C} in the spec's strings. " + EXPRESSION_HELP,
    )
    parser.add_argument("spec", help="the sweep spec, a JSON file")
    parser.add_argument("--workers", type=int, default=None,
                        help="parallel worker processes (default: one per core, torch threads = cores / workers); "
                        "0 runs the points one after another in this process")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the runs with their parameters, FLOPs and a time estimate from one measured "
                        "step per model shape, and train nothing")
    parser.add_argument("--backend", choices=["local", "modal"], default="local",
                        help="local worker processes (default) or Modal: each run on the GPU function of "
                        "cs336_basics/train_modal.py, fanned out with starmap")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs, CI)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 0:
        parser.error("--workers must be >= 0")
    from cs336_basics.scaling.sweep import dry_run_table, load_spec, resolve_points, run_modal, run_sweep

    try:
        spec = load_spec(args.spec)
        if args.dry_run:
            workers = args.workers if args.workers is not None else __import__("os").cpu_count()
            print(dry_run_table(resolve_points(spec), workers))
            return 0
        if args.backend == "modal":
            rows = run_modal(spec)
        else:
            rows = run_sweep(spec, args.workers, progress=not args.no_progress)
    except ValueError as e:
        parser.error(str(e))
    except KeyboardInterrupt:
        print(f"\ninterrupted: rerun the same command to resume ({spec.sweep_dir}/)", file=sys.stderr)
        return 130
    counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "failed", "interrupted", "pending")}
    print(f"{spec.sweep_dir / 'sweep.csv'}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return 0 if counts["failed"] == 0 and counts["interrupted"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
