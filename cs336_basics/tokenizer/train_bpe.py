"""Byte-level BPE training: a naive oracle and a fast incremental trainer that return identical results.

Vocabulary ids: 0..255 are the single bytes (id b is bytes([b])), then the special tokens in the order given,
then one id per merge in creation order. Training stops at `vocab_size` entries, or earlier when no adjacent pair
is left (a tiny corpus), so the vocabulary may be smaller than asked.

Each step merges the most frequent adjacent pair inside the pre-tokens; ties go to the lexicographically greatest
pair, comparing (bytes, bytes): between (b"a", b"b") and (b"a", b"c") at equal counts, (b"a", b"c") wins.

Bad input: vocab_size < 256 + len(special_tokens) -> ValueError; duplicate or empty special tokens -> ValueError;
missing file -> FileNotFoundError; empty file -> ValueError; invalid UTF-8 -> ValueError naming the byte offset.
A path ending in .gz is decompressed to a temporary file first.
"""

import heapq
import os
from collections import Counter, defaultdict
from itertools import pairwise

import numpy as np
from tqdm import tqdm

from cs336_basics.tokenizer.pretokenize import (
    PRETOKEN_RE,
    check_special_tokens,
    count_pretokens_in_file,
    decode_utf8,
    plain_file,
    special_token_regex,
    split_on_special,
)

Vocab = dict[int, bytes]
Merges = list[tuple[bytes, bytes]]


def _initial_vocab(vocab_size: int, special_tokens) -> tuple[Vocab, list[str]]:
    """Check the arguments and build {0..255: single bytes, then the special tokens}."""
    special_tokens = check_special_tokens(special_tokens)
    if vocab_size < 256 + len(special_tokens):
        raise ValueError(
            f"vocab_size={vocab_size} is too small: it must hold the 256 byte tokens "
            f"and {len(special_tokens)} special token(s), i.e. at least {256 + len(special_tokens)}"
        )
    vocab = {i: bytes([i]) for i in range(256)}
    for token in special_tokens:
        vocab[len(vocab)] = token.encode("utf-8")
    return vocab, special_tokens


def _check_not_empty(path: str) -> None:
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path} is empty: there is nothing to train on")


def merge_word(word: tuple[bytes, ...], pair: tuple[bytes, bytes]) -> tuple[bytes, ...]:
    """Replace each occurrence of `pair`, left to right: (l, o, w, o, w), (o, w) -> (l, ow, ow)."""
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def train_bpe_naive(input_path, vocab_size: int, special_tokens=()) -> tuple[Vocab, Merges]:
    """The plainest correct trainer, kept as the oracle: recount every pair at every step."""
    vocab, special_tokens = _initial_vocab(vocab_size, special_tokens)
    with plain_file(input_path) as path:
        _check_not_empty(path)
        with open(path, "rb") as f:
            text = decode_utf8(f.read(), path)
    words: Counter[tuple[bytes, ...]] = Counter()
    pieces = split_on_special(text, special_token_regex(special_tokens))
    for piece in pieces[::2]:
        for match in PRETOKEN_RE.finditer(piece):
            words[tuple(bytes([b]) for b in match.group().encode("utf-8"))] += 1
    merges = []
    while len(vocab) < vocab_size:
        pair_counts: Counter[tuple[bytes, bytes]] = Counter()
        for word, n in words.items():
            for pair in pairwise(word):
                pair_counts[pair] += n
        if not pair_counts:
            break
        best = max(pair_counts, key=lambda pair: (pair_counts[pair], pair))
        merges.append(best)
        vocab[len(vocab)] = best[0] + best[1]
        merged: Counter[tuple[bytes, ...]] = Counter()
        for word, n in words.items():
            if best[0] in word and best[1] in word:  # cheap skip: most words cannot contain the pair
                word = merge_word(word, best)
            merged[word] += n
        words = merged
    return vocab, merges


def _reverse_key(token: bytes) -> str:
    """A string whose ascending order is the descending order of the bytes (the heap is a min-heap).

    b"a" < b"ab" in bytes order; the terminator chr(256) is above every chr(255 - byte), so key(b"a") > key(b"ab").
    """
    return "".join(chr(255 - b) for b in token) + chr(256)


def _initial_pair_index(words: list[bytes], freqs: list[int]):
    """Count the byte pairs of all words with numpy, and index which words contain each byte pair.

    Returns (pair_counts: {(a, b): count}, starts, word_ids) where the words containing byte pair (a, b)
    are word_ids[starts[k]:starts[k + 1]] with k = 256 * a + b (possibly repeated).
    """
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    flat = np.frombuffer(b"".join(words), dtype=np.uint8).astype(np.uint16)
    keys = flat[:-1] * 256 + flat[1:]  # the pair starting at each position
    valid = np.ones(len(keys), dtype=bool)
    valid[np.cumsum(lengths)[:-1] - 1] = False  # a pair must not straddle two words
    word_of_pos = np.repeat(np.arange(len(words), dtype=np.int64), lengths)[:-1][valid]
    keys = keys[valid]
    counts = np.bincount(keys, weights=np.asarray(freqs, dtype=np.float64)[word_of_pos], minlength=65536)
    order = np.argsort(keys, kind="stable")  # radix sort on uint16
    starts = np.concatenate([[0], np.cumsum(np.bincount(keys, minlength=65536))])
    pair_counts = {(int(k) >> 8, int(k) & 255): int(counts[k]) for k in np.flatnonzero(counts)}
    return pair_counts, starts, word_of_pos[order]


def _merge_loop(word_counts: dict[bytes, int], vocab: Vocab, num_merges: int, progress: bool) -> Merges:
    """Apply `num_merges` merges to `vocab` in place (fewer if pairs run out); return the merges.

    words[i] holds pre-token i as a sequence of token ids (its bytes until first touched, then a list).
    pair_counts holds the weighted count of every adjacent pair; a heap of (-count, key) entries finds the best
    pair, stale entries (count changed since the push) are skipped when popped. A merge only visits the words
    that contain its pair: byte pairs via the numpy index built at the start, pairs with a merged token via
    `where`, filled as those pairs are created (a merge only creates pairs that contain the new token).
    """
    words = [w for w in word_counts if len(w) > 1]
    freqs = [word_counts[w] for w in words]
    merges: Merges = []
    if not words:
        return merges
    pair_counts, starts, byte_pair_words = _initial_pair_index(words, freqs)
    # words[i] stays a bytes object (iterating gives the byte ids) until a merge touches it and makes it a list.
    where: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
    rkey = {i: _reverse_key(token) for i, token in vocab.items()}
    heap = [(-n, rkey[a], rkey[b], a, b) for (a, b), n in pair_counts.items()]
    heapq.heapify(heap)
    bar = tqdm(total=num_merges, desc="merges", unit="merge", disable=not progress, mininterval=0.5)
    while len(merges) < num_merges and heap:
        neg, _, _, a, b = heapq.heappop(heap)
        if pair_counts.get((a, b)) != -neg:
            continue  # stale entry
        new_id = len(vocab)
        vocab[new_id] = vocab[a] + vocab[b]
        rkey[new_id] = _reverse_key(vocab[new_id])
        merges.append((vocab[a], vocab[b]))
        if a < 256 and b < 256:
            k = 256 * a + b
            candidates = set(byte_pair_words[starts[k] : starts[k + 1]].tolist())
        else:
            candidates = where.pop((a, b), ())
        delta: defaultdict[tuple[int, int], int] = defaultdict(int)
        for i in candidates:
            word = words[i]
            n = len(word)
            new = []
            j = 0
            while j < n:
                if j + 1 < n and word[j] == a and word[j + 1] == b:
                    new.append(new_id)
                    j += 2
                else:
                    new.append(word[j])
                    j += 1
            if len(new) == n:
                continue  # the pair left this word in an earlier merge
            f = freqs[i]
            for pair in pairwise(word):
                delta[pair] -= f
            for pair in pairwise(new):
                delta[pair] += f
                if new_id in pair:
                    where[pair].add(i)
            words[i] = new
        for pair, d in delta.items():
            if d:
                count = pair_counts.get(pair, 0) + d
                if count:
                    pair_counts[pair] = count
                    heapq.heappush(heap, (-count, rkey[pair[0]], rkey[pair[1]], pair[0], pair[1]))
                else:
                    del pair_counts[pair]
        bar.update(1)
    bar.close()
    return merges


def train_bpe(
    input_path, vocab_size: int, special_tokens=(), *, num_workers: int | None = None, progress: bool = False
) -> tuple[Vocab, Merges]:
    """Train a byte-level BPE on a text file; same result as `train_bpe_naive`, much faster.

    Pre-tokens are counted in parallel over chunks of the file (in-process for small files), then merges are
    applied incrementally. Returns (vocab {id: bytes}, merges [(bytes, bytes)] in creation order).
    """
    vocab, special_tokens = _initial_vocab(vocab_size, special_tokens)
    with plain_file(input_path) as path:
        _check_not_empty(path)
        counts = count_pretokens_in_file(path, special_tokens, num_workers=num_workers, progress=progress)
    merges = _merge_loop(counts, vocab, vocab_size - len(vocab), progress)
    return vocab, merges
