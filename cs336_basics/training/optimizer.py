"""Optimizers and the learning-rate schedule.

- `SGD`: the assignment's toy optimizer, plain SGD with a 1/sqrt(t+1) decaying step.
- `AdamW`: Adam with decoupled weight decay (Loshchilov & Hutter, 2019), with the same update as
  `torch.optim.AdamW` so the two agree step for step.
- `get_lr_cosine_schedule`: linear warmup, then cosine decay to a floor.

Both optimizers subclass `torch.optim.Optimizer`, so param groups, `state_dict()` and `load_state_dict()` work
as they do for PyTorch's own optimizers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

ParamsT = Iterable[torch.Tensor] | Iterable[dict[str, Any]]


def _evaluate(closure: Callable[[], float] | None) -> float | None:
    """Re-evaluate the loss (with autograd on, since `step` runs under no_grad) when a closure is given."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class SGD(torch.optim.Optimizer):
    """SGD whose step shrinks with the number of updates: θ_{t+1} = θ_t − lr / sqrt(t + 1) · ∇L(θ_t).

    `t` counts the updates already applied to each parameter (0 for the first step).
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3):
        if lr < 0:
            raise ValueError(f"SGD: learning rate must be >= 0, got {lr}")
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = _evaluate(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                t = state.get("t", 0)
                p.add_(p.grad, alpha=-group["lr"] / math.sqrt(t + 1))
                state["t"] = t + 1
        return loss


class AdamW(torch.optim.Optimizer):
    """AdamW, matching `torch.optim.AdamW` (no amsgrad). For step t = 1, 2, ... and gradient g:

        θ ← θ − lr·λ·θ                                    (decoupled weight decay, applied first)
        m ← β1·m + (1 − β1)·g,   v ← β2·v + (1 − β2)·g²
        θ ← θ − lr / (1 − β1^t) · m / (sqrt(v) / sqrt(1 − β2^t) + ε)

    The bias corrections are folded into the step size and the denominator exactly as PyTorch does, so that
    the epsilon enters at the same place and the two implementations agree to float rounding.
    Per-parameter state: "step" (int), "exp_avg" (m) and "exp_avg_sq" (v).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ):
        if lr < 0:
            raise ValueError(f"AdamW: learning rate must be >= 0, got {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"AdamW: betas must lie in [0, 1), got {tuple(betas)}")
        if eps < 0:
            raise ValueError(f"AdamW: eps must be >= 0, got {eps}")
        if weight_decay < 0:
            raise ValueError(f"AdamW: weight_decay must be >= 0, got {weight_decay}")
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = _evaluate(closure)
        for group in self.param_groups:
            lr, (beta1, beta2), eps, weight_decay = (
                group["lr"],
                group["betas"],
                group["eps"],
                group["weight_decay"],
            )
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("AdamW does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t, m, v, g = state["step"], state["exp_avg"], state["exp_avg_sq"], p.grad

                p.mul_(1 - lr * weight_decay)
                m.lerp_(g, 1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)

                step_size = lr / (1 - beta1**t)
                denom = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)
                p.addcdiv_(m, denom, value=-step_size)
        return loss


def get_lr_cosine_schedule(
    it: int, max_learning_rate: float, min_learning_rate: float, warmup_iters: int, cosine_cycle_iters: int
) -> float:
    """Learning rate at iteration `it`: linear warmup, cosine decay, then a constant floor.

        it < T_w:            lr = it / T_w · lr_max                 (0 at step 0, lr_max exactly at T_w)
        T_w <= it <= T_c:    lr = lr_min + ½(1 + cos(π (it − T_w) / (T_c − T_w))) (lr_max − lr_min)
        it > T_c:            lr = lr_min

    e.g. (it, lr_max, lr_min, T_w, T_c) = (5, 1.0, 0.1, 10, 20) -> 0.5; (15, ...) -> 0.55; (25, ...) -> 0.1.
    """
    if it < 0:
        raise ValueError(f"cosine schedule: iteration must be >= 0, got {it}")
    if warmup_iters < 0 or cosine_cycle_iters < warmup_iters:
        raise ValueError(
            "cosine schedule: need 0 <= warmup_iters <= cosine_cycle_iters, "
            f"got warmup_iters={warmup_iters}, cosine_cycle_iters={cosine_cycle_iters}"
        )
    if it < warmup_iters:
        return it / warmup_iters * max_learning_rate
    if it > cosine_cycle_iters:
        return min_learning_rate
    if cosine_cycle_iters == warmup_iters:  # no decay phase: the single step at the peak
        return max_learning_rate
    progress = (it - warmup_iters) / (cosine_cycle_iters - warmup_iters)
    weight = 0.5 * (1 + math.cos(math.pi * progress))  # 1 -> 0
    # A convex combination rather than lr_min + w·(lr_max − lr_min), so both ends are exact in floating point.
    return weight * max_learning_rate + (1 - weight) * min_learning_rate
