"""Benchmark corpora, built on demand and cached under benchmarks/.cache/ (git-ignored).

- shakespeare: data/shakespeare.txt.gz decompressed (42 works joined with <|endoftext|>, ~5 MB).
- python_stdlib: the .py files of this Python's standard library, sorted by path, joined with <|endoftext|>,
  until ~40 MB (files that are not valid UTF-8 are skipped).
- growing_vocabulary_text: a generated stream of any length whose vocabulary keeps growing as real text's does
  (not cached: it is produced chunk by chunk, in bounded memory).
"""

import gzip
import os
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / ".cache"
EOT = "<|endoftext|>"


def shakespeare() -> Path:
    out = CACHE / "shakespeare.txt"
    if not out.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with gzip.open(ROOT / "data" / "shakespeare.txt.gz", "rb") as f:
            out.write_bytes(f.read())
    return out


def python_stdlib(target_bytes: int = 40_000_000) -> Path:
    out = CACHE / f"python_stdlib_{target_bytes // 1_000_000}mb.txt"
    if out.exists():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.rglob("*.py") if "site-packages" not in p.parts)
    parts, size = [], 0
    while size < target_bytes:  # repeat the library if it is smaller than the target
        start = size
        for path in files:
            try:
                text = path.read_bytes().decode("utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            parts.append(text)
            size += len(text.encode("utf-8")) + len(EOT)
            if size >= target_bytes:
                break
        if size == start:
            raise RuntimeError(f"no readable .py files under {stdlib}")
    tmp = out.with_suffix(".part")
    tmp.write_text(EOT.join(parts), encoding="utf-8")
    os.replace(tmp, out)
    return out


def growing_vocabulary_text(num_bytes: int, seed: int = 0, zipf: float = 1.3,
                            chunk_words: int = 1 << 13) -> Iterator[str]:
    """About num_bytes of text in chunks: words drawn from a Zipf law (exponent `zipf`) over an unbounded
    vocabulary, so distinct words keep appearing at a rate of about n^(1/zipf) (Heaps' law; real text is near
    n^0.5 to n^0.8 with names, numbers and typos) while common words dominate, as in real text.

    Word rank r has 2 + floor(log2(r) / 3) letters, spelled by the base-26 digits of r * 48271 mod 26^length
    (a bijection for each length, so distinct ranks give distinct words); no table grows with the vocabulary.
    A line ends every 12 words.
    """
    rng = np.random.default_rng(seed)
    powers = 26 ** np.arange(12, dtype=np.int64)
    produced = 0
    while produced < num_bytes:
        ranks = np.minimum(rng.zipf(zipf, chunk_words), 1 << 30).astype(np.int64)
        lengths = 2 + np.floor(np.log2(ranks) / 3).astype(np.int64)
        codes = (ranks * 48271 % 26 ** lengths)[:, None] // powers % 26 + ord("a")
        letters = np.where(np.arange(12) < lengths[:, None], codes, 0)
        separators = np.where(np.arange(1, chunk_words + 1) % 12 == 0, ord("\n"), ord(" "))
        table = np.concatenate([letters, separators[:, None]], axis=1).astype(np.uint8)
        chunk = table[table != 0].tobytes().decode("ascii")
        produced += len(chunk)
        yield chunk


def real_text(num_bytes: int, chunk_bytes: int = 1 << 20) -> Iterator[str]:
    """Up to num_bytes of real text in chunks, read as it is needed: Shakespeare, then the standard-library code
    (whose identifiers keep bringing new pre-tokens), cut at line ends."""
    produced = 0
    for path in (shakespeare(), python_stdlib()):
        with open(path, encoding="utf-8", newline="") as f:
            while produced < num_bytes and (chunk := f.read(chunk_bytes)):
                chunk += f.readline()
                produced += len(chunk)
                yield chunk
    if produced < num_bytes:
        raise ValueError(f"only {produced / 1e6:.1f} MB of real text is available, asked for {num_bytes / 1e6:.1f}")


STREAMS = {"generated": growing_vocabulary_text, "real": real_text}

CORPORA = {"shakespeare": shakespeare, "python_stdlib": python_stdlib}
