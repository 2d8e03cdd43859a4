"""The Transformer language model: TransformerBlock, TransformerLM and its KVCache (ModelConfig: config.py).

Architecture variants (norm placement, positions, FFN type, tied embeddings, attention backend) are fields of
ModelConfig, resolved into concrete submodules once, in the constructors below; forward passes never branch on them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from cs336_basics.model.attention import (
    CausalMultiHeadSelfAttention,
    LayerKVCache,
    RotaryPositionalEmbedding,
)
from cs336_basics.model.config import NORM_PLACEMENTS, ModelConfig
from cs336_basics.model.layers import Embedding, Linear, RMSNorm, SiLUFFN, SwiGLU

FFN_TYPES = {"swiglu": SwiGLU, "silu": SiLUFFN}


def _pre_norm_residual(x: Tensor, sublayer: Callable[[Tensor], Tensor], norm: nn.Module) -> Tensor:
    return x + sublayer(norm(x))


def _post_norm_residual(x: Tensor, sublayer: Callable[[Tensor], Tensor], norm: nn.Module) -> Tensor:
    return norm(x + sublayer(x))


class TransformerBlock(nn.Module):
    """Pre-norm block: h = x + Attn(RMSNorm(x)); y = h + FFN(RMSNorm(h)).

    norm="post" gives the original Transformer's y = Norm(x + Sublayer(x)); norm="none" drops the norms
    (ln1/ln2 become identities with no weights). ffn picks SwiGLU or the plain SiLU FFN.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        rope: RotaryPositionalEmbedding | None = None,
        *,
        norm: str = "pre",
        ffn: str = "swiglu",
        backend: str = "scratch",
        eps: float = 1e-5,
        window: int | None = None,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        if norm not in NORM_PLACEMENTS:
            raise ValueError(f"norm must be one of {NORM_PLACEMENTS}, got {norm!r}")
        if ffn not in FFN_TYPES:
            raise ValueError(f"ffn must be one of {tuple(FFN_TYPES)}, got {ffn!r}")
        self.attn = CausalMultiHeadSelfAttention(
            d_model, num_heads, rope, backend, device=device, dtype=dtype, window=window
        )
        self.ffn = FFN_TYPES[ffn](d_model, d_ff, device=device, dtype=dtype)
        if norm == "none":
            self.ln1, self.ln2 = nn.Identity(), nn.Identity()
        else:
            self.ln1 = RMSNorm(d_model, eps, device=device, dtype=dtype)
            self.ln2 = RMSNorm(d_model, eps, device=device, dtype=dtype)
        self._residual = _post_norm_residual if norm == "post" else _pre_norm_residual

    def forward(
        self,
        x: Float[Tensor, " ... seq d_model"],
        token_positions: Int[Tensor, " ... seq"] | None = None,
        kv_cache: LayerKVCache | None = None,
    ) -> Float[Tensor, " ... seq d_model"]:
        x = self._residual(x, lambda h: self.attn(h, token_positions, kv_cache), self.ln1)
        return self._residual(x, self.ffn, self.ln2)


class KVCache:
    """Per-layer keys and values for incremental decoding with TransformerLM.

        cache = model.new_kv_cache()
        logits = model(prompt, kv_cache=cache)          # (batch, prompt_len, vocab); cache.length == prompt_len
        logits = model(next_token[:, None], kv_cache=cache)  # positions continue at cache.length

    A cache belongs to one batch of sequences; start a new one for a new batch.
    """

    def __init__(self, num_layers: int):
        self.layers = [LayerKVCache() for _ in range(num_layers)]

    @property
    def length(self) -> int:
        """How many positions are cached."""
        return self.layers[0].length


def check_token_ids(in_indices: Tensor, offset: int, config: ModelConfig) -> None:
    """A ValueError unless in_indices is an integer tensor of ids in [0, vocab_size) that fits, after `offset`
    cached positions, in the context."""
    if in_indices.is_floating_point() or in_indices.is_complex() or in_indices.dtype == torch.bool:
        raise ValueError(f"token ids must be an integer tensor, got dtype {in_indices.dtype}")
    if in_indices.dim() == 0:
        raise ValueError("token ids need at least one (sequence) dimension")
    seq_len, context = in_indices.shape[-1], config.context_length
    if offset + seq_len > context:
        cached = f" after {offset} cached positions" if offset else ""
        raise ValueError(f"sequence of {seq_len} tokens{cached} exceeds context_length {context}")
    if in_indices.numel() > 0:
        lo, hi = torch.aminmax(in_indices)
        lo, hi = int(lo), int(hi)  # a device-to-host copy of two numbers
        if lo < 0 or hi >= config.vocab_size:
            raise ValueError(f"token ids must lie in [0, vocab_size={config.vocab_size}), got min {lo} and max {hi}")


class TransformerLM(nn.Module):
    """Token embeddings -> num_layers TransformerBlocks -> final RMSNorm -> LM head (logits over the vocabulary).

    With tie_embeddings, token_embeddings.weight and lm_head.weight are the same Parameter: the state dict still
    lists both names (loading either form of state dict written by this class works), and the shared matrix is
    initialized like the LM head (N(0, 2/(d_model+vocab))), since σ=1 output weights would start with logits of
    size ~sqrt(d_model).
    """

    def __init__(
        self, config: ModelConfig, device: torch.device | None = None, dtype: torch.dtype | None = None
    ):
        super().__init__()
        self.config = config
        c = config
        self.token_embeddings = Embedding(c.vocab_size, c.d_model, device=device, dtype=dtype)
        rope = (
            RotaryPositionalEmbedding(c.rope_theta, c.d_head, c.context_length, device=device)
            if c.positions == "rope"
            else None
        )
        self.layers = nn.ModuleList(
            TransformerBlock(
                c.d_model,
                c.num_heads,
                c.resolved_d_ff,
                rope,
                norm=c.norm,
                ffn=c.ffn,
                backend=c.attn_backend,
                eps=c.eps,
                window=c.attention_window,
                device=device,
                dtype=dtype,
            )
            for _ in range(c.num_layers)
        )
        self.ln_final = (
            nn.Identity() if c.norm == "none" else RMSNorm(c.d_model, c.eps, device=device, dtype=dtype)
        )
        self.lm_head = Linear(c.d_model, c.vocab_size, device=device, dtype=dtype)
        if c.tie_embeddings:
            self.token_embeddings.weight = self.lm_head.weight

    @classmethod
    def from_hf(cls, folder: str, device: torch.device | str = "cpu") -> TransformerLM:
        """Load a Llama-format Hugging Face folder (config.json + safetensors); see cs336_basics.hf."""
        from cs336_basics.hf import load_llama  # interop code, only when asked for

        return load_llama(folder, device)

    def new_kv_cache(self) -> KVCache:
        """An empty cache for incremental decoding (see KVCache)."""
        return KVCache(len(self.layers))

    def target_mask(self, in_indices: Int[Tensor, " ... seq"]) -> None:
        """Which targets the loss counts: every one (None). SpaceByteLM leaves some out (see there)."""
        return None

    def forward(
        self, in_indices: Int[Tensor, " ... seq"], kv_cache: KVCache | None = None
    ) -> Float[Tensor, " ... seq vocab_size"]:
        """Logits for the next token at every position. With a kv_cache, in_indices are the tokens that follow the
        cached ones; the cache is extended in place."""
        offset = 0 if kv_cache is None else kv_cache.length
        self._check_input(in_indices, offset)
        seq_len = in_indices.shape[-1]
        positions = torch.arange(offset, offset + seq_len, device=in_indices.device)
        layer_caches = [None] * len(self.layers) if kv_cache is None else kv_cache.layers
        x = self.token_embeddings(in_indices)
        for layer, layer_cache in zip(self.layers, layer_caches, strict=True):
            x = layer(x, positions, layer_cache)
        return self.lm_head(self.ln_final(x))

    @torch.compiler.disable  # runs eagerly (its .item() calls would break the graph anyway); the rest compiles
    def _check_input(self, in_indices: Tensor, offset: int) -> None:
        check_token_ids(in_indices, offset, self.config)

    def extra_repr(self) -> str:
        return f"config={self.config}"
