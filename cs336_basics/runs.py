"""Reading a run directory: its newest checkpoint that loads, its model, its tokenizer, and the `latest` pointer.

    runs/<name>/checkpoints/step_XXXXXXX.pt, runs/<name>/tokenizer/, runs/latest -> <name>

A damaged newest checkpoint (a kill mid-copy, a full disk) must not block resuming or sampling: the newest one
that loads is used instead, with a warning naming the file skipped. Nothing is ever deleted here.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

LATEST = "latest"
_CHECKPOINT_NAME = re.compile(r"step_(\d+)\.pt")


def checkpoints_of(run_or_folder: str | os.PathLike) -> list[Path]:
    """The step_*.pt files of a run directory (or of its checkpoints/ folder), newest step first."""
    path = Path(run_or_folder)
    if not path.is_dir():
        raise ValueError(f"{str(path)!r} is neither a checkpoint file nor a run directory")
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    steps = {int(m.group(1)): p for p in folder.iterdir() if (m := _CHECKPOINT_NAME.fullmatch(p.name))}
    if not steps:
        raise ValueError(f"no checkpoints (step_NNNNNNN.pt) found in {str(folder)!r}")
    return [steps[s] for s in sorted(steps, reverse=True)]


def load_latest_checkpoint(run_or_file: str | os.PathLike, map_location: Any = "cpu") -> tuple[Path, dict]:
    """(path, checkpoint dict) of a checkpoint file, or of the newest checkpoint of a run directory that loads.

    Checkpoints that fail to load are skipped with a warning naming them (and kept); if none loads, the
    ValueError names the newest and why it failed.
    """
    from cs336_basics.checkpoint import read_checkpoint  # torch: loaded only when a checkpoint is

    path = Path(run_or_file)
    if path.is_file():
        return path, read_checkpoint(path, map_location=map_location)
    candidates = checkpoints_of(path)
    first_error = None
    for candidate in candidates:
        try:
            ckpt = read_checkpoint(candidate, map_location=map_location)
        except ValueError as e:
            first_error = first_error or e
            warnings.warn(f"skipping {candidate}: {e}; trying an older checkpoint (the file is kept)", stacklevel=2)
            continue
        return candidate, ckpt
    raise ValueError(f"no checkpoint of {str(path)!r} loads; the newest: {first_error}")


def load_model(run_or_file: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, Path]:
    """The model of a run's newest loadable checkpoint (or of a checkpoint file), in eval mode, and its path."""
    from cs336_basics.checkpoint import restore_checkpoint
    from cs336_basics.model import ModelConfig, build_model

    path, ckpt = load_latest_checkpoint(run_or_file, map_location=device)
    config = ckpt.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise ValueError(
            f"checkpoint {str(path)!r} holds no model config (extra['config']['model']), so its "
            "model cannot be rebuilt; checkpoints written by the trainer have one"
        )
    try:
        model_config = ModelConfig(**config["model"])
    except TypeError as e:  # a field this version of ModelConfig does not know
        raise ValueError(f"checkpoint {str(path)!r}: its model config does not fit ModelConfig ({e})") from e
    except ValueError as e:  # a config this version rejects
        raise ValueError(f"checkpoint {str(path)!r}: {e}") from e
    model = build_model(model_config, device=device)
    restore_checkpoint(ckpt, model, name=repr(str(path)))
    return model.eval(), path


def point_latest(run_dir: str | os.PathLike) -> Path | None:
    """Make <out_dir>/latest a symbolic link to run_dir (replaced atomically); None where links are not allowed."""
    run_dir = Path(run_dir)
    link = run_dir.parent / LATEST
    if run_dir.name == LATEST:
        return link
    tmp = run_dir.parent / f".{LATEST}.{os.getpid()}.tmp"
    try:
        tmp.unlink(missing_ok=True)
        os.symlink(run_dir.name, tmp, target_is_directory=True)
        os.replace(tmp, link)
    except OSError as e:  # e.g. Windows without developer mode, or `latest` is a real folder
        tmp.unlink(missing_ok=True)
        warnings.warn(f"could not point {link} at {run_dir.name}: {e}", stacklevel=2)
        return None
    return link


def find_tokenizer(checkpoint: str | os.PathLike) -> Path:
    """The run's tokenizer folder: RUN/tokenizer for RUN/checkpoints/step_N.pt (or next to a lone file)."""
    checkpoint = Path(checkpoint)
    for folder in (checkpoint.parent.parent / "tokenizer", checkpoint.parent / "tokenizer"):
        if (folder / "vocab.json").is_file():
            return folder
    raise ValueError(
        f"no tokenizer/ folder (vocab.json, merges.txt) found for {str(checkpoint)!r}; pass one with --tokenizer DIR"
    )
