"""BPE training on the awkward files of issue 13 §4, at full size: time, peak memory, merges against the naive trainer.

    uv run python benchmarks/bench_bpe_robustness.py                 # 100 MB each (a few minutes per case)
    uv run python benchmarks/bench_bpe_robustness.py --mb 2000 --cases no-special

Cases (each written to --dir, default a temporary directory, and removed afterwards):
- no-special: the scale benchmark's generated text (corpora.scale_text: vocabulary growth fitted to real text) with
  its <|endoftext|> marks removed, so there is none at all;
- special-at-end: the same text with its only <|endoftext|> in the last bytes;
- one-line: the same text with every newline replaced by a space (a single line);
- one-char: one document of the letter 'a', i.e. ONE pre-token of N bytes.
Each trains (vocab 10,000, <|endoftext|> special, all cores) in a fresh subprocess: wall time and the peak RSS of
the process tree (main + workers, sampled every 50 ms). The merges are then compared with train_bpe_naive's on a
--prefix-mb prefix of the same file, where the naive trainer is feasible (vocab 300). Each record goes to --out
(results/bpe_robustness.json). The CI-sized versions of these cases are tests in tests/test_train_bpe.py.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpora

EOT = corpora.EOT
CASES = ("no-special", "special-at-end", "one-line", "one-char")
RESULTS = Path(__file__).resolve().parents[1] / "results" / "bpe_robustness.json"


def write_case(case: str, path: Path, num_bytes: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        if case == "one-char":
            f.writelines("a" * (1 << 20) for _ in range(num_bytes // (1 << 20)))
            f.write("a" * (num_bytes % (1 << 20)))
            return
        size = num_bytes - (len(EOT) if case == "special-at-end" else 0)
        for chunk in corpora.scale_stream(size):  # the scale benchmark's text, its <|endoftext|> marks removed
            chunk = chunk.replace(EOT, "")
            f.write(chunk.replace("\n", " ") if case == "one-line" else chunk)
        if case == "special-at-end":
            f.write(EOT)


def _train_child(path: str, vocab_size: int) -> None:
    """In a fresh process: train, print seconds, peak tree RSS and a digest of the merges as JSON."""
    import hashlib

    import psutil

    from cs336_basics.tokenizer import train_bpe

    peak, stop = [0], threading.Event()

    def sample() -> None:
        me = psutil.Process()
        while not stop.is_set():
            try:
                rss = me.memory_info().rss + sum(c.memory_info().rss for c in me.children(recursive=True))
            except psutil.Error:
                rss = 0
            peak[0] = max(peak[0], rss)
            stop.wait(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    _, merges = train_bpe(path, vocab_size, [EOT])
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    digest = hashlib.sha256(repr(merges).encode()).hexdigest()[:12]
    print(json.dumps({"seconds": round(seconds, 1), "peak_mb": round(peak[0] / 2**20), "merges": len(merges),
                      "digest": digest}))


def naive_agrees(path: Path, prefix_bytes: int, vocab_size: int = 300) -> bool:
    """train_bpe == train_bpe_naive on the first prefix_bytes of the file (cut at a character boundary)."""
    from cs336_basics.tokenizer import train_bpe, train_bpe_naive

    with open(path, "rb") as f:
        data = f.read(prefix_bytes)
    prefix = path.with_suffix(".prefix.txt")
    prefix.write_text(data.decode("utf-8", errors="ignore"), encoding="utf-8")
    try:
        return train_bpe(prefix, vocab_size, [EOT]) == train_bpe_naive(prefix, vocab_size, [EOT])
    finally:
        prefix.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=100, help="size of each file in MB (default 100)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    parser.add_argument("--vocab-size", type=int, default=10_000)
    parser.add_argument("--prefix-mb", type=float, default=0.3, help="prefix checked against the naive trainer")
    parser.add_argument("--dir", default=None, help="where to write the files (default: a temporary directory)")
    parser.add_argument("--out", default=str(RESULTS),
                        help="results JSON, one record per case and size, kept across runs (default: %(default)s)")
    parser.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        _train_child(args._child[0], int(args._child[1]))
        return
    cases = args.cases.split(",")
    if unknown := set(cases) - set(CASES):
        parser.error(f"unknown case(s) {sorted(unknown)}; choose from {', '.join(CASES)}")
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bpe_robustness_") as tmp:
        for case in cases:
            path = Path(tmp) / f"{case}.txt"
            write_case(case, path, int(args.mb * 1e6))
            out = subprocess.run([sys.executable, __file__, "--_child", str(path), str(args.vocab_size)],
                                 capture_output=True, text=True, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            result["naive_agrees_on_prefix"] = naive_agrees(path, int(args.prefix_mb * 1e6))
            record = {"case": case, "mb": args.mb, **result}
            print(json.dumps(record), flush=True)
            path.unlink()
            save(Path(args.out), record)


def save(out: Path, record: dict) -> None:
    """Add `record` to the list in `out`, replacing an earlier record of the same case and size (atomically)."""
    from cs336_basics.atomic import atomic_write_text

    records = json.loads(out.read_text()) if out.exists() else []
    records = [r for r in records if (r["case"], r["mb"]) != (record["case"], record["mb"])] + [record]
    atomic_write_text(out, json.dumps(sorted(records, key=lambda r: (r["mb"], r["case"])), indent=1) + "\n")


if __name__ == "__main__":
    main()
