"""Pure tensor functions used by the model and the trainer: softmax, SiLU, cross-entropy, gradient clipping.

Each is written from tensor primitives (no torch.nn.functional), so the math is on the page.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from jaxtyping import Float, Int
from torch import Tensor


class _Softmax(torch.autograd.Function):
    """softmax with a hand-written backward that keeps only the output y: dx = y ⊙ (dy - Σ_j dy_j y_j).

    Letting autograd differentiate the five primitive ops would keep exp(x - max) and x alive and run about
    twice as many passes over the (often batch x heads x T x T) tensor.
    """

    @staticmethod
    def forward(ctx, x: Tensor, dim: int) -> Tensor:
        y = x - x.amax(dim=dim, keepdim=True)
        y.exp_()  # in place: `y` is our own fresh tensor
        y.div_(y.sum(dim=dim, keepdim=True))
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, dy: Tensor) -> tuple[Tensor, None]:
        (y,) = ctx.saved_tensors
        dx = dy * y
        dx.addcmul_(y, dx.sum(dim=ctx.dim, keepdim=True), value=-1.0)  # y ⊙ dy - y ⊙ Σ(y ⊙ dy)
        return dx, None


def softmax(x: Float[Tensor, " ..."], dim: int) -> Float[Tensor, " ..."]:
    """softmax(x)_i = exp(x_i - max(x)) / sum_j exp(x_j - max(x)).

    Subtracting the max changes nothing mathematically but keeps exp() from overflowing:
    softmax([1000., 1001.]) -> [0.2689, 0.7311] instead of nan.
    """
    return _Softmax.apply(x, dim)


def log_softmax(x: Float[Tensor, " ..."], dim: int) -> Float[Tensor, " ..."]:
    """log_softmax(x)_i = x_i - logsumexp(x), with logsumexp(x) = m + log(sum_j exp(x_j - m)), m = max(x)."""
    # The max is a constant shift (the result does not depend on it), so no gradient needs to flow through it.
    shifted = x - x.amax(dim=dim, keepdim=True).detach()
    return shifted - shifted.exp().sum(dim=dim, keepdim=True).log()


def silu(x: Float[Tensor, " ..."]) -> Float[Tensor, " ..."]:
    """SiLU (swish): silu(x) = x * sigmoid(x)."""
    return x * torch.sigmoid(x)


def cross_entropy(logits: Float[Tensor, " ... vocab"], targets: Int[Tensor, " ..."]) -> Float[Tensor, ""]:
    """Mean negative log-likelihood: mean over all leading positions of logsumexp(logits) - logits[target].

    The log-sum-exp is computed with the max subtracted, so large logits neither overflow nor lose the target's
    contribution; the full softmax is never materialized beyond one shifted copy of the logits.
    Example: logits [[0., 0.]], targets [1] -> log(2) = 0.6931.
    """
    shifted = logits - logits.amax(dim=-1, keepdim=True).detach()  # a constant shift: no gradient through it
    log_normalizer = shifted.exp().sum(dim=-1).log()  # logsumexp(logits) - m
    target_logit = shifted.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # logits[target] - m
    return (log_normalizer - target_logit).mean()


@torch.no_grad()
def clip_gradients(
    parameters: Iterable[torch.nn.Parameter], max_l2_norm: float, eps: float = 1e-6
) -> Float[Tensor, ""]:
    """Scale all gradients in place so their global L2 norm is at most max_l2_norm; return the norm before.

    The norm is taken over every gradient as one long vector, ||g|| = sqrt(sum_p ||g_p||^2). When it exceeds
    max_l2_norm every gradient is multiplied by max_l2_norm / (||g|| + eps). The factor is clamped at 1 instead of
    branching on the norm, so no device-to-host sync is needed. Parameters without a gradient are skipped.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    # Accumulate in float32 so bf16/fp16 gradients do not overflow or lose the small ones.
    per_param = torch.stack([torch.linalg.vector_norm(g, dtype=torch.float32) for g in grads])
    total_norm = torch.linalg.vector_norm(per_param)
    scale = (max_l2_norm / (total_norm + eps)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.to(g.dtype))
    return total_norm
