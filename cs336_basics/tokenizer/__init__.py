"""Byte-level BPE (placeholder until implemented)."""
Tokenizer = train_bpe = train_bpe_naive = None
