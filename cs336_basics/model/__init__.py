"""The Transformer LM, from tensor primitives: layers -> attention -> transformer (read in that order)."""

from cs336_basics.model.attention import (
    CausalMultiHeadSelfAttention,
    LayerKVCache,
    RotaryPositionalEmbedding,
    causal_mask,
    scaled_dot_product_attention,
)
from cs336_basics.model.layers import Embedding, Linear, RMSNorm, SiLUFFN, SwiGLU
from cs336_basics.model.transformer import KVCache, ModelConfig, TransformerBlock, TransformerLM

__all__ = [
    "CausalMultiHeadSelfAttention",
    "Embedding",
    "KVCache",
    "LayerKVCache",
    "Linear",
    "ModelConfig",
    "RMSNorm",
    "RotaryPositionalEmbedding",
    "SiLUFFN",
    "SwiGLU",
    "TransformerBlock",
    "TransformerLM",
    "causal_mask",
    "scaled_dot_product_attention",
]
