"""Benchmark corpora, built on demand and cached under benchmarks/.cache/ (git-ignored).

- shakespeare: data/shakespeare.txt.gz decompressed (42 works joined with <|endoftext|>, ~5 MB).
- python_stdlib: the .py files of this Python's standard library, sorted by path, joined with <|endoftext|>,
  until ~40 MB (files that are not valid UTF-8 are skipped).
- growing_vocabulary_text: a generated stream of any length whose vocabulary keeps growing as real text's does
  (not cached: it is produced chunk by chunk, in bounded memory).
- scale_text / scale_corpus: gigabytes of generated documents for the scale benchmark (bench_tokenizer_scale.py),
  streamed in bounded memory at about 10 MB/s (numpy, one core), written once to a file.

scale_text is fitted to real text. Distinct GPT-2 pre-tokens V against bytes n (text split at <|endoftext|>,
counted on prefixes from 130 KB up; `uv run python benchmarks/corpora.py heaps --mb 100`) follow Heaps' law
V = K n^beta:

    corpus                           K      beta   range          V at 5 MB
    Shakespeare (the bundled one)    4.64   0.583  0.13-5.1 MB    36,241
    stdlib code (python_stdlib)      2.33   0.607  0.13-40 MB     23,630
    scale_text (seed 0)              4.00   0.590  0.16-100 MB    36,130   (209,275 at 100 MB; Shakespeare's
                                                                            fit says 214,000)

The generator takes its exponent and, through `xmin`, its constant from the Shakespeare fit (English prose, as the
assignment's corpora are); extrapolated to 2 GB the two real fits say 1.22 million (prose) and 1.03 million (code)
distinct pre-tokens. Shakespeare averages 3.7 bytes per pre-token, scale_text 3.8.
"""

import gzip
import os
import sysconfig
from collections.abc import Iterable, Iterator
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


def scale_stream(num_bytes: int, seed: int = 0) -> Iterator[str]:
    """scale_text (below: vocabulary growth fitted to real text) as str chunks; each chunk ends after a whole token."""
    for chunk in scale_text(num_bytes, seed):
        yield chunk.decode("utf-8")


STREAMS = {"generated": growing_vocabulary_text, "real": real_text, "scale": scale_stream}

CORPORA = {"shakespeare": shakespeare, "python_stdlib": python_stdlib}


# ---- scale_text: gigabytes of document-structured text whose vocabulary grows as real text's does ----

HEAPS_BETA = 0.583  # Heaps' law V = K n^beta (V distinct pre-tokens, n bytes) fitted to Shakespeare: see the top
HEAPS_K = 4.64
_LMAX = 14  # letters in the longest word
_WORD_BYTES = 28  # UTF-8 bytes in the longest word (14 two-byte letters; CJK words have at most 7 characters)
_DOC_TOKENS = 800  # mean tokens per document (geometric): ~4 KB documents
# After a token: (text, probability), "" takes the rest. One byte stands for each in the table (see scale_text).
_PUNCT = [(",", 0.07), (".", 0.055), ("?", 0.006), ("!", 0.006), (";", 0.006), (":", 0.004), (")", 0.002),
          ("'s", 0.012), ("\u2014", 0.003), ('."', 0.0015)]
_PUNCT.insert(0, ("", 1 - sum(p for _, p in _PUNCT)))
_SENTENCE_END = {".", "?", "!", '."'}
_NEWLINES = [("", 0.905), ("\n", 0.08), ("\n\n", 0.015)]  # nothing, a line end, a paragraph end
_P_NUMBER = 0.015  # share of tokens that are numbers, P(value >= v) = v^-1/2: small ones common, a growing tail
# English letter frequencies (per cent), a..z.
_LETTER_FREQ = [8.2, 1.5, 2.8, 4.3, 12.7, 2.2, 2.0, 6.1, 7.0, 0.15, 0.8, 4.0, 2.4, 6.7, 7.5, 1.9, 0.1, 6.0, 6.3,
                9.1, 2.8, 1.0, 2.4, 0.15, 2.0, 0.07]
_SCRIPTS = {"accented": 10, "cyrillic": 4, "greek": 3, "cjk": 3}  # word types per 1000 in each non-ASCII script
_ALPHABETS = {
    "lower": "abcdefghijklmnopqrstuvwxyz",
    "upper": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "digit": "0123456789",
    "accented": "àáâäçèéêëìíîïñòóôöùúûüßå",
    "cyrillic": "".join(map(chr, range(0x430, 0x450))),
    "greek": "".join(map(chr, range(0x3B1, 0x3CA))),
    "cjk": "".join(map(chr, range(0x4E00, 0x4E00 + 2000))),
}


def _padded(strings: list[str], width: int) -> np.ndarray:
    """(len(strings), width) UTF-8 bytes, zero-padded (no generated text contains a zero byte)."""
    return np.array([list(s.encode("utf-8").ljust(width, b"\0")) for s in strings], dtype=np.uint8)


def _left_align(rows: np.ndarray, width: int) -> np.ndarray:
    """Move each row's non-zero bytes to its front, keeping their order; keep `width` columns."""
    order = np.argsort(rows == 0, axis=1, kind="stable")
    return np.take_along_axis(rows, order[:, :width], axis=1)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a fixed pseudo-random function of uint64 values (word spellings depend on it)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class _Spelling:
    """Word id -> UTF-8 bytes: length grows with log(id) (frequent words are short), letters follow English letter
    frequencies, 2% of word types are in another script (accented Latin, Cyrillic, Greek, CJK) and 5% are names
    (always capitalized). A word's spelling depends on its id only, so every seed speaks the same language; the
    spellings of the CACHED most frequent ids (almost every token) are computed once."""

    CACHED = 1 << 16

    def __init__(self):
        chars = "".join(_ALPHABETS.values())
        self.glyphs = _padded([*chars, ""], 3)  # glyph index -> UTF-8 bytes; the last one is padding (no bytes)
        self.none = len(chars)
        offsets = np.cumsum([0] + [len(a) for a in _ALPHABETS.values()])
        self.start = dict(zip(_ALPHABETS, offsets.tolist()))
        cum = np.cumsum(_LETTER_FREQ)
        self.letter_cdf = cum / cum[-1]
        self.cache = self._compute(np.arange(self.CACHED, dtype=np.int64))

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """(m, _WORD_BYTES) UTF-8 bytes of words `ids` (>= 0), left-aligned, zero-padded."""
        out = self.cache[np.minimum(ids, self.CACHED - 1)]
        rare = ids >= self.CACHED
        if rare.any():
            out[rare] = self._compute(ids[rare])
        return out

    def _compute(self, ids: np.ndarray) -> np.ndarray:
        h_word = _mix(ids.astype(np.uint64) + np.uint64(1))
        pos = np.arange(_LMAX)
        h = _mix(ids.astype(np.uint64)[:, None] * np.uint64(64) + pos.astype(np.uint64) + np.uint64(1 << 40))
        jitter = ((h_word >> np.uint64(20)) % np.uint64(3)).astype(np.int64)
        length = np.clip(1 + np.floor(0.36 * np.log2(ids + 1)).astype(np.int64) + jitter, 1, _LMAX)
        glyph = np.searchsorted(self.letter_cdf, (h >> np.uint64(11)) / 2.0**53)  # a..z, English frequencies
        script = (h_word % np.uint64(1000)).astype(np.int64)
        other = (h >> np.uint64(3)).astype(np.int64)  # a second pseudo-random draw per letter
        lo = 0
        for name, per_mille in _SCRIPTS.items():
            mask = (script >= lo) & (script < lo + per_mille)
            lo += per_mille
            swap = mask[:, None] & (other % 4 == 0 if name == "accented" else True)  # accents on some letters
            glyph = np.where(swap, self.start[name] + (other >> 8) % len(_ALPHABETS[name]), glyph)
            if name == "cjk":  # a CJK character carries more than a letter
                length = np.where(mask, (length + 1) // 2, length)
        is_name = (h_word >> np.uint64(40)) % np.uint64(20) == 0
        glyph[:, 0] += np.where(is_name & (glyph[:, 0] < 26), 26, 0)  # lower -> upper case
        glyph = np.where(pos < length[:, None], glyph, self.none)
        return _left_align(self.glyphs[glyph].reshape(len(ids), -1), _WORD_BYTES)

    def number_rows(self, values: np.ndarray) -> np.ndarray:
        """(m, _WORD_BYTES) decimal digits of `values` (1 <= value < 10**_LMAX), zero-padded."""
        digits = np.floor(np.log10(values)).astype(np.int64) + 1
        pos = np.arange(_WORD_BYTES)
        power = np.maximum(digits[:, None] - 1 - pos, 0)
        glyph = self.start["digit"] + (values[:, None] // 10**power) % 10
        return np.where(pos < digits[:, None], ord("0") + glyph - self.start["digit"], 0).astype(np.uint8)


# Bytes that stand for a token's suffix in scale_text's table (none occurs in the generated text): the table keeps
# one column per suffix, and bytes.replace expands them after the padding is dropped.
_MARKS = {**{chr(0x10 + i): p for i, (p, _) in enumerate(_PUNCT) if i},
          "\x01": "\n", "\x02": "\n\n", "\x03": "\n" + EOT}
_EXPAND = [(m.encode(), s.encode()) for m, s in _MARKS.items() if len(s) > 1 or ord(s) > 127]
_SINGLE = bytes.maketrans(b"".join(m.encode() for m, s in _MARKS.items() if len(s.encode()) == 1),
                          b"".join(s.encode() for s in _MARKS.values() if len(s.encode()) == 1))


def _expand(table: np.ndarray) -> bytes:
    """The text of a scale_text table: rows concatenated, padding dropped, suffix marks expanded."""
    out = table.tobytes().translate(_SINGLE, b"\0")
    for mark, text in _EXPAND:
        out = out.replace(mark, text)
    return out


def scale_text(num_bytes: int, seed: int = 0, *, xmin: float = 37.0, chunk_tokens: int = 1 << 15) -> Iterator[bytes]:
    """At most num_bytes of UTF-8 text in chunks (bounded memory), documents separated by <|endoftext|>.

    Word ids follow a discretized power law, P(id >= r) = (1 + r / xmin)^-(1/HEAPS_BETA - 1): the number of distinct
    words after n tokens grows as n^HEAPS_BETA (Heaps' law) while a few words dominate (Zipf); `xmin` sets K.
    Words get a leading space (none at a line start), sentence-start and name capitals, punctuation, "'s", numbers,
    newlines and blank lines; documents are ~4 KB (geometric). With the same seed, the stream of a smaller
    num_bytes is a prefix of a larger one's; it ends after a whole token.
    """
    rng = np.random.default_rng(seed)
    spell = _Spelling()
    tail = 1 / HEAPS_BETA - 1
    punct_cdf = np.cumsum([p for _, p in _PUNCT])[:-1]
    ends_sentence = np.array([p in _SENTENCE_END for p, _ in _PUNCT])
    newline_cdf = np.cumsum([p for _, p in _NEWLINES])[:-1]
    line_start, sentence_start = True, True  # the stream opens a document
    produced = 0
    while produced < num_bytes:
        m = chunk_tokens
        u = rng.random((6, m))
        ids = np.floor(xmin * (u[0] ** (-1 / tail) - 1)).clip(0, 2**50).astype(np.int64)
        is_number = u[1] < _P_NUMBER
        doc_end = u[2] < 1 / _DOC_TOKENS
        p_idx = np.where(is_number, 0, np.searchsorted(punct_cdf, u[4], "right"))
        nl_idx = np.where(doc_end, 3, np.searchsorted(newline_cdf, u[5], "right"))  # 3: "\n<|endoftext|>"
        # Token i starts a line / a sentence when token i-1 ended one (the state carries across chunks).
        at_line_start = np.concatenate([[line_start], (nl_idx > 0)[:-1]])
        at_sentence = np.concatenate([[sentence_start], (ends_sentence[p_idx] | doc_end)[:-1]])
        line_start, sentence_start = bool(nl_idx[-1] > 0), bool(ends_sentence[p_idx[-1]] or doc_end[-1])
        table = np.empty((m, _WORD_BYTES + 3), dtype=np.uint8)
        table[:, 0] = np.where(at_line_start, 0, ord(" "))
        body = table[:, 1 : _WORD_BYTES + 1]
        body[:] = spell.rows(ids)
        values = np.floor(u[3][is_number] ** -2.0).clip(1, 10**_LMAX - 1).astype(np.int64)  # P(>= v) = v^-1/2
        body[is_number] = spell.number_rows(values)
        lower = (body[:, 0] >= ord("a")) & (body[:, 0] <= ord("z"))
        body[:, 0] -= (at_sentence & lower).astype(np.uint8) * 32  # capitalize
        table[:, -2] = np.where(p_idx == 0, 0, 0x10 + p_idx)  # nothing or the mark of _PUNCT[p_idx]
        table[:, -1] = nl_idx  # nothing or the mark of _NEWLINES[nl_idx] (3: "\n<|endoftext|>")
        chunk = _expand(table)
        if produced + len(chunk) > num_bytes:  # the last chunk: cut after the last whole token that fits
            ends = np.cumsum([len(_expand(row)) for row in table])
            chunk = chunk[: int(np.concatenate([[0], ends])[np.searchsorted(ends, num_bytes - produced, "right")])]
            produced = num_bytes
        produced += len(chunk)
        yield chunk


def distinct_pretokens(chunks: Iterable[bytes], marks: list[int]) -> list[tuple[int, int]]:
    """[(n, distinct GPT-2 pre-tokens in the first n bytes)] at the end of the first chunk at or past each of
    `marks`, and at the end; the text is split at <|endoftext|> first, as the trainer does."""
    from cs336_basics.tokenizer.pretokenize import PRETOKEN_RE

    seen, out, pos, rest = set(), [], 0, ""
    marks = sorted(marks)
    for chunk in chunks:
        pos += len(chunk)
        *docs, rest = (rest + chunk.decode("utf-8")).split(EOT)
        for doc in docs:
            seen.update(PRETOKEN_RE.findall(doc))
        while marks and pos >= marks[0]:
            seen.update(PRETOKEN_RE.findall(rest))  # a mark inside a document: count its start too
            marks.pop(0)
            if not out or out[-1][0] != pos:
                out.append((pos, len(seen)))
    seen.update(PRETOKEN_RE.findall(rest))
    return out if out and out[-1][0] == pos else out + [(pos, len(seen))]


def file_chunks(path: Path, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
    """A file's bytes in chunks cut after a newline (never inside a character or a special token)."""
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            yield chunk + f.readline()


def heaps_fit(curve: list[tuple[int, int]]) -> tuple[float, float]:
    """(K, beta) of V = K n^beta fitted by least squares in log-log to [(n, V)]."""
    n, v = np.log(np.array(curve, dtype=float)).T
    beta, log_k = np.polyfit(n, v, 1)
    return float(np.exp(log_k)), float(beta)


def scale_corpus(num_bytes: int, seed: int = 0, directory: Path | None = None, progress: bool = True) -> Path:
    """scale_text(num_bytes, seed) written once to DIRECTORY/scale_<num_bytes>_seed<seed>.txt (default: the cache)
    and reused; the file appears complete or not at all."""
    from tqdm import tqdm

    from cs336_basics.atomic import atomic_open

    out = Path(directory or CACHE) / f"scale_{num_bytes}_seed{seed}.txt"
    if out.exists():
        return out
    with atomic_open(out, "wb") as f, tqdm(total=num_bytes, unit="B", unit_scale=True, disable=not progress,
                                           desc=f"generate {out.name}") as bar:
        for chunk in scale_text(num_bytes, seed):
            f.write(chunk)
            bar.update(len(chunk))
    return out


def _heaps_report(max_mb: float) -> None:
    """Print the Heaps' law fits of the module docstring (distinct pre-tokens on growing prefixes)."""
    marks = [int(m) for m in (1e5, 2e5, 5e5, 1e6, 2e6, 5e6, 1e7, 2e7, 4e7, 1e8, 2e8, 5e8, 1e9)]
    sources = {"shakespeare": lambda: file_chunks(shakespeare(), 1 << 15),
               "python_stdlib": lambda: file_chunks(python_stdlib(), 1 << 15),
               "scale_text": lambda: scale_text(int(max_mb * 1e6))}
    for name, chunks in sources.items():
        curve = distinct_pretokens(chunks(), [m for m in marks if name != "scale_text" or m <= max_mb * 1e6])
        k, beta = heaps_fit(curve)
        print(f"{name}: K {k:.2f}, beta {beta:.3f}; " + ", ".join(f"{n / 1e6:.2f} MB: {v:,}" for n, v in curve),
              flush=True)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Heaps' law fits of the benchmark corpora (see the docstring).")
    parser.add_argument("command", choices=["heaps"])
    parser.add_argument("--mb", type=float, default=5, help="generated MB to fit (default %(default)s)")
    _heaps_report(parser.parse_args().mb)
