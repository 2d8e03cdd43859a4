"""HF transformers' LlamaForCausalLM of the same shape as one of our ModelConfigs: the benchmarks' reference.

Llama is our architecture (pre-norm RMSNorm, SwiGLU, RoPE, no biases, untied head), so only the implementation
differs. Weights are left at HF's own random init: the benchmarks measure speed, not outputs.
"""

from transformers import LlamaConfig, LlamaForCausalLM

from cs336_basics.model import ModelConfig


def hf_llama(
    config: ModelConfig, attn_implementation: str = "sdpa", use_cache: bool = True
) -> LlamaForCausalLM:
    hf_config = LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.d_model,
        intermediate_size=config.resolved_d_ff,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=config.context_length,
        rms_norm_eps=config.eps,
        rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
        tie_word_embeddings=False,
        use_cache=use_cache,
    )
    hf_config._attn_implementation = attn_implementation
    return LlamaForCausalLM(hf_config)
