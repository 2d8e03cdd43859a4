"""Per-token scores of a text under a checkpoint, computed window by window.

A text of N tokens t_0 .. t_{N-1} has N - 1 targets: t_i is predicted from t_<i (t_0 has no context and is not
scored). A text longer than the context C is cut into windows of C inputs with stride S = C // 2: the first window
keeps all its targets, every later one only its last S, which have at least C - S tokens of history, so every
target is scored exactly once and (after the first window) with at least half a context before it.

    for batch in window_log_probs([model], ids):      # bounded memory: one batch of windows at a time
        batch.positions, batch.targets, batch.log_probs[0]   # (M,), (M,), (M, vocab) float32

Checkpoints are read with the generation code's loader (`load_scorer`), so a run directory plus a step is enough.
"""

from __future__ import annotations

import codecs
import itertools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from cs336_basics.checkpoint import checkpoint_path, find_latest_checkpoint, list_checkpoints, read_checkpoint
from cs336_basics.nn_utils import log_softmax


@dataclass(frozen=True)
class Window:
    """Inputs ids[start:end], targets ids[start + 1:end + 1]; the targets from window index `keep` on are new."""

    start: int
    end: int
    keep: int


def plan_windows(num_tokens: int, context: int) -> list[Window]:
    """Windows covering targets 1 .. num_tokens - 1 exactly once (stride context // 2, see the module docstring).

    plan_windows(10, 4) -> [Window(0, 4, 0), Window(2, 6, 2), Window(4, 8, 2), Window(6, 9, 2)]
    """
    if context < 2:
        raise ValueError(f"windowed scoring needs a context of at least 2 tokens, got {context}")
    stride = context // 2
    last_target = num_tokens - 1  # scored targets are 1 .. last_target
    windows, covered, start = [], 0, 0
    while covered < last_target:
        end = min(start + context, last_target)
        keep = 0 if start == 0 else covered - start  # == context - stride for every full window
        windows.append(Window(start, end, keep))
        covered, start = end, start + stride
    return windows


@dataclass
class ScoredBatch:
    """Kept targets of a batch of windows: text positions, token ids, and each model's log-probabilities."""

    positions: Int[Tensor, " tokens"]
    targets: Int[Tensor, " tokens"]
    log_probs: list[Float[Tensor, "tokens vocab"]]


@torch.inference_mode()
def window_log_probs(
    models: Sequence[torch.nn.Module],
    ids: np.ndarray,
    batch_size: int = 16,
    progress: bool = False,
    desc: str = "scoring",
) -> Iterator[ScoredBatch]:
    """Log-probabilities (float32, log_softmax of the logits) of every target of `ids` under each model.

    All models see the same windows (their context lengths must agree); batches are yielded in text order, so
    memory holds one batch of windows x models x vocabulary at a time, whatever the length of the text.
    """
    contexts = {m.config.context_length for m in models}
    if len(contexts) != 1:
        raise ValueError(f"the models have different context lengths {sorted(contexts)}; score them separately")
    windows = plan_windows(len(ids), contexts.pop())
    device = next(models[0].parameters()).device
    bar = tqdm(total=max(len(ids) - 1, 0), unit="tok", desc=desc, disable=not progress, dynamic_ncols=True)
    try:
        for group in _batches(windows, batch_size):
            length = group[0].end - group[0].start
            rows = np.stack([ids[w.start : w.end + 1] for w in group]).astype(np.int64)
            rows_t = torch.from_numpy(rows).to(device)
            inputs, targets = rows_t[:, :-1], rows_t[:, 1:]  # (B, T) each
            keep = torch.zeros_like(targets, dtype=torch.bool)
            for row, w in enumerate(group):
                keep[row, w.keep :] = True
            starts = torch.tensor([w.start for w in group], device=device)
            positions = starts[:, None] + torch.arange(1, length + 1, device=device)  # (B, T): text index of targets
            log_probs = [log_softmax(m(inputs).float(), dim=-1)[keep] for m in models]  # (M, vocab) each
            bar.update(int(keep.sum()))
            yield ScoredBatch(positions[keep].cpu(), targets[keep].cpu(), [lp.cpu() for lp in log_probs])
    finally:
        bar.close()


def _batches(windows: list[Window], batch_size: int) -> Iterator[list[Window]]:
    """Consecutive windows of one length (all are full but the last), at most batch_size at a time."""
    for _, same_length in itertools.groupby(windows, key=lambda w: w.end - w.start):
        same_length = list(same_length)
        for k in range(0, len(same_length), batch_size):
            yield same_length[k : k + batch_size]


def entropy(log_probs: Float[Tensor, " ... vocab"]) -> Float[Tensor, " ..."]:
    """H(p) = -sum_v p_v log p_v, in float32."""
    log_probs = log_probs.float()
    return -(log_probs.exp() * log_probs).sum(-1)


def score_tokens(
    model: torch.nn.Module,
    ids: np.ndarray,
    batch_size: int = 16,
    progress: bool = False,
    full_out: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per target token: "positions", "targets", "log_prob", "surprisal" (= -log_prob, nats) and "entropy" of the
    predicted distribution (float32 arrays in text order). With `full_out` (a writable (N - 1, vocab) float16 array,
    e.g. a memory map), the full log-probability rows are written into it, row i for target position i + 1."""
    # Every target is scored exactly once, so the outputs are allocated up front and filled in place (appending
    # small per-batch arrays between the large temporaries fragments the heap: RSS grew ~1 KB per token).
    n = len(ids) - 1
    out = {"positions": np.arange(1, n + 1, dtype=np.int64), "targets": np.asarray(ids[1:], dtype=np.int64),
           "log_prob": np.empty(n, dtype=np.float32), "entropy": np.empty(n, dtype=np.float32)}
    for batch in window_log_probs([model], ids, batch_size, progress):
        lp, rows = batch.log_probs[0], batch.positions.numpy() - 1
        out["log_prob"][rows] = lp.gather(-1, batch.targets[:, None]).squeeze(-1).numpy()
        out["entropy"][rows] = entropy(lp).numpy()
        if full_out is not None:
            full_out[rows] = lp.numpy().astype(np.float16)
    out["surprisal"] = -out["log_prob"]
    return out


# ------------------------------------------------------------------------------------------- checkpoints and text


def resolve_checkpoint(run_or_file: str | os.PathLike, step: int | None = None) -> Path:
    """A checkpoint file as given, or RUN/checkpoints/step_N.pt for `step` (the latest when step is None).

    A step the run does not have is a ValueError naming it and the steps there are.
    """
    path = Path(run_or_file)
    if step is None or path.is_file():
        if step is not None:
            raise ValueError(f"--step {step} needs a run directory, but {str(path)!r} is a checkpoint file")
        return find_latest_checkpoint(path)
    if not path.is_dir():
        raise ValueError(f"{str(path)!r} is neither a checkpoint file nor a run directory")
    wanted = checkpoint_path(path, step)
    if not wanted.is_file():
        have = sorted(list_checkpoints(wanted.parent))
        listed = ", ".join(map(str, have)) if have else "none"
        raise ValueError(f"run {str(path)!r} has no checkpoint at step {step} (its checkpoints: steps {listed})")
    return wanted


def load_scorer(
    run_or_file: str | os.PathLike, step: int | None = None, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, Any, Path, dict[str, Any]]:
    """(model in eval mode, tokenizer, checkpoint path, the run's config dict) of a run's step or a file."""
    from cs336_basics.runs import find_tokenizer, load_model
    from cs336_basics.tokenizer import Tokenizer

    path = resolve_checkpoint(run_or_file, step)
    model, path = load_model(path, device)
    config = read_checkpoint(path)["config"]
    return model, Tokenizer.from_dir(find_tokenizer(path)), path, config


def tokenize_text(tokenizer, path: str | os.PathLike, max_tokens: int | None = None) -> np.ndarray:
    """The token ids of a UTF-8 text file (encoded as a stream), cut to its first max_tokens when given."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"text file {str(path)!r} does not exist")
    stream = tokenizer.encode_iterable(_read_utf8(path))
    ids = np.fromiter(itertools.islice(stream, max_tokens), dtype=np.int64)
    if len(ids) < 2:
        raise ValueError(f"text file {str(path)!r} has {len(ids)} token(s); scoring needs at least 2")
    return ids


def _read_utf8(path: Path, chunk_bytes: int = 1 << 16) -> Iterator[str]:
    """The file's text in chunks; invalid UTF-8 is a ValueError naming the file and the byte offset."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(chunk_bytes)
            pending = len(decoder.getstate()[0])  # bytes of a character split by the previous chunk
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as e:
                raise ValueError(f"text file {str(path)!r} is not valid UTF-8 (at byte offset "
                                 f"{offset - pending + e.start})") from None
            yield text
            if not chunk:
                return
            offset += len(chunk)
