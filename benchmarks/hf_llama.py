"""HF transformers' LlamaForCausalLM of the same shape as one of our ModelConfigs: the benchmarks' reference.

Llama is our architecture (pre-norm RMSNorm, SwiGLU, RoPE, no biases, untied head), so only the implementation
differs; the config comes from cs336_basics.hf, the exporter's. Weights are left at HF's own random init: the
benchmarks measure speed, not outputs.
"""

from transformers import LlamaConfig, LlamaForCausalLM

from cs336_basics.hf import llama_config
from cs336_basics.model import ModelConfig


def hf_llama(
    config: ModelConfig, attn_implementation: str = "sdpa", use_cache: bool = True
) -> LlamaForCausalLM:
    hf_config = LlamaConfig.from_dict({**llama_config(config), "use_cache": use_cache})
    hf_config._attn_implementation = attn_implementation
    return LlamaForCausalLM(hf_config)
