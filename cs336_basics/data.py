"""Fetch the assignment's corpora (the code is cs336_basics/download.py; token files: cs336_basics/training/data.py).

    uv run python -m cs336_basics.data download tinystories [--dest data/]
"""

import argparse
import os
import sys

from cs336_basics.download import DATASETS, download


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cs336_basics.data", description="Data utilities.")
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser(
        "download",
        help="download a corpus of the assignment",
        description="Download a corpus into --dest (resumable: rerun after an interruption to continue).",
    )
    fetch.add_argument(
        "dataset",
        choices=sorted(DATASETS),
        help="tinystories: TinyStoriesV2-GPT4 train/valid; "
        "owt: the OpenWebText sample train/valid (decompressed after download)",
    )
    fetch.add_argument("--dest", default="data", help="destination directory (default: %(default)s)")
    fetch.add_argument("--retries", type=int, default=3,
                       help="automatic resumes after a dropped connection, >= 0 (default: %(default)s)")
    fetch.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.retries < 0:
        fetch.error(f"--retries must be >= 0, got {args.retries}")
    if os.path.exists(args.dest) and not os.path.isdir(args.dest):
        fetch.error(f"--dest {args.dest} is a file; give the directory to download into")
    try:
        paths = download(args.dataset, args.dest, progress=not args.no_progress, retries=args.retries)
    except ValueError as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        print(
            "interrupted: the partial download is kept as *.part; run the same command again to resume",
            file=sys.stderr,
        )
        sys.exit(130)
    for path in paths:
        print(f"{path}  ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
