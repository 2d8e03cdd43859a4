"""nn_utils against torch's own implementations (independent references)."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cs336_basics.nn_utils import clip_gradients, cross_entropy, log_softmax, silu, softmax

shapes = st.lists(st.integers(1, 6), min_size=1, max_size=4)


@settings(max_examples=30, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16), scale=st.sampled_from([1.0, 30.0, 1e4]))
def test_softmax_and_log_softmax_match_torch(shape, seed, scale):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * scale
    for dim in range(-len(shape), len(shape)):
        torch.testing.assert_close(softmax(x, dim), F.softmax(x, dim))
        torch.testing.assert_close(log_softmax(x, dim), F.log_softmax(x, dim))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_and_log_softmax_gradients_match_torch(dim):
    x = torch.randn(3, 5, 4, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(3, 5, 4, dtype=torch.float64)
    for ours, ref in [(softmax, F.softmax), (log_softmax, F.log_softmax)]:
        (g_ours,) = torch.autograd.grad(ours(x, dim), x, upstream)
        (g_ref,) = torch.autograd.grad(ref(x, dim), x, upstream)
        torch.testing.assert_close(g_ours, g_ref)
    assert torch.autograd.gradcheck(lambda t: softmax(t, dim), (x,))


def test_softmax_is_stable_for_huge_logits():
    x = torch.tensor([1000.0, 1001.0])
    expected = torch.tensor([1 / (1 + math.e), math.e / (1 + math.e)])
    torch.testing.assert_close(softmax(x, 0), expected)


def test_silu_matches_torch():
    x = torch.randn(3, 4, 5) * 5
    torch.testing.assert_close(silu(x), F.silu(x))


@settings(max_examples=30, deadline=None)
@given(
    leading=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    vocab=st.integers(1, 50),
    seed=st.integers(0, 999),
)
def test_cross_entropy_matches_torch_over_any_leading_dims(leading, vocab, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(*leading, vocab, generator=g) * 10
    targets = torch.randint(0, vocab, leading, generator=g)
    expected = F.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1))
    torch.testing.assert_close(cross_entropy(logits, targets), expected)


def test_cross_entropy_hand_checked_and_stable():
    assert cross_entropy(torch.zeros(1, 2), torch.tensor([1])).item() == pytest.approx(math.log(2))
    huge = torch.tensor([[1e4, 0.0, -1e4]])
    assert cross_entropy(huge, torch.tensor([0])).item() == pytest.approx(0.0)
    assert cross_entropy(huge, torch.tensor([1])).item() == pytest.approx(1e4)


def test_cross_entropy_gradient_matches_torch():
    logits = torch.randn(4, 7, 11, requires_grad=True)
    targets = torch.randint(0, 11, (4, 7))
    (ours,) = torch.autograd.grad(cross_entropy(logits, targets), logits)
    (ref,) = torch.autograd.grad(F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1)), logits)
    torch.testing.assert_close(ours, ref)


@pytest.mark.parametrize("max_norm", [1e-2, 1.0, 1e3])
def test_clip_gradients_matches_torch(max_norm):
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s)) for s in [(3, 4), (5,), (2, 2, 2)]]
    frozen = torch.nn.Parameter(torch.randn(3))  # no grad: must be skipped
    for p in params:
        p.grad = torch.randn_like(p)
    reference = [torch.nn.Parameter(p.detach().clone()) for p in params]
    for r, p in zip(reference, params):
        r.grad = p.grad.clone()
    norm = clip_gradients([*params, frozen], max_norm)
    ref_norm = torch.nn.utils.clip_grad_norm_(reference, max_norm)
    torch.testing.assert_close(norm, ref_norm)
    for p, r in zip(params, reference):
        torch.testing.assert_close(p.grad, r.grad)
    assert frozen.grad is None


def test_clip_gradients_accepts_a_generator_and_no_grads():
    model = torch.nn.Linear(3, 2)
    assert clip_gradients(model.parameters(), 1.0).item() == 0.0
    model(torch.randn(4, 3)).sum().mul(100).backward()
    before = torch.cat([p.grad.flatten() for p in model.parameters()]).norm()
    norm = clip_gradients(model.parameters(), 1.0)
    torch.testing.assert_close(norm, before)
    after = torch.cat([p.grad.flatten() for p in model.parameters()]).norm()
    assert after.item() == pytest.approx(1.0, rel=1e-4)
