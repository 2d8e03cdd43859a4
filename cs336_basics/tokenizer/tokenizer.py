"""The byte-level BPE Tokenizer: text -> ids -> text, plus encoding whole files in parallel into .npy arrays.

Encoding: split on the special tokens (longest match first), split the rest into GPT-2 pre-tokens, then turn each
pre-token into ids by applying merges in rank order (lowest rank first, the order they were learned). The ids of
recently seen pre-tokens are cached, so common words cost one dict lookup; the cache holds at most `cache_bytes`
(default 32 MiB), so encoding a stream of any length uses bounded memory.
"""

import contextlib
import os
import signal
import struct
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from array import array
from itertools import pairwise, repeat
from pathlib import Path

import numpy as np
import regex
from tqdm import tqdm

from cs336_basics.tokenizer import io
from cs336_basics.tokenizer.fast_pretokens import pretokens
from cs336_basics.tokenizer.pretokenize import (
    IN_PROCESS_BYTES,
    check_special_tokens,
    find_chunk_boundaries,
    inside_special,
    plain_file,
    read_text,
    special_token_regex,
    split_on_special,
    worker_pool,
)

# The last position p with text[p-1] not whitespace and text[p] whitespace: a cut there keeps every pre-token.
_LAST_SAFE_CUT_RE = regex.compile(r"(?r)\S(?=\s)")
_STREAM_BUFFER_CHARS = 1 << 18  # encode_iterable encodes once this much text is buffered
_NO_MERGE = 1 << 62  # the rank of a pair that no merge makes: above every real rank
DEFAULT_CACHE_BYTES = 32 << 20
# What a cached entry costs: its slot in the dict's tables (entries + indices, with the spare room a dict keeps
# after resizing), the packed ids (a bytes object: 33 + len) and the key: an ASCII str takes 49 + len bytes
# (CPython's layout, checked against sys.getsizeof by the tests; len() is far cheaper to call). Other keys, rare in
# most text, are measured with sys.getsizeof: their size depends on the widest character and on whether CPython has
# cached their UTF-8 form alongside.
_SLOT_BYTES = 96
_ASCII_ENTRY_BYTES = _SLOT_BYTES + 33 + 49
_OTHER_ENTRY_BYTES = _SLOT_BYTES + 33


class _PretokenCache(dict):
    """{pre-token string: its ids packed as bytes} of at most ~max_bytes (None: unbounded); a miss runs BPE.

    A dict subclass so that a hit is one C-level lookup, and the ids are packed bytes (uint16 or uint32, see
    Tokenizer.dtype) so that the ids of a whole text are one C-level b"".join of the hits, with no Python int per
    token. Recency is kept in two generations, an approximation of LRU that costs nothing on a hit: this dict is
    the young generation, `old` the previous one. A miss looks in `old` (and moves the entry back here) before
    running BPE. When the young generation's size (key + value + slot, see _SLOT_BYTES) passes max_bytes / 2,
    it becomes `old` and the previous old one is dropped: a pre-token stays cached as long as it is used at least
    once per generation. An entry above max_bytes / 8 is not cached.
    """

    def __init__(self, bpe, max_bytes: int | None):
        super().__init__()
        self.bpe = bpe
        self.max_bytes = max_bytes
        self.old: dict[str, bytes] = {}
        self.nbytes = 0  # size of this (young) generation

    def __missing__(self, pretoken: str) -> bytes:
        ids = self.old.pop(pretoken, None)
        if ids is None:
            ids = self.bpe(pretoken)
        if self.max_bytes is None:
            self[pretoken] = ids
            return ids
        if pretoken.isascii():
            size = len(ids) + len(pretoken) + _ASCII_ENTRY_BYTES
        else:
            size = len(ids) + sys.getsizeof(pretoken) + _OTHER_ENTRY_BYTES
        if size > self.max_bytes >> 3:
            return ids
        nbytes = self.nbytes + size
        if nbytes > self.max_bytes >> 1:
            self.old = {}  # free the oldest generation before copying the young one into its place
            self.old = dict(self)
            self.clear()
            nbytes = size
        self[pretoken] = ids
        self.nbytes = nbytes
        return ids


class Tokenizer:
    """Byte-level BPE tokenizer from a vocabulary {id: bytes} and merges [(bytes, bytes)] in creation order.

    Special tokens absent from the vocabulary are appended with new ids (max id + 1, ...); when they overlap, the
    longest match wins. Every single byte must be in the vocabulary and each merge's parts and result too (else
    ValueError). `vocab_size` is max id + 1; `special_token_id(token)` gives a special token's id (ValueError if
    it is not one). `decode` replaces invalid UTF-8 with U+FFFD and raises a ValueError naming an unknown id.
    `cache_bytes` bounds the pre-token cache (None: unbounded, which only saves re-encoding on huge vocabularies
    of pre-tokens at the price of memory growing with the stream); ids never depend on it.
    """

    def __init__(
        self,
        vocab: dict[int, bytes],
        merges: list[tuple[bytes, bytes]],
        special_tokens: list[str] | None = None,
        cache_bytes: int | None = DEFAULT_CACHE_BYTES,
    ):
        if cache_bytes is not None and cache_bytes < 0:
            raise ValueError(f"cache_bytes must be >= 0 or None, got {cache_bytes}")
        self.cache_bytes = cache_bytes
        self.vocab = dict(vocab)
        self.merges = list(merges)
        self.special_tokens = check_special_tokens(special_tokens)
        id_of = {token: i for i, token in self.vocab.items()}
        for token in self.special_tokens:
            encoded = token.encode("utf-8")
            if encoded not in id_of:
                new_id = max(self.vocab, default=-1) + 1
                self.vocab[new_id] = encoded
                id_of[encoded] = new_id
        missing = [b for b in range(256) if bytes([b]) not in id_of]
        if missing:
            raise ValueError(f"the vocabulary lacks single-byte tokens, e.g. {bytes([missing[0]])!r}")
        self._byte_ids = [id_of[bytes([b])] for b in range(256)]
        self._merge_rank: dict[
            tuple[int, int], int
        ] = {}  # (id, id) -> rank, the merge's position in the list
        self._merged_id = []  # _merged_id[rank] = id of the token that merge makes
        for rank, (a, b) in enumerate(self.merges):
            if a not in id_of or b not in id_of or a + b not in id_of:
                raise ValueError(
                    f"merge {rank} ({a!r}, {b!r}) uses or makes a token missing from the vocabulary"
                )
            self._merge_rank.setdefault((id_of[a], id_of[b]), rank)
            self._merged_id.append(id_of[a + b])
        self._special_ids = {t: id_of[t.encode("utf-8")] for t in self.special_tokens}
        self._special_re = special_token_regex(self.special_tokens)
        self._longest_special = max(map(len, self.special_tokens), default=0)
        # Ids are packed into bytes of this dtype inside the cache (see _PretokenCache) and in encode_file's output.
        self.dtype = np.dtype(np.uint16 if self.vocab_size <= 1 << 16 else np.uint32)
        self._typecode = "H" if self.dtype == np.uint16 else "I"  # the array module's code for the same C type
        assert array(self._typecode).itemsize == self.dtype.itemsize
        self._special_packed = {t: array(self._typecode, [i]).tobytes() for t, i in self._special_ids.items()}
        self._cache = _PretokenCache(self._bpe, cache_bytes)

    @classmethod
    def from_files(cls, vocab_path, merges_path, special_tokens: list[str] | None = None,
                   cache_bytes: int | None = DEFAULT_CACHE_BYTES) -> "Tokenizer":
        """Load GPT-2 style files (see cs336_basics.tokenizer.io); GPT-2's own encoder.json/vocab.bpe work."""
        return cls(io.load_vocab(vocab_path), io.load_merges(merges_path), special_tokens, cache_bytes)

    @classmethod
    def from_dir(cls, directory) -> "Tokenizer":
        """Load what `save` wrote: vocab.json, merges.txt and (if present) special_tokens.json."""
        directory = Path(directory)
        if not (directory / io.VOCAB_FILE).exists():
            raise FileNotFoundError(f"{directory} has no {io.VOCAB_FILE}: not a saved tokenizer directory")
        specials_path = directory / io.SPECIAL_TOKENS_FILE
        specials = io.load_special_tokens(specials_path) if specials_path.exists() else None
        return cls.from_files(directory / io.VOCAB_FILE, directory / io.MERGES_FILE, specials)

    def save(self, directory) -> None:
        """Write vocab.json, merges.txt and special_tokens.json into `directory` (created if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        io.save_vocab(self.vocab, directory / io.VOCAB_FILE)
        io.save_merges(self.merges, directory / io.MERGES_FILE)
        io.save_special_tokens(self.special_tokens, directory / io.SPECIAL_TOKENS_FILE)

    def __reduce__(self):  # worker processes rebuild the tokenizer from its definition, not its caches
        return (Tokenizer, (self.vocab, self.merges, self.special_tokens, self.cache_bytes))

    @property
    def vocab_size(self) -> int:
        """max id + 1: the size an embedding table needs."""
        return max(self.vocab) + 1

    def special_token_id(self, token: str) -> int:
        """The id of a special token, e.g. "<|endoftext|>"; a ValueError if it is not one of this tokenizer's."""
        try:
            return self._special_ids[token]
        except KeyError:
            raise ValueError(
                f"{token!r} is not a special token of this tokenizer {self.special_tokens}"
            ) from None

    def _bpe(self, pretoken: str) -> bytes:
        """Ids of one pre-token, packed as self.dtype bytes: merge the leftmost occurrence of the lowest-rank pair until none is left.

        Merging one occurrence at a time, leftmost first, equals merging all occurrences left to right, because
        the pairs a merge creates contain the new token and so have higher ranks. "low" -> [l, o, w] -> [l, ow]
        -> [low] with merges (o, w), (l, ow).
        """
        ids = list(map(self._byte_ids.__getitem__, pretoken.encode("utf-8")))
        rank_of, never = self._merge_rank.get, _NO_MERGE
        ranks = list(map(rank_of, pairwise(ids), repeat(never)))  # ranks[i]: rank of (ids[i], ids[i + 1])
        while ranks:
            best = min(ranks)
            if best == never:
                break
            i = ranks.index(best)
            ids[i : i + 2] = [self._merged_id[best]]
            del ranks[i]  # only the pairs next to the new token change
            if i:
                ranks[i - 1] = rank_of((ids[i - 1], ids[i]), never)
            if i < len(ranks):
                ranks[i] = rank_of((ids[i], ids[i + 1]), never)
        return array(self._typecode, ids).tobytes()

    def encode_packed(self, text: str) -> bytes:
        """The ids of encode(text) as the bytes of a self.dtype array: one join of cached pieces, no int objects."""
        ids_of = self._cache.__getitem__
        pieces = split_on_special(text, self._special_re)
        if len(pieces) == 1:
            return b"".join(map(ids_of, pretokens(text)))
        parts = []
        for i, piece in enumerate(pieces):
            if i % 2:
                parts.append(self._special_packed[piece])
            elif piece:
                parts.append(b"".join(map(ids_of, pretokens(piece))))
        return b"".join(parts)

    def encode_array(self, text: str) -> np.ndarray:
        """encode(text) as a 1-D array of self.dtype (what encode_file writes)."""
        return np.frombuffer(self.encode_packed(text), self.dtype)

    def encode(self, text: str) -> list[int]:
        """Text -> ids. Special tokens map to their ids (longest match first); they are never split."""
        return self.encode_array(text).tolist()

    def _safe_cut(self, buffer: str) -> int:
        """A position p where encode(buffer[:p]) + encode(rest) == encode(buffer + rest) for any rest, or 0.

        p follows a non-space character and precedes a whitespace one, is outside every special-token
        occurrence, and is far enough from the end that a special token still arriving cannot cover it.
        """
        end = len(buffer) - self._longest_special
        while end > 0:
            m = _LAST_SAFE_CUT_RE.search(buffer, 0, end + 1)
            if m is None:
                return 0
            if not inside_special(buffer, m.end(), self.special_tokens):
                return m.end()
            end = m.start()
        return 0

    def encode_iterable(self, iterable: Iterable[str]) -> Iterator[int]:
        """Lazily encode a stream of strings (e.g. an open file): yields exactly encode("".join(iterable)).

        Text is buffered until ~256K characters, then encoded up to the last safe cut (see `_safe_cut`); with the
        bounded pre-token cache, memory stays bounded unless the stream has no whitespace at all.
        """
        buffer = ""
        for text in iterable:
            buffer += text
            if len(buffer) >= _STREAM_BUFFER_CHARS:
                cut = self._safe_cut(buffer)
                if cut:
                    yield from self.encode(buffer[:cut])
                    buffer = buffer[cut:]
        if buffer:
            yield from self.encode(buffer)

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text; byte sequences that are not valid UTF-8 become U+FFFD."""
        ids = list(ids)
        try:
            data = b"".join(map(self.vocab.__getitem__, ids))
        except (KeyError, TypeError):
            bad = next(i for i in ids if not isinstance(i, (int, np.integer)) or i not in self.vocab)
            raise ValueError(
                f"token id {bad!r} is not in the vocabulary (ids 0..{self.vocab_size - 1})"
            ) from None
        return data.decode("utf-8", errors="replace")


@dataclass
class EncodeResult:
    num_bytes: int
    num_tokens: int
    seconds: float

    @property
    def bytes_per_token(self) -> float:
        return self.num_bytes / max(self.num_tokens, 1)


_NPY_HEADER_BYTES = 128


def _npy_header(dtype: np.dtype, length: int) -> bytes:
    """A .npy (format 1.0) header for a 1-D array, padded to a fixed size so it can be rewritten in place."""
    text = f"{{'descr': '{dtype.str}', 'fortran_order': False, 'shape': ({length},), }}"
    text = text.ljust(_NPY_HEADER_BYTES - 10 - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")


def _encode_range(tokenizer: Tokenizer, path: str, start: int, end: int, dtype: np.dtype) -> bytes:
    """The ids of bytes [start, end) of the file, as the bytes of a `dtype` array."""
    text = read_text(path, start, end)
    if isinstance(tokenizer, Tokenizer):
        return tokenizer.encode_packed(text)
    return np.array(tokenizer.encode(text), dtype=dtype).tobytes()  # e.g. the ByteTokenizer


_worker_tokenizer: list[Tokenizer] = []  # one per worker process, set by the pool initializer


def _init_worker(tokenizer: Tokenizer, cache_bytes: int | None) -> None:
    # Ctrl-C reaches the whole process group: the parent alone handles it (it terminates the pool), so that the
    # workers do not each print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if isinstance(tokenizer, Tokenizer) and tokenizer.cache_bytes is not None:
        # This process's own copy: a bigger cache re-runs BPE less often on the long tail of a big corpus.
        tokenizer._cache.max_bytes = max(tokenizer.cache_bytes, cache_bytes or 0)
    _worker_tokenizer.append(tokenizer)


def _encode_task(args: tuple) -> tuple[bytes, int]:
    path, start, end, dtype = args
    return _encode_range(_worker_tokenizer[-1], path, start, end, dtype), end - start


def _encoded_chunks(tokenizer: Tokenizer, tasks: list[tuple], num_workers: int) -> Iterator[tuple[bytes, int]]:
    """(packed ids, bytes read) per chunk, in file order. The first chunk is encoded here, before the workers
    start: where processes are forked, they inherit its warm pre-token cache instead of each rebuilding it.
    Closing the generator (or an exception in it) terminates the workers."""
    if not tasks:  # an empty file
        return
    path, start, end, dtype = tasks[0]
    yield _encode_range(tokenizer, path, start, end, dtype), end - start
    if num_workers == 1:
        for path, start, end, dtype in tasks[1:]:
            yield _encode_range(tokenizer, path, start, end, dtype), end - start
    elif len(tasks) > 1:
        workers = min(num_workers, len(tasks) - 1)
        with worker_pool(workers, _init_worker, (tokenizer, WORKER_CACHE_BYTES)) as pool:
            yield from pool.imap(_encode_task, tasks[1:])


_WARMUP_BYTES = 1 << 18
# The pre-token cache of each encode_file worker (at least; a tokenizer's bigger cache_bytes is kept): measured on a
# 40 MB generated corpus with GPT-2's vocabulary, a 16 MiB cache cost 22% more CPU than an unbounded one (re-running
# BPE on evicted rare words), 64 MiB none. A fixed bound: a worker's memory still does not grow with the file.
WORKER_CACHE_BYTES = 64 << 20


def _encode_chunk_bytes(size: int, num_workers: int) -> int:
    """About 8 tasks per worker (they finish at different times), each 256 KB to 1 MB: a worker's memory is a few
    times its task (the text, its list of pre-tokens, the packed ids) besides its pre-token cache."""
    return min(max(size // (8 * num_workers), _WARMUP_BYTES), 1 << 20)


def encode_file(
    tokenizer: Tokenizer, input_path, output_path, *, num_workers: int | None = None, progress: bool = True
) -> EncodeResult:
    """Encode a UTF-8 text file (or .gz) into a 1-D .npy array of ids: uint16 if vocab_size <= 65536, else uint32.

    The file is cut at safe places (pre-tokens and special tokens intact) into chunks encoded by `num_workers`
    processes (default: all cores; in-process below 1 MB). The array is written to OUTPUT.part and renamed when
    complete, so an interrupted run leaves no truncated .npy. Invalid UTF-8 -> ValueError naming the byte offset.
    """
    start_time = time.perf_counter()
    output_path = Path(output_path)
    dtype = np.dtype(np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.uint32)
    num_workers = num_workers or os.cpu_count() or 1
    with plain_file(input_path) as path:
        size = os.path.getsize(path)
        if size == 0:
            raise ValueError(f"{input_path} is empty: there is nothing to encode")
        in_process = num_workers == 1 or size < IN_PROCESS_BYTES
        bounds = find_chunk_boundaries(path, _WARMUP_BYTES, tokenizer.special_tokens)
        # The first fine chunk warms the cache (see _encoded_chunks); the rest are grouped into bigger tasks.
        group = max(1, _encode_chunk_bytes(size, 1 if in_process else num_workers) // _WARMUP_BYTES)
        bounds = bounds[:1] + bounds[1:-1:group] + bounds[-1:]
        tasks = [(path, a, b, dtype) for a, b in pairwise(bounds)]
        partial = output_path.with_name(output_path.name + ".part")
        output_path.parent.mkdir(parents=True, exist_ok=True)
        num_tokens = 0
        bar = tqdm(total=size, unit="B", unit_scale=True, desc="encode", disable=not progress)
        try:
            with open(partial, "wb") as f:
                f.write(_npy_header(dtype, 0))
                chunks = _encoded_chunks(tokenizer, tasks, 1 if in_process else num_workers)
                with contextlib.closing(chunks):  # on any exception (Ctrl-C too), stop the workers right away
                    for packed, nbytes in chunks:
                        f.write(packed)
                        num_tokens += len(packed) // dtype.itemsize
                        bar.update(nbytes)
                f.seek(0)
                f.write(_npy_header(dtype, num_tokens))
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, output_path)
        finally:
            bar.close()
            partial.unlink(missing_ok=True)
    return EncodeResult(num_bytes=size, num_tokens=num_tokens, seconds=time.perf_counter() - start_time)
