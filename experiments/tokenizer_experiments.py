"""Question 3: compression ratio of each tokenizer on each corpus, throughput, and the time to encode the Pile.

    uv run python experiments/tokenizer_experiments.py     # after experiments/bpe_training.py

Samples 10 documents (seed 0) from each corpus (Shakespeare's works; the standard library's files) and encodes
them with both trained tokenizers (results/tokenizers/) and, as a yardstick, GPT-2's. Throughput: one process
encoding the samples with a fresh tokenizer (cold cache), and `encode_file` on all cores over a whole corpus.
Writes results/tokenizer_experiments.json.
"""

import argparse
import gzip
import os
import random
import time
from pathlib import Path

from common import CODE_CORPUS_BYTES, ROOT, python_stdlib, write_results

EOT = "<|endoftext|>"
PILE_BYTES = 825e9


def sample_documents(text: str, k: int = 10, seed: int = 0) -> list[str]:
    docs = [d for d in text.split(EOT) if d.strip()]
    return random.Random(seed).sample(docs, k)


def tokenizers():
    from cs336_basics.tokenizer import Tokenizer

    return {
        "shakespeare-10k": lambda: Tokenizer.from_dir("results/tokenizers/shakespeare-10k"),
        "code-32k": lambda: Tokenizer.from_dir("results/tokenizers/code-32k"),
        "gpt2-50k": lambda: Tokenizer.from_files("tests/fixtures/gpt2_vocab.json", "tests/fixtures/gpt2_merges.txt",
                                                 [EOT]),
    }


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    os.chdir(ROOT)
    from cs336_basics.tokenizer import encode_file

    code_path = python_stdlib(CODE_CORPUS_BYTES)
    texts = {"shakespeare": gzip.open("data/shakespeare.txt.gz", "rt", encoding="utf-8").read(),
             "code": code_path.read_text(encoding="utf-8")}
    samples = {name: sample_documents(text) for name, text in texts.items()}
    results: dict = {"bytes_per_token": {}, "throughput_one_process_mb_s": {}, "sample_bytes": {}}
    for corpus, docs in samples.items():
        results["sample_bytes"][corpus] = sum(len(d.encode("utf-8")) for d in docs)
    for tok_name, make in tokenizers().items():
        for corpus, docs in samples.items():
            tok = make()  # fresh: its pre-token cache starts empty
            n_bytes = results["sample_bytes"][corpus]
            start = time.perf_counter()
            n_tokens = sum(len(tok.encode(d)) for d in docs)
            seconds = time.perf_counter() - start
            key = f"{tok_name} on {corpus}"
            results["bytes_per_token"][key] = round(n_bytes / n_tokens, 3)
            results["throughput_one_process_mb_s"][key] = round(n_bytes / seconds / 1e6, 3)
            print(f"{key}: {n_bytes / n_tokens:.2f} bytes/token, {n_bytes / seconds / 1e6:.2f} MB/s", flush=True)

    # The whole Shakespeare corpus on all cores, as the data pipeline does it.
    tok = tokenizers()["shakespeare-10k"]()
    out = Path("data/cache/experiments/shakespeare-10k.npy")
    stats = encode_file(tok, "data/shakespeare.txt.gz", out, progress=False)
    rate = stats.num_bytes / stats.seconds
    results["encode_file_all_cores"] = {"bytes": stats.num_bytes, "tokens": stats.num_tokens,
                                        "seconds": round(stats.seconds, 3), "mb_s": round(rate / 1e6, 3),
                                        "cores": os.cpu_count(), "dtype": "uint16 (vocab 10,000 <= 65,536)"}
    results["pile_825GB_hours_all_cores"] = round(PILE_BYTES / rate / 3600, 1)
    one = results["throughput_one_process_mb_s"]["shakespeare-10k on shakespeare"] * 1e6
    results["pile_825GB_hours_one_process"] = round(PILE_BYTES / one / 3600, 1)
    results["load_average_at_end"] = os.getloadavg()
    write_results("tokenizer_experiments", results)


if __name__ == "__main__":
    main()
