"""benchmarks/corpora.py's scale-test generator: seeded, a prefix of itself, valid UTF-8 documents separated by
<|endoftext|>, and a vocabulary as big as the bundled corpus's at 5 MB (the figure it is fitted to)."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import corpora  # noqa: E402

from cs336_basics.tokenizer.pretokenize import count_pretokens  # noqa: E402

EOT = corpora.EOT


def generated(num_bytes: int, seed: int = 0) -> bytes:
    return b"".join(corpora.scale_text(num_bytes, seed))


def test_seeded_and_each_size_a_prefix_of_the_next():
    small, big = generated(150_000, seed=3), generated(400_000, seed=3)
    assert small == generated(150_000, seed=3)
    assert big.startswith(small)
    assert generated(150_000, seed=4) != small
    assert 150_000 - 200 < len(small) <= 150_000  # cut after the last whole token that fits


def test_valid_utf8_documents_separated_by_the_special_token():
    text = generated(1_000_000).decode("utf-8")  # raises on invalid UTF-8
    docs = text.split(EOT)
    assert len(docs) > 100
    assert text.count("<|") == len(docs) - 1  # no stray or cut special token
    assert all(doc.endswith("\n") and doc.strip() for doc in docs[:-1])
    assert any(ord(c) > 0x7FF for c in text) and any(0x7F < ord(c) <= 0x7FF for c in text)  # 2- and 3-byte chars
    assert any(c.isdigit() for c in text) and "\n\n" in text and ", " in text


@pytest.mark.parametrize("num_bytes", [0, 1, 50])
def test_tiny_sizes(num_bytes):
    assert len(generated(num_bytes)) <= num_bytes


def test_distinct_pretokens_at_5mb_close_to_the_bundled_corpus():
    reference = corpora.shakespeare().read_bytes().decode("utf-8")
    text = generated(len(reference.encode("utf-8"))).decode("utf-8")
    ours, theirs = len(count_pretokens(text, [EOT])), len(count_pretokens(reference, [EOT]))
    assert abs(ours / theirs - 1) < 0.15, (ours, theirs)
    # and the vocabulary keeps growing at the fitted rate: distinct(5 MB) / distinct(1 MB) = 5^beta
    first = len(count_pretokens(text[: len(text) // 5], [EOT]))
    assert abs(np.log(ours / first) / np.log(5) - corpora.HEAPS_BETA) < 0.05


def test_heaps_fit_recovers_a_power_law_and_counts_match_the_pretokenizer():
    curve = [(n, 4.6 * n**0.58) for n in (1e5, 1e6, 1e7)]
    k, beta = corpora.heaps_fit(curve)
    assert k == pytest.approx(4.6) and beta == pytest.approx(0.58)
    text = generated(300_000)
    cut = text.index(b"\n", 150_000) + 1  # chunks are whole characters
    (n, distinct), = corpora.distinct_pretokens([text[:cut], text[cut:]], [10**9])
    assert n == len(text)
    assert distinct == len(count_pretokens(text.decode("utf-8"), [EOT]))


def test_scale_corpus_writes_the_stream_once(tmp_path):
    path = corpora.scale_corpus(200_000, seed=1, directory=tmp_path, progress=False)
    assert path.read_bytes() == generated(200_000, seed=1)
    mtime = path.stat().st_mtime_ns
    assert corpora.scale_corpus(200_000, seed=1, directory=tmp_path, progress=False) == path
    assert path.stat().st_mtime_ns == mtime and list(tmp_path.iterdir()) == [path]
