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
from array import array
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


def _reverse_key(token: bytes) -> bytes:
    """Bytes whose ascending order is the descending order of the tokens (the heap is a min-heap).

    Each byte b becomes 255 - b, and the end is marked by FF FF, above everything else: then b"ab" (9E 9D FF FF)
    sorts before b"a" (9E FF FF), as a longer token with the same start must. A complemented byte that is itself FF
    (b = 0) is written FF 00, below the end mark. One byte per byte of the token (bar NULs), at C speed: in a
    pathological file (one 100 MB word) the last merges make tokens of many megabytes.
    """
    return token.translate(_COMPLEMENT).replace(b"\xff", b"\xff\x00") + b"\xff\xff"


_COMPLEMENT = bytes(255 - b for b in range(256))


# Words are str with one character per token: chr(id). A byte-only word is its UTF-8 bytes decoded as latin-1
# (chr(b) == token b), and applying a merge is str.replace, which scans left to right without overlap, as
# merge_word does. A pair is the 2-character string of its two tokens.
LONG_WORD = 1 << 12  # words longer than this (e.g. 'a' * 10**8, one pre-token) take the block-counting path
_PAIR_BLOCK = 1 << 20  # characters counted at a time by _pair_counts_long: bounds its memory


def _pair_counts_long(word: str) -> Counter[str]:
    """Adjacent-pair counts of a long word with numpy, one block at a time (memory bounded by the block)."""
    counts: Counter[str] = Counter()
    for start in range(0, len(word) - 1, _PAIR_BLOCK):
        piece = word[start : start + _PAIR_BLOCK + 1]
        ids = np.frombuffer(piece.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
        keys, n = np.unique(ids[:-1] << np.uint64(32) | ids[1:], return_counts=True)
        for key, c in zip(keys.tolist(), n.tolist(), strict=True):
            counts[chr(key >> 32) + chr(key & 0xFFFFFFFF)] += c
    return counts


def _words_from_counts(counts: dict[bytes, int]) -> tuple[list[str], list[int]]:
    """The pre-tokens with two or more bytes as words (latin-1 str) and their counts, emptying `counts` as it
    goes so that the two copies never coexist in full."""
    words, freqs = [], []
    while counts:
        word, n = counts.popitem()
        if len(word) > 1:
            words.append(word.decode("latin-1"))
            freqs.append(n)
    return words, freqs


def _byte_pair_index(words: list[str], freqs: np.ndarray):
    """Count the byte pairs of the short words with numpy, and index which words contain each byte pair.

    Returns (pair_counts {pair: count}, starts, owners): the words containing byte pair (a, b) are
    owners[starts[k]:starts[k + 1]] with k = 256 * a + b (possibly repeated). About 20 bytes per byte of text.
    """
    ids = np.array([i for i, w in enumerate(words) if len(w) <= LONG_WORD], dtype=np.int32)
    if len(ids) == 0:
        return {}, np.zeros(65537, dtype=np.int64), np.zeros(0, dtype=np.int32)
    lengths = np.fromiter((len(words[i]) for i in ids), dtype=np.int64, count=len(ids))
    flat = np.frombuffer("".join([words[i] for i in ids]).encode("latin-1"), dtype=np.uint8)
    keys = flat[:-1].astype(np.uint16) << 8 | flat[1:]  # the pair starting at each position
    valid = np.ones(len(keys), dtype=bool)
    valid[np.cumsum(lengths)[:-1] - 1] = False  # a pair must not straddle two words
    owners = np.repeat(ids, lengths)[:-1][valid]
    keys = keys[valid]
    del flat, valid
    counts = np.bincount(keys, weights=freqs[owners], minlength=65536)
    starts = np.concatenate([[0], np.cumsum(np.bincount(keys, minlength=65536))])
    owners = owners[np.argsort(keys, kind="stable")]  # radix sort on uint16
    pair_counts = {chr(k >> 8) + chr(k & 255): int(counts[k]) for k in np.flatnonzero(counts)}
    return pair_counts, starts, owners


def _merge_short_word(words, i, pair, new, f, delta, where) -> None:
    """Apply the merge `pair` -> `new` to words[i]; add the pair-count changes (times f) to `delta`.

    Only the pairs around each occurrence change: the old pairs overlapping an occurrence (positions j-1, j, j+1)
    disappear, the pairs touching a new token appear (and are indexed in `where`); every other pair is unchanged.
    """
    word = words[i]
    merged = word.replace(pair, new)
    if len(merged) == len(word):
        return  # the pair left this word in an earlier merge
    last, end = -1, len(word) - 1
    j = word.find(pair)
    while j != -1:
        for q in (j - 1, j, j + 1):
            if last < q < end:
                delta[word[q : q + 2]] -= f
                last = q
        j = word.find(pair, j + 2)
    last, end = -1, len(merged) - 1
    j = merged.find(new)
    while j != -1:
        for q in (j - 1, j):
            if last < q < end:
                p = merged[q : q + 2]
                delta[p] += f
                where[p].append(i)
                last = q
        j = merged.find(new, j + 1)
    words[i] = merged


def _merge_long_word(words, i, pair, new, f, delta, where) -> None:
    """_merge_short_word for a long word: recount its pairs by blocks before and after (bounded memory)."""
    word = words[i]
    merged = word.replace(pair, new)
    if len(merged) == len(word):
        return
    for p, n in _pair_counts_long(word).items():
        delta[p] -= n * f
    for p, n in _pair_counts_long(merged).items():
        delta[p] += n * f
        if new in p:
            where[p].append(i)
    words[i] = merged


_SEP = chr(0x10FFFF)  # joins words in a batch; never a token (vocab_size <= 0x10FFFF)
BATCH_WORDS = 256  # a merge visiting at least this many short words updates them in numpy batches ...
BATCH_SIZE = 1 << 16  # ... of this many words (bounds the batch's arrays)


def _codes(text: str) -> np.ndarray:
    """The code points of `text` (token ids and _SEP) as a uint32 array."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _unique(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, index of each element's value): np.unique(x, return_inverse=True) by a sort,
    which is much faster than np.unique's hashing on the small arrays of a batch."""
    order = np.argsort(x, kind="stable")
    first = np.ones(len(x), dtype=bool)
    first[1:] = x[order[1:]] != x[order[:-1]]
    inverse = np.empty(len(x), dtype=np.int64)
    inverse[order] = np.cumsum(first) - 1
    return x[order[first]], inverse


def _pairs_at(codes: np.ndarray, positions: np.ndarray, weights: np.ndarray):
    """The pairs starting at `positions` (those inside one word) as sorted unique uint64 keys, their summed
    weights, and (key index, word index in the batch) for each position."""
    positions = positions[(positions >= 0) & (positions < len(codes) - 1)]
    positions = positions[(codes[positions] != ord(_SEP)) & (codes[positions + 1] != ord(_SEP))]
    owners = np.searchsorted(np.flatnonzero(codes == ord(_SEP)), positions, side="right")
    keys = codes[positions].astype(np.uint64) << np.uint64(32) | codes[positions + 1]
    keys, inverse = _unique(keys)
    return keys, np.bincount(inverse, weights=weights[owners], minlength=len(keys)), inverse, owners


def _merge_batch(words, batch: list[int], pair, new, freqs_np, delta, where) -> None:
    """_merge_short_word for many words at once: one str.replace over the words joined by _SEP, and the pair
    changes found with numpy. The k-th new token of the merged text sits at old position at[k] + k (each new
    token before it shortened the text by one), which gives the occurrences without re-scanning the old text."""
    joined = _SEP.join([words[i] for i in batch])
    merged = joined.replace(pair, new)
    if len(merged) == len(joined):
        return
    weights = freqs_np[batch]
    merged_codes = _codes(merged)
    at = np.flatnonzero(merged_codes == ord(new))
    occurrences = at + np.arange(len(at))
    old = np.concatenate([occurrences - 1, occurrences, occurrences + 1])
    old = _unique(old)[0]
    keys, sums, _, _ = _pairs_at(_codes(joined), old, weights)
    for key, n in zip(keys.tolist(), sums.tolist(), strict=True):
        delta[chr(key >> 32) + chr(key & 0xFFFFFFFF)] -= round(n)
    keys, sums, inverse, owners = _pairs_at(merged_codes, _unique(np.concatenate([at - 1, at]))[0], weights)
    batch_np = np.asarray(batch)
    pairs = [chr(key >> 32) + chr(key & 0xFFFFFFFF) for key in keys.tolist()]
    for p, n in zip(pairs, sums.tolist(), strict=True):
        delta[p] += round(n)
    # Index the words holding each new pair: group the (pair, word) combinations by pair.
    combos = _unique(inverse * len(batch) + owners)[0]
    holders = batch_np[combos % len(batch)].tolist()
    bounds = np.flatnonzero(np.diff(combos // len(batch))) + 1
    for lo, hi in pairwise([0, *bounds.tolist(), len(combos)]):
        if hi > lo:
            where[pairs[combos[lo] // len(batch)]].extend(holders[lo:hi])
    for i, word in zip(batch, merged.split(_SEP), strict=True):
        words[i] = word


def _merge_loop(words: list[str], freqs: list[int], vocab: Vocab, num_merges: int, progress: bool) -> Merges:
    """Apply `num_merges` merges to `vocab` in place (fewer if pairs run out); return the merges.

    `words` are the distinct pre-tokens (one character per byte, see above) and `freqs` their counts.
    pair_counts holds the weighted count of every adjacent pair. A heap of (-count, key) entries finds the best
    pair lazily: an entry whose count is out of date is re-pushed with the current count when popped, so only
    increases push (and the heap is rebuilt when stale entries outnumber live pairs). A merge only visits the
    words that contain its pair: byte pairs via the numpy index built at the start, pairs with a merged token via
    `where`, filled as those pairs are created (a merge only creates pairs that contain the new token). In a
    visited word only the pairs around each occurrence change (_merge_short_word); a merge that visits many words
    does them in one batch (_merge_batch), a very long word by block counting (_merge_long_word).
    """
    merges: Merges = []
    if len(vocab) + num_merges > ord(_SEP):
        raise ValueError(f"vocab_size={len(vocab) + num_merges} is too large: at most {ord(_SEP)} tokens")
    freqs_np = np.asarray(freqs, dtype=np.float64)
    pair_counts, starts, byte_pair_words = _byte_pair_index(words, freqs_np)
    # `where` holds, for each pair with a merged token, the words that may contain it; long words are listed
    # under every pair they contain (byte pairs too), since the numpy index leaves them out.
    # An array of int32 ids costs 4 bytes an entry where a set costs ~60 (duplicates are dropped when it is used).
    where: defaultdict[str, array] = defaultdict(lambda: array("i"))
    long_words = {i for i, word in enumerate(words) if len(word) > LONG_WORD}
    for i in long_words:
        for pair, n in _pair_counts_long(words[i]).items():
            pair_counts[pair] = pair_counts.get(pair, 0) + n * freqs[i]
            where[pair].append(i)
    rkey = {chr(i): _reverse_key(token) for i, token in vocab.items()}
    heap = [(-n, rkey[pair[0]], rkey[pair[1]], pair) for pair, n in pair_counts.items()]
    heapq.heapify(heap)
    bar = tqdm(total=num_merges, desc="merges", unit="merge", disable=not progress, mininterval=0.5)
    while len(merges) < num_merges and heap:
        neg, ka, kb, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if count != -neg:  # out of date: the count fell since the push (or the pair is gone)
            if count:
                heapq.heappush(heap, (-count, ka, kb, pair))
            continue
        a, b = ord(pair[0]), ord(pair[1])
        new_id = len(vocab)
        new = chr(new_id)
        vocab[new_id] = vocab[a] + vocab[b]
        rkey[new] = _reverse_key(vocab[new_id])
        merges.append((vocab[a], vocab[b]))
        candidates = set(where.pop(pair, ()))
        if a < 256 and b < 256:
            k = 256 * a + b
            candidates.update(byte_pair_words[starts[k] : starts[k + 1]].tolist())
        delta: defaultdict[str, int] = defaultdict(int)
        for i in candidates & long_words:
            _merge_long_word(words, i, pair, new, freqs[i], delta, where)
        short = list(candidates - long_words) if long_words else list(candidates)
        if len(short) < BATCH_WORDS:
            for i in short:
                _merge_short_word(words, i, pair, new, freqs[i], delta, where)
        else:
            for k in range(0, len(short), BATCH_SIZE):
                _merge_batch(words, short[k : k + BATCH_SIZE], pair, new, freqs_np, delta, where)
        for p, d in delta.items():
            if d:
                count = pair_counts.get(p, 0) + d
                if count:
                    pair_counts[p] = count
                    if d > 0:
                        heapq.heappush(heap, (-count, rkey[p[0]], rkey[p[1]], p))
                else:
                    del pair_counts[p]
                    where.pop(p, None)  # no word holds it any more
        if len(heap) > 2 * len(pair_counts) + 100_000:  # mostly out-of-date entries: rebuild (bounds memory)
            heap = [(-n, rkey[p[0]], rkey[p[1]], p) for p, n in pair_counts.items()]
            heapq.heapify(heap)
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
    words, freqs = _words_from_counts(counts)
    del counts  # _words_from_counts emptied it; free the table too
    merges = _merge_loop(words, freqs, vocab, vocab_size - len(vocab), progress)
    return vocab, merges
