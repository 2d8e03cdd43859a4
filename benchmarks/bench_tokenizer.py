"""Tokenizer benchmark: ours against HF tokenizers (training) and tiktoken / HF tokenizers (encoding).

    uv run python benchmarks/bench_tokenizer.py            # full run (a few minutes)
    uv run python benchmarks/bench_tokenizer.py --quick    # 2 MB of each corpus, one repetition

Corpora (see corpora.py): the bundled Shakespeare (~5 MB) and ~40 MB of Python standard-library code.
- Training, vocab 10,000 with <|endoftext|>: wall time and peak RSS of the whole process tree (sampled every 20 ms),
  each run in a fresh subprocess; ours uses all cores (processes), HF its default thread pool.
  Merges are checked against the naive trainer on a 200 KB prefix (the naive trainer is too slow for all of it).
- Encoding with GPT-2's vocabulary (tests/fixtures): MB/s of one process from a cold cache (a fresh Tokenizer per
  repetition), against tiktoken's GPT-2 encoding (built offline from the same files; ids must be identical) and
  HF tokenizers' ByteLevel BPE with one thread; then `encode_file` on all cores against tiktoken single-thread and
  tiktoken's encode_ordinary_batch over the documents with as many threads as cores.
Repetitions are interleaved (ours, reference, ours, ...) and the best of each is kept (HF encoding runs once).
- Streaming (--stream-mb N, 0 to skip): `encode_iterable` over N MB of generated text whose vocabulary keeps growing
  (--stream-source: corpora.growing_vocabulary_text by default, or scale_text), with the bounded pre-token cache
  (the default) and with an unbounded one, each in a fresh subprocess: RSS growth over the stream (sampled every
  50 ms, peak minus the RSS after building the tokenizer) and encoding MB/s (the time to generate the same text,
  measured alone, subtracted); ids compared by a checksum of the whole stream.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpora

FIXTURES = corpora.ROOT / "tests" / "fixtures"
EOT = corpora.EOT
VOCAB_SIZE = 10_000


def _peak_tree_rss(stop: threading.Event, result: list) -> None:
    import psutil

    me = psutil.Process()
    peak = 0
    while not stop.is_set():
        try:
            rss = me.memory_info().rss + sum(c.memory_info().rss for c in me.children(recursive=True))
        except psutil.Error:
            rss = 0
        peak = max(peak, rss)
        stop.wait(0.02)
    result.append(peak)


def _train_once(which: str, path: str) -> dict:
    """Runs inside a fresh subprocess: train once, report seconds and peak tree RSS."""
    stop, peak = threading.Event(), []
    sampler = threading.Thread(target=_peak_tree_rss, args=(stop, peak))
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from cs336_basics.tokenizer import train_bpe

    sampler.start()
    start = time.perf_counter()  # imports are outside the timed region
    if which == "ours":
        _, merges = train_bpe(path, VOCAB_SIZE, [EOT])
        num_merges = len(merges)
    else:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=VOCAB_SIZE,
            special_tokens=[EOT],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train([path], trainer)
        num_merges = tok.get_vocab_size() - 257
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    return {"seconds": seconds, "peak_mb": peak[0] / 2**20, "merges": num_merges}


def train_in_subprocess(which: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--_train-once", which, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def prefix_file(path: Path, nbytes: int) -> Path:
    """The first ~nbytes of a corpus, cut at a newline (for quick runs and naive checks)."""
    out = corpora.CACHE / f"{path.stem}_prefix{nbytes}.txt"
    if not out.exists():
        data = path.read_bytes()[:nbytes]
        out.write_bytes(data[: data.rfind(b"\n") + 1])
    return out


def _stream_once(cache: str, megabytes: float, source: str) -> dict:
    """Runs inside a fresh subprocess: encode_iterable over the generated stream; RSS growth, seconds, checksum."""
    import hashlib

    import psutil

    from cs336_basics.tokenizer import Tokenizer
    from cs336_basics.tokenizer.tokenizer import DEFAULT_CACHE_BYTES

    num_bytes = int(megabytes * 1e6)
    start = time.perf_counter()
    stream = corpora.STREAMS[source]
    for _ in stream(num_bytes):
        pass
    generate_seconds = time.perf_counter() - start
    cache_bytes = None if cache == "unbounded" else DEFAULT_CACHE_BYTES if cache == "bounded" else int(cache)
    tok = Tokenizer.from_files(FIXTURES / "gpt2_vocab.json", FIXTURES / "gpt2_merges.txt", [EOT], cache_bytes)
    process = psutil.Process()
    base = process.memory_info().rss
    stop, peak = threading.Event(), [base]

    def sample():
        while not stop.wait(0.05):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample)
    sampler.start()
    digest, count, ids, streamed, profile = hashlib.sha256(), 0, [], [0], []

    def counted():  # the text as it is handed to the tokenizer, counting bytes for the RSS profile
        for chunk in stream(num_bytes):
            streamed[0] += len(chunk)
            yield chunk

    start = time.perf_counter()
    for i in tok.encode_iterable(counted()):
        ids.append(i)
        if len(ids) == 1 << 16:
            digest.update(np.array(ids, dtype=np.uint32).tobytes())
            count += len(ids)
            ids.clear()
            if streamed[0] >= (len(profile) + 1) * num_bytes / 10:  # RSS growth after each tenth of the stream
                profile.append((round(streamed[0] / 1e6, 1), round((process.memory_info().rss - base) / 2**20, 1)))
    digest.update(np.array(ids, dtype=np.uint32).tobytes())
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    cached = tok._cache
    return {"cache": cache, "megabytes": megabytes, "tokens": count + len(ids), "seconds": seconds,
            "generate_seconds": generate_seconds, "rss_growth_mb": (max(peak[0], process.memory_info().rss) - base) / 2**20,
            "cached_pretokens": len(cached) + len(cached.old), "rss_growth_profile_mb": profile,
            "sha256": digest.hexdigest()}


def stream_rows(megabytes: float, reps: int, source: str) -> list[tuple]:
    runs = {"bounded": [], "unbounded": []}
    for _ in range(reps):
        for cache, results in runs.items():
            out = subprocess.run([sys.executable, __file__, "--_stream-once", cache, str(megabytes), source],
                                 capture_output=True, text=True, check=True)
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"  stream {cache}: {results[-1]}", flush=True)
    same = len({r["sha256"] for rs in runs.values() for r in rs}) == 1
    print(f"ids identical with the bounded and the unbounded cache: {same}")
    mbs = {c: max(megabytes / (r["seconds"] - r["generate_seconds"]) for r in rs) for c, rs in runs.items()}
    growth = {c: max(r["rss_growth_mb"] for r in rs) for c, rs in runs.items()}
    name = f"{megabytes:g} MB {source} stream"
    return [
        (name, "encode_iterable RSS growth MB", growth["bounded"], growth["unbounded"], "unbounded cache",
         "< 50 at 1 GB"),
        (name, "encode_iterable MB/s", mbs["bounded"], mbs["unbounded"], "unbounded cache", ">= 0.95"),
    ]


def gpt2_references():
    import tiktoken
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    from cs336_basics.tokenizer.io import CHAR_TO_BYTE
    from cs336_basics.tokenizer.pretokenize import GPT2_PATTERN

    vocab = json.loads((FIXTURES / "gpt2_vocab.json").read_text(encoding="utf-8"))
    ranks = {bytes(CHAR_TO_BYTE[c] for c in t): i for t, i in vocab.items() if t != EOT}
    enc = tiktoken.Encoding(
        name="gpt2_offline", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={EOT: vocab[EOT]}
    )
    hf = Tokenizer(models.BPE.from_file(str(FIXTURES / "gpt2_vocab.json"), str(FIXTURES / "gpt2_merges.txt")))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    hf.add_special_tokens([EOT])
    return enc, hf


def best_of(reps: int, fns: dict) -> dict:
    """Interleave repetitions of each callable; return {name: (best seconds, last result)}."""
    best = {name: (float("inf"), None) for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            start = time.perf_counter()
            result = fn()
            seconds = time.perf_counter() - start
            best[name] = (min(best[name][0], seconds), result)
    return best


def training_rows(name: str, path: Path, reps: int) -> list[tuple]:
    from cs336_basics.tokenizer import train_bpe, train_bpe_naive

    small = prefix_file(path, 200_000)
    same = train_bpe(small, 600, [EOT]) == train_bpe_naive(small, 600, [EOT])
    print(f"fast == naive on a 200 KB prefix at vocab 600: {same}", flush=True)
    runs = {"ours": [], "hf": []}
    for _ in range(reps):
        for which, results in runs.items():
            results.append(train_in_subprocess(which, path))
            print(f"  train {which}: {results[-1]}", flush=True)
    seconds = {which: min(r["seconds"] for r in results) for which, results in runs.items()}
    peak_mb = {which: max(r["peak_mb"] for r in results) for which, results in runs.items()}
    return [
        (name, "train vocab 10k: seconds", seconds["ours"], seconds["hf"], "HF tokenizers", "<= 1.5"),
        (
            name,
            "train vocab 10k: peak RSS MB",
            peak_mb["ours"],
            peak_mb["hf"],
            "HF tokenizers",
            f"<= {max(2.0, 500 / peak_mb['hf']):.2f}",
        ),
    ]


def encoding_rows(name: str, path: Path, reps: int) -> list[tuple]:
    from cs336_basics.tokenizer import Tokenizer, encode_file

    enc, hf = gpt2_references()
    text = path.read_bytes().decode("utf-8")  # not read_text: it would turn the corpus's \r\n into \n
    size_mb = path.stat().st_size / 1e6

    def gpt2():
        return Tokenizer.from_files(FIXTURES / "gpt2_vocab.json", FIXTURES / "gpt2_merges.txt", [EOT])

    fresh = [gpt2() for _ in range(2 * reps)]  # cold caches, built outside the timed region
    docs = text.split(EOT)  # tiktoken's batch API spreads documents over its own threads
    out = corpora.CACHE / f"{name}_gpt2.npy"
    timed = best_of(
        reps,
        {
            "ours": lambda: fresh.pop().encode(text),
            "tiktoken": lambda: enc.encode(text, allowed_special="all"),
            "encode_file": lambda: encode_file(fresh.pop(), path, out, progress=False),
            "tiktoken_batch": lambda: enc.encode_ordinary_batch(docs, num_threads=os.cpu_count()),
        },
    )
    timed |= best_of(1, {"hf": lambda: hf.encode(text).ids})  # HF is slowest by far: one run is enough
    same = timed["ours"][1] == timed["tiktoken"][1] == np.load(out).tolist()
    print(
        f"ids (encode and encode_file) identical to tiktoken: {same}; "
        f"HF ids identical: {timed['hf'][1] == timed['ours'][1]}"
    )
    mbs = {k: size_mb / v[0] for k, v in timed.items()}
    print("  encode MB/s:", {k: round(v, 2) for k, v in mbs.items()}, flush=True)
    return [
        (name, "encode 1 process MB/s (cold)", mbs["ours"], mbs["tiktoken"], "tiktoken", ">= 0.35"),
        (name, "encode 1 process MB/s (cold)", mbs["ours"], mbs["hf"], "HF tokenizers 1 thread", ">= 3"),
        (
            name,
            f"encode_file {os.cpu_count()} cores MB/s",
            mbs["encode_file"],
            mbs["tiktoken"],
            "tiktoken 1 thread",
            "",
        ),
        (
            name,
            f"encode_file {os.cpu_count()} cores MB/s",
            mbs["encode_file"],
            mbs["tiktoken_batch"],
            f"tiktoken encode_ordinary_batch, {os.cpu_count()} threads",
            ">= 0.6",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2 MB of each corpus, one repetition")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per measurement (default 3)")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-encode", action="store_true")
    parser.add_argument("--stream-mb", type=float, default=100,
                        help="MB of generated text for the streaming measurement (0: skip; default %(default)s)")
    parser.add_argument("--_train-once", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--stream-source", choices=sorted(corpora.STREAMS), default="generated",
                        help="generated: corpora.growing_vocabulary_text (Zipf 1.3, so distinct words grow as "
                             "n^0.77, faster than real text); scale: corpora.scale_text (Heaps' law fitted to "
                             "Shakespeare, n^0.58); real: Shakespeare then stdlib code (at most ~45 MB)")
    parser.add_argument("--_stream-once", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._train_once:
        print(json.dumps(_train_once(*args._train_once)))
        return
    if args._stream_once:
        print(json.dumps(_stream_once(args._stream_once[0], float(args._stream_once[1]), args._stream_once[2])))
        return

    reps = 1 if args.quick else args.reps
    paths = {} if args.skip_train and args.skip_encode else {n: build() for n, build in corpora.CORPORA.items()}
    if args.quick:
        paths = {name: prefix_file(p, 2_000_000) for name, p in paths.items()}
    rows = []
    print(f"cores: {os.cpu_count()}, repetitions: {reps}", flush=True)

    for name, path in paths.items():
        print(f"\n== {name}: {path.stat().st_size / 1e6:.1f} MB", flush=True)
        if not args.skip_train:
            rows += training_rows(name, path, reps)
        if not args.skip_encode:
            rows += encoding_rows(name, path, reps)

    if args.stream_mb > 0:
        print(f"\n== streaming {args.stream_mb:g} MB", flush=True)
        rows += stream_rows(args.stream_mb, reps, args.stream_source)

    print("\n| corpus | measure | ours | reference | ref value | ours/ref | target |")
    print("|---|---|---|---|---|---|---|")
    for name, measure, ours, ref, ref_name, target in rows:
        print(f"| {name} | {measure} | {ours:.2f} | {ref_name} | {ref:.2f} | {ours / ref:.2f} | {target} |")


if __name__ == "__main__":
    main()
