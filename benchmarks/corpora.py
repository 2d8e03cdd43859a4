"""Benchmark corpora, built on demand and cached under benchmarks/.cache/ (git-ignored).

- shakespeare: data/shakespeare.txt.gz decompressed (42 works joined with <|endoftext|>, ~5 MB).
- python_stdlib: the .py files of this Python's standard library, sorted by path, joined with <|endoftext|>,
  until ~40 MB (files that are not valid UTF-8 are skipped).
"""

import gzip
import os
import sysconfig
from pathlib import Path

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


CORPORA = {"shakespeare": shakespeare, "python_stdlib": python_stdlib}
