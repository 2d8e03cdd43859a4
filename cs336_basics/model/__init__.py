"""The language models, from tensor primitives: layers -> attention -> transformer -> spacebyte (read in that order);
registry.build_model picks one by config.arch.

Names are imported on first use, so `from cs336_basics.model.config import ModelConfig` does not load torch.
"""

import importlib

_HOME = {
    "CausalMultiHeadSelfAttention": "attention",
    "LayerKVCache": "attention",
    "RotaryPositionalEmbedding": "attention",
    "causal_mask": "attention",
    "scaled_dot_product_attention": "attention",
    "Embedding": "layers",
    "Linear": "layers",
    "RMSNorm": "layers",
    "SiLUFFN": "layers",
    "SwiGLU": "layers",
    "KVCache": "transformer",
    "ModelConfig": "config",
    "SpaceByteConfig": "config",
    "SpaceByteCache": "spacebyte",
    "SpaceByteLM": "spacebyte",
    "patch_starts": "spacebyte",
    "MODEL_CLASSES": "registry",
    "build_model": "registry",
    "TransformerBlock": "transformer",
    "TransformerLM": "transformer",
}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
