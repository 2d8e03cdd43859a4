"""Tokenizer: GPT-2 ids against tiktoken (built offline from the fixture files), round trips, streaming, files."""

import gzip
import json
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from cs336_basics.tokenizer import Tokenizer, encode_file, train_bpe
from cs336_basics.tokenizer import fast_pretokens
from cs336_basics.tokenizer import tokenizer as tokenizer_module
from cs336_basics.tokenizer.io import CHAR_TO_BYTE
from cs336_basics.tokenizer.pretokenize import GPT2_PATTERN, PRETOKEN_RE
from tests.adapters import get_tokenizer

FIXTURES = Path(__file__).parent / "fixtures"
EOT = "<|endoftext|>"


@pytest.fixture(scope="module")
def gpt2() -> Tokenizer:
    return Tokenizer.from_files(FIXTURES / "gpt2_vocab.json", FIXTURES / "gpt2_merges.txt", [EOT])


@pytest.fixture(scope="module")
def gpt2_two_specials(gpt2) -> Tokenizer:
    return Tokenizer(gpt2.vocab, gpt2.merges, [EOT, EOT + EOT])


@pytest.fixture(scope="module")
def reference() -> tiktoken.Encoding:
    """tiktoken's GPT-2 encoding, built here from the fixture vocabulary: nothing is downloaded."""
    vocab = json.loads((FIXTURES / "gpt2_vocab.json").read_text(encoding="utf-8"))
    ranks = {bytes(CHAR_TO_BYTE[c] for c in token): i for token, i in vocab.items() if token != EOT}
    return tiktoken.Encoding(
        name="gpt2_offline", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={EOT: vocab[EOT]}
    )


STRINGS = [
    "",
    " ",
    "Hello, world! It's 2024 and we're    testing\n\n\ttabs  ",
    f"first story{EOT}second story{EOT}",
    f"{EOT}{EOT} back to back, and a partial <|endoftext| token",
    "emoji 🙂🙃🤖 and 👩‍👩‍👧‍👦 family, flags 🇫🇷",
    "multi-byte: naïve café, Ελληνικά, 日本語のテキスト, العربية, 한국어",
    "numbers 1234567890 3.14159 and symbols @#$%^&*()_+{}|:<>?",
]


@pytest.mark.parametrize("name", ["address.txt", "german.txt", "tinystories_sample.txt", "corpus.en"])
def test_matches_tiktoken_on_files(gpt2, reference, name):
    text = (FIXTURES / name).read_text(encoding="utf-8")
    ids = gpt2.encode(text)
    assert ids == reference.encode(text, allowed_special="all")
    assert gpt2.decode(ids) == text


@pytest.mark.parametrize("text", STRINGS)
def test_matches_tiktoken_on_strings(gpt2, reference, text):
    ids = get_tokenizer(gpt2.vocab, gpt2.merges, [EOT]).encode(text)
    assert ids == reference.encode(text, allowed_special="all")
    assert gpt2.decode(ids) == text


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_round_trip_any_unicode(gpt2, reference, text):
    ids = gpt2.encode(text)
    assert gpt2.decode(ids) == text
    assert ids == reference.encode(text, allowed_special="all")


def test_overlapping_special_tokens_longest_wins(gpt2, gpt2_two_specials):
    double = EOT + EOT
    tok = gpt2_two_specials
    ids = tok.encode(f"a{double}b{EOT}c")
    double_id = tok.special_token_id(double)
    assert double_id == gpt2.vocab_size  # appended after the vocabulary
    assert ids == gpt2.encode("a") + [double_id] + gpt2.encode("b") + [50256] + gpt2.encode("c")
    assert tok.decode(ids) == f"a{double}b{EOT}c"


def test_without_special_tokens_they_are_plain_text(gpt2, reference):
    plain = Tokenizer(gpt2.vocab, gpt2.merges)
    assert plain.encode(EOT) == reference.encode_ordinary(EOT)
    assert 50256 not in plain.encode(EOT)


def test_decode_policies(gpt2):
    assert gpt2.decode([]) == ""
    byte_ff = next(i for i, token in gpt2.vocab.items() if token == b"\xff")
    assert gpt2.decode(gpt2.encode("ok") + [byte_ff]) == "ok\ufffd"
    with pytest.raises(ValueError, match="token id 99999 is not in the vocabulary"):
        gpt2.decode([1, 2, 99999])
    with pytest.raises(ValueError, match="token id -1"):
        gpt2.decode([-1])


def test_special_token_id_and_vocab_size(gpt2):
    assert gpt2.special_token_id(EOT) == 50256
    assert gpt2.vocab_size == 50257
    with pytest.raises(ValueError, match="'<|pad|>' is not a special token"):
        gpt2.special_token_id("<|pad|>")


def test_constructor_rejects_bad_definitions():
    with pytest.raises(ValueError, match="lacks single-byte tokens"):
        Tokenizer({0: b"a"}, [])
    base = {i: bytes([i]) for i in range(256)}
    with pytest.raises(ValueError, match="merge 0"):
        Tokenizer(base, [(b"a", b"b")])  # b"ab" is not in the vocabulary
    with pytest.raises(ValueError, match="duplicate special token"):
        Tokenizer(base, [], [EOT, EOT])


def _chunks(text: str, cuts: list[int]):
    points = sorted({min(c, len(text)) for c in cuts})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)])]


@settings(max_examples=100, deadline=None)
@given(
    parts=st.lists(
        st.sampled_from(["a", "b", " ", "  ", "\n", "é", "🙂", "'s", "9", EOT, EOT + EOT]), max_size=80
    ),
    cuts=st.lists(st.integers(0, 400), max_size=10),
)
def test_encode_iterable_equals_encode(gpt2_two_specials, parts, cuts):
    tok = gpt2_two_specials
    text = "".join(parts)
    expected = tok.encode(text)
    # A tiny buffer threshold so every chunk is cut and encoded separately.
    original = tokenizer_module._STREAM_BUFFER_CHARS
    tokenizer_module._STREAM_BUFFER_CHARS = 1
    try:
        assert list(tok.encode_iterable(_chunks(text, cuts))) == expected
    finally:
        tokenizer_module._STREAM_BUFFER_CHARS = original


def test_encode_iterable_over_a_file(gpt2):
    path = FIXTURES / "tinystories_sample.txt"
    with open(path, encoding="utf-8") as f:
        streamed = list(gpt2.encode_iterable(f))
    assert streamed == gpt2.encode(path.read_text(encoding="utf-8"))


def test_encode_iterable_memory_is_bounded(gpt2):
    """~8 MB of text streamed line by line: the peak traced memory stays far below the text size."""
    lines = (FIXTURES / "corpus.en").read_text(encoding="utf-8").splitlines(keepends=True)

    def stream():
        for k in range(60 * len(lines)):
            yield lines[k % len(lines)]

    tracemalloc.start()
    count = sum(1 for _ in gpt2.encode_iterable(stream()))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    total_bytes = 60 * len((FIXTURES / "corpus.en").read_bytes())
    assert count > total_bytes // 8  # the whole stream was encoded
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MB for a {total_bytes / 2**20:.1f} MB stream"


def _growing_vocabulary_stream(num_words: int, seed: int = 0):
    """Lines of words drawn from a Zipf law over an unbounded vocabulary of random lowercase words: every line
    brings new pre-tokens, like real text whose vocabulary keeps growing (Heaps' law), and "the" recurs throughout."""
    rng = np.random.default_rng(seed)
    ranks = rng.zipf(1.3, size=num_words)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = {}
    for start in range(0, num_words, 50):
        line = [words.setdefault(int(r), "".join(rng.choice(letters, size=2 + int(r).bit_length() // 2)))
                for r in ranks[start : start + 50]]
        yield "the " + " ".join(line) + ".\n"


def _cache_memory(cache) -> int:
    """What the cache really holds, measured on its objects (not its own estimate): both dicts' tables and every
    key and value."""
    return sum(sys.getsizeof(d) + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in d.items())
               for d in (cache, cache.old))


def test_pretoken_cache_is_bounded_and_ids_do_not_change(gpt2, reference):
    """A 200 KB cache on a stream with ~11k distinct words stays within its bound, keeps the word used on every
    line, and gives the ids of the unbounded cache and of tiktoken."""
    bounded = Tokenizer(gpt2.vocab, gpt2.merges, [EOT], cache_bytes=200_000)
    unbounded = Tokenizer(gpt2.vocab, gpt2.merges, [EOT], cache_bytes=None)
    lines = list(_growing_vocabulary_stream(120_000))
    text = "".join(lines)
    peak = 0
    ids = []
    for k in range(0, len(lines), 200):
        ids += bounded.encode("".join(lines[k : k + 200]))
        peak = max(peak, _cache_memory(bounded._cache))
    assert ids == unbounded.encode(text) == reference.encode(text, allowed_special="all")
    assert list(bounded.encode_iterable(lines)) == ids
    distinct = len(unbounded._cache)
    held = len(bounded._cache) + len(bounded._cache.old)
    assert distinct > 10_000 and held < distinct / 10  # it did evict
    assert peak <= 200_000, f"the cache grew to {peak} bytes"
    assert _cache_memory(unbounded._cache) > 5 * 200_000  # what the bound saves here
    assert "the" in bounded._cache or "the" in bounded._cache.old  # used on every line: never evicted


@settings(max_examples=40, deadline=None)
@given(cache_bytes=st.integers(0, 3000), words=st.lists(st.sampled_from(
    ["the", " cat", " sat", "é", " 🙂", "  ", "\n", "12345", " naïve", "'s", EOT]), max_size=60))
def test_tiny_caches_give_the_same_ids(gpt2, reference, cache_bytes, words):
    text = "".join(words)
    tok = Tokenizer(gpt2.vocab, gpt2.merges, [EOT], cache_bytes=cache_bytes)
    assert tok.encode(text) == tok.encode(text) == reference.encode(text, allowed_special="all")


def test_cache_bytes_must_be_a_size():
    with pytest.raises(ValueError, match="cache_bytes must be >= 0 or None, got -1"):
        Tokenizer({i: bytes([i]) for i in range(256)}, [], cache_bytes=-1)


def test_save_and_load_round_trip(tmp_path):
    vocab, merges = train_bpe(FIXTURES / "tinystories_sample.txt", 400, [EOT])
    tok = Tokenizer(vocab, merges, [EOT])
    tok.save(tmp_path / "tok")
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == [
        "merges.txt",
        "special_tokens.json",
        "vocab.json",
    ]
    loaded = Tokenizer.from_dir(tmp_path / "tok")
    assert loaded.vocab == vocab and loaded.merges == merges and loaded.special_tokens == [EOT]
    text = (FIXTURES / "tinystories_sample.txt").read_text(encoding="utf-8")
    assert loaded.encode(text) == tok.encode(text)
    with pytest.raises(FileNotFoundError, match="not a saved tokenizer directory"):
        Tokenizer.from_dir(tmp_path / "nothing")


def test_saved_files_load_in_hf_tokenizers(tmp_path):
    """Our files in GPT-2's format load in HF tokenizers, which then encodes like us."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers

    vocab, merges = train_bpe(FIXTURES / "corpus.en", 600, [EOT])
    tok = Tokenizer(vocab, merges, [EOT])
    tok.save(tmp_path)
    hf = HFTokenizer(models.BPE.from_file(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt")))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    text = (FIXTURES / "corpus.en").read_text(encoding="utf-8")[:20000]
    assert hf.encode(text).ids == tok.encode(text)


@pytest.mark.parametrize("parallel", [False, True])
def test_encode_file_equals_encode(gpt2, tmp_path, monkeypatch, parallel):
    if parallel:  # force worker processes and small chunks on a small file
        monkeypatch.setattr(tokenizer_module, "IN_PROCESS_BYTES", 0)
        monkeypatch.setattr(tokenizer_module, "_WARMUP_BYTES", 5_000)
    path = FIXTURES / "shakespeare_slice.txt"
    result = encode_file(gpt2, path, tmp_path / "out.npy", num_workers=2, progress=False)
    ids = np.load(tmp_path / "out.npy", mmap_mode="r")
    assert ids.dtype == np.uint16
    expected = gpt2.encode(path.read_text(encoding="utf-8"))
    assert ids.tolist() == expected
    assert (result.num_bytes, result.num_tokens) == (path.stat().st_size, len(expected))
    assert result.bytes_per_token == pytest.approx(result.num_bytes / result.num_tokens)
    assert not (tmp_path / "out.npy.part").exists()


def test_encode_file_gz_and_uint32(tmp_path):
    base = {i: bytes([i]) for i in range(256)}
    tok = Tokenizer({**base, 70_000: b"ab"}, [(b"a", b"b")])  # ids beyond uint16
    gz = tmp_path / "in.txt.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as f:
        f.write("abc ab")
    encode_file(tok, gz, tmp_path / "out.npy", progress=False)
    ids = np.load(tmp_path / "out.npy")
    assert ids.dtype == np.uint32
    assert ids.tolist() == tok.encode("abc ab") == [70_000, 99, 32, 70_000]


def test_encode_file_bad_input(gpt2, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine text \xc3\x28 broken")
    with pytest.raises(ValueError, match="invalid UTF-8 at byte offset 10"):
        encode_file(gpt2, bad, tmp_path / "out.npy", progress=False)
    assert not (tmp_path / "out.npy").exists() and not (tmp_path / "out.npy.part").exists()
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        encode_file(gpt2, tmp_path / "missing.txt", tmp_path / "out.npy", progress=False)


@settings(max_examples=300, deadline=None)
@given(text=st.text() | st.lists(st.sampled_from(
    list("ab \n\t'sé9½²Ⅻ日\u00a0\u2003\x1c") + ["🙂", "𝔸", "'ll", "  "]), max_size=40).map("".join))
def test_fast_pretokens_equal_the_regex_module(text):
    """The built-in-re pattern (BMP ranges) with `regex` around astral characters splits exactly as `regex` does."""
    assert fast_pretokens.pretokens(text) == PRETOKEN_RE.findall(text)


def test_fast_pretokens_on_every_code_point():
    every = "".join(chr(c) for c in range(0, 0x110000, 7) if not 0xD800 <= c < 0xE000)  # all scripts, spaced
    bmp_only = "".join(chr(c) for c in range(0x10000) if not 0xD800 <= c < 0xE000)
    for text in (every, bmp_only, bmp_only[::-1]):
        assert fast_pretokens.pretokens(text) == PRETOKEN_RE.findall(text)


def test_encode_array_is_encode_in_the_output_dtype(gpt2):
    text = "Packed ids: 🙂 naïve<|endoftext|>end"
    ids = gpt2.encode_array(text)
    assert ids.dtype == np.uint16 and ids.tolist() == gpt2.encode(text)
    assert gpt2.encode_packed(text) == np.array(gpt2.encode(text), dtype=np.uint16).tobytes()


@settings(max_examples=100, deadline=None)
@given(words=st.lists(st.text(min_size=1), unique=True, max_size=30))
def test_cache_size_estimate_bounds_the_real_sizes(words):
    """The cache counts an entry from len() alone; it must never undercount what sys.getsizeof measures."""
    cache = tokenizer_module._PretokenCache(lambda word: word.encode("utf-8"), 1 << 30)
    for word in words:
        cache[word]
    assert cache.nbytes >= sum(sys.getsizeof(w) + sys.getsizeof(cache[w]) + 24 for w in words)


def test_cache_size_counts_a_key_with_a_cached_utf8_form():
    """A non-ASCII str may carry its UTF-8 form alongside (CPython caches it when C code asks for it; hypothesis
    found such a key): the cache must count that too."""
    import ctypes

    word = "𝓣𝓱𝓮 𝓺𝓾𝓲𝓬𝓴 𝓫𝓻𝓸𝔀𝓷 𝓯𝓸𝔁 𝓳𝓾𝓶𝓹𝓼 𝓸𝓿𝓮𝓻 𝓽𝓱𝓮 𝓵𝓪𝔃𝔂 𝓭𝓸𝓰"  # the example hypothesis found
    as_utf8 = ctypes.pythonapi.PyUnicode_AsUTF8
    as_utf8.argtypes, as_utf8.restype = [ctypes.py_object], ctypes.c_char_p
    before = sys.getsizeof(word)
    as_utf8(word)  # fills the cache
    assert sys.getsizeof(word) > before
    cache = tokenizer_module._PretokenCache(lambda w: w.encode("utf-8"), 1 << 30)
    cache[word]
    assert cache.nbytes >= sys.getsizeof(word) + sys.getsizeof(cache[word]) + 24
