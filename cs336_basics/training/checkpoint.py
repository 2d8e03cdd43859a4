"""Checkpoints: one file holding the model, the optimizer, the iteration and whatever else a run needs.

    {"model": state_dict, "optimizer": state_dict, "iteration": int, **extra}

The trainer puts its resolved config, RNG states and data position into `extra`, so a single file is enough to
resume a run or to sample from it. Checkpoints are loaded with `torch.load(weights_only=True)`: only tensors
and plain Python values, never arbitrary pickled code. Written to a path, a checkpoint appears atomically
(temp file, fsync, rename), so a crash mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import pickle
import re
import secrets
from pathlib import Path
from typing import IO, Any, BinaryIO

import torch

from cs336_basics.atomic import fsync_dir as _fsync_dir

RESERVED_KEYS = ("model", "optimizer", "iteration")
_CHECKPOINT_NAME = re.compile(r"step_(\d+)\.pt")
_TEMP_SUFFIX = ".tmp"

PathOrFile = str | os.PathLike | BinaryIO | IO[bytes]


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module under torch.compile's wrapper, whose state-dict keys carry no "_orig_mod." prefix."""
    return getattr(model, "_orig_mod", model)


def _source_name(src: PathOrFile) -> str:
    return (
        repr(os.fspath(src)) if isinstance(src, (str, os.PathLike)) else repr(getattr(src, "name", "<file>"))
    )


def save_checkpoint(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    iteration: int,
    out: PathOrFile,
    extra: dict[str, Any] | None = None,
) -> None:
    """Save model + optimizer state and the iteration (plus `extra`) to a path (atomically) or file object."""
    extra = extra or {}
    clash = sorted(set(extra) & set(RESERVED_KEYS))
    if clash:
        raise ValueError(f"save_checkpoint: extra keys {clash} would overwrite the checkpoint's own entries")
    state = {
        "model": _unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "iteration": int(iteration),
        **extra,
    }
    if not isinstance(out, (str, os.PathLike)):
        torch.save(state, out)
        return
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its files are 0600; os.open with 0o666 gives the mode the umask allows, like open().
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{_TEMP_SUFFIX}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # including KeyboardInterrupt: never leave a half-written temp file behind
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def read_checkpoint(src: PathOrFile, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The raw checkpoint dict (including `extra` entries), loaded with weights_only=True.

    Raises ValueError naming the file when it is missing, truncated, corrupt or not a checkpoint.
    """
    name = _source_name(src)
    if isinstance(src, (str, os.PathLike)) and not os.path.isfile(src):
        raise ValueError(f"checkpoint {name} does not exist")
    try:
        ckpt = torch.load(src, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # Never relay torch's advice to retry with weights_only=False: that would run whatever the file holds.
        refused = re.search(r"(?i)unsupported (?:global: )?GLOBAL ([\w.]+)", str(e))
        if refused:
            raise ValueError(f"checkpoint {name} holds Python objects ({refused.group(1)}) that a safe "
                             "(weights_only) load refuses; it was not written by this project's save_checkpoint "
                             "and is not loaded") from None
        detail = [line.strip() for line in str(e).splitlines()
                  if line.strip() and "weights_only" not in line and "file an issue" not in line]
        reason = detail[0].removeprefix("WeightsUnpickler error:").strip() if detail else "unreadable pickle"
        raise ValueError(f"checkpoint {name} is corrupt or truncated (UnpicklingError: {reason})") from None
    except Exception as e:  # torch raises RuntimeError, EOFError, ... depending on the damage
        raise ValueError(f"checkpoint {name} is corrupt or truncated ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict) or any(key not in ckpt for key in RESERVED_KEYS):
        raise ValueError(f"{name} is not a checkpoint: expected a dict with keys {list(RESERVED_KEYS)}")
    return ckpt


def load_checkpoint(
    src: PathOrFile, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> int:
    """Restore model (plain or torch.compile'd) and optimizer state from `src`; return the saved iteration.

    A checkpoint of another architecture raises ValueError naming the file and the first mismatching key.
    """
    return restore_checkpoint(read_checkpoint(src), model, optimizer, name=_source_name(src))


def restore_checkpoint(
    ckpt: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    name: str = "<in memory>",
) -> int:
    """`load_checkpoint` for a dict already read with `read_checkpoint` (e.g. to build the model from its
    config first); `name` appears in error messages."""
    target = _unwrap(model)
    saved = {k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()}
    expected = target.state_dict()
    for key in sorted(set(saved) | set(expected)):
        if key not in saved or key not in expected:
            where = "model" if key not in saved else "checkpoint"
            raise ValueError(f"checkpoint {name} does not fit the model: key {key!r} is only in the {where}")
        if saved[key].shape != expected[key].shape:
            raise ValueError(
                f"checkpoint {name} does not fit the model: {key!r} has shape {tuple(saved[key].shape)} "
                f"in the checkpoint but {tuple(expected[key].shape)} in the model"
            )
    target.load_state_dict(saved)
    if optimizer is not None:
        if ckpt["optimizer"] is None:
            raise ValueError(f"checkpoint {name} holds no optimizer state")
        optimizer.load_state_dict(ckpt["optimizer"])
    return int(ckpt["iteration"])


def checkpoint_path(run_dir: str | os.PathLike, iteration: int) -> Path:
    """Where a run keeps the checkpoint of `iteration`: RUN/checkpoints/step_0000500.pt."""
    return Path(run_dir) / "checkpoints" / f"step_{iteration:07d}.pt"


def find_latest_checkpoint(run_or_file: str | os.PathLike) -> Path:
    """A checkpoint file -> itself; a run directory (or its checkpoints/ folder) -> its latest checkpoint."""
    path = Path(run_or_file)
    if path.is_file():
        return path
    if not path.is_dir():
        raise ValueError(f"{str(path)!r} is neither a checkpoint file nor a run directory")
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    steps = list_checkpoints(folder)
    if not steps:
        raise ValueError(f"no checkpoints (step_NNNNNNN.pt) found in {str(folder)!r}")
    return steps[max(steps)]


def list_checkpoints(folder: str | os.PathLike) -> dict[int, Path]:
    """{step: path} of the step_NNNNNNN.pt files in `folder` (empty if it does not exist)."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    return {int(m.group(1)): p for p in folder.iterdir() if (m := _CHECKPOINT_NAME.fullmatch(p.name))}


def prune_checkpoints(folder: str | os.PathLike, keep: int | None, protected: set[int] = frozenset()) -> list[Path]:
    """Delete all but the newest `keep` checkpoints of `folder`, never those of the `protected` steps, and the
    temp files of writes that a kill interrupted (.step_NNNNNNN.pt.*.tmp). keep=None deletes no checkpoint.

    Returns the deleted paths. Call it only while no other process writes checkpoints to `folder`.
    """
    deleted = [p for p in Path(folder).glob(f".step_*.pt.*{_TEMP_SUFFIX}") if p.is_file()]
    if keep is not None:
        steps = sorted(list_checkpoints(folder).items())
        if keep < 1:
            raise ValueError(f"prune_checkpoints: keep must be >= 1 (or None), got {keep}")
        deleted += [p for step, p in steps[:-keep] if step not in protected]
    for p in deleted:
        p.unlink(missing_ok=True)
    return deleted
