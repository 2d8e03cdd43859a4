"""Fit compute-optimal scaling laws to a sweep: `uv run python -m cs336_basics.scaling sweep.csv --out DIR`.

A thin wrapper over cs336_basics.scaling.report.analyze: writes DIR/fits.json, DIR/isoflop_*.png, DIR/optimal_*.png
and (with inference FLOPs in the csv) DIR/pareto.png, and prints the fitted exponents.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cs336_basics.scaling",
        description="Chinchilla approach 2 (IsoFLOP parabolas -> N_opt, D_opt power laws with bootstrap "
        "intervals) and approach 3 (L = E + A/N^alpha + B/D^beta, Huber fit) on the finished runs of a sweep.csv, "
        "for non-embedding and total parameters; IsoFLOP, optimum and Pareto-frontier plots.",
    )
    parser.add_argument("csv", help="a sweep.csv written by python -m cs336_basics.sweep")
    parser.add_argument("--out", required=True, metavar="DIR", help="where fits.json and the plots go")
    parser.add_argument("--budget-column", default="C",
                        help="the csv column holding each run's FLOP budget (default C); without it, runs are "
                        "grouped by their training FLOPs rounded to 2 significant digits")
    parser.add_argument("--loss", default="val_loss", choices=["val_loss", "val_bpb"],
                        help="the loss to fit (default val_loss, nats per token)")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for the intervals (0: none)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.bootstrap < 0:
        parser.error("--bootstrap must be >= 0")
    from cs336_basics.scaling.report import analyze, summary_text

    try:
        fits = analyze(args.csv, args.out, args.budget_column, args.loss, args.bootstrap)
    except ValueError as e:
        parser.error(str(e))
    print(summary_text(fits))
    print(f"wrote {args.out}/fits.json and the plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
