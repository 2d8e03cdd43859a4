"""Pre-tokenization: special tokens first, then GPT-2's regex; chunking a file at safe cuts; parallel counting.

Text is cut in two stages before any BPE merge happens:
1. on the special tokens (longest match first, so "<|a|><|a|>" beats "<|a|>" when both are special);
   special tokens are never merged and never part of a pre-token;
2. each piece between special tokens is split by the GPT-2 pattern into pre-tokens; merges never cross them.

Big files are processed in chunks. A chunk boundary must not change the pre-tokens, so it is placed at a *safe
cut*: the start of a special-token occurrence, or (when no special token is near) between an ASCII non-space
character and a whitespace character - no GPT-2 pre-token contains such a pair, and none looks behind. A cut never
falls inside any special-token occurrence. Memory per worker is bounded by the chunk size.

Invalid UTF-8 policy: reading a file raises a ValueError naming the file and the byte offset of the first bad byte.
"""

import contextlib
import gzip
import os
import shutil
import signal
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import pairwise
from multiprocessing import Pool

import regex
from tqdm import tqdm

from cs336_basics.tokenizer.fast_pretokens import GPT2_PATTERN, PRETOKEN_RE, pretokens  # noqa: F401 (re-exported)

# An ASCII non-space byte followed by a whitespace byte: a cut between them leaves pre-tokens unchanged.
_WHITESPACE_CUT_RE = regex.compile(rb"[\x21-\x7e](?=[\t\n\x0b\x0c\r ])")
_WHITESPACE_CUT_STR_RE = regex.compile(r"[\x21-\x7e](?=[\t\n\x0b\x0c\r ])")
_COUNT_PIECE = 1 << 18  # characters pre-tokenized at a time by count_pretokens (bounds findall's list)
_SCAN_BLOCK = 1 << 16  # bytes read at a time while looking for a cut
_MAX_SPECIAL_SCAN = 1 << 20  # look this far for a special token before settling for a whitespace cut
IN_PROCESS_BYTES = 1 << 20  # below this, counting runs in-process: no worker start-up cost


def check_special_tokens(special_tokens: Iterable[str] | None) -> list[str]:
    """Validate special tokens: strings, non-empty, no duplicates (a ValueError names the offender)."""
    tokens = list(special_tokens or [])
    seen = set()
    for token in tokens:
        if not isinstance(token, str) or not token:
            raise ValueError(f"special tokens must be non-empty strings, got {token!r}")
        if token in seen:
            raise ValueError(f"duplicate special token {token!r}")
        seen.add(token)
    return tokens


def special_token_regex(special_tokens: Iterable[str]) -> regex.Pattern | None:
    """A regex matching any special token, longest first (so overlapping tokens resolve to the longest)."""
    tokens = sorted(special_tokens, key=len, reverse=True)
    if not tokens:
        return None
    return regex.compile("(" + "|".join(regex.escape(t) for t in tokens) + ")")


def split_on_special(text: str, special_re: regex.Pattern | None) -> list[str]:
    """Alternating [text, special, text, special, ..., text]: "a<|eot|>b" -> ["a", "<|eot|>", "b"]."""
    return [text] if special_re is None else special_re.split(text)


def safe_pieces(text: str, piece_chars: int) -> Iterator[str]:
    """Cut `text` into pieces of about `piece_chars` at safe cuts (ASCII non-space then whitespace), so that
    the pieces' pre-tokens are the text's; a piece runs on until such a cut appears."""
    start = 0
    while len(text) - start > piece_chars:
        m = _WHITESPACE_CUT_STR_RE.search(text, start + piece_chars)
        if m is None:
            break
        yield text[start : m.end()]
        start = m.end()
    yield text[start:]


def count_pretokens(text: str, special_tokens: Iterable[str] = ()) -> Counter[bytes]:
    """Count the pre-tokens of `text` as UTF-8 bytes, e.g. "hi hi" -> {b"hi": 1, b" hi": 1}.

    findall's list holds one str object (~60 bytes) per pre-token, 4x the text, so it is made one safe piece
    of _COUNT_PIECE characters at a time; Counter.update counts a list in C.
    """
    pieces = split_on_special(text, special_token_regex(special_tokens))
    counts: Counter[str] = Counter()
    for piece in pieces[::2]:  # even positions are the text between special tokens
        for part in safe_pieces(piece, _COUNT_PIECE):
            counts.update(pretokens(part))
    return Counter({word.encode("utf-8"): n for word, n in counts.items()})


def decode_utf8(data: bytes, path: str | os.PathLike, offset: int = 0) -> str:
    """Decode, or raise a ValueError naming the file and the absolute byte offset of the first invalid byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path}: invalid UTF-8 at byte offset {offset + err.start} ({data[err.start : err.start + 4]!r})"
        ) from None


def read_text(path: str | os.PathLike, start: int, end: int) -> str:
    """The text of bytes [start, end) of a file."""
    with open(path, "rb") as f:
        f.seek(start)
        return decode_utf8(f.read(end - start), path, start)


def inside_special(buf: bytes | str, pos: int, specials: list) -> bool:
    """Whether an occurrence of some special token in `buf` starts before `pos` and ends after it.

    Works on bytes with bytes tokens or on str with str tokens: inside_special("a<|x|>", 3, ["<|x|>"]) -> True.
    """
    for token in specials:
        if buf.find(token, max(0, pos - len(token) + 1), pos + len(token) - 1) != -1:
            return True
    return False


def _next_cut(f, pos: int, file_size: int, specials: list[bytes]) -> int:
    """The first safe cut at or after `pos` (preferring a special token within _MAX_SPECIAL_SCAN bytes)."""
    context = max((len(t) for t in specials), default=1)
    whitespace_cut = None
    scan = pos
    while scan < file_size:
        base = max(0, scan - context)
        f.seek(base)
        buf = f.read(scan - base + _SCAN_BLOCK + context)
        lo, hi = scan - base, min(len(buf), scan - base + _SCAN_BLOCK)
        first = None  # the first occurrence of a special token that is not inside another one
        for token in specials:
            i = buf.find(token, lo, hi + len(token) - 1)
            while i != -1 and inside_special(buf, i, specials):
                i = buf.find(token, i + 1, hi + len(token) - 1)
            if i != -1 and (first is None or i < first):
                first = i
        if first is not None:
            return base + first
        if whitespace_cut is None:
            for m in _WHITESPACE_CUT_RE.finditer(buf, max(lo - 1, 0), hi):
                if m.end() >= lo and not inside_special(buf, m.end(), specials):
                    whitespace_cut = base + m.end()
                    break
        scan += _SCAN_BLOCK
        if whitespace_cut is not None and (not specials or scan - pos >= _MAX_SPECIAL_SCAN):
            return whitespace_cut
    return whitespace_cut if whitespace_cut is not None else file_size


def find_chunk_boundaries(
    path: str | os.PathLike, chunk_bytes: int, special_tokens: Iterable[str] = ()
) -> list[int]:
    """Byte offsets [0, c1, ..., file_size]: chunks of about `chunk_bytes`, each boundary a safe cut."""
    specials = [t.encode("utf-8") for t in special_tokens]
    file_size = os.path.getsize(path)
    boundaries = [0]
    with open(path, "rb") as f:
        while boundaries[-1] < file_size:
            target = boundaries[-1] + max(chunk_bytes, 1)
            cut = file_size if target >= file_size else _next_cut(f, target, file_size, specials)
            boundaries.append(cut)
    return boundaries


def chunk_size_for(file_size: int, num_workers: int) -> int:
    """About 4 chunks per worker, each between 1 MB and 16 MB (bounds the memory of one worker)."""
    return min(max(file_size // (4 * num_workers), 1 << 20), 16 << 20)


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the parent, which terminates them (no traceback from each, no orphan)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def worker_pool(processes: int, initializer=_ignore_sigint, initargs: tuple = ()) -> Pool:
    """A Pool whose workers ignore Ctrl-C (the initializer must start by doing so). A Ctrl-C that arrives while the
    workers are being started is held back and raised once the pool exists, after terminating it: never lost, never
    half-delivered (a worker forked meanwhile inherits the holding handler, so it cannot die of it either)."""
    if threading.current_thread() is not threading.main_thread():
        return Pool(processes, initializer=initializer, initargs=initargs)
    held: list[int] = []
    handler = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        pool = Pool(processes, initializer=initializer, initargs=initargs)
    finally:
        signal.signal(signal.SIGINT, handler)
    if held:
        pool.terminate()
        raise KeyboardInterrupt
    return pool


def _count_range(args: tuple) -> tuple[Counter[bytes], int]:
    path, start, end, special_tokens = args
    return count_pretokens(read_text(path, start, end), special_tokens), end - start


def count_pretokens_in_file(
    path: str | os.PathLike,
    special_tokens: Iterable[str] = (),
    *,
    num_workers: int | None = None,
    progress: bool = False,
) -> Counter[bytes]:
    """Pre-token counts of a whole file, streamed in chunks over `num_workers` processes (default: all cores).

    Files under IN_PROCESS_BYTES, or num_workers=1, are counted in this process.
    """
    special_tokens = list(special_tokens)
    num_workers = num_workers or os.cpu_count() or 1
    file_size = os.path.getsize(path)
    if num_workers == 1 or file_size < IN_PROCESS_BYTES:
        return count_pretokens(read_text(path, 0, file_size), special_tokens)
    bounds = find_chunk_boundaries(path, chunk_size_for(file_size, num_workers), special_tokens)
    tasks = [(path, a, b, special_tokens) for a, b in pairwise(bounds)]
    total: Counter[bytes] = Counter()
    bar = tqdm(total=file_size, unit="B", unit_scale=True, desc="pre-tokenize", disable=not progress)
    with worker_pool(min(num_workers, len(tasks))) as pool:  # its exit terminates the workers
        for counts, nbytes in pool.imap_unordered(_count_range, tasks):
            total.update(counts)
            bar.update(nbytes)
    bar.close()
    return total


def iter_chunks(
    path: str | os.PathLike, chunk_bytes: int, special_tokens: Iterable[str] = ()
) -> Iterator[str]:
    """Stream a file as text chunks cut at safe places (for encoding a file lazily)."""
    bounds = find_chunk_boundaries(path, chunk_bytes, special_tokens)
    for a, b in pairwise(bounds):
        yield read_text(path, a, b)


@contextlib.contextmanager
def plain_file(path: str | os.PathLike) -> Iterator[str]:
    """Yield a path to the uncompressed contents: `path` itself, or for *.gz a temporary file deleted afterwards.

    Chunked parallel reading needs to seek, which a gzip stream cannot do cheaply, so .gz input is decompressed
    once into the system temp directory (5 MB for the bundled Shakespeare corpus).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"input file not found: {path}")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory: give a text file")
    if not path.endswith(".gz"):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="cs336_bpe_") as tmp:
        plain = os.path.join(tmp, os.path.basename(path)[: -len(".gz")] or "input")
        with gzip.open(path, "rb") as src, open(plain, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        try:
            yield plain
        except ValueError as err:  # name the user's file, not our temporary copy
            if plain not in str(err):
                raise
            raise ValueError(str(err).replace(plain, f"{path} (decompressed)")) from None
