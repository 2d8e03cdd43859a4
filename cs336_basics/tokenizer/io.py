"""Tokenizer files in GPT-2's format: a JSON vocabulary and a text file of merges.

GPT-2 stores byte strings as *printable* unicode strings: each of the 256 byte values is mapped to one visible
character (printable Latin-1 bytes map to themselves, the others - space, control bytes, ... - to chr(256 + n)),
so the space byte b" " is written "Ġ" and b"\\n" is written "Ċ". Files:

- ``vocab.json``: ``{"<printable token>": id, ...}`` (GPT-2's ``encoder.json`` loads as is).
- ``merges.txt``: one merge per line, in creation order, the two printable tokens separated by one space
  (``"Ġ t"`` merges b" " and b"t"). A leading ``#version`` line, as in GPT-2's ``vocab.bpe``, is skipped.
  Printable tokens never contain a space, so the line splits unambiguously.
- ``special_tokens.json``: a JSON list of the special-token strings (written by ``Tokenizer.save``).

Special tokens are stored in the vocabulary through the same byte map, so they round-trip like any token.
Nothing here is pickled.
"""

import json
import os

from cs336_basics.atomic import atomic_open

VOCAB_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
SPECIAL_TOKENS_FILE = "special_tokens.json"


def bytes_to_unicode() -> dict[int, str]:
    """The GPT-2 map from each byte value to a printable character, e.g. 32 -> "Ġ", 65 -> "A"."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    mapping = {b: chr(b) for b in printable}
    shift = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + shift)
            shift += 1
    return mapping


BYTE_TO_CHAR: dict[int, str] = bytes_to_unicode()  # read-only tables
CHAR_TO_BYTE: dict[str, int] = {char: b for b, char in BYTE_TO_CHAR.items()}


def token_to_str(token: bytes) -> str:
    """b" the" -> "Ġthe"."""
    return "".join(BYTE_TO_CHAR[b] for b in token)


def str_to_token(text: str, *, source: str = "") -> bytes:
    """ "Ġthe" -> b" the"; a character outside the printable map raises a ValueError naming `source`."""
    try:
        return bytes(CHAR_TO_BYTE[char] for char in text)
    except KeyError as err:
        raise ValueError(
            f"{source}: {text!r} is not a GPT-2 printable-byte string (bad character {err})"
        ) from None


def save_vocab(vocab: dict[int, bytes], path: str | os.PathLike) -> None:
    """Write {id: bytes} as GPT-2's {"printable": id} JSON, ordered by id."""
    data = {token_to_str(vocab[i]): i for i in sorted(vocab)}
    with atomic_open(path, "w") as f:
        json.dump(data, f, ensure_ascii=False, indent=0)
        f.write("\n")


def _read_json(path: str | os.PathLike):
    """A JSON file's contents; a syntax error or non-UTF-8 bytes raise a ValueError naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (invalid byte at offset {err.start})") from None


def load_vocab(path: str | os.PathLike) -> dict[int, bytes]:
    """Read a GPT-2 style vocab JSON back into {id: bytes}."""
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a vocabulary must be a JSON object mapping tokens to ids")  # noqa: TRY004
    vocab = {}
    for text, i in data.items():
        if not isinstance(i, int) or i < 0:
            raise ValueError(f"{path}: token {text!r} has id {i!r}, expected a non-negative integer")
        if i in vocab:
            raise ValueError(f"{path}: id {i} is used twice")
        vocab[i] = str_to_token(text, source=str(path))
    return vocab


def save_merges(merges: list[tuple[bytes, bytes]], path: str | os.PathLike) -> None:
    """Write one merge per line: "Ġ t" for (b" ", b"t")."""
    with atomic_open(path, "w") as f:
        f.writelines(f"{token_to_str(a)} {token_to_str(b)}\n" for a, b in merges)


def load_merges(path: str | os.PathLike) -> list[tuple[bytes, bytes]]:
    """Read a merges file; blank lines and a leading "#version" line are skipped."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (invalid byte at offset {err.start})") from None
    merges = []
    for lineno, line in enumerate(lines, start=1):
        if not line or (lineno == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2:
            raise ValueError(f"{path}:{lineno}: expected two space-separated tokens, got {line!r}")
        source = f"{path}:{lineno}"
        merges.append((str_to_token(parts[0], source=source), str_to_token(parts[1], source=source)))
    return merges


def save_special_tokens(special_tokens: list[str], path: str | os.PathLike) -> None:
    with atomic_open(path, "w") as f:
        json.dump(list(special_tokens), f, ensure_ascii=False)
        f.write("\n")


def load_special_tokens(path: str | os.PathLike) -> list[str]:
    data = _read_json(path)
    if not isinstance(data, list) or not all(isinstance(t, str) for t in data):
        raise ValueError(f"{path}: expected a JSON list of special-token strings")
    return data
