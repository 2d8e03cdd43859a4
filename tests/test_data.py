"""Token files, get_batch and eval_batches, checked on arange datasets whose windows can be read by eye."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cs336_basics.training import data
from cs336_basics.training.data import (
    eval_batches,
    eval_window_indices,
    get_batch,
    num_eval_windows,
    open_tokens,
)

# --- open_tokens


def test_open_tokens_is_memory_mapped(tmp_path):
    path = tmp_path / "tokens.npy"
    np.save(path, np.arange(1000, dtype=np.uint16))
    tokens = open_tokens(path, vocab_size=1000)
    assert isinstance(tokens, np.memmap)
    assert tokens.dtype == np.uint16 and len(tokens) == 1000 and tokens[999] == 999


def test_open_tokens_missing_file(tmp_path):
    with pytest.raises(ValueError, match=r"nope\.npy.*does not exist"):
        open_tokens(tmp_path / "nope.npy")


def test_open_tokens_not_npy(tmp_path):
    path = tmp_path / "garbage.npy"
    path.write_bytes(b"this is not a numpy file at all")
    with pytest.raises(ValueError, match=r"garbage\.npy.*not a readable \.npy"):
        open_tokens(path)


def test_open_tokens_truncated_file(tmp_path):
    path = tmp_path / "cut.npy"
    np.save(path, np.arange(1000, dtype=np.uint16))
    path.write_bytes(path.read_bytes()[:1000])  # header intact, data cut short (an interrupted tokenization)
    with pytest.raises(ValueError, match=r"cut\.npy.*not a readable \.npy"):
        open_tokens(path)


@pytest.mark.parametrize("array", [np.zeros((4, 4), dtype=np.int32), np.zeros(10, dtype=np.float32)])
def test_open_tokens_wrong_shape_or_dtype(tmp_path, array):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(ValueError, match=r"bad\.npy.*1-D integer array"):
        open_tokens(path)


def test_open_tokens_id_outside_vocab_found_in_a_later_chunk(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_SCAN_CHUNK", 100)  # the bad id sits several chunks into the file
    tokens = np.zeros(1000, dtype=np.uint16)
    tokens[777] = 500
    path = tmp_path / "big.npy"
    np.save(path, tokens)
    assert open_tokens(path, vocab_size=501) is not None
    with pytest.raises(ValueError, match=r"big\.npy.*id 500, outside the vocabulary \[0, 500\)"):
        open_tokens(path, vocab_size=500)


def test_open_tokens_negative_id(tmp_path):
    path = tmp_path / "neg.npy"
    np.save(path, np.array([3, -1, 2], dtype=np.int32))
    with pytest.raises(ValueError, match=r"neg\.npy.*id -1"):
        open_tokens(path, vocab_size=10)


# --- get_batch


def test_get_batch_windows_are_shifted_slices():
    dataset = np.arange(100, 200, dtype=np.uint16)
    x, y = get_batch(
        dataset, batch_size=32, context_length=7, device="cpu", generator=np.random.default_rng(0)
    )
    assert x.shape == y.shape == (32, 7)
    assert x.dtype == y.dtype == torch.int64 and x.device.type == "cpu"
    for row_x, row_y in zip(x.tolist(), y.tolist()):
        start = row_x[0] - 100
        assert row_x == list(range(100 + start, 107 + start))
        assert row_y == [t + 1 for t in row_x]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 300), context=st.integers(1, 40), batch=st.integers(1, 9), seed=st.integers(0, 2**32))
def test_windows_property(n, context, batch, seed):
    """On arange data, every sampled row is a contiguous slice inside the data with y = x + 1, and the eval
    windows tile the data from 0 — for any size that fits a window."""
    if n < context + 1:
        with pytest.raises(ValueError, match="too short"):
            get_batch(np.arange(n), batch, context, "cpu")
        return
    x, y = get_batch(np.arange(n), batch, context, "cpu", generator=np.random.default_rng(seed))
    starts = x[:, :1]
    assert torch.equal(x, starts + torch.arange(context)) and torch.equal(y, x + 1)
    assert int(starts.min()) >= 0 and int(starts.max()) <= n - context - 1
    xs = torch.cat([bx for bx, _ in eval_batches(np.arange(n), batch, context, "cpu")])
    assert torch.equal(xs.flatten(), torch.arange(num_eval_windows(n, context) * context))


def test_get_batch_covers_every_valid_start_uniformly():
    n, context = 20, 5  # valid starts: 0 .. 14
    rng = np.random.default_rng(1234)
    counts = Counter()
    for _ in range(300):
        x, _ = get_batch(np.arange(n), 10, context, "cpu", generator=rng)
        counts.update(x[:, 0].tolist())
    assert set(counts) == set(range(n - context))
    expected = 3000 / (n - context)  # 200 each; binomial sd ~ 13.7, the seed is fixed so this never flakes
    assert all(abs(c - expected) < 5 * np.sqrt(expected) for c in counts.values())


def test_get_batch_without_generator_still_covers_starts():
    starts = {get_batch(np.arange(6), 8, 3, "cpu")[0][0, 0].item() for _ in range(200)}
    assert starts <= {0, 1, 2} and len(starts) == 3  # P(missing one) ~ 3·(2/3)^200


def test_get_batch_seeded_generator_is_reproducible():
    dataset = np.arange(10_000)
    a = get_batch(dataset, 4, 16, "cpu", generator=np.random.default_rng(7))
    b = get_batch(dataset, 4, 16, "cpu", generator=np.random.default_rng(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_get_batch_from_memory_mapped_file(tmp_path):
    path = tmp_path / "t.npy"
    np.save(path, np.arange(50, dtype=np.uint16))
    x, y = get_batch(open_tokens(path), 3, 49, "cpu", generator=np.random.default_rng(0))
    assert torch.equal(x[0], torch.arange(49)) and torch.equal(y[0], torch.arange(1, 50))  # the only window


def test_get_batch_too_short_names_the_file(tmp_path):
    path = tmp_path / "short.npy"
    np.save(path, np.arange(8, dtype=np.uint16))
    with pytest.raises(ValueError, match=r"short\.npy.*8 tokens, too short for context_length=8"):
        get_batch(open_tokens(path), 2, 8, "cpu")
    with pytest.raises(ValueError, match="dataset has 3 tokens"):
        get_batch(np.arange(3), 2, 3, "cpu")


@pytest.mark.parametrize("batch_size, context", [(0, 4), (2, 0)])
def test_get_batch_rejects_empty_shapes(batch_size, context):
    with pytest.raises(ValueError, match="must be >= 1"):
        get_batch(np.arange(100), batch_size, context, "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_get_batch_on_cuda():
    x, y = get_batch(np.arange(1000, dtype=np.uint16), 4, 8, "cuda", generator=np.random.default_rng(0))
    assert x.device.type == "cuda" and x.dtype == torch.int64
    assert torch.equal(y[:, :-1].cpu(), x[:, 1:].cpu())


# --- eval_batches


@pytest.mark.parametrize("n, context, batch", [(101, 10, 3), (100, 10, 3), (11, 10, 5), (1000, 7, 1000)])
def test_eval_batches_tile_the_dataset(n, context, batch):
    dataset = np.arange(n)
    batches = list(eval_batches(dataset, batch, context, "cpu"))
    xs = torch.cat([x for x, _ in batches])
    ys = torch.cat([y for _, y in batches])
    windows = num_eval_windows(n, context)
    assert windows == (n - 1) // context and len(xs) == windows
    assert all(len(x) == batch for x, _ in batches[:-1]) and 1 <= len(batches[-1][0]) <= batch
    # every target position 1 .. windows·T predicted exactly once, in order
    assert torch.equal(xs.flatten(), torch.arange(windows * context))
    assert torch.equal(ys.flatten(), torch.arange(1, windows * context + 1))


def test_eval_batches_are_deterministic_and_a_sample_is_evenly_spread():
    dataset = np.random.default_rng(0).integers(0, 50, size=500)  # 62 windows of 8
    first = [x for x, _ in eval_batches(dataset, 4, 8, "cpu")]
    second = [x for x, _ in eval_batches(dataset, 4, 8, "cpu")]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    every = torch.cat(first)
    limited = list(eval_batches(dataset, 4, 8, "cpu", max_batches=2))
    assert [len(x) for x, _ in limited] == [4, 4]
    # 8 windows spread from the first (0) to the last (61), not the first 8: the curve sees the whole split
    picked = [round(i * 61 / 7) for i in range(8)]
    assert torch.equal(torch.cat([x for x, _ in limited]), every[picked])
    assert picked[0] == 0 and picked[-1] == 61
    assert len(list(eval_batches(dataset, 4, 8, "cpu", max_batches=100))) == len(first)  # more than there are


@given(n=st.integers(1, 2000), k=st.integers(1, 2100))
def test_eval_window_sample_property(n, k):
    """A plain statement of "fixed, evenly spread": k distinct increasing windows (all when k >= n), the first
    and the last included, consecutive gaps differing by at most one."""
    picked = eval_window_indices(n, k).tolist()
    if k >= n:
        assert picked == list(range(n))
        return
    assert len(picked) == k and picked == sorted(set(picked))
    assert picked[0] == 0 and (k == 1 or picked[-1] == n - 1)
    gaps = [b - a for a, b in zip(picked, picked[1:])]
    assert not gaps or max(gaps) - min(gaps) <= 1
    assert eval_window_indices(n, k).tolist() == picked  # fixed: the same windows every call


def test_eval_batches_too_short():
    with pytest.raises(ValueError, match="too short"):
        next(eval_batches(np.arange(5), 2, 5, "cpu"))
