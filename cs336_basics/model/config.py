"""ModelConfig (and SpaceByteConfig): the shape and variant of a language model, as plain data (no torch import, so the config and
every command's --help load fast)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

NORM_PLACEMENTS = ("pre", "post", "none")
POSITIONS = ("rope", "nope")
FFN_NAMES = ("swiglu", "silu")  # transformer.FFN_TYPES maps them to modules
ATTENTION_BACKEND_NAMES = ("scratch", "torch")  # attention.ATTENTION_BACKENDS maps them to functions


ARCHITECTURES = ("transformer", "spacebyte")
PATCHINGS = ("spacelike", "periodic")


@dataclass
class SpaceByteConfig:
    """SpaceByte's own settings (see model/spacebyte.py), read only when ModelConfig.arch == "spacebyte".

    The global blocks use the ModelConfig fields (d_model, num_layers, num_heads, d_ff); the local blocks use
    d_local, num_local_layers (half before, half after the global ones), num_local_heads, d_ff_local (None: the
    FFN's default width for d_local) and ModelConfig.attention_window. global_context caps the patches per
    sequence. patching "spacelike" starts a patch at word boundaries, "periodic" every patch_size bytes.
    """

    d_local: int = 32
    num_local_layers: int = 2
    num_local_heads: int = 2
    d_ff_local: int | None = None
    global_context: int = 16
    patching: Literal["spacelike", "periodic"] = "spacelike"
    patch_size: int = 6

    def __post_init__(self):
        for name in ("d_local", "num_local_heads", "global_context", "patch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.spacebyte.{name} must be >= 1, got {getattr(self, name)}")
        if self.num_local_layers < 0:
            raise ValueError(f"model.spacebyte.num_local_layers must be >= 0, got {self.num_local_layers}")
        if self.d_ff_local is not None and self.d_ff_local <= 0:
            raise ValueError(f"model.spacebyte.d_ff_local must be positive or None, got {self.d_ff_local}")
        if self.patching not in PATCHINGS:
            raise ValueError(f"model.spacebyte.patching must be one of {PATCHINGS}, got {self.patching!r}")
        if self.d_local % self.num_local_heads != 0:
            raise ValueError(f"model.spacebyte.d_local ({self.d_local}) must be divisible by num_local_heads "
                             f"({self.num_local_heads})")


@dataclass
class ModelConfig:
    """Shape and variant of a language model. Round-trips through dataclasses.asdict / ModelConfig(**d).

    d_ff=None picks the FFN's default width: 8/3·d_model rounded to a multiple of 64 for SwiGLU (1344 at 512),
    4·d_model for the plain SiLU FFN (same parameter count). See `resolved_d_ff`.
    arch picks the model class (see model/registry.py): "transformer" (TransformerLM, over BPE tokens or bytes)
    or "spacebyte" (SpaceByteLM, over bytes; its settings in `spacebyte`). attention_window W limits each
    position's attention to the last W positions (itself included) in the token-level layers; None is full.
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
    arch: Literal["transformer", "spacebyte"] = "transformer"
    attention_window: int | None = None
    spacebyte: SpaceByteConfig = field(default_factory=SpaceByteConfig)

    def __post_init__(self):
        if isinstance(self.spacebyte, dict):  # ModelConfig(**asdict(config)), or a checkpoint's JSON config
            self.spacebyte = SpaceByteConfig(**self.spacebyte)
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"ModelConfig.arch must be one of {ARCHITECTURES}, got {self.arch!r}")
        for name in ("vocab_size", "context_length", "d_model", "num_heads"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ModelConfig.{name} must be positive, got {getattr(self, name)}")
        # SpaceByte may have no global blocks (it is then a windowed byte Transformer)
        if self.num_layers < (0 if self.arch == "spacebyte" else 1):
            raise ValueError(f"ModelConfig.num_layers must be positive, got {self.num_layers}")
        if self.attention_window is not None and self.attention_window < 1:
            raise ValueError(f"ModelConfig.attention_window must be >= 1 or None, got {self.attention_window}")
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
        if self.arch == "spacebyte":
            self._check_spacebyte()

    def _check_spacebyte(self) -> None:
        sb = self.spacebyte
        if sb.d_local > self.d_model:
            raise ValueError(f"model.spacebyte.d_local ({sb.d_local}) must not exceed model.d_model "
                             f"({self.d_model}): the global blocks are the wide ones")
        if sb.patching == "periodic" and self.context_length % sb.patch_size != 0:
            raise ValueError(f"model.spacebyte.patch_size ({sb.patch_size}) must divide model.context_length "
                             f"({self.context_length}) with periodic patching")
        if self.positions == "rope" and (sb.d_local // sb.num_local_heads) % 2 != 0:
            raise ValueError(f"RoPE needs an even local head dimension, got d_local/num_local_heads = "
                             f"{sb.d_local // sb.num_local_heads}")
        if self.vocab_size < 256:
            raise ValueError(f"SpaceByte reads bytes: model.vocab_size must be at least 256, got {self.vocab_size}")

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
