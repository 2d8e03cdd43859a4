"""Train a byte-level BPE tokenizer on a text file and save it in GPT-2's file format.

    uv run python -m cs336_basics.train_bpe data/shakespeare.txt.gz --vocab-size 10000 \\
        --special-token '<|endoftext|>' --out runs/tokenizer

writes OUT/vocab.json, OUT/merges.txt and OUT/special_tokens.json (load with Tokenizer.from_dir(OUT)).
A .gz input is decompressed into a temporary file first.
"""

import argparse
import os
import resource
import sys
import time

from cs336_basics.tokenizer import Tokenizer, train_bpe


def peak_rss_mb() -> tuple[float, float]:
    """Peak resident memory (MB) of this process and of its largest finished child (Linux reports KB)."""
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 1024**2
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale
    return own, children


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m cs336_basics.train_bpe",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", help="UTF-8 text file (or .gz) to train on")
    parser.add_argument("--vocab-size", type=int, default=10000, help="total vocabulary size (default 10000)")
    parser.add_argument(
        "--special-token",
        action="append",
        dest="special_tokens",
        help="a special token, repeatable (default: <|endoftext|>); pass --special-token '' for none",
    )
    parser.add_argument("--out", required=True, help="directory to write vocab.json / merges.txt into")
    parser.add_argument(
        "--workers", type=int, default=None, help="processes for pre-tokenization (default: all)"
    )
    args = parser.parse_args(argv)
    specials = ["<|endoftext|>"] if args.special_tokens is None else [t for t in args.special_tokens if t]
    # Check everything that can fail before the work, not after it.
    if os.path.isdir(args.input):
        parser.error(f"{args.input} is a directory: give a text file")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        parser.error(f"--out {args.out} is a file; give a directory to write vocab.json and merges.txt into")

    start = time.perf_counter()
    try:
        vocab, merges = train_bpe(
            args.input, args.vocab_size, specials, num_workers=args.workers, progress=True
        )
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    except KeyboardInterrupt:  # the worker processes are already terminated (the Pool's exit)
        sys.exit("interrupted: no tokenizer was written")
    seconds = time.perf_counter() - start
    try:
        Tokenizer(vocab, merges, specials).save(args.out)  # each file is written atomically
    except OSError as err:
        parser.error(f"could not write the tokenizer to {args.out}: {err}")
    except KeyboardInterrupt:
        sys.exit(f"interrupted while saving to {args.out}: a file may be missing, none is partial")

    own, children = peak_rss_mb()
    longest = max(vocab.values(), key=len)
    print(f"trained {len(merges)} merges, vocabulary {len(vocab)} in {seconds:.2f} s")
    if len(vocab) < args.vocab_size:
        print(f"note: stopped at vocabulary {len(vocab)} of the {args.vocab_size} asked for: no pair of adjacent "
              f"tokens is left to merge in {args.input}")
    print(f"peak memory: {own:.0f} MB (main process), {children:.0f} MB (largest worker)")
    print(f"longest token: {longest!r} ({len(longest)} bytes)")
    print(f"saved to {args.out}")


if __name__ == "__main__":
    main()
