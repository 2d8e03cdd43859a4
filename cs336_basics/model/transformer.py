"""The Transformer language model: ModelConfig, TransformerBlock, TransformerLM and its KVCache.

Architecture variants (norm placement, positions, FFN type, tied embeddings, attention backend) are fields of
ModelConfig, resolved into concrete submodules once, in the constructors below; forward passes never branch on them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from cs336_basics.model.attention import (
    ATTENTION_BACKENDS,
    CausalMultiHeadSelfAttention,
    LayerKVCache,
    RotaryPositionalEmbedding,
)
from cs336_basics.model.layers import Embedding, Linear, RMSNorm, SiLUFFN, SwiGLU

NORM_PLACEMENTS = ("pre", "post", "none")
POSITIONS = ("rope", "nope")
FFN_TYPES = {"swiglu": SwiGLU, "silu": SiLUFFN}


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
            ("ffn", tuple(FFN_TYPES)),
            ("attn_backend", tuple(ATTENTION_BACKENDS)),
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


def _pre_norm_residual(x: Tensor, sublayer: Callable[[Tensor], Tensor], norm: nn.Module) -> Tensor:
    return x + sublayer(norm(x))


def _post_norm_residual(x: Tensor, sublayer: Callable[[Tensor], Tensor], norm: nn.Module) -> Tensor:
    return norm(x + sublayer(x))


class TransformerBlock(nn.Module):
    """Pre-norm block: h = x + Attn(RMSNorm(x)); y = h + FFN(RMSNorm(h)).

    norm="post" gives the original Transformer's y = Norm(x + Sublayer(x)); norm="none" drops the norms
    (ln1/ln2 become identities with no weights). ffn picks SwiGLU or the plain SiLU FFN.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        rope: RotaryPositionalEmbedding | None = None,
        *,
        norm: str = "pre",
        ffn: str = "swiglu",
        backend: str = "scratch",
        eps: float = 1e-5,
        window: int | None = None,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        if norm not in NORM_PLACEMENTS:
            raise ValueError(f"norm must be one of {NORM_PLACEMENTS}, got {norm!r}")
        if ffn not in FFN_TYPES:
            raise ValueError(f"ffn must be one of {tuple(FFN_TYPES)}, got {ffn!r}")
        self.attn = CausalMultiHeadSelfAttention(
            d_model, num_heads, rope, backend, device=device, dtype=dtype, window=window
        )
        self.ffn = FFN_TYPES[ffn](d_model, d_ff, device=device, dtype=dtype)
        if norm == "none":
            self.ln1, self.ln2 = nn.Identity(), nn.Identity()
        else:
            self.ln1 = RMSNorm(d_model, eps, device=device, dtype=dtype)
            self.ln2 = RMSNorm(d_model, eps, device=device, dtype=dtype)
        self._residual = _post_norm_residual if norm == "post" else _pre_norm_residual

    def forward(
        self,
        x: Float[Tensor, " ... seq d_model"],
        token_positions: Int[Tensor, " ... seq"] | None = None,
        kv_cache: LayerKVCache | None = None,
    ) -> Float[Tensor, " ... seq d_model"]:
        x = self._residual(x, lambda h: self.attn(h, token_positions, kv_cache), self.ln1)
        return self._residual(x, self.ffn, self.ln2)


class KVCache:
    """Per-layer keys and values for incremental decoding with TransformerLM.

        cache = model.new_kv_cache()
        logits = model(prompt, kv_cache=cache)          # (batch, prompt_len, vocab); cache.length == prompt_len
        logits = model(next_token[:, None], kv_cache=cache)  # positions continue at cache.length

    A cache belongs to one batch of sequences; start a new one for a new batch.
    """

    def __init__(self, num_layers: int):
        self.layers = [LayerKVCache() for _ in range(num_layers)]

    @property
    def length(self) -> int:
        """How many positions are cached."""
        return self.layers[0].length


def check_token_ids(in_indices: Tensor, offset: int, config: ModelConfig) -> None:
    """A ValueError unless in_indices is an integer tensor of ids in [0, vocab_size) that fits, after `offset`
    cached positions, in the context."""
    if in_indices.is_floating_point() or in_indices.is_complex() or in_indices.dtype == torch.bool:
        raise ValueError(f"token ids must be an integer tensor, got dtype {in_indices.dtype}")
    if in_indices.dim() == 0:
        raise ValueError("token ids need at least one (sequence) dimension")
    seq_len, context = in_indices.shape[-1], config.context_length
    if offset + seq_len > context:
        cached = f" after {offset} cached positions" if offset else ""
        raise ValueError(f"sequence of {seq_len} tokens{cached} exceeds context_length {context}")
    if in_indices.numel() > 0:
        lo, hi = torch.aminmax(in_indices)
        lo, hi = int(lo), int(hi)  # a device-to-host copy of two numbers
        if lo < 0 or hi >= config.vocab_size:
            raise ValueError(f"token ids must lie in [0, vocab_size={config.vocab_size}), got min {lo} and max {hi}")


class TransformerLM(nn.Module):
    """Token embeddings -> num_layers TransformerBlocks -> final RMSNorm -> LM head (logits over the vocabulary).

    With tie_embeddings, token_embeddings.weight and lm_head.weight are the same Parameter: the state dict still
    lists both names (loading either form of state dict written by this class works), and the shared matrix is
    initialized like the LM head (N(0, 2/(d_model+vocab))), since σ=1 output weights would start with logits of
    size ~sqrt(d_model).
    """

    def __init__(
        self, config: ModelConfig, device: torch.device | None = None, dtype: torch.dtype | None = None
    ):
        super().__init__()
        self.config = config
        c = config
        self.token_embeddings = Embedding(c.vocab_size, c.d_model, device=device, dtype=dtype)
        rope = (
            RotaryPositionalEmbedding(c.rope_theta, c.d_head, c.context_length, device=device)
            if c.positions == "rope"
            else None
        )
        self.layers = nn.ModuleList(
            TransformerBlock(
                c.d_model,
                c.num_heads,
                c.resolved_d_ff,
                rope,
                norm=c.norm,
                ffn=c.ffn,
                backend=c.attn_backend,
                eps=c.eps,
                window=c.attention_window,
                device=device,
                dtype=dtype,
            )
            for _ in range(c.num_layers)
        )
        self.ln_final = (
            nn.Identity() if c.norm == "none" else RMSNorm(c.d_model, c.eps, device=device, dtype=dtype)
        )
        self.lm_head = Linear(c.d_model, c.vocab_size, device=device, dtype=dtype)
        if c.tie_embeddings:
            self.token_embeddings.weight = self.lm_head.weight

    @classmethod
    def from_hf(cls, folder: str, device: torch.device | str = "cpu") -> TransformerLM:
        """Load a Llama-format Hugging Face folder (config.json + safetensors); see cs336_basics.hf."""
        from cs336_basics.hf import load_llama  # interop code, only when asked for

        return load_llama(folder, device)

    def new_kv_cache(self) -> KVCache:
        """An empty cache for incremental decoding (see KVCache)."""
        return KVCache(len(self.layers))

    def target_mask(self, in_indices: Int[Tensor, " ... seq"]) -> None:
        """Which targets the loss counts: every one (None). SpaceByteLM leaves some out (see there)."""
        return None

    def forward(
        self, in_indices: Int[Tensor, " ... seq"], kv_cache: KVCache | None = None
    ) -> Float[Tensor, " ... seq vocab_size"]:
        """Logits for the next token at every position. With a kv_cache, in_indices are the tokens that follow the
        cached ones; the cache is extended in place."""
        offset = 0 if kv_cache is None else kv_cache.length
        self._check_input(in_indices, offset)
        seq_len = in_indices.shape[-1]
        positions = torch.arange(offset, offset + seq_len, device=in_indices.device)
        layer_caches = [None] * len(self.layers) if kv_cache is None else kv_cache.layers
        x = self.token_embeddings(in_indices)
        for layer, layer_cache in zip(self.layers, layer_caches, strict=True):
            x = layer(x, positions, layer_cache)
        return self.lm_head(self.ln_final(x))

    @torch.compiler.disable  # runs eagerly (its .item() calls would break the graph anyway); the rest compiles
    def _check_input(self, in_indices: Tensor, offset: int) -> None:
        check_token_ids(in_indices, offset, self.config)

    def extra_repr(self) -> str:
        return f"config={self.config}"
