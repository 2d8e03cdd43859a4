"""Byte-level BPE: training (naive oracle + fast), the Tokenizer, and encoding files into .npy arrays; and the
ByteTokenizer of tokenizer-free models (load_tokenizer picks the class of a saved folder)."""

from cs336_basics.tokenizer.bytes import ByteTokenizer, load_tokenizer
from cs336_basics.tokenizer.tokenizer import EncodeResult, Tokenizer, encode_file
from cs336_basics.tokenizer.train_bpe import train_bpe, train_bpe_naive

__all__ = ["ByteTokenizer", "EncodeResult", "Tokenizer", "encode_file", "load_tokenizer", "train_bpe",
           "train_bpe_naive"]
