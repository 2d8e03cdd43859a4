"""Model FLOPs utilization: the share of the hardware's peak FLOP/s that training actually uses.

    MFU = tokens/s x training FLOPs per token / peak FLOP/s

Training FLOPs per token come from the accounting module (forward + backward matmuls, 3x the forward pass). The peak
is the vendor's dense figure for the dtype from a table of common GPUs; for a CPU (or a GPU not in the table) there
is no honest datasheet figure for the threads we run on, so the peak is *measured*: the best float32 matmul
throughput of this process, with its thread count, on a square matrix. Such an MFU says how close training comes to
what this machine's matmul reaches right now, not to a datasheet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

# Dense (no sparsity) peak FLOP/s by dtype, from the vendors' datasheets. float32 is the plain (non-TF32) rate,
# which is what PyTorch's default matmul uses. Matched against torch.cuda.get_device_name, first match wins.
GPU_PEAK_FLOPS: list[tuple[tuple[str, ...], dict[str, float]]] = [
    (("H100", "PCIe"), {"bfloat16": 756e12, "float32": 51.2e12}),
    (("H100",), {"bfloat16": 989.4e12, "float32": 66.9e12}),  # SXM
    (("H200",), {"bfloat16": 989.4e12, "float32": 66.9e12}),
    (("A100",), {"bfloat16": 312e12, "float32": 19.5e12}),
    (("L4",), {"bfloat16": 121e12, "float32": 30.3e12}),
    (("V100",), {"float16": 125e12, "float32": 15.7e12}),
    (("T4",), {"float16": 65e12, "float32": 8.1e12}),
]


@dataclass(frozen=True)
class PeakFlops:
    flops: float  # FLOP/s
    source: str  # where the figure comes from, e.g. "datasheet: NVIDIA H100 80GB HBM3, bfloat16"


def table_peak(device_name: str, dtype: str) -> float | None:
    """The datasheet peak of a GPU named `device_name` at `dtype` ("bfloat16" / "float32"), or None if unknown,
    e.g. table_peak("NVIDIA H100 80GB HBM3", "bfloat16") -> 989.4e12."""
    for keys, peaks in GPU_PEAK_FLOPS:
        if all(key in device_name for key in keys):
            return peaks.get(dtype)
    return None


def measure_matmul_flops(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, n: int = 512,
                         repeats: int = 8) -> float:
    """The best FLOP/s of an n x n matmul over `repeats` runs (after one warm-up) on `device`: 2 n^3 / seconds.

    The best, not the mean, because on a shared machine the fastest run is the closest to what the hardware does.
    """
    device = torch.device(device)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for i in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        torch.matmul(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        if i:  # the first run warms up
            best = min(best, seconds)
    return 2 * n**3 / best


def peak_flops(device: torch.device | str, dtype: torch.dtype | None) -> PeakFlops:
    """The peak FLOP/s to divide by: a GPU's datasheet figure for `dtype` (None = float32), else measured."""
    device = torch.device(device)
    name = "float32" if dtype is None else str(dtype).removeprefix("torch.")
    if device.type == "cuda":
        gpu = torch.cuda.get_device_name(device)
        if (flops := table_peak(gpu, name)) is not None:
            return PeakFlops(flops, f"datasheet: {gpu}, {name}")
        return PeakFlops(measure_matmul_flops(device, dtype or torch.float32, n=4096),
                         f"measured: {gpu} not in the table, best {name} 4096x4096 matmul")
    threads = torch.get_num_threads() if device.type == "cpu" else None
    where = f"{device.type}, {threads} thread{'s' * (threads != 1)}" if threads else device.type
    return PeakFlops(measure_matmul_flops(device, torch.float32),
                     f"measured: best float32 512x512 matmul on this {where}")


def mfu(tokens_per_s: float, flops_per_token: float, peak: float) -> float:
    """Model FLOPs utilization in [0, 1] (can exceed 1 only if the peak is underestimated)."""
    return tokens_per_s * flops_per_token / peak
