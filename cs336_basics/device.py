"""Choosing the device: "auto", or a name checked up front so that a typo or a missing GPU is reported as such."""

from __future__ import annotations

import torch

KINDS = ("cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" -> cuda if available, else mps, else cpu; "cpu", "cuda", "cuda:N", "mps" -> that device if this
    machine has it. Anything else, or a device that is not there, raises a ValueError saying which."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in KINDS:
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} is not available: this machine has no CUDA GPU usable by PyTorch "
                             "(use cpu or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} is not available: this machine has {torch.cuda.device_count()} "
                             "CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} is not available: this machine has no Apple GPU (use cpu or auto)")
    return device
