"""The language models, from tensor primitives: layers -> attention -> transformer -> spacebyte (read in that order);
registry.build_model picks one by config.arch."""

from cs336_basics.model.attention import (
    CausalMultiHeadSelfAttention,
    LayerKVCache,
    RotaryPositionalEmbedding,
    causal_mask,
    scaled_dot_product_attention,
)
from cs336_basics.model.layers import Embedding, Linear, RMSNorm, SiLUFFN, SwiGLU
from cs336_basics.model.registry import MODEL_CLASSES, build_model
from cs336_basics.model.spacebyte import SpaceByteCache, SpaceByteLM, patch_starts
from cs336_basics.model.transformer import KVCache, ModelConfig, SpaceByteConfig, TransformerBlock, TransformerLM

__all__ = [
    "CausalMultiHeadSelfAttention",
    "Embedding",
    "KVCache",
    "LayerKVCache",
    "Linear",
    "MODEL_CLASSES",
    "ModelConfig",
    "RMSNorm",
    "RotaryPositionalEmbedding",
    "SiLUFFN",
    "SpaceByteCache",
    "SpaceByteConfig",
    "SpaceByteLM",
    "SwiGLU",
    "TransformerBlock",
    "TransformerLM",
    "build_model",
    "causal_mask",
    "patch_starts",
    "scaled_dot_product_attention",
]
