"""SpaceByte (Slagle 2024, arXiv 2404.14408): a byte-level Transformer whose wide "global" blocks run only at
patch starts (word boundaries), between two halves of narrow "local" blocks that see every byte.

    x = Embed(bytes)                                  (batch, seq, d_local)
    x = LocalBlocks_1(x)                              windowed causal attention over every byte
    g = GlobalBlocks(W_in · x[patch starts])          (batch, patches, d_model), full causal attention over patches
    x[patch starts] += W_out · RMSNorm(g)
    logits = LMHead(RMSNorm(LocalBlocks_2(x)))

A patch starts at a spacelike byte that follows a non-spacelike one (see `patch_starts`), or every patch_size bytes
with periodic patching. At most global_context patches per sequence go through the global blocks; the targets after
the first left-out patch start are left out of the loss (`target_mask`). Generation is cached (`SpaceByteCache`):
the local layers keep their keys and values, and the global stream advances by one patch whenever a new byte
starts one.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

from cs336_basics.model.attention import LayerKVCache, RotaryPositionalEmbedding
from cs336_basics.model.layers import Embedding, Linear, RMSNorm
from cs336_basics.model.config import ModelConfig
from cs336_basics.model.transformer import TransformerBlock, check_token_ids

NUM_BYTES = 256


def _not_spacelike_table() -> Tensor:
    """not_spacelike[b] = True for ASCII letters and digits and UTF-8 continuation bytes (0x80-0xBF)."""
    table = torch.zeros(NUM_BYTES, dtype=torch.bool)
    for lo, hi in ((ord("0"), ord("9")), (ord("A"), ord("Z")), (ord("a"), ord("z")), (0x80, 0xBF)):
        table[lo : hi + 1] = True
    return table


_NOT_SPACELIKE = _not_spacelike_table()  # read-only


def spacelike(ids: Int[Tensor, " ..."]) -> Bool[Tensor, " ..."]:
    """A byte is spacelike unless it is an ASCII letter or digit or a UTF-8 continuation byte; ids >= 256 (special
    tokens) are spacelike. e.g. b"a b\\xc3\\xa9," -> [F, T, F, T, F, T] (0xC3 starts a character: spacelike)."""
    table = _NOT_SPACELIKE.to(ids.device)
    return ~table[ids.clamp(max=NUM_BYTES - 1)] | (ids >= NUM_BYTES)


def patch_starts(
    ids: Int[Tensor, " batch seq"], previous: Int[Tensor, " batch"] | None = None
) -> Bool[Tensor, " batch seq"]:
    """Position t starts a patch iff it is spacelike and (t = 0 or t-1 is not spacelike), or holds a special token.

    "ab, cd" -> starts at 2 (","), not at 3 (" ", after the spacelike ","). `previous` is the id before ids[:, 0]
    (when ids continue a cached sequence), so position 0 is judged like any other.
    """
    space = spacelike(ids)
    before = torch.zeros_like(space[..., :1]) if previous is None else spacelike(previous)[..., None]
    space_before = torch.cat((before, space[..., :-1]), dim=-1)
    return (space & ~space_before) | (ids >= NUM_BYTES)


class SpaceByteCache:
    """Per-row state for cached decoding: every layer's keys and values, the patches used and the last byte.

    Rows of a batch start patches at different steps, so each row keeps its own caches (see SpaceByteLM.forward).
    """

    def __init__(self, num_local_layers: int, num_global_layers: int):
        self.num_local_layers, self.num_global_layers = num_local_layers, num_global_layers
        self.rows: list[_RowCache] = []

    @property
    def length(self) -> int:
        """How many positions are cached."""
        return self.rows[0].length if self.rows else 0


class _RowCache:
    def __init__(self, num_local_layers: int, num_global_layers: int):
        self.local = [LayerKVCache() for _ in range(num_local_layers)]
        self.global_ = [LayerKVCache() for _ in range(num_global_layers)]
        self.length = 0  # bytes seen
        self.patches = 0  # patches sent through the global blocks
        self.last_id: Tensor | None = None  # (1,): the last byte seen, for patch_starts


class SpaceByteLM(nn.Module):
    """The SpaceByte language model; see the module docstring. config.arch must be "spacebyte".

    State-dict names: token_embeddings, local_in.{i}, global_in, global_layers.{i}, global_norm, global_out,
    local_out.{i}, ln_final, lm_head. With num_layers = 0 there is no global stream at all, and the model is a
    byte-level Transformer with windowed attention (layers local_in + local_out).
    """

    def __init__(self, config: ModelConfig, device: torch.device | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        self.config = c = config
        sb = c.spacebyte
        d_ff_local = sb.d_ff_local or ModelConfig(d_model=sb.d_local, num_heads=1, ffn=c.ffn).resolved_d_ff

        def rope(d_head: int) -> RotaryPositionalEmbedding | None:
            return RotaryPositionalEmbedding(c.rope_theta, d_head, c.context_length, device) \
                if c.positions == "rope" else None

        def blocks(n: int, d: int, heads: int, d_ff: int, window: int | None, rope_: nn.Module | None):
            return nn.ModuleList(
                TransformerBlock(d, heads, d_ff, rope_, norm=c.norm, ffn=c.ffn, backend=c.attn_backend, eps=c.eps,
                                 window=window, device=device, dtype=dtype)
                for _ in range(n)
            )

        def norm(d: int) -> nn.Module:
            return nn.Identity() if c.norm == "none" else RMSNorm(d, c.eps, device=device, dtype=dtype)

        local_rope = rope(sb.d_local // sb.num_local_heads)
        before = sb.num_local_layers // 2
        self.token_embeddings = Embedding(c.vocab_size, sb.d_local, device=device, dtype=dtype)
        self.local_in = blocks(before, sb.d_local, sb.num_local_heads, d_ff_local, c.attention_window, local_rope)
        if c.num_layers > 0:
            self.global_in = Linear(sb.d_local, c.d_model, device=device, dtype=dtype)
            self.global_layers = blocks(c.num_layers, c.d_model, c.num_heads, c.resolved_d_ff, None, rope(c.d_head))
            self.global_norm = norm(c.d_model)
            self.global_out = Linear(c.d_model, sb.d_local, device=device, dtype=dtype)
        else:
            self.global_layers = nn.ModuleList()
        self.local_out = blocks(sb.num_local_layers - before, sb.d_local, sb.num_local_heads, d_ff_local,
                                c.attention_window, local_rope)
        self.ln_final = norm(sb.d_local)
        self.lm_head = Linear(sb.d_local, c.vocab_size, device=device, dtype=dtype)
        if c.tie_embeddings:
            self.token_embeddings.weight = self.lm_head.weight

    # ------------------------------------------------------------------------------------------------ patches

    def starts(
        self, ids: Int[Tensor, " batch seq"], offset: int = 0, previous: Tensor | None = None
    ) -> Bool[Tensor, " batch seq"]:
        """Patch starts of ids at positions offset, offset + 1, ... (spacelike or periodic patching)."""
        sb = self.config.spacebyte
        if sb.patching == "periodic":
            positions = torch.arange(offset, offset + ids.shape[-1], device=ids.device)
            return (positions % sb.patch_size == 0).expand(ids.shape)
        return patch_starts(ids, previous)

    def target_mask(self, in_indices: Int[Tensor, " batch seq"]) -> Bool[Tensor, " batch seq"] | None:
        """True for the targets the loss counts: those whose latest patch start is among the first global_context.

        (With no global blocks every target counts: None.)"""
        if not self.global_layers:
            return None
        counts = self.starts(in_indices).cumsum(dim=-1)
        return counts <= self.config.spacebyte.global_context

    # ------------------------------------------------------------------------------------------------ forward

    def new_kv_cache(self) -> SpaceByteCache:
        """An empty cache for incremental decoding: model(prompt, kv_cache=cache), then model(next, cache)..."""
        return SpaceByteCache(len(self.local_in) + len(self.local_out), len(self.global_layers))

    def forward(
        self, in_indices: Int[Tensor, " batch seq"], kv_cache: SpaceByteCache | None = None
    ) -> Float[Tensor, " batch seq vocab_size"]:
        """Logits for the next byte at every position. With a kv_cache, in_indices continue the cached bytes."""
        if in_indices.dim() == 1:
            return self(in_indices[None], kv_cache)[0]
        if kv_cache is not None:
            if not kv_cache.rows:
                kv_cache.rows = [_RowCache(kv_cache.num_local_layers, kv_cache.num_global_layers)
                                 for _ in range(in_indices.shape[0])]
            if len(kv_cache.rows) != in_indices.shape[0]:
                raise ValueError(f"the cache holds {len(kv_cache.rows)} rows, got a batch of {in_indices.shape[0]}")
            return torch.cat([self._forward_row(row[None], cache) for row, cache in zip(in_indices, kv_cache.rows)])
        self._check_input(in_indices, 0)
        positions = torch.arange(in_indices.shape[-1], device=in_indices.device)
        x = self.token_embeddings(in_indices)
        for layer in self.local_in:
            x = layer(x, positions)
        if self.global_layers:
            selected = self.target_mask(in_indices) & self.starts(in_indices)  # (B, T): the first global_context
            num = int(selected.sum(dim=-1).max())
            if num > 0:
                # selected positions first, in order; rows with fewer patches are padded with unselected positions
                # at the end, which only attend to earlier patches and are never added back
                index = torch.argsort((~selected).to(torch.uint8), dim=-1, stable=True)[:, :num]  # (B, P)
                x = self._global(x, index, selected.gather(-1, index), index, None)
        for layer in self.local_out:
            x = layer(x, positions)
        return self.lm_head(self.ln_final(x))

    def _global(
        self,
        x: Float[Tensor, " batch seq d_local"],
        index: Int[Tensor, " batch patches"],
        valid: Bool[Tensor, " batch patches"],
        positions: Int[Tensor, " batch patches"],
        caches: list[LayerKVCache] | None,
    ) -> Float[Tensor, " batch seq d_local"]:
        """x with W_out · RMSNorm(GlobalBlocks(W_in · x[index])) added at the valid patch positions."""
        d_local = x.shape[-1]
        g = self.global_in(x.gather(1, index[..., None].expand(-1, -1, d_local)))  # (B, P, d_model)
        for i, layer in enumerate(self.global_layers):
            g = layer(g, positions, None if caches is None else caches[i])
        update = self.global_out(self.global_norm(g)).to(x.dtype) * valid[..., None]  # (B, P, d_local)
        # (cast: under bf16 autocast the update is bf16 while the residual stream may be float32)
        return x.scatter_add(1, index[..., None].expand(-1, -1, d_local), update)

    def _forward_row(self, ids: Int[Tensor, " 1 seq"], cache: _RowCache) -> Float[Tensor, " 1 seq vocab_size"]:
        """One row continued after its cached bytes: local layers with their caches; the new patch starts (while
        the global_context lasts) advance the global stream, whose caches hold the earlier patches."""
        offset = cache.length
        self._check_input(ids, offset)
        positions = torch.arange(offset, offset + ids.shape[-1], device=ids.device)
        x = self.token_embeddings(ids)
        for layer, layer_cache in zip(self.local_in, cache.local, strict=False):
            x = layer(x, positions, layer_cache)
        if self.global_layers:
            starts = self.starts(ids, offset, cache.last_id)
            selected = starts & (starts.cumsum(dim=-1) <= self.config.spacebyte.global_context - cache.patches)
            index = selected[0].nonzero().T  # (1, P): the new patch starts, in order
            if index.shape[-1] > 0:
                x = self._global(x, index, torch.ones_like(index, dtype=torch.bool), index + offset, cache.global_)
                cache.patches += index.shape[-1]
        for layer, layer_cache in zip(self.local_out, cache.local[len(self.local_in):], strict=True):
            x = layer(x, positions, layer_cache)
        cache.length += ids.shape[-1]
        cache.last_id = ids[0, -1:]
        return self.lm_head(self.ln_final(x))

    @torch.compiler.disable
    def _check_input(self, in_indices: Tensor, offset: int) -> None:
        check_token_ids(in_indices, offset, self.config)
        if in_indices.dim() != 2:
            raise ValueError(f"SpaceByteLM takes (batch, seq) ids, got shape {tuple(in_indices.shape)}")

    def extra_repr(self) -> str:
        return f"config={self.config}"

