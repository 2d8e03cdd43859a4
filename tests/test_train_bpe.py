"""BPE training: the fast trainer against the naive oracle, the handout's worked example, chunking, bad input."""

import gzip
import importlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from itertools import pairwise
from pathlib import Path

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cs336_basics.tokenizer import pretokenize, train_bpe, train_bpe_naive

train_bpe_mod = importlib.import_module("cs336_basics.tokenizer.train_bpe")  # the package's name is the function
from cs336_basics.tokenizer.pretokenize import count_pretokens, count_pretokens_in_file, find_chunk_boundaries
from tests.adapters import run_train_bpe

FIXTURES = Path(__file__).parent / "fixtures"
EOT = "<|endoftext|>"


@pytest.mark.parametrize(
    "name, vocab_size",
    [
        ("corpus.en", 500),
        ("corpus.en", 1000),
        ("tinystories_sample.txt", 1000),
        ("shakespeare_slice.txt", 400),
    ],
)
def test_fast_equals_naive(name, vocab_size):
    fast = run_train_bpe(FIXTURES / name, vocab_size, [EOT])
    naive = train_bpe_naive(FIXTURES / name, vocab_size, [EOT])
    assert fast[1] == naive[1]
    assert fast[0] == naive[0]


def test_id_layout_and_specials_never_merged():
    vocab, merges = train_bpe(FIXTURES / "tinystories_sample.txt", 400, [EOT, "<|pad|>"])
    assert [vocab[i] for i in range(256)] == [bytes([i]) for i in range(256)]
    assert vocab[256] == EOT.encode() and vocab[257] == b"<|pad|>"
    assert [vocab[258 + k] for k in range(len(merges))] == [a + b for a, b in merges]
    assert all(b"<|" not in a + b for a, b in merges)  # the special token's bytes are never learned


def test_handout_example(tmp_path):
    """The assignment's worked example; words separated by a special token so each word is one pre-token."""
    words = "low low low low low lower lower widest widest widest newest newest newest newest newest newest"
    path = tmp_path / "example.txt"
    path.write_text(EOT.join(words.split()))
    # Worked by hand: es/st tie at 9 -> (s, t) is greater; then (e, st) 9; lo/ow tie at 7 -> (o, w); (l, ow) 7;
    # (w, est), (n, e), (e, w) tie at 6 -> (w, est); (n, e) 6; (ne, west) 6; wi/id/d-est tie at 3 -> (w, i);
    # (wi, d) vs (d, est) -> (wi, d); (wid, est) 3; (low, e) vs (e, r) at 2 -> (low, e); (lowe, r).
    handout = "s t, e st, o w, l ow, w est, n e, ne west, w i, wi d, wid est, low e, lowe r"
    expected = [tuple(part.encode() for part in merge.split()) for merge in handout.split(", ")]
    for trainer in (train_bpe, train_bpe_naive):
        _vocab, merges = trainer(path, 256 + 1 + len(expected), [EOT])
        assert merges == expected
        # Nothing left to merge: asking for more stops early with the same merges.
        assert trainer(path, 1000, [EOT])[1] == expected


def test_parallel_chunks_match_naive(monkeypatch):
    """Force the multi-process path with small chunks on a small file."""
    monkeypatch.setattr(pretokenize, "IN_PROCESS_BYTES", 0)
    monkeypatch.setattr(pretokenize, "chunk_size_for", lambda size, workers: 10_000)
    path = FIXTURES / "shakespeare_slice.txt"
    text = path.read_text(encoding="utf-8")
    assert count_pretokens_in_file(path, [EOT], num_workers=2) == count_pretokens(text, [EOT])
    assert train_bpe(path, 300, [EOT], num_workers=2) == train_bpe_naive(path, 300, [EOT])


def test_gz_input_equals_plain(tmp_path):
    gz = tmp_path / "corpus.en.gz"
    with open(FIXTURES / "corpus.en", "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert train_bpe(gz, 400, [EOT]) == train_bpe(FIXTURES / "corpus.en", 400, [EOT])


# Text built from pieces that stress pre-token and special-token boundaries.
_pieces = st.sampled_from(
    ["a", "b", "ab", " ", "  ", "\n", "\t", "'s", "7", "é", "日本", "🙂", ".", EOT, "<|x|>"]
)
_texts = st.lists(_pieces, max_size=300).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_texts, chunk=st.integers(1, 40))
def test_chunk_boundaries_keep_pretokens(tmp_path, text, chunk):
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    data = path.read_bytes()
    specials = [EOT, "<|x|>", EOT + EOT, "a b", "é<|x|>é"]  # overlapping, nested, holding whitespace
    bounds = find_chunk_boundaries(path, chunk, specials)
    assert bounds[0] == 0 and bounds[-1] == len(data) and bounds == sorted(set(bounds))
    per_chunk = Counter()
    for a, b in pairwise(bounds):
        per_chunk += count_pretokens(data[a:b].decode("utf-8"), specials)
    assert per_chunk == count_pretokens(text, specials)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(min_size=1, max_size=200), extra=st.integers(0, 40))
def test_fast_equals_naive_random_unicode(tmp_path, text, extra):
    path = tmp_path / "t.txt"
    path.write_bytes(text.encode("utf-8"))
    assert train_bpe(path, 257 + extra, [EOT]) == train_bpe_naive(path, 257 + extra, [EOT])


@pytest.mark.parametrize("trainer", [train_bpe, train_bpe_naive])
def test_bad_inputs(trainer, tmp_path):
    good = FIXTURES / "tinystories_sample.txt"
    with pytest.raises(ValueError, match="vocab_size=256 is too small.*at least 257"):
        trainer(good, 256, [EOT])
    with pytest.raises(FileNotFoundError, match="no_such_file"):
        trainer(tmp_path / "no_such_file.txt", 300, [EOT])
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        trainer(empty, 300, [EOT])
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"hello world \xff\xfe more")
    with pytest.raises(ValueError, match=r"invalid UTF-8 at byte offset 12"):
        trainer(bad, 300, [EOT])
    with pytest.raises(ValueError, match="duplicate special token"):
        trainer(good, 300, [EOT, EOT])
    with pytest.raises(ValueError, match="non-empty strings"):
        trainer(good, 300, [""])


def test_chunk_boundary_never_inside_a_longer_special(tmp_path):
    text = "ab é<|x|>é cd<|x|>"
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    inner = len("ab é".encode())  # where "<|x|>" starts, inside the special "é<|x|>é"
    bounds = find_chunk_boundaries(path, inner, ["<|x|>", "é<|x|>é"])
    assert inner not in bounds
    assert bounds == [0, len("ab é<|x|>é cd".encode()), len(text.encode())]


def test_small_files_start_no_process(monkeypatch):
    def no_pool(*args, **kwargs):
        raise AssertionError("a small file must be counted in-process")

    monkeypatch.setattr(pretokenize, "Pool", no_pool)
    vocab, merges = train_bpe(FIXTURES / "corpus.en", 500, [EOT])
    assert len(vocab) == 500 and len(merges) == 500 - 257


# Robustness at scale (issue 13 §4), scaled down: the full sizes are in benchmarks/bench_bpe_robustness.py.
def _words_text(num_bytes: int, seed: int = 0, line_words: int | None = 12) -> str:
    """Random words from a Zipf-like vocabulary, a newline every `line_words` words (never when None)."""
    rng = random.Random(seed)
    vocab = ["".join(rng.choices("abcdefgh", k=rng.randint(1, 7))) for _ in range(2000)]
    weights = [1 / (r + 1) for r in range(len(vocab))]
    words = rng.choices(vocab, weights, k=num_bytes // 5)
    sep = [("\n" if line_words and k % line_words == line_words - 1 else " ") for k in range(len(words))]
    return "".join(w + s for w, s in zip(words, sep, strict=True))[:num_bytes]


@pytest.mark.parametrize("case", ["no special token", "special token only in the last bytes", "one long line"])
def test_robust_chunking_equals_naive(monkeypatch, tmp_path, case):
    """Files that give the chunker no special token to cut at (or only one at the very end), and no newline."""
    monkeypatch.setattr(pretokenize, "IN_PROCESS_BYTES", 0)
    monkeypatch.setattr(pretokenize, "chunk_size_for", lambda size, workers: 20_000)
    monkeypatch.setattr(pretokenize, "_MAX_SPECIAL_SCAN", 40_000)  # 1 MB at full size
    text = _words_text(300_000, line_words=None if case == "one long line" else 12)
    if case == "special token only in the last bytes":
        text += EOT
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    assert len(find_chunk_boundaries(path, 20_000, [EOT])) > 10  # really cut, at whitespace
    assert train_bpe(path, 320, [EOT], num_workers=2) == train_bpe_naive(path, 320, [EOT])


def test_robust_one_repeated_character(tmp_path):
    """'a' * N is ONE pre-token of N bytes: the long-word path (block counting) must match the naive trainer, which
    merges it down to a handful of tokens, and the memory must stay a small multiple of N."""
    n = 200_000
    path = tmp_path / "a.txt"
    path.write_text("a" * n)
    tracemalloc.start()
    fast = train_bpe(path, 1000, [EOT], num_workers=1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n > train_bpe_mod.LONG_WORD and fast == train_bpe_naive(path, 1000, [EOT])
    assert 256 + 1 < len(fast[0]) < 300  # about log2(n) merges, then nothing is left to merge
    assert peak < 40 * n, f"peak {peak / n:.0f} bytes per byte of text"


_long_texts = st.lists(st.sampled_from(["a", "b", "aa", "ab", "é", " ", "a" * 9, EOT]), max_size=60).map("".join)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_long_texts.filter(bool), extra=st.integers(0, 30))
def test_long_word_path_equals_naive(monkeypatch, tmp_path, text, extra):
    """With tiny thresholds every word takes the long-word path, counted in tiny blocks."""
    monkeypatch.setattr(train_bpe_mod, "LONG_WORD", 3)
    monkeypatch.setattr(train_bpe_mod, "_PAIR_BLOCK", 2)
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    assert train_bpe(path, 257 + extra, [EOT]) == train_bpe_naive(path, 257 + extra, [EOT])


def test_ctrl_c_stops_workers_and_writes_nothing(tmp_path):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) while workers count: all processes end, no
    traceback, no file under the output directory."""
    path = tmp_path / "big.txt"
    path.write_text(_words_text(400_000) * 20, encoding="utf-8")  # 8 MB: seconds of counting
    out = tmp_path / "tok"
    cmd = [sys.executable, "-m", "cs336_basics.train_bpe", str(path), "--out", str(out), "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 60
    while len(workers := parent.children()) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(workers) >= 2, "the workers never started"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "interrupted" in err and "Traceback" not in err, err
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"orphaned workers: {alive}"
    assert not out.exists() or not any(out.iterdir())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_texts, piece=st.integers(1, 30))
def test_counting_in_pieces_keeps_pretokens(monkeypatch, text, piece):
    """count_pretokens pre-tokenizes long text a piece at a time (bounded memory): same counts as all at once."""
    monkeypatch.setattr(pretokenize, "_COUNT_PIECE", piece)
    whole = Counter()
    for part in pretokenize.split_on_special(text, pretokenize.special_token_regex([EOT]))[::2]:
        whole.update(m.encode() for m in pretokenize.PRETOKEN_RE.findall(part))
    assert count_pretokens(text, [EOT]) == whole


@given(st.lists(st.binary(min_size=1, max_size=6), min_size=2, max_size=50, unique=True))
def test_heap_keys_sort_tokens_in_descending_bytes_order(tokens):
    """The merge heap breaks count ties by the greater pair; its keys must order any bytes (NUL, FF, prefixes)."""
    key = importlib.import_module("cs336_basics.tokenizer.train_bpe")._reverse_key
    assert sorted(tokens, key=key) == sorted(tokens, reverse=True)
    pairs = [(a, b) for a in tokens[:8] for b in tokens[:8]]
    assert sorted(pairs, key=lambda p: (key(p[0]), key(p[1]))) == sorted(pairs, reverse=True)
