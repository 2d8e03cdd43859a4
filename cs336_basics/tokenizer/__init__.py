"""Byte-level BPE: training (naive oracle + fast), the Tokenizer, and encoding files into .npy arrays."""

from cs336_basics.tokenizer.tokenizer import EncodeResult, Tokenizer, encode_file
from cs336_basics.tokenizer.train_bpe import train_bpe, train_bpe_naive

__all__ = ["EncodeResult", "Tokenizer", "encode_file", "train_bpe", "train_bpe_naive"]
