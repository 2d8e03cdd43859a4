"""AdamW against torch.optim.AdamW, the cosine schedule at its boundaries, clipping against
torch.nn.utils.clip_grad_norm_, and the toy SGD against its formula written out by hand."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from cs336_basics.nn_utils import clip_gradients
from cs336_basics.training.optimizer import SGD, AdamW, get_lr_cosine_schedule

# --- AdamW


def make_params(dtype: torch.dtype, seed: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(7, 5), (5,), (3, 4, 2), (1,), (11,)]
    return [torch.nn.Parameter(torch.randn(s, generator=g, dtype=dtype)) for s in shapes]


def param_groups(params: list[torch.nn.Parameter]) -> list[dict]:
    """Three groups, each overriding different defaults, so per-group hyperparameters must be honoured."""
    return [
        {"params": params[:2]},
        {"params": params[2:4], "lr": 3e-2, "weight_decay": 0.0, "betas": (0.8, 0.99)},
        {"params": params[4:], "lr": 5e-3, "weight_decay": 0.3, "eps": 1e-6},
    ]


def set_grads(params: list[torch.nn.Parameter], step: int, g: torch.Generator) -> None:
    """Gradients that depend on the parameters (a quadratic pull plus noise); one parameter gets no gradient
    on every fifth step, which the optimizers must skip without touching its state."""
    for i, p in enumerate(params):
        noise = torch.randn(p.shape, generator=g, dtype=p.dtype)
        p.grad = None if (i == 3 and step % 5 == 0) else (0.5 * p.detach() - 1.0 + noise)


def run_optimizer(opt_cls, dtype, steps=200, schedule=False, **kwargs) -> list[torch.Tensor]:
    params = make_params(dtype)
    opt = opt_cls(param_groups(params), lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05, **kwargs)
    g = torch.Generator().manual_seed(1)
    base_lrs = [group["lr"] for group in opt.param_groups]
    for step in range(steps):
        if schedule:  # the trainer rewrites each group's lr every step
            for group, base in zip(opt.param_groups, base_lrs):
                group["lr"] = get_lr_cosine_schedule(step, base, base / 10, 20, steps - 20)
        set_grads(params, step, g)
        opt.step()
    return [p.detach().clone() for p in params]


@pytest.mark.parametrize("schedule", [False, True])
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_adamw_matches_torch_over_many_steps(dtype, tol, schedule):
    ours = run_optimizer(AdamW, dtype, schedule=schedule)
    theirs = run_optimizer(torch.optim.AdamW, dtype, schedule=schedule, foreach=False)
    start = make_params(dtype)
    for a, b, p0 in zip(ours, theirs, start):
        assert not torch.equal(a, p0)  # every parameter actually moved
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_adamw_defaults_match_torch():
    """The assignment's and PyTorch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01."""
    p = torch.nn.Parameter(torch.ones(2))
    defaults = AdamW([p]).defaults
    assert defaults == {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}


def test_adamw_first_step_by_hand():
    """Step 1 with zero state: m̂ = g, v̂ = g², so θ ← θ(1 − lrλ) − lr·g/(|g| + ε)."""
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = AdamW([p], lr=0.1, weight_decay=0.5, eps=1e-8)
    p.grad = torch.tensor([3.0, -0.5], dtype=torch.float64)
    opt.step()
    expected = [1.0 * 0.95 - 0.1 * 3 / (3 + 1e-8), -2.0 * 0.95 + 0.1 * 0.5 / (0.5 + 1e-8)]
    torch.testing.assert_close(p.detach(), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-15)


def test_adamw_state_dict_resume_is_exact():
    """Stopping at step 60, rebuilding the optimizer from its state_dict and going on = running straight."""
    straight = run_optimizer(AdamW, torch.float64, steps=120)

    params = make_params(torch.float64)
    opt = AdamW(param_groups(params), lr=1e-2, weight_decay=0.05)
    g = torch.Generator().manual_seed(1)
    for step in range(60):
        set_grads(params, step, g)
        opt.step()
    saved = copy.deepcopy(opt.state_dict())
    resumed = AdamW(param_groups(params), lr=1e-2, weight_decay=0.05)
    resumed.load_state_dict(saved)
    for step in range(60, 120):
        set_grads(params, step, g)
        resumed.step()
    for a, b in zip(params, straight):
        assert torch.equal(a.detach(), b)


def test_adamw_closure_returns_loss():
    p = torch.nn.Parameter(torch.tensor([2.0]))
    opt = AdamW([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p**2).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == pytest.approx(4.0)
    assert p.item() < 2.0


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"lr": -1.0}, "learning rate"),
        ({"betas": (1.0, 0.999)}, "betas"),
        ({"betas": (0.9, -0.1)}, "betas"),
        ({"eps": -1e-8}, "eps"),
        ({"weight_decay": -0.1}, "weight_decay"),
    ],
)
def test_adamw_rejects_bad_hyperparameters(kwargs, word):
    with pytest.raises(ValueError, match=word):
        AdamW([torch.nn.Parameter(torch.zeros(1))], **kwargs)


# --- toy SGD


def test_sgd_follows_its_formula():
    p = torch.nn.Parameter(torch.tensor([5.0, -3.0], dtype=torch.float64))
    opt = SGD([p], lr=0.5)
    expected = p.detach().clone()
    for t in range(10):
        opt.zero_grad()
        (p**2).sum().backward()
        grad = 2 * expected
        expected = expected - 0.5 / math.sqrt(t + 1) * grad
        opt.step()
        torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-12)


def test_sgd_rejects_negative_lr():
    with pytest.raises(ValueError, match="learning rate"):
        SGD([torch.nn.Parameter(torch.zeros(1))], lr=-0.1)


# --- cosine schedule


def cosine_reference(it, lr_max, lr_min, t_w, t_c):
    """The schedule written independently, with numpy-free piecewise arithmetic."""
    if it < t_w:
        return lr_max * it / t_w
    if it <= t_c:
        return lr_min + (lr_max - lr_min) * (math.cos(math.pi * (it - t_w) / (t_c - t_w)) + 1) / 2
    return lr_min


def test_schedule_boundaries_are_exact():
    lr_max, lr_min, t_w, t_c = 3e-3, 3e-4, 100, 1000
    assert get_lr_cosine_schedule(0, lr_max, lr_min, t_w, t_c) == 0.0
    assert get_lr_cosine_schedule(t_w, lr_max, lr_min, t_w, t_c) == lr_max
    assert get_lr_cosine_schedule(t_c, lr_max, lr_min, t_w, t_c) == lr_min
    for it in (t_c + 1, t_c + 10, 10 * t_c):
        assert get_lr_cosine_schedule(it, lr_max, lr_min, t_w, t_c) == lr_min
    assert get_lr_cosine_schedule(t_w // 2, lr_max, lr_min, t_w, t_c) == pytest.approx(lr_max / 2)
    assert get_lr_cosine_schedule((t_w + t_c) // 2, lr_max, lr_min, t_w, t_c) == pytest.approx(
        (lr_max + lr_min) / 2
    )


def test_schedule_matches_reference_on_every_step():
    for it in range(25):
        assert get_lr_cosine_schedule(it, 1.0, 0.1, 7, 21) == pytest.approx(
            cosine_reference(it, 1.0, 0.1, 7, 21)
        )


def test_schedule_without_warmup_and_without_decay():
    assert get_lr_cosine_schedule(0, 1.0, 0.1, 0, 10) == 1.0
    assert get_lr_cosine_schedule(5, 1.0, 0.1, 5, 5) == 1.0  # the single peak step
    assert get_lr_cosine_schedule(6, 1.0, 0.1, 5, 5) == 0.1


@given(
    t_w=st.integers(0, 50),
    decay=st.integers(1, 200),
    lr_max=st.floats(1e-6, 1.0),
    ratio=st.floats(0.0, 1.0),
)
def test_schedule_rises_then_falls_within_bounds(t_w, decay, lr_max, ratio):
    lr_min = lr_max * ratio
    t_c = t_w + decay
    lrs = [get_lr_cosine_schedule(it, lr_max, lr_min, t_w, t_c) for it in range(t_c + 5)]
    assert all(0.0 <= lr <= lr_max * (1 + 1e-15) for lr in lrs)
    assert all(a <= b for a, b in zip(lrs[: t_w + 1], lrs[1 : t_w + 1]))  # warmup is non-decreasing
    assert all(a >= b - 1e-15 for a, b in zip(lrs[t_w:], lrs[t_w + 1 :]))  # then non-increasing
    assert all(lr >= lr_min - 1e-15 for lr in lrs[t_w:])


@pytest.mark.parametrize("args", [(-1, 1.0, 0.1, 5, 10), (0, 1.0, 0.1, -1, 10), (0, 1.0, 0.1, 10, 5)])
def test_schedule_rejects_bad_arguments(args):
    with pytest.raises(ValueError, match="cosine schedule"):
        get_lr_cosine_schedule(*args)


# --- gradient clipping


@pytest.mark.parametrize("max_norm", [1e-2, 1.0, 1e4])
def test_clip_gradients_matches_torch(max_norm):
    g = torch.Generator().manual_seed(0)
    ours = [torch.nn.Parameter(torch.randn(s, generator=g)) for s in [(4, 3), (5,), (2, 2, 2)]]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    frozen = torch.nn.Parameter(torch.randn(3, generator=g))  # no gradient: must be ignored
    for a, b in zip(ours, theirs):
        a.grad = torch.randn(a.shape, generator=g) * 3
        b.grad = a.grad.clone()
    norm_ours = clip_gradients([*ours, frozen], max_norm)
    norm_theirs = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    assert float(norm_ours) == pytest.approx(norm_theirs.item(), rel=1e-6)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-6, atol=1e-7)
    assert frozen.grad is None
