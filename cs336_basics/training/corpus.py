"""From a text corpus to the trainer's inputs: train/valid split, BPE (or byte) tokenizer and token files, cached.

    prepare_data(config.data, vocab_size) -> PreparedData(train_tokens=.../train.npy, valid_tokens=..., ...)

Everything derived lands in one directory, data/cache/<corpus>-<key>/, whose key hashes all that shapes its
contents (the input files' identity, the split, the vocabulary size, the special token). A second run with the
same settings finds `prepared.json` there and reuses the lot; it is written last, so an interrupted preparation is
simply redone.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from cs336_basics.atomic import atomic_write_text
from cs336_basics.tokenizer import ByteTokenizer, Tokenizer, encode_file, train_bpe
from cs336_basics.tokenizer.pretokenize import decode_utf8
from cs336_basics.training.config import DataConfig

# Where to get the big corpora when a preset names them and they are not there yet.
DOWNLOAD_HINTS = {
    "TinyStories": "uv run python -m cs336_basics.data download tinystories",
    "owt": "uv run python -m cs336_basics.data download owt",
}


@dataclass
class PreparedData:
    """The cached inputs of a run. bytes/tokens of the validation set convert nats per token into bits per byte."""

    train_tokens: str
    valid_tokens: str
    tokenizer_dir: str
    train_num_tokens: int
    valid_num_tokens: int
    valid_num_bytes: int

    @property
    def valid_bytes_per_token(self) -> float:
        return self.valid_num_bytes / self.valid_num_tokens


def check_exists(path: str | Path, what: str) -> Path:
    """The path, or a ValueError saying how to get the file."""
    path = Path(path)
    if path.is_file():
        return path
    hint = next((cmd for key, cmd in DOWNLOAD_HINTS.items() if key.lower() in path.name.lower()), None)
    how = f"; download it with `{hint}`" if hint else " (paths are relative to the directory you run from)"
    raise ValueError(f"{what} {path} not found{how}")


def read_text(path: Path, max_bytes: int | None = None) -> str:
    """A UTF-8 text file, gzip-compressed or not, cut to its first max_bytes bytes (at a character boundary).

    Invalid UTF-8 is an error naming the file and byte offset (of the decompressed text for .gz), the BPE
    trainer's policy; only a character that the max_bytes cut splits is dropped.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read() if max_bytes is None else f.read(max_bytes)
    if max_bytes is not None and len(raw) == max_bytes:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as err:
            if err.reason == "unexpected end of data" and err.end == len(raw):
                raw = raw[: err.start]  # the cut fell inside the last character
    return decode_utf8(raw, path)


def split_documents(text: str, separator: str, valid_fraction: float) -> tuple[str, str]:
    """Hold out whole documents from the end until they make up at least valid_fraction of the bytes.

    split_documents("a|b|c", "|", 0.3) -> ("a|b", "c"). A text of one document is cut at a line break instead.
    """
    docs = text.split(separator)
    target = valid_fraction * len(text.encode("utf-8"))
    if len(docs) >= 2:
        held, size = len(docs), 0
        while held > 1 and size < target:
            held -= 1
            size += len(docs[held].encode("utf-8")) + len(separator)
        return separator.join(docs[:held]), separator.join(docs[held:])
    cut = int(len(text) * (1 - valid_fraction))
    newline = text.rfind("\n", 0, cut)
    cut = newline + 1 if newline > 0 else cut
    return text[:cut], text[cut:]


def _identity(path: Path) -> list:
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def cache_dir_for(data: DataConfig, vocab_size: int) -> Path:
    """data/cache/<corpus name>-<hash of everything that shapes the cached files>."""
    train = check_exists(data.train_path, "training text")
    valid = check_exists(data.valid_path, "validation text") if data.valid_path is not None else None
    tokenizer = Path(data.tokenizer_dir) if data.tokenizer_dir is not None else None
    key = {
        "train": _identity(train),
        "valid": _identity(valid) if valid else None,
        "valid_fraction": data.valid_fraction if valid is None else None,
        "max_bytes": data.max_bytes,
        "special_token": data.special_token,
        "vocab_size": vocab_size,
        "tokenizer": [_identity(p) for p in sorted(tokenizer.iterdir())] if tokenizer else None,
    }
    if data.tokenizer != "bpe":  # only then, so that the caches of BPE runs keep their names
        key["tokenizer_kind"] = data.tokenizer
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    stem = train.name.split(".")[0]
    return Path(data.cache_dir) / f"{stem}-{digest}"


def prepare_data(data: DataConfig, vocab_size: int, *, progress: bool = True) -> PreparedData:
    """Split, train (or load) the tokenizer and tokenize, reusing data/cache/ when it already holds the result."""
    out = cache_dir_for(data, vocab_size)
    done = out / "prepared.json"
    if done.is_file():
        return PreparedData(**json.loads(done.read_text()))
    out.mkdir(parents=True, exist_ok=True)

    train_text_path, valid_text_path = _write_split(data, out)

    tokenizer_dir = out / "tokenizer"
    if data.tokenizer_dir is not None:
        tokenizer = Tokenizer.from_dir(data.tokenizer_dir)
        if tokenizer.vocab_size > vocab_size:
            raise ValueError(f"the tokenizer in {data.tokenizer_dir} has {tokenizer.vocab_size} tokens but "
                             f"model.vocab_size is {vocab_size}; raise model.vocab_size")
        shutil.copytree(data.tokenizer_dir, tokenizer_dir, dirs_exist_ok=True)
    elif data.tokenizer == "bytes":
        tokenizer = ByteTokenizer([data.special_token])
        tokenizer.save(tokenizer_dir)
    else:
        if progress:
            print(f"training a {vocab_size}-token BPE tokenizer on {train_text_path} ...", flush=True)
        vocab, merges = train_bpe(train_text_path, vocab_size, [data.special_token], progress=progress)
        tokenizer = Tokenizer(vocab, merges, [data.special_token])
        tokenizer.save(tokenizer_dir)

    stats = {}
    for split, text_path in (("train", train_text_path), ("valid", valid_text_path)):
        stats[split] = encode_file(tokenizer, text_path, out / f"{split}.npy", progress=progress)
    prepared = PreparedData(
        train_tokens=str(out / "train.npy"),
        valid_tokens=str(out / "valid.npy"),
        tokenizer_dir=str(tokenizer_dir),
        train_num_tokens=stats["train"].num_tokens,
        valid_num_tokens=stats["valid"].num_tokens,
        valid_num_bytes=stats["valid"].num_bytes,
    )
    if prepared.valid_num_tokens == 0:
        raise ValueError(f"the validation text {valid_text_path} is empty")
    atomic_write_text(done, json.dumps(asdict(prepared), indent=2) + "\n")
    return prepared


def _write_split(data: DataConfig, out: Path) -> tuple[Path, Path]:
    """Plain-text train/valid files for the tokenizer: the originals when they can be used as they are."""
    train = check_exists(data.train_path, "training text")
    valid = check_exists(data.valid_path, "validation text") if data.valid_path is not None else None
    as_is = data.max_bytes is None and train.suffix != ".gz"
    if valid is not None and as_is and valid.suffix != ".gz":
        return train, valid
    text = read_text(train, data.max_bytes)
    if valid is None:
        train_text, valid_text = split_documents(text, data.special_token, data.valid_fraction)
    else:
        train_text, valid_text = text, read_text(valid, data.max_bytes)
    paths = out / "train.txt", out / "valid.txt"
    for path, content in zip(paths, (train_text, valid_text)):
        atomic_write_text(path, content)
    return paths
