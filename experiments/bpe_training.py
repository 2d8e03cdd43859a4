"""Question 2: train the two BPE tokenizers and measure time, peak memory, longest token and a profile.

    uv run python experiments/bpe_training.py            # Shakespeare at 10,000 and the code corpus at 32,000

Each tokenizer is trained by the package's CLI (`python -m cs336_basics.train_bpe`) in a fresh process, which
prints the time, the peak RSS of the main process and of the largest worker, and the longest token; it is saved
to results/tokenizers/<name>/ in GPT-2's file format. Then a second training runs in this process under cProfile
to split the time between the phases (pre-tokenization, merges). Figures go to results/bpe_training.json and the
profiles' top functions to results/bpe_profile_<name>.txt.
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import re
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from cs336_basics.atomic import atomic_write_text
from common import CODE_CORPUS_BYTES, ROOT, python_stdlib, write_results

EOT = "<|endoftext|>"


def corpora(dataset_paths: dict[str, str]) -> dict[str, tuple[str, int]]:
    """name -> (input text, vocabulary size)."""
    return {"shakespeare-10k": (dataset_paths["shakespeare"], 10_000),
            "code-32k": (dataset_paths["code"], 32_000)}


def train_with_cli(path: str, vocab_size: int, out: Path) -> dict:
    cmd = [sys.executable, "-m", "cs336_basics.train_bpe", path, "--vocab-size", str(vocab_size),
           "--special-token", EOT, "--out", str(out)]
    print(" ".join(cmd[1:]), flush=True)
    text = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    print(text)
    seconds = float(re.search(r"in ([\d.]+) s", text).group(1))
    main_mb, worker_mb = map(float, re.search(r"peak memory: (\d+) MB .*?, (\d+) MB", text).groups())
    return {"seconds": seconds, "peak_rss_main_mb": main_mb, "peak_rss_largest_worker_mb": worker_mb}


def profile_phases(path: str, vocab_size: int, name: str) -> dict:
    """Cumulative seconds of the two phases of train_bpe, measured by cProfile in this (main) process."""
    from cs336_basics.tokenizer import train_bpe

    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(train_bpe, path, vocab_size, [EOT])
    total = time.perf_counter() - start
    stats = pstats.Stats(profiler)
    cumulative = {func[2]: row[3] for func, row in stats.stats.items()}
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(25)
    atomic_write_text(Path(f"results/bpe_profile_{name}.txt"),
        f"cProfile of train_bpe({path!r}, {vocab_size}) in the main process (workers are not profiled)\n"
        + "\n".join(_short_paths(line.rstrip()) for line in text.getvalue().splitlines()[:60]) + "\n")
    return {"profiled_seconds": total,
            "pretokenize_seconds": cumulative.get("count_pretokens_in_file", 0.0),
            "merge_seconds": cumulative.get("_merge_loop", 0.0)}


def _short_paths(line: str) -> str:
    """Profile lines without this machine's directories."""
    for prefix, short in ((sysconfig.get_paths()["purelib"] + "/", "<site-packages>/"), (str(ROOT) + "/", ""),
                          (sysconfig.get_paths()["stdlib"] + "/", "<stdlib>/")):
        line = line.replace(prefix, short)
    return line


def describe_vocab(directory: Path) -> dict:
    from cs336_basics.tokenizer import Tokenizer

    vocab = Tokenizer.from_dir(directory).vocab
    by_length = sorted(vocab.values(), key=len, reverse=True)
    return {"vocab_size": len(vocab), "longest": [t.decode("utf-8", "replace") for t in by_length[:5]],
            "longest_bytes": len(by_length[0])}


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    os.chdir(ROOT)
    paths = {"shakespeare": "data/shakespeare.txt.gz", "code": str(python_stdlib(CODE_CORPUS_BYTES).relative_to(ROOT))}
    results = {}
    for name, (path, vocab_size) in corpora(paths).items():
        out = Path("results/tokenizers") / name
        results[name] = {"input": path, **train_with_cli(path, vocab_size, out), **describe_vocab(out)}
        results[name].update(profile_phases(path, vocab_size, name))
        print(json.dumps(results[name], indent=2), flush=True)
    shared = set(_tokens("shakespeare-10k")) & set(_tokens("code-32k"))
    results["shared_tokens"] = len(shared)
    write_results("bpe_training", results)


def _tokens(name: str) -> list[bytes]:
    from cs336_basics.tokenizer import Tokenizer

    return list(Tokenizer.from_dir(Path("results/tokenizers") / name).vocab.values())


if __name__ == "__main__":
    main()
