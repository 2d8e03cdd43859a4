"""Placeholder until implemented."""
ModelConfig = Linear = Embedding = RMSNorm = SwiGLU = RotaryPositionalEmbedding = None
CausalMultiHeadSelfAttention = TransformerBlock = TransformerLM = scaled_dot_product_attention = None
