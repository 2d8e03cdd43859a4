"""ByteTokenizer: the tokenizer of a tokenizer-free model. Ids 0..255 are the UTF-8 bytes, special tokens follow.

    tok = ByteTokenizer(["<|endoftext|>"])
    tok.encode("hé<|endoftext|>") -> [104, 195, 169, 256]

It has the interface of the BPE Tokenizer (encode, encode_iterable, decode, save, from_dir, special_token_id,
vocab, vocab_size, special_tokens), so the Trainer, tokenize_data, generate and encode_file take either. Saved, it is
a BPE tokenizer with no merges (vocab.json of the 256 bytes + specials, an empty merges.txt), which both classes
load; `load_tokenizer` picks the right class for a saved folder.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from cs336_basics.tokenizer import io
from cs336_basics.tokenizer.pretokenize import (
    check_special_tokens,
    inside_special,
    special_token_regex,
    split_on_special,
)
from cs336_basics.tokenizer.tokenizer import Tokenizer

NUM_BYTES = 256
_STREAM_BUFFER_CHARS = 1 << 18


class ByteTokenizer:
    """Text <-> UTF-8 bytes, with special tokens (ids 256, 257, ... in the given order) never split."""

    def __init__(self, special_tokens: list[str] | None = None):
        self.special_tokens = check_special_tokens(special_tokens)
        self._special_ids = {t: NUM_BYTES + i for i, t in enumerate(self.special_tokens)}
        self.vocab: dict[int, bytes] = {b: bytes([b]) for b in range(NUM_BYTES)}
        self.vocab.update({i: t.encode("utf-8") for t, i in self._special_ids.items()})
        self.merges: list[tuple[bytes, bytes]] = []
        self._special_re = special_token_regex(self.special_tokens)
        self._longest_special = max(map(len, self.special_tokens), default=0)

    def __reduce__(self):  # for encode_file's worker processes
        return (ByteTokenizer, (self.special_tokens,))

    @property
    def vocab_size(self) -> int:
        return NUM_BYTES + len(self.special_tokens)

    def special_token_id(self, token: str) -> int:
        """The id of a special token, e.g. "<|endoftext|>" -> 256; a ValueError if it is not one."""
        try:
            return self._special_ids[token]
        except KeyError:
            raise ValueError(f"{token!r} is not a special token of this tokenizer {self.special_tokens}") from None

    def encode(self, text: str) -> list[int]:
        """Text -> its UTF-8 bytes as ids, special tokens (longest match first) as their own ids."""
        ids: list[int] = []
        for i, piece in enumerate(split_on_special(text, self._special_re)):
            if i % 2:
                ids.append(self._special_ids[piece])
            else:
                ids.extend(piece.encode("utf-8"))
        return ids

    def encode_iterable(self, iterable: Iterable[str]) -> Iterator[int]:
        """Lazily encode a stream of strings: yields exactly encode("".join(iterable)), with bounded memory."""
        buffer = ""
        for text in iterable:
            buffer += text
            if len(buffer) >= _STREAM_BUFFER_CHARS:
                # cut where no special token, whole or still arriving, can straddle the cut
                cut = len(buffer) - self._longest_special
                while cut > 0 and inside_special(buffer, cut, self.special_tokens):
                    cut -= 1
                if cut > 0:
                    yield from self.encode(buffer[:cut])
                    buffer = buffer[cut:]
        if buffer:
            yield from self.encode(buffer)

    # Ids -> text is the same lookup-and-join as for BPE (bad ids a ValueError, invalid UTF-8 U+FFFD).
    decode = Tokenizer.decode

    def save(self, directory) -> None:
        """Write vocab.json, an empty merges.txt and special_tokens.json (the BPE Tokenizer's files)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        io.save_vocab(self.vocab, directory / io.VOCAB_FILE)
        io.save_merges([], directory / io.MERGES_FILE)
        io.save_special_tokens(self.special_tokens, directory / io.SPECIAL_TOKENS_FILE)

    @classmethod
    def from_dir(cls, directory) -> ByteTokenizer:
        """Load what `save` wrote; a ValueError if the folder holds a BPE tokenizer with merges."""
        directory = Path(directory)
        if not is_byte_tokenizer_dir(directory):
            raise ValueError(f"{directory} does not hold a byte tokenizer (it has merges, or its vocabulary is not "
                             "the 256 bytes followed by the special tokens)")
        specials_path = directory / io.SPECIAL_TOKENS_FILE
        return cls(io.load_special_tokens(specials_path) if specials_path.exists() else None)


def is_byte_tokenizer_dir(directory) -> bool:
    """True when a saved tokenizer folder has no merges and its ids 0..255 are the bytes in order."""
    directory = Path(directory)
    if not (directory / io.VOCAB_FILE).is_file():
        raise FileNotFoundError(f"{directory} has no {io.VOCAB_FILE}: not a saved tokenizer directory")
    merges = directory / io.MERGES_FILE
    if merges.is_file() and io.load_merges(merges):
        return False
    vocab = io.load_vocab(directory / io.VOCAB_FILE)
    return all(vocab.get(b) == bytes([b]) for b in range(NUM_BYTES))


def load_tokenizer(directory):
    """The tokenizer saved in `directory`: a ByteTokenizer when it has no merges, else the BPE Tokenizer."""
    return ByteTokenizer.from_dir(directory) if is_byte_tokenizer_dir(directory) else Tokenizer.from_dir(directory)
