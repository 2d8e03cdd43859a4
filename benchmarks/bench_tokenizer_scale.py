"""The tokenizer at gigabyte scale: time and memory against corpus size, next to HF tokenizers and tiktoken.

    uv run python benchmarks/bench_tokenizer_scale.py --sizes 0.1,0.5,1      # GB; hours on 2 busy cores
    uv run python benchmarks/bench_tokenizer_scale.py --sizes 0.01,0.05      # a smoke run, a few minutes

For each size, a generated corpus (corpora.scale_text: Zipfian words, Heaps' law fitted to real text, documents
separated by <|endoftext|>; written once under --workdir) is
- trained on at vocab 10,000 and 32,000 with <|endoftext|>: ours (train_bpe, all cores) against HF tokenizers'
  BpeTrainer (ByteLevel pre-tokenizer, its own threads on the same cores); wall time, peak RSS of the process tree
  (main process and workers summed where they coexist, sampled every 50 ms with psutil: a forked worker's pages
  shared with its parent count again, worker_start_rss_mb records how much), distinct pre-tokens;
- encoded with GPT-2's vocabulary (tests/fixtures): ours (encode_file, what tokenize_data runs, all cores) against
  tiktoken's encode_ordinary_batch (num_threads = cores) and HF tokenizers' encode_batch_fast on the documents
  (split at <|endoftext|>, 8 MB batches; their timed part is reading, splitting and encoding, not building an
  array); MB/s and peak RSS; every id is checked equal to tiktoken's (checksums of the whole id stream).
  HF encoding runs on the first --hf-encode-mb MB only (it is ~10x slower; its MB/s does not depend on size).
Each measurement runs once, in a fresh subprocess (imports outside the timed part). Then: tables with ratios and the
issue-13 targets, log-log slopes of time and memory against size (between 0.5 GB, or the smallest size, and the
largest), an extrapolation to TinyStories and OpenWebText on an 8-core laptop, results/tokenizer_scale.json and the
plot results/tokenizer_scale.png.
"""

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpora  # noqa: E402

ROOT = corpora.ROOT
FIXTURES = ROOT / "tests" / "fixtures"
EOT = corpora.EOT
VOCABS = (10_000, 32_000)
BATCH_BYTES = 8 << 20
RESULTS = ROOT / "results" / "tokenizer_scale.json"
# Issue 13's laptop and corpora, for the extrapolation.
LAPTOP_CORES = 8
TARGET_CORPORA = {"TinyStories": (2.1e9, 10_000), "OpenWebText": (11.1e9, 32_000)}
REFERENCE = "a published solution: TinyStories at 10K in 904 s and 7.7 GB"


# ---- children: one measurement each, the result as JSON on the last line of stdout ----

def _train(tool: str, path: str, vocab_size: int) -> dict:
    cores = os.cpu_count() or 1
    stats: dict = {}
    if tool == "ours":
        from cs336_basics.tokenizer import train_bpe

        trainer_module = sys.modules["cs336_basics.tokenizer.train_bpe"]  # the package's name is the function
        count = getattr(trainer_module, "count_pretokens_in_file", None)
        if count is not None:  # time the parallel pre-token count apart from the serial merges; count pre-tokens

            def counted(*args, **kwargs):
                start = time.perf_counter()
                counts = count(*args, **kwargs)
                stats.update(pretokenize_seconds=time.perf_counter() - start, distinct_pretokens=len(counts))
                return counts

            trainer_module.count_pretokens_in_file = counted
        start = time.perf_counter()
        _, merges = train_bpe(path, vocab_size, [EOT], num_workers=cores, progress=True)
        seconds = time.perf_counter() - start
        num_merges = len(merges)
    else:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        start = time.perf_counter()
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=True,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train([path], trainer)
        seconds = time.perf_counter() - start
        num_merges = tok.get_vocab_size() - 257
    return {"seconds": seconds, "merges": num_merges, **stats}


def document_batches(path: str, limit: int | None = None):
    """(documents, bytes) batches of ~BATCH_BYTES: each document was followed by <|endoftext|> except, at the end
    of the file, the last one (then bytes counts no token for it); stops after `limit` bytes when given."""
    eot = EOT.encode()
    done = 0
    with open(path, "rb") as f:
        carry = b""
        while chunk := f.read(BATCH_BYTES):
            text = carry + chunk
            cut = text.rfind(eot) + len(eot)
            if cut >= len(eot):
                carry = text[cut:]
                done += cut
                yield text[:cut].decode("utf-8").split(EOT)[:-1], cut, True
                if limit and done >= limit:
                    return
            else:
                carry = text
        if carry:
            yield [carry.decode("utf-8")], len(carry), False


def _encode(tool: str, path: str, output: str, limit: int, snapshot: int) -> dict:
    """Encode with GPT-2's vocabulary; ids hashed (as uint16, <|endoftext|> between documents) outside the timing,
    also after the batch that passes `snapshot` bytes (the prefix HF encodes)."""
    import numpy as np

    cores = os.cpu_count() or 1
    if tool == "ours":
        from cs336_basics.tokenizer import Tokenizer, encode_file

        tok = Tokenizer.from_files(FIXTURES / "gpt2_vocab.json", FIXTURES / "gpt2_merges.txt", [EOT])
        start = time.perf_counter()
        result = encode_file(tok, path, output, num_workers=cores, progress=True)
        return {"seconds": time.perf_counter() - start, "bytes": result.num_bytes, "tokens": result.num_tokens}
    from tqdm import tqdm

    enc, hf = gpt2_references()
    eot_id = enc.eot_token
    digest, tokens, nbytes, seconds, prefix_sha256 = hashlib.sha256(), 0, 0, 0.0, None
    bar = tqdm(total=limit or os.path.getsize(path), unit="B", unit_scale=True, desc=f"encode {tool}")
    batches = document_batches(path, limit)
    while True:
        start = time.perf_counter()
        batch = next(batches, None)
        if batch is None:
            break
        docs, size, eot_after = batch
        if tool == "tiktoken":
            ids = enc.encode_ordinary_batch(docs, num_threads=cores)
        else:
            ids = [e.ids for e in hf.encode_batch_fast(docs)]
        seconds += time.perf_counter() - start
        for doc_ids in ids:
            doc_ids.append(eot_id)
        if not eot_after:
            ids[-1].pop()
        array = np.fromiter((i for doc_ids in ids for i in doc_ids), dtype=np.uint16)
        digest.update(array.tobytes())
        tokens, nbytes = tokens + len(array), nbytes + size
        if snapshot and prefix_sha256 is None and nbytes >= snapshot:
            prefix_sha256 = digest.hexdigest()
        bar.update(size)
    bar.close()
    return {"seconds": seconds, "bytes": nbytes, "tokens": tokens, "sha256": digest.hexdigest(),
            "prefix_sha256": prefix_sha256}


def gpt2_references():
    """tiktoken's GPT-2 encoding, built offline from the fixture files, and HF tokenizers' ByteLevel BPE."""
    import tiktoken
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    from cs336_basics.tokenizer.io import CHAR_TO_BYTE
    from cs336_basics.tokenizer.pretokenize import GPT2_PATTERN

    vocab = json.loads((FIXTURES / "gpt2_vocab.json").read_text(encoding="utf-8"))
    ranks = {bytes(CHAR_TO_BYTE[c] for c in t): i for t, i in vocab.items() if t != EOT}
    enc = tiktoken.Encoding(name="gpt2_offline", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                            special_tokens={EOT: vocab[EOT]})
    hf = Tokenizer(models.BPE.from_file(str(FIXTURES / "gpt2_vocab.json"), str(FIXTURES / "gpt2_merges.txt")))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    return enc, hf


# ---- the parent: run each child while sampling its process tree's memory ----

def run_child(args: list[str]) -> dict:
    """Run this script as a child measurement; return its JSON plus the peak RSS (MB) of its process tree (main
    and workers summed) and of its main process alone, sampled every 50 ms."""
    import psutil

    started = {"started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
               "load_average_1min": round(os.getloadavg()[0], 2)}
    proc = subprocess.Popen([sys.executable, __file__, "--_child", *args], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "TOKENIZERS_PARALLELISM": "true"})
    peak, first_seen = {"tree": 0, "main": 0}, {}

    def sample():
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
                main = root.memory_info().rss
                peak["tree"] = max(peak["tree"], main + sum(c.memory_info().rss for c in tree[1:]))
                peak["main"] = max(peak["main"], main)
                for child in tree[1:]:  # a worker's RSS when first seen: mostly pages shared with its parent
                    first_seen.setdefault(child.pid, child.memory_info().rss)
            except psutil.Error:
                pass  # a worker ended between listing and reading it
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    sampler.join()
    if proc.returncode:
        sys.exit(f"measurement {' '.join(args)} failed with exit code {proc.returncode} (its error is above)")
    return {**json.loads(out.strip().splitlines()[-1]), "peak_rss_mb": peak["tree"] / 2**20,
            "peak_rss_main_mb": peak["main"] / 2**20, "workers": len(first_seen),
            "worker_start_rss_mb": max(first_seen.values(), default=0) / 2**20, **started}


def npy_sha256(path: Path) -> str:
    """Checksum of the ids of a .npy written by encode_file, read in slices (the parent is not measured)."""
    import numpy as np

    ids = np.load(path, mmap_mode="r")
    digest = hashlib.sha256()
    for start in range(0, len(ids), 1 << 24):
        digest.update(np.ascontiguousarray(ids[start : start + (1 << 24)]).tobytes())
    return digest.hexdigest()


def slope(points: list[tuple[float, float]]) -> dict | None:
    """Log-log slope of value against size between the point at 0.5 GB (or the smallest size above it; the smallest
    when none is) and the largest: {"slope", "from_gb", "to_gb"}."""
    import math

    points = sorted(p for p in points if p[1] > 0)
    if len(points) < 2:
        return None
    first = next((p for p in points[:-1] if p[0] >= 0.5), points[-2] if points[-2][0] >= 0.5 else points[0])
    value = math.log(points[-1][1] / first[1]) / math.log(points[-1][0] / first[0])
    return {"slope": round(value, 3), "from_gb": first[0], "to_gb": points[-1][0]}


def measure(args, save) -> list[dict]:
    """Every measurement asked for, in order; `save(runs)` after each one (a long run keeps what it measured)."""
    sizes = sorted(float(s) for s in args.sizes.split(","))
    trains = [v for v in VOCABS if f"train{v // 1000}k" in args.tasks]
    tools = args.tools.split(",")
    steps = len(sizes) * (len(trains) * len({"ours", "hf"} & set(tools)) + ("encode" in args.tasks) * len(tools))
    runs, step = [], 0

    def record(run: dict) -> None:
        runs.append({**run, "code": args.code})
        save(runs)

    for size in sizes:
        path = corpora.scale_corpus(int(size * 1e9), args.seed, args.workdir)
        mb = path.stat().st_size / 1e6
        for vocab in trains:
            for tool in [t for t in ("ours", "hf") if t in tools]:
                step += 1
                print(f"[{step}/{steps}] {size:g} GB: BPE training, vocab {vocab:,}, {tool}", flush=True)
                r = run_child(["train", tool, str(path), str(vocab)])
                print(f"    {r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
                record({"size_gb": size, "mb": mb, "task": f"train {vocab // 1000}K", "tool": tool, **r})
        if "encode" not in args.tasks:
            continue
        out = Path(args.workdir) / f"{path.stem}_gpt2.npy"
        hf_limit = int(args.hf_encode_mb * 1e6)
        encodes = {}
        for tool in [t for t in ("ours", "tiktoken", "hf") if t in tools]:
            step += 1
            print(f"[{step}/{steps}] {size:g} GB: encoding with GPT-2's vocabulary, {tool}", flush=True)
            limit = hf_limit if tool == "hf" else 0
            r = run_child(["encode", tool, str(path), str(out), str(limit), str(hf_limit)])
            if tool == "ours":
                r["sha256"] = npy_sha256(out)
                out.unlink()
            r["mb_per_s"] = r["bytes"] / 1e6 / r["seconds"]
            print(f"    {r['mb_per_s']:.2f} MB/s over {r['bytes'] / 1e6:.0f} MB, peak RSS {r['peak_rss_mb']:.0f} MB",
                  flush=True)
            encodes[tool] = {"size_gb": size, "mb": mb, "task": "encode", "tool": tool, **r}
            check_ids(list(encodes.values()))  # every id against tiktoken's (HF's on the prefix it encoded)
            record(encodes[tool])
        print("    ids equal to tiktoken's: " + ", ".join(f"{t} {r.get('ids_equal_tiktoken', 'not compared')}"
                                                         for t, r in encodes.items() if t != "tiktoken"), flush=True)
    return runs


# ---- reporting ----

def find(runs, size, task, tool):
    return next((r for r in runs if r["size_gb"] == size and r["task"] == task and r["tool"] == tool), None)


def check_ids(runs: list[dict]) -> None:
    """Mark each encode run whose ids equal tiktoken's at the same size (on the prefix it encoded), whichever
    invocation measured them (the checksums are kept in the runs)."""
    for r in runs:
        t = find(runs, r["size_gb"], "encode", "tiktoken")
        if r["task"] == "encode" and r["tool"] != "tiktoken" and t and r.get("sha256"):
            r["ids_equal_tiktoken"] = r["sha256"] == (t["sha256"] if r["bytes"] == t["bytes"] else t["prefix_sha256"])


def whole_file_seconds(run: dict) -> float:
    """Seconds for the whole corpus (HF encodes a prefix: the whole file at its MB/s)."""
    return run["mb"] / run["mb_per_s"] if run["task"] == "encode" else run["seconds"]


def summarize(runs: list[dict]) -> dict:
    """Slopes, target rows and the laptop extrapolation from the measured runs."""
    series: dict[str, list[dict]] = {}
    for r in runs:
        series.setdefault(f"{r['task']} {r['tool']}", []).append(r)
    slopes = {name: {"time": slope([(r["size_gb"], whole_file_seconds(r)) for r in rs]),
                     "peak_rss": slope([(r["size_gb"], r["peak_rss_mb"]) for r in rs])}
              for name, rs in series.items()}
    targets = []

    def target(name, value, goal, met):
        targets.append({"target": name, "measured": value, "goal": goal, "met": met})

    for vocab in VOCABS:
        if s := slopes.get(f"train {vocab // 1000}K ours", {}).get("time"):
            target(f"training time log-log slope, vocab {vocab // 1000}K, {s['from_gb']:g} to {s['to_gb']:g} GB",
                   s["slope"], "<= 1.1", s["slope"] <= 1.1)
    trains = [r for r in runs if r["tool"] == "ours" and r["task"].startswith("train")]
    if trains:
        largest = max(r["size_gb"] for r in trains)
        peak = max(r["peak_rss_mb"] for r in trains if r["size_gb"] == largest)
        target(f"training peak RSS (tree) at {largest:g} GB (the goal is at 2 GB)", round(peak), "<= 1024 MB",
               peak <= 1024)
    for vocab, goal in zip(VOCABS, (1.0, 1.2)):
        task = f"train {vocab // 1000}K"
        pairs = [(r, find(runs, r["size_gb"], task, "hf")) for r in series.get(f"{task} ours", [])]
        pairs = [(o, h) for o, h in pairs if h]
        if pairs:  # at 1 GB, or the largest size measured on both sides
            o, h = next(((o, h) for o, h in pairs if o["size_gb"] == 1.0), max(pairs, key=lambda p: p[0]["size_gb"]))
            ratio = o["seconds"] / h["seconds"]
            target(f"training time / HF tokenizers' at {o['size_gb']:g} GB, vocab {vocab // 1000}K",
                   round(ratio, 3), f"<= {goal}", ratio <= goal)
    pairs = [(r, find(runs, r["size_gb"], "encode", "tiktoken")) for r in series.get("encode ours", [])]
    pairs = [(o, t) for o, t in pairs if t]
    if pairs:
        o, t = next(((o, t) for o, t in pairs if o["size_gb"] == 1.0), max(pairs, key=lambda p: p[0]["size_gb"]))
        ratio = o["mb_per_s"] / t["mb_per_s"]
        target(f"encode MB/s / tiktoken's ({os.cpu_count()} threads) at {o['size_gb']:g} GB", round(ratio, 3),
               ">= 0.6", ratio >= 0.6)
    if s := slopes.get("encode ours", {}).get("peak_rss"):
        target(f"encode peak RSS log-log slope, {s['from_gb']:g} to {s['to_gb']:g} GB", s["slope"],
               "~0 (bounded by the chunk size; <= 0.1)", s["slope"] <= 0.1)
    return {"slopes": slopes, "targets": targets, "extrapolation": extrapolate(runs)}


def extrapolate(runs: list[dict]) -> dict:
    """Our trainer on TinyStories / OWT on an 8-core laptop, from the largest size measured at their vocabulary.

    Assumes a laptop core as fast as one here and a corpus whose vocabulary grows like the generator's.
    Pre-tokenizing is parallel: its time scales with bytes / cores. Merging is serial: its time (total minus
    pre-tokenizing) scales with size at its measured log-log slope. The main process's peak RSS scales at its
    measured slope; the workers' (tree peak minus main peak, per core, at the size where it is largest) is added
    once per laptop core. A vocabulary measured at one size only borrows the 10K series' slopes, its merge time
    scaled by the ratio of the two at that size."""
    out = {}
    cores = os.cpu_count() or 1

    def series(vocab):
        return sorted((r for r in runs if r["task"] == f"train {vocab // 1000}K" and r["tool"] == "ours"
                       and "pretokenize_seconds" in r), key=lambda r: r["size_gb"])

    for name, (nbytes, vocab) in TARGET_CORPORA.items():
        rs, merge_factor = series(vocab), 1.0
        if len(rs) < 2 and vocab != VOCABS[0] and rs:
            base = {r["size_gb"]: r for r in series(VOCABS[0])}
            if rs[0]["size_gb"] in base:
                b = base[rs[0]["size_gb"]]
                merge_factor = (rs[0]["seconds"] - rs[0]["pretokenize_seconds"]) / (b["seconds"] - b["pretokenize_seconds"])
                rs = series(VOCABS[0])
        if len(rs) < 2:
            continue
        last = rs[-1]
        scale = nbytes / 1e9 / last["size_gb"]
        merge_slope = slope([(r["size_gb"], r["seconds"] - r["pretokenize_seconds"]) for r in rs])["slope"]
        rss_slope = slope([(r["size_gb"], r["peak_rss_main_mb"]) for r in rs])["slope"]
        pretokenize = last["pretokenize_seconds"] * scale * cores / LAPTOP_CORES
        merge = (last["seconds"] - last["pretokenize_seconds"]) * merge_factor * scale**merge_slope
        worker_mb = max(max(0.0, r["peak_rss_mb"] - r["peak_rss_main_mb"]) / cores for r in rs)
        out[name] = {
            "gb": nbytes / 1e9, "vocab_size": vocab, "from_size_gb": last["size_gb"],
            "from_vocab_size": int(last["task"].split()[1][:-1]) * 1000, "merge_time_factor": round(merge_factor, 3),
            "seconds": round(pretokenize + merge), "pretokenize_seconds": round(pretokenize),
            "merge_seconds": round(merge), "merge_time_slope": merge_slope,
            "peak_rss_mb": round(last["peak_rss_main_mb"] * scale**rss_slope + worker_mb * LAPTOP_CORES),
            "main_rss_slope": rss_slope, "worker_mb": round(worker_mb),
            "distinct_pretokens": round(last["distinct_pretokens"] * scale**corpora.HEAPS_BETA)
            if last.get("distinct_pretokens") else None,
        }
    return out


def _fmt(value, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def print_report(runs: list[dict], summary: dict) -> None:
    """Markdown tables (as in the README): training, encoding, targets; slopes and the extrapolation."""
    sizes = sorted({r["size_gb"] for r in runs})
    print("\n| corpus | distinct pre-tokens | vocab | ours s | HF s | ours / HF | ours peak RSS MB | HF peak RSS MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        for vocab in VOCABS:
            o, h = (find(runs, size, f"train {vocab // 1000}K", tool) or {} for tool in ("ours", "hf"))
            if o or h:
                ratio = o["seconds"] / h["seconds"] if o and h else None
                print(f"| {size:g} GB | {_fmt(o.get('distinct_pretokens'), ',')} | {vocab // 1000}K "
                      f"| {_fmt(o.get('seconds'))} | {_fmt(h.get('seconds'))} | {_fmt(ratio, '.2f')} "
                      f"| {_fmt(o.get('peak_rss_mb'), '.0f')} | {_fmt(h.get('peak_rss_mb'), '.0f')} |")
    print("\n| corpus | ours MB/s | tiktoken MB/s | ours / tiktoken | HF MB/s (MB encoded) | ours peak RSS MB "
          "| tiktoken peak RSS MB | HF peak RSS MB | ids = tiktoken's |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for size in sizes:
        o, t, h = (find(runs, size, "encode", tool) or {} for tool in ("ours", "tiktoken", "hf"))
        if o or t or h:
            ratio = o["mb_per_s"] / t["mb_per_s"] if o and t else None
            hf = f"{h['mb_per_s']:.2f} ({h['bytes'] / 1e6:.0f})" if h else "-"
            same = ", ".join(f"{name} {r['ids_equal_tiktoken']}" for name, r in (("ours", o), ("HF", h))
                             if "ids_equal_tiktoken" in r)
            print(f"| {size:g} GB | {_fmt(o.get('mb_per_s'), '.2f')} | {_fmt(t.get('mb_per_s'), '.2f')} "
                  f"| {_fmt(ratio, '.2f')} | {hf} | {_fmt(o.get('peak_rss_mb'), '.0f')} "
                  f"| {_fmt(t.get('peak_rss_mb'), '.0f')} | {_fmt(h.get('peak_rss_mb'), '.0f')} | {same or '-'} |")
    print("\nlog-log slopes against corpus size (from, to GB):")
    for name, s in summary["slopes"].items():
        print(f"  {name}: " + ", ".join(f"{k} {v['slope']:.3f} ({v['from_gb']:g}, {v['to_gb']:g})" if v else f"{k} -"
                                        for k, v in s.items()))
    print("\n| target | measured | goal | met |\n|---|---:|---|---|")
    for t in summary["targets"]:
        print(f"| {t['target']} | {t['measured']} | {t['goal']} | {'yes' if t['met'] else '**no**'} |")
    for name, e in summary["extrapolation"].items():
        print(f"\nextrapolated from {e['from_size_gb']:g} GB, {name} ({e['gb']:g} GB, vocab {e['vocab_size']:,}) on an "
              f"{LAPTOP_CORES}-core laptop: {e['seconds']} s ({e['pretokenize_seconds']} s pre-tokenizing, "
              f"{e['merge_seconds']} s merging), peak RSS {e['peak_rss_mb']} MB; reference: {REFERENCE}")


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cs336_basics.atomic import atomic_open

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 4.8))
    styles = {"ours": ("-", "o"), "hf": ("--", "s"), "tiktoken": (":", "^")}
    colors = {"train 10K": "tab:blue", "train 32K": "tab:green", "encode": "tab:purple"}
    names = {"ours": "ours", "hf": "HF tokenizers", "tiktoken": "tiktoken"}
    for task, color in colors.items():
        for tool, (line, marker) in styles.items():
            rs = sorted((r for r in runs if r["task"] == task and r["tool"] == tool), key=lambda r: r["size_gb"])
            if not rs:
                continue
            x = [r["size_gb"] for r in rs]
            label = f"{task.replace('train', 'BPE training')}, {names[tool]}"
            style = dict(linestyle=line, marker=marker, color=color)
            ax_t.plot(x, [whole_file_seconds(r) for r in rs], label=label + (
                f" (its MB/s on <= {max(r['bytes'] for r in rs) / 1e6:.0f} MB)" if tool == "hf" and task == "encode"
                else ""), **style)
            ax_m.plot(x, [r["peak_rss_mb"] for r in rs], label=label, **style)
    sizes = sorted({r["size_gb"] for r in runs})
    if len(sizes) > 1 and (first := find(runs, sizes[0], "train 10K", "ours")):  # linear growth, for the eye
        ax_t.plot(sizes, [first["seconds"] * s / sizes[0] for s in sizes], color="grey", linewidth=0.8,
                  linestyle=(0, (1, 3)), label="slope 1 (time proportional to size)")
    for ax, ylabel in ((ax_t, "wall time, s"), (ax_m, "peak RSS of the process tree, MB")):
        ax.set(xscale="log", yscale="log", xlabel="generated corpus, GB", ylabel=ylabel)
        ax.grid(True, which="both", alpha=0.3)
    ax_t.legend(fontsize=7)
    ax_m.legend(fontsize=7)
    loads = [r["load_average_1min"] for r in runs if "load_average_1min" in r]
    load = f", load average {min(loads):.0f}-{max(loads):.0f} at the runs' starts" if loads else ""
    fig.suptitle(f"Generated corpus: BPE training (vocab 10K, 32K) and GPT-2 encoding, time and memory against size, "
                 f"{os.cpu_count()} cores{load}", fontsize=10)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


def run_key(run: dict) -> tuple:
    return run["size_gb"], run["task"], run["tool"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="0.1,0.5,1", help="corpus sizes in GB, comma-separated (default %(default)s)")
    parser.add_argument("--tasks", default="train10k,train32k,encode",
                        help="what to measure, comma-separated (default %(default)s)")
    parser.add_argument("--tools", default="ours,hf,tiktoken",
                        help="whose tokenizer, comma-separated (default %(default)s; tiktoken only encodes)")
    parser.add_argument("--workdir", default=str(corpora.CACHE),
                        help="where the generated corpora (GBs, reused) and encoded ids go (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="corpus generator seed (default %(default)s)")
    parser.add_argument("--hf-encode-mb", type=float, default=20,
                        help="HF tokenizers encodes only the first this many MB (default %(default)s)")
    parser.add_argument("--out", default=str(RESULTS), help="results JSON; the plot goes next to it as .png")
    parser.add_argument("--keep-previous", action="store_true",
                        help="keep the runs already in --out that this invocation does not repeat (add a size)")
    parser.add_argument("--report-only", action="store_true",
                        help="measure nothing: report, plot and summarize the runs already in --out")
    parser.add_argument("--robustness-mb", type=float, default=0,
                        help="then run the issue-13 §4 robustness cases (benchmarks/bench_bpe_robustness.py) at "
                             "this many MB each (default 0: skip; 2000 for the full size)")
    parser.add_argument("--_child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        kind, *rest = args._child
        if kind == "train":
            result = _train(rest[0], rest[1], int(rest[2]))
        else:
            result = _encode(rest[0], rest[1], rest[2], int(rest[3]), int(rest[4]))
        print(json.dumps(result))
        return
    try:
        sizes = sorted(float(s) for s in args.sizes.split(","))
    except ValueError:
        parser.error(f"--sizes must be numbers of GB separated by commas, got {args.sizes!r}")
    if not sizes or min(sizes) <= 0:
        parser.error(f"--sizes must be positive, got {args.sizes!r}")
    for name, allowed in (("tasks", {"train10k", "train32k", "encode"}), ("tools", {"ours", "hf", "tiktoken"})):
        if unknown := set(getattr(args, name).split(",")) - allowed:
            parser.error(f"--{name}: unknown {', '.join(sorted(unknown))} (choose from {', '.join(sorted(allowed))})")
    if args.robustness_mb and not Path(__file__).with_name("bench_bpe_robustness.py").exists():
        parser.error("--robustness-mb: benchmarks/bench_bpe_robustness.py (the robustness cases) is not here")
    out = Path(args.out)
    if (args.keep_previous or args.report_only) and not out.is_file():
        parser.error(f"--out {out} does not exist: there are no earlier runs to keep or report")

    from cs336_basics.atomic import atomic_write_text

    earlier = json.loads(out.read_text()) if args.keep_previous or args.report_only else {"runs": []}
    previous = earlier["runs"]
    git = lambda *a: subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()  # noqa: E731
    args.code = git("log", "-1", "--format=%h %s")
    package = Path(importlib.util.find_spec("cs336_basics").origin).parent
    if package != ROOT / "cs336_basics":  # PYTHONPATH points elsewhere: say which code is measured
        args.code += f"; cs336_basics imported from {package}"
    header = {"command": " ".join(sys.argv), "code": args.code,
              "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no")),
              "cores": os.cpu_count(), "load_average_start": os.getloadavg(),
              "generator": {"heaps_k": corpora.HEAPS_K, "heaps_beta": corpora.HEAPS_BETA, "seed": args.seed}}

    def merged(runs: list[dict]) -> list[dict]:
        fresh = {run_key(r) for r in runs}
        return sorted([r for r in previous if run_key(r) not in fresh] + runs, key=lambda r: r["size_gb"])

    def save(runs: list[dict], **extra) -> None:
        record = {"load_average_end": os.getloadavg(), **header, **extra, "runs": merged(runs)}
        atomic_write_text(out, json.dumps(record, indent=2) + "\n")

    if args.report_only:  # the measurement's own record, re-summarized
        header = {k: v for k, v in earlier.items() if k in header or k == "load_average_end"}
        runs = previous
    else:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        print(f"{os.cpu_count()} cores, load average {header['load_average_start'][0]:.1f}; "
              f"corpora in {args.workdir}; code: {header['code']}", flush=True)
        try:
            runs = merged(measure(args, lambda rs: save(rs, complete=False)))
        except KeyboardInterrupt:  # the children got the same Ctrl-C and stopped
            sys.exit(f"interrupted: the measurements finished so far are in {out}")
    check_ids(runs)
    summary = summarize(runs)
    print_report(runs, summary)
    save(runs if not args.report_only else [], complete=True, **summary)
    plot(runs, out.with_suffix(".png"))
    print(f"\nwrote {out} and {out.with_suffix('.png')}")
    if args.robustness_mb:
        script = Path(__file__).with_name("bench_bpe_robustness.py")
        print(f"\n== robustness cases at {args.robustness_mb:g} MB each: {script.name}", flush=True)
        sys.exit(subprocess.run([sys.executable, str(script), "--mb", str(args.robustness_mb),
                                 "--dir", str(args.workdir)]).returncode)


if __name__ == "__main__":
    main()
