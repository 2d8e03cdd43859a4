"""The one place where model.arch picks a model class: the Trainer, generation and accounting all ask here.

    model = build_model(config.model)          # TransformerLM or SpaceByteLM
"""

from __future__ import annotations

import torch
from torch import nn

from cs336_basics.model.spacebyte import SpaceByteLM
from cs336_basics.model.config import ModelConfig
from cs336_basics.model.transformer import TransformerLM

MODEL_CLASSES: dict[str, type[nn.Module]] = {"transformer": TransformerLM, "spacebyte": SpaceByteLM}


def build_model(config: ModelConfig, device: torch.device | str | None = None,
                dtype: torch.dtype | None = None) -> nn.Module:
    """A freshly initialized model of config.arch. Every class takes (config, device, dtype), maps (batch, seq)
    ids to (batch, seq, vocab) logits, and has new_kv_cache() and target_mask(ids)."""
    return MODEL_CLASSES[config.arch](config, device=device, dtype=dtype)
