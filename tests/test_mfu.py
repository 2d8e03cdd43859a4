"""MFU: the GPU peak table, the measured CPU peak (arithmetic checked on a fake clock), the ratio."""

from __future__ import annotations

import pytest
import torch

from cs336_basics import mfu as mfu_module
from cs336_basics.mfu import measure_matmul_flops, mfu, peak_flops, table_peak


@pytest.mark.parametrize("name, dtype, expected", [
    ("NVIDIA H100 80GB HBM3", "bfloat16", 989.4e12),  # SXM
    ("NVIDIA H100 PCIe", "bfloat16", 756e12),
    ("NVIDIA A100-SXM4-80GB", "float32", 19.5e12),
    ("NVIDIA L4", "bfloat16", 121e12),
    ("Tesla V100-SXM2-16GB", "bfloat16", None),  # no bf16 on a V100
    ("Some Future GPU", "bfloat16", None),
])
def test_table_peak(name, dtype, expected):
    assert table_peak(name, dtype) == expected


def test_measured_flops_are_two_n_cubed_over_the_best_time(monkeypatch):
    ticks = iter([0.0, 1.0, 10.0, 10.5, 20.0, 20.25, 30.0, 30.5])  # warm-up 1 s, then 0.5, 0.25, 0.5 s
    monkeypatch.setattr(mfu_module.time, "perf_counter", lambda: next(ticks))
    assert measure_matmul_flops("cpu", n=64, repeats=3) == pytest.approx(2 * 64**3 / 0.25)


def test_peak_source_says_datasheet_or_measured(monkeypatch):
    cpu = peak_flops("cpu", None)
    assert cpu.source.startswith("measured") and "thread" in cpu.source and cpu.flops > 1e8
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    gpu = peak_flops("cuda", torch.bfloat16)
    assert gpu.flops == 989.4e12 and gpu.source == "datasheet: NVIDIA H100 80GB HBM3, bfloat16"


def test_mfu_ratio():
    # 1000 tokens/s x 6e6 FLOPs/token = 6 GFLOP/s of a 60 GFLOP/s peak
    assert mfu(1000, 6e6, 60e9) == pytest.approx(0.1)
