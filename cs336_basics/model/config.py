"""ModelConfig: the shape and variant of a TransformerLM, as plain data (no torch import, so the config and
every command's --help load fast)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

NORM_PLACEMENTS = ("pre", "post", "none")
POSITIONS = ("rope", "nope")
FFN_NAMES = ("swiglu", "silu")  # transformer.FFN_TYPES maps them to modules
ATTENTION_BACKEND_NAMES = ("scratch", "torch")  # attention.ATTENTION_BACKENDS maps them to functions


@dataclass
class ModelConfig:
    """Shape and variant of a TransformerLM. Round-trips through dataclasses.asdict / ModelConfig(**d).

    d_ff=None picks the FFN's default width: 8/3·d_model rounded to a multiple of 64 for SwiGLU (1344 at 512),
    4·d_model for the plain SiLU FFN (same parameter count). See `resolved_d_ff`.
    """

    vocab_size: int = 10000
    context_length: int = 256
    d_model: int = 512
    num_layers: int = 4
    num_heads: int = 16
    d_ff: int | None = None
    rope_theta: float = 10000.0
    norm: Literal["pre", "post", "none"] = "pre"
    positions: Literal["rope", "nope"] = "rope"
    ffn: Literal["swiglu", "silu"] = "swiglu"
    tie_embeddings: bool = False
    attn_backend: Literal["scratch", "torch"] = "scratch"
    eps: float = 1e-5

    def __post_init__(self):
        for name in ("vocab_size", "context_length", "d_model", "num_layers", "num_heads"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ModelConfig.{name} must be positive, got {getattr(self, name)}")
        if self.d_ff is not None and self.d_ff <= 0:
            raise ValueError(f"ModelConfig.d_ff must be positive or None, got {self.d_ff}")
        for name, choices in (
            ("norm", NORM_PLACEMENTS),
            ("positions", POSITIONS),
            ("ffn", FFN_NAMES),
            ("attn_backend", ATTENTION_BACKEND_NAMES),
        ):
            if getattr(self, name) not in choices:
                raise ValueError(f"ModelConfig.{name} must be one of {choices}, got {getattr(self, name)!r}")
        if self.d_model % self.num_heads != 0:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})")
        if self.positions == "rope" and self.d_head % 2 != 0:
            raise ValueError(f"RoPE needs an even head dimension, got d_model/num_heads = {self.d_head}")

    @property
    def d_head(self) -> int:
        return self.d_model // self.num_heads

    @property
    def resolved_d_ff(self) -> int:
        """The FFN's hidden width: d_ff if given, else the default for the FFN type."""
        if self.d_ff is not None:
            return self.d_ff
        if self.ffn == "swiglu":
            return 64 * round(8 * self.d_model / 3 / 64)
        return 4 * self.d_model
