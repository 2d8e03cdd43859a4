"""Encode a text file into a NumPy array of token ids with a saved tokenizer, on all cores.

    uv run python -m cs336_basics.tokenize_data --tokenizer runs/tokenizer data/shakespeare.txt.gz \\
        --output data/shakespeare.npy

The output is a 1-D .npy (uint16 when the vocabulary fits in 65536 ids, else uint32); open it with
np.load(path, mmap_mode="r"). It is written to OUTPUT.part and renamed when complete.
"""

import argparse
import os
import sys

from cs336_basics.tokenizer import encode_file, load_tokenizer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m cs336_basics.tokenize_data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", help="UTF-8 text file (or .gz) to encode")
    parser.add_argument("--tokenizer", required=True,
                        help="directory written by train_bpe, or a run's tokenizer/ (BPE or bytes)")
    parser.add_argument("--output", required=True, help="the .npy file to write")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    args = parser.parse_args(argv)
    if os.path.isdir(args.output):
        parser.error(f"--output {args.output} is a directory; give the .npy file to write")
    try:
        tokenizer = load_tokenizer(args.tokenizer)
        result = encode_file(tokenizer, args.input, args.output, num_workers=args.workers, progress=True)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    except KeyboardInterrupt:
        sys.exit("interrupted: the partial output was removed")
    print(
        f"{result.num_bytes:,} bytes -> {result.num_tokens:,} tokens in {result.seconds:.2f} s "
        f"({result.num_bytes / 1e6 / max(result.seconds, 1e-9):.2f} MB/s), "
        f"{result.bytes_per_token:.2f} bytes/token; wrote {args.output}"
    )


if __name__ == "__main__":
    main()
