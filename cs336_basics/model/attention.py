"""Rotary position embeddings, scaled dot-product attention and causal multi-head self-attention.

Attention comes in two interchangeable backends, chosen once when the module is built:
"scratch" (ours, written with matmul and our softmax) and "torch" (F.scaled_dot_product_attention,
which uses fused kernels). Both compute the same function; the tests check that they agree.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

from cs336_basics.model.layers import Linear
from cs336_basics.nn_utils import softmax


class RotaryPositionalEmbedding(nn.Module):
    """RoPE: rotate each interleaved pair (x_2k, x_2k+1) of a query/key vector by the angle pos · θ^(-2k/d_k).

    cos/sin of every (position, pair) angle are precomputed once as non-persistent buffers (so they do not
    appear in the state dict). `token_positions` may have any shape that broadcasts against x's leading dims.
    """

    def __init__(self, theta: float, d_k: int, max_seq_len: int, device: torch.device | None = None):
        super().__init__()
        if d_k % 2 != 0:
            raise ValueError(f"RoPE rotates pairs of dimensions, so d_k must be even, got {d_k}")
        self.theta, self.d_k, self.max_seq_len = theta, d_k, max_seq_len
        inv_freq = theta ** (-torch.arange(0, d_k, 2, device=device, dtype=torch.float32) / d_k)  # (d_k/2,)
        angles = torch.outer(torch.arange(max_seq_len, device=device, dtype=torch.float32), inv_freq)
        # Stored at full width d_k so the rotation is two elementwise products: entries 2k and 2k+1 hold the
        # angle of pair k, and the sine carries the sign of its row of the 2x2 rotation [[c, -s], [s, c]].
        self.register_buffer("cos", angles.cos().repeat_interleave(2, dim=-1), persistent=False)
        self.register_buffer(
            "sin", torch.stack((-angles.sin(), angles.sin()), dim=-1).flatten(-2), persistent=False
        )

    def forward(
        self, x: Float[Tensor, " ... seq d_k"], token_positions: Int[Tensor, " ... seq"]
    ) -> Float[Tensor, " ... seq d_k"]:
        """(x_2k, x_2k+1) -> (x_2k·cos - x_2k+1·sin, x_2k+1·cos + x_2k·sin), as x·cos + swap_pairs(x)·sin."""
        cos = self.cos[token_positions].to(x.dtype)  # (..., seq, d_k)
        sin = self.sin[token_positions].to(x.dtype)
        swapped = rearrange(x, "... (k two) -> ... k two", two=2).flip(-1)  # (x_2k+1, x_2k) per pair
        return torch.addcmul(x * cos, rearrange(swapped, "... k two -> ... (k two)"), sin)

    def extra_repr(self) -> str:
        return f"theta={self.theta}, d_k={self.d_k}, max_seq_len={self.max_seq_len}"


def scaled_dot_product_attention(
    Q: Float[Tensor, " ... queries d_k"],
    K: Float[Tensor, " ... keys d_k"],
    V: Float[Tensor, " ... keys d_v"],
    mask: Bool[Tensor, " ... queries keys"] | None = None,
) -> Float[Tensor, " ... queries d_v"]:
    """Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V, where mask[i, j] = True means query i may attend to key j."""
    return _attention(Q, K, V, blocked=None if mask is None else ~mask)


def _attention(Q: Tensor, K: Tensor, V: Tensor, blocked: Tensor | None) -> Tensor:
    """scaled_dot_product_attention with the mask given the other way round: blocked[i, j] = True hides key j."""
    # Scaling Q (queries x d_k) is cheaper than scaling the scores (queries x keys).
    scores = (Q * (1.0 / math.sqrt(Q.shape[-1]))) @ K.transpose(-2, -1)  # (..., queries, keys)
    if blocked is not None:
        # in place is safe: the matmul's backward does not need its output
        scores.masked_fill_(blocked, float("-inf"))
    return softmax(scores, dim=-1) @ V


def causal_mask(
    num_queries: int, num_keys: int, device: torch.device | None = None, window: int | None = None
) -> Bool[Tensor, " q k"]:
    """mask[i, j] = True where key j is not in query i's future (and, with a window W, is one of its last W).

    The queries are the last `num_queries` of the `num_keys` positions (earlier ones come from a KV cache), so
    query i sits at position p = num_keys - num_queries + i and sees keys p-W+1..p.
    Examples: causal_mask(1, 3) -> [[True, True, True]];  causal_mask(1, 3, window=2) -> [[False, True, True]].
    """
    offset = num_keys - num_queries
    mask = torch.ones(num_queries, num_keys, dtype=torch.bool, device=device).tril_(offset)
    return mask.triu_(offset - window + 1) if window is not None else mask


def _scratch_causal_attention(q: Tensor, k: Tensor, v: Tensor, window: int | None = None) -> Tensor:
    num_queries, num_keys = q.shape[-2], k.shape[-2]
    if window is not None:
        return _attention(q, k, v, blocked=~causal_mask(num_queries, num_keys, q.device, window))
    # the complement of causal_mask, built directly: True where key j is in query i's future
    future = torch.ones(num_queries, num_keys, dtype=torch.bool, device=q.device).triu_(
        num_keys - num_queries + 1
    )
    return _attention(q, k, v, blocked=future)


def _torch_causal_attention(q: Tensor, k: Tensor, v: Tensor, window: int | None = None) -> Tensor:
    if q.shape[-2] == k.shape[-2] and (window is None or window >= k.shape[-2]):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    # is_causal aligns the mask top-left, which is wrong when cached keys precede the queries.
    mask = causal_mask(q.shape[-2], k.shape[-2], q.device, window)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


ATTENTION_BACKENDS = {"scratch": _scratch_causal_attention, "torch": _torch_causal_attention}


class LayerKVCache:
    """The keys and values one attention layer has produced so far, each (..., heads, length, d_k).

    append() concatenates the new step's keys/values and returns everything cached, ready to attend over.
    """

    def __init__(self):
        self.keys: Tensor | None = None
        self.values: Tensor | None = None

    @property
    def length(self) -> int:
        return 0 if self.keys is None else self.keys.shape[-2]

    def append(self, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        if self.keys is None:
            self.keys, self.values = keys, values
        else:
            self.keys = torch.cat((self.keys, keys), dim=-2)
            self.values = torch.cat((self.values, values), dim=-2)
        return self.keys, self.values


class CausalMultiHeadSelfAttention(nn.Module):
    """MultiHead(x) = W_O concat_h(Attention(W_Q,h x, W_K,h x, W_V,h x)), each position attending only to itself
    and earlier positions (with `window` W: only to the last W of them, itself included). Heads are a batch
    dimension; RoPE (if given) rotates queries and keys.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        rope: RotaryPositionalEmbedding | None = None,
        backend: str = "scratch",
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
        window: int | None = None,
    ):
        super().__init__()
        if window is not None and window < 1:
            raise ValueError(f"attention window must be >= 1 (or None for full attention), got {window}")
        if d_model % num_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        if backend not in ATTENTION_BACKENDS:
            raise ValueError(
                f"unknown attention backend {backend!r}; choose from {sorted(ATTENTION_BACKENDS)}"
            )
        self.d_model, self.num_heads, self.backend, self.window = d_model, num_heads, backend, window
        self.q_proj = Linear(d_model, d_model, device=device, dtype=dtype)
        self.k_proj = Linear(d_model, d_model, device=device, dtype=dtype)
        self.v_proj = Linear(d_model, d_model, device=device, dtype=dtype)
        self.output_proj = Linear(d_model, d_model, device=device, dtype=dtype)
        self.rope = rope
        self._attend = ATTENTION_BACKENDS[backend]

    def forward(
        self,
        x: Float[Tensor, " ... seq d_model"],
        token_positions: Int[Tensor, " ... seq"] | None = None,
        kv_cache: LayerKVCache | None = None,
    ) -> Float[Tensor, " ... seq d_model"]:
        """With a kv_cache, x holds only the new positions: they continue after the cached ones, their keys and
        values are appended to the cache, and they attend over everything cached."""
        # One matmul for the three projections (they stay separate parameters and state-dict entries).
        w_qkv = torch.cat((self.q_proj.weight, self.k_proj.weight, self.v_proj.weight))  # (3·d, d)
        qkv = rearrange(
            x @ w_qkv.T, "... seq (three heads d_k) -> three ... heads seq d_k", three=3, heads=self.num_heads
        )
        q_and_k, v = qkv[:2], qkv[2]  # (2, ..., heads, seq, d_k), (..., heads, seq, d_k)
        if self.rope is not None:
            if token_positions is None:
                offset = 0 if kv_cache is None else kv_cache.length
                token_positions = torch.arange(offset, offset + x.shape[-2], device=x.device)
            positions = token_positions.unsqueeze(-2)  # (..., 1, seq): the same positions for every head
            q_and_k = self.rope(q_and_k, positions)  # rotate queries and keys in one go
        q, k = q_and_k.unbind(0)
        if kv_cache is not None:
            k, v = kv_cache.append(k, v)  # (..., heads, cached + seq, d_k)
        out = self._attend(q, k, v, self.window)  # (..., heads, seq, d_k)
        return self.output_proj(rearrange(out, "... heads seq d_k -> ... seq (heads d_k)"))

    def extra_repr(self) -> str:
        window = f", window={self.window}" if self.window is not None else ""
        return f"d_model={self.d_model}, num_heads={self.num_heads}, backend={self.backend!r}{window}"
