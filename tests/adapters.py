"""Adapters: the bridge between the test suites and the package's public API.

Each adapter constructs a component, loads the given weights and calls it. Module attributes are named
exactly like the state-dict keys, so no adapter needs logic of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import IO, Any, BinaryIO

import numpy.typing as npt
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from cs336_basics.model import (
    CausalMultiHeadSelfAttention,
    Embedding,
    Linear,
    ModelConfig,
    RMSNorm,
    RotaryPositionalEmbedding,
    SwiGLU,
    TransformerBlock,
    TransformerLM,
    scaled_dot_product_attention,
)
from cs336_basics.nn_utils import clip_gradients, cross_entropy, silu, softmax
from cs336_basics.tokenizer import Tokenizer, train_bpe
from cs336_basics.training.checkpoint import load_checkpoint, save_checkpoint
from cs336_basics.training.data import get_batch
from cs336_basics.training.optimizer import AdamW, get_lr_cosine_schedule


def run_linear(
    d_in: int, d_out: int, weights: Float[Tensor, " d_out d_in"], in_features: Float[Tensor, " ... d_in"]
) -> Float[Tensor, " ... d_out"]:
    linear = Linear(d_in, d_out)
    linear.load_state_dict({"weight": weights})
    return linear(in_features)


def run_embedding(
    vocab_size: int, d_model: int, weights: Float[Tensor, " vocab_size d_model"], token_ids: Int[Tensor, " ..."]
) -> Float[Tensor, " ... d_model"]:
    embedding = Embedding(vocab_size, d_model)
    embedding.load_state_dict({"weight": weights})
    return embedding(token_ids)


def run_swiglu(
    d_model: int,
    d_ff: int,
    w1_weight: Float[Tensor, " d_ff d_model"],
    w2_weight: Float[Tensor, " d_model d_ff"],
    w3_weight: Float[Tensor, " d_ff d_model"],
    in_features: Float[Tensor, " ... d_model"],
) -> Float[Tensor, " ... d_model"]:
    swiglu = SwiGLU(d_model, d_ff)
    swiglu.load_state_dict({"w1.weight": w1_weight, "w2.weight": w2_weight, "w3.weight": w3_weight})
    return swiglu(in_features)


def run_scaled_dot_product_attention(
    Q: Float[Tensor, " ... queries d_k"],
    K: Float[Tensor, " ... keys d_k"],
    V: Float[Tensor, " ... keys d_v"],
    mask: Bool[Tensor, " ... queries keys"] | None = None,
) -> Float[Tensor, " ... queries d_v"]:
    return scaled_dot_product_attention(Q, K, V, mask)


def _attention_weights(q_proj_weight, k_proj_weight, v_proj_weight, o_proj_weight) -> dict[str, Tensor]:
    return {
        "q_proj.weight": q_proj_weight,
        "k_proj.weight": k_proj_weight,
        "v_proj.weight": v_proj_weight,
        "output_proj.weight": o_proj_weight,
    }


def run_multihead_self_attention(
    d_model: int,
    num_heads: int,
    q_proj_weight: Float[Tensor, " d_k d_in"],
    k_proj_weight: Float[Tensor, " d_k d_in"],
    v_proj_weight: Float[Tensor, " d_v d_in"],
    o_proj_weight: Float[Tensor, " d_model d_v"],
    in_features: Float[Tensor, " ... sequence_length d_in"],
) -> Float[Tensor, " ... sequence_length d_out"]:
    attn = CausalMultiHeadSelfAttention(d_model, num_heads)
    attn.load_state_dict(_attention_weights(q_proj_weight, k_proj_weight, v_proj_weight, o_proj_weight))
    return attn(in_features)


def run_multihead_self_attention_with_rope(
    d_model: int,
    num_heads: int,
    max_seq_len: int,
    theta: float,
    q_proj_weight: Float[Tensor, " d_k d_in"],
    k_proj_weight: Float[Tensor, " d_k d_in"],
    v_proj_weight: Float[Tensor, " d_v d_in"],
    o_proj_weight: Float[Tensor, " d_model d_v"],
    in_features: Float[Tensor, " ... sequence_length d_in"],
    token_positions: Int[Tensor, " ... sequence_length"] | None = None,
) -> Float[Tensor, " ... sequence_length d_out"]:
    rope = RotaryPositionalEmbedding(theta, d_model // num_heads, max_seq_len)
    attn = CausalMultiHeadSelfAttention(d_model, num_heads, rope=rope)
    attn.load_state_dict(_attention_weights(q_proj_weight, k_proj_weight, v_proj_weight, o_proj_weight))
    return attn(in_features, token_positions)


def run_rope(
    d_k: int,
    theta: float,
    max_seq_len: int,
    in_query_or_key: Float[Tensor, " ... sequence_length d_k"],
    token_positions: Int[Tensor, " ... sequence_length"],
) -> Float[Tensor, " ... sequence_length d_k"]:
    rope = RotaryPositionalEmbedding(theta, d_k, max_seq_len)
    return rope(in_query_or_key, token_positions)


def run_transformer_block(
    d_model: int,
    num_heads: int,
    d_ff: int,
    max_seq_len: int,
    theta: float,
    weights: dict[str, Tensor],
    in_features: Float[Tensor, " batch sequence_length d_model"],
) -> Float[Tensor, " batch sequence_length d_model"]:
    rope = RotaryPositionalEmbedding(theta, d_model // num_heads, max_seq_len)
    block = TransformerBlock(d_model, num_heads, d_ff, rope=rope)
    block.load_state_dict(weights)
    return block(in_features)


def run_transformer_lm(
    vocab_size: int,
    context_length: int,
    d_model: int,
    num_layers: int,
    num_heads: int,
    d_ff: int,
    rope_theta: float,
    weights: dict[str, Tensor],
    in_indices: Int[Tensor, " batch_size sequence_length"],
) -> Float[Tensor, " batch_size sequence_length vocab_size"]:
    config = ModelConfig(
        vocab_size=vocab_size,
        context_length=context_length,
        d_model=d_model,
        num_layers=num_layers,
        num_heads=num_heads,
        d_ff=d_ff,
        rope_theta=rope_theta,
    )
    model = TransformerLM(config)
    model.load_state_dict(weights)
    return model(in_indices)


def run_rmsnorm(
    d_model: int, eps: float, weights: Float[Tensor, " d_model"], in_features: Float[Tensor, " ... d_model"]
) -> Float[Tensor, " ... d_model"]:
    norm = RMSNorm(d_model, eps=eps)
    norm.load_state_dict({"weight": weights})
    return norm(in_features)


def run_silu(in_features: Float[Tensor, " ..."]) -> Float[Tensor, " ..."]:
    return silu(in_features)


def run_get_batch(
    dataset: npt.NDArray, batch_size: int, context_length: int, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    return get_batch(dataset, batch_size, context_length, device)


def run_softmax(in_features: Float[Tensor, " ..."], dim: int) -> Float[Tensor, " ..."]:
    return softmax(in_features, dim)


def run_cross_entropy(
    inputs: Float[Tensor, " batch_size vocab_size"], targets: Int[Tensor, " batch_size"]
) -> Float[Tensor, ""]:
    return cross_entropy(inputs, targets)


def run_gradient_clipping(parameters: Iterable[torch.nn.Parameter], max_l2_norm: float) -> None:
    clip_gradients(parameters, max_l2_norm)


def get_adamw_cls() -> Any:
    return AdamW


def run_get_lr_cosine_schedule(
    it: int, max_learning_rate: float, min_learning_rate: float, warmup_iters: int, cosine_cycle_iters: int
) -> float:
    return get_lr_cosine_schedule(it, max_learning_rate, min_learning_rate, warmup_iters, cosine_cycle_iters)


def run_save_checkpoint(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    iteration: int,
    out: str | os.PathLike | BinaryIO | IO[bytes],
) -> None:
    save_checkpoint(model, optimizer, iteration, out)


def run_load_checkpoint(
    src: str | os.PathLike | BinaryIO | IO[bytes], model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> int:
    return load_checkpoint(src, model, optimizer)


def get_tokenizer(
    vocab: dict[int, bytes], merges: list[tuple[bytes, bytes]], special_tokens: list[str] | None = None
) -> Tokenizer:
    return Tokenizer(vocab, merges, special_tokens)


def run_train_bpe(
    input_path: str | os.PathLike, vocab_size: int, special_tokens: list[str], **kwargs
) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    return train_bpe(input_path, vocab_size, special_tokens, **kwargs)


# --- scaling: expression hyperparameters and compute-optimal fits ------------------------------------------------


def run_eval_expression(expression: str, names: dict[str, float]) -> float:
    from cs336_basics.scaling.expressions import evaluate

    return evaluate(expression, names)


def run_isoflop_fit(records: list[dict]) -> dict:
    from cs336_basics.scaling.fit import isoflop_fit

    return isoflop_fit(records)


# --- Per-token analysis (issue 10): KL between next-token distributions --------------------------------------------


def run_token_kl(logits_p: Float[Tensor, "... vocab"], logits_q: Float[Tensor, "... vocab"]) -> Float[Tensor, "..."]:
    from cs336_basics.analysis.divergence import logits_kl

    return logits_kl(logits_p, logits_q)


# --- byte-level models and SpaceByte (issue 8) ------------------------------------------------------------------

SPACEBYTE_TEST_DEFAULTS: dict[str, Any] = {
    "vocab_size": 257, "context_length": 64, "d_model": 64, "num_heads": 2, "num_layers": 2,
    "d_local": 32, "num_local_layers": 2, "num_local_heads": 2, "global_context": 16,
}


def run_spacebyte_patch_starts(ids: Int[Tensor, " batch seq"]) -> Bool[Tensor, " batch seq"]:
    from cs336_basics.model import patch_starts

    return patch_starts(ids)


def get_spacebyte_lm(**overrides: Any) -> torch.nn.Module:
    """A small SpaceByteLM; any ModelConfig or SpaceByteConfig field can be overridden by name."""
    import dataclasses

    from cs336_basics.model import SpaceByteConfig, SpaceByteLM

    fields = SPACEBYTE_TEST_DEFAULTS | overrides
    nested = {f.name for f in dataclasses.fields(SpaceByteConfig)}
    spacebyte = SpaceByteConfig(**{k: v for k, v in fields.items() if k in nested})
    top = {k: v for k, v in fields.items() if k not in nested}
    return SpaceByteLM(ModelConfig(arch="spacebyte", spacebyte=spacebyte, **top))
