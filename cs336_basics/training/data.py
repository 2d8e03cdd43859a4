"""Token data: opening token files memory-mapped, random training batches, fixed evaluation windows.

A token file is a 1-D NumPy array of token ids saved with `np.save` (uint16 when the vocabulary fits).
It is opened with `np.load(mmap_mode="r")`, so a multi-gigabyte corpus costs no memory until a batch reads
the few windows it needs.

The corpora themselves are fetched by `python -m cs336_basics.data download` (cs336_basics/data.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from jaxtyping import Int

if TYPE_CHECKING:  # torch is imported where batches are made: opening a token file needs none
    import torch
    from torch import Tensor

_SCAN_CHUNK = 1 << 24  # ids checked per slice when validating a file: bounded memory on huge corpora


def open_tokens(path: str | os.PathLike, vocab_size: int | None = None) -> np.ndarray:
    """Open a .npy token file memory-mapped, checking it is a 1-D integer array of ids in [0, vocab_size).

    The id check reads the file once, slice by slice; pass vocab_size=None to skip it.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"token file {path!r} does not exist")
    try:
        tokens = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"token file {path!r} is not a readable .npy array ({e})") from e
    if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(
            f"token file {path!r} must hold a 1-D integer array, "
            f"got shape {tokens.shape} and dtype {tokens.dtype}"
        )
    if vocab_size is not None:
        for start in range(0, len(tokens), _SCAN_CHUNK):
            chunk = tokens[start : start + _SCAN_CHUNK]
            low, high = int(chunk.min()), int(chunk.max())
            if low < 0 or high >= vocab_size:
                bad = low if low < 0 else high
                raise ValueError(
                    f"token file {path!r} holds id {bad}, outside the vocabulary [0, {vocab_size}): "
                    "was it tokenized with another tokenizer?"
                )
    return tokens


def _describe(dataset: npt.NDArray) -> str:
    """'token file 'x.npy'' for a memory-mapped file, 'dataset' for an in-memory array, for error messages."""
    filename = getattr(dataset, "filename", None)
    return f"token file {os.fspath(filename)!r}" if filename else "dataset"


def _check_batch_args(dataset: npt.NDArray, batch_size: int, context_length: int) -> None:
    if batch_size < 1 or context_length < 1:
        raise ValueError(f"batch_size and context_length must be >= 1, got {batch_size} and {context_length}")
    if len(dataset) < context_length + 1:
        raise ValueError(
            f"{_describe(dataset)} has {len(dataset)} tokens, too short for context_length={context_length} "
            f"(a window needs context_length + 1 = {context_length + 1} tokens)"
        )


def _to_device(windows: np.ndarray, device: str | torch.device) -> tuple[Tensor, Tensor]:
    """int64 (inputs, targets) on `device`, targets shifted by one; pinned + non_blocking copies on CUDA."""
    import torch

    batch = torch.from_numpy(windows.astype(np.int64, copy=False))
    device = torch.device(device)
    if device.type == "cuda":
        batch = batch.pin_memory().to(device, non_blocking=True)
    else:
        batch = batch.to(device)
    return batch[:, :-1], batch[:, 1:]


def get_batch(
    dataset: npt.NDArray,
    batch_size: int,
    context_length: int,
    device: str | torch.device,
    generator: np.random.Generator | None = None,
) -> tuple[Int[Tensor, " batch seq"], Int[Tensor, " batch seq"]]:
    """Sample `batch_size` windows uniformly over every valid start i in [0, len − context_length):

        x[b] = dataset[i_b : i_b + context_length],    y[b] = dataset[i_b + 1 : i_b + context_length + 1]

    Pass a seeded `generator` for reproducible batches (the trainer does, and checkpoints its state);
    without one, fresh OS entropy is used.
    """
    _check_batch_args(dataset, batch_size, context_length)
    rng = generator if generator is not None else np.random.default_rng()
    starts = rng.integers(0, len(dataset) - context_length, size=batch_size)
    # (B, 1) + (1, T+1) -> (B, T+1) indices: a memory map reads only these windows
    windows = dataset[starts[:, None] + np.arange(context_length + 1)]
    return _to_device(windows, device)


def num_eval_windows(num_tokens: int, context_length: int) -> int:
    """How many non-overlapping windows `eval_batches` uses: each takes context_length + 1 tokens but windows
    overlap by one (a window's last target is the next window's first input), e.g. (10 tokens, 3) -> 3."""
    return max(0, (num_tokens - 1) // context_length)


def eval_window_indices(num_windows: int, max_windows: int | None = None) -> np.ndarray:
    """Which of the `num_windows` evaluation windows to use: all of them, or a fixed, evenly spread sample of
    `max_windows` (the first and the last included), e.g. (10, 4) -> [0, 3, 6, 9]. The same sample every call,
    so every point of a learning curve is measured on the same text."""
    if max_windows is None or max_windows >= num_windows:
        return np.arange(num_windows)
    if max_windows < 1:
        raise ValueError(f"max_windows must be >= 1 or None, got {max_windows}")
    # spacing (num_windows - 1) / (max_windows - 1) >= 1, so the rounded positions are distinct
    return np.linspace(0, num_windows - 1, max_windows).round().astype(np.int64)


def eval_batches(
    dataset: npt.NDArray,
    batch_size: int,
    context_length: int,
    device: str | torch.device,
    max_batches: int | None = None,
) -> Iterator[tuple[Int[Tensor, " batch seq"], Int[Tensor, " batch seq"]]]:
    """Yield (x, y) over fixed windows starting at 0, T, 2T, ...: every token after the first is predicted
    exactly once (up to the last partial window), so the mean loss is the exact validation loss.

    `max_batches` asks for a cheap estimate: max_batches x batch_size windows evenly spread over the whole split
    (`eval_window_indices`), not the first ones, so the estimate is not biased towards the split's beginning and
    is comparable between calls. Deterministic; the last batch may be smaller."""
    _check_batch_args(dataset, batch_size, context_length)
    max_windows = None if max_batches is None else max(0, max_batches) * batch_size
    if max_windows == 0:
        return
    windows = eval_window_indices(num_eval_windows(len(dataset), context_length), max_windows)
    offsets = np.arange(context_length + 1)
    for first in range(0, len(windows), batch_size):
        starts = windows[first : first + batch_size] * context_length
        yield _to_device(dataset[starts[:, None] + offsets], device)
