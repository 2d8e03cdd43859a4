"""Model components against independent references: torch.nn.functional, formulas written out here, a
complex-number RoPE, and HF transformers' LlamaForCausalLM for the whole network."""

import dataclasses
import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cs336_basics.model import (
    CausalMultiHeadSelfAttention,
    Embedding,
    Linear,
    ModelConfig,
    RMSNorm,
    RotaryPositionalEmbedding,
    SiLUFFN,
    SwiGLU,
    TransformerBlock,
    TransformerLM,
    scaled_dot_product_attention,
)
from tests import adapters

leading_dims = st.lists(st.integers(1, 4), min_size=0, max_size=3)
TINY = {"vocab_size": 97, "context_length": 32, "d_model": 64, "num_layers": 2, "num_heads": 4, "d_ff": 160}
TINY["rope_theta"] = 1000.0


def _randomize_norm_gains(model: torch.nn.Module) -> None:
    """RMSNorm gains start at 1; make them random so a test would notice a gain applied wrongly."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, RMSNorm):
                m.weight.uniform_(0.5, 1.5)


# --- primitives --------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(lead=leading_dims, d_in=st.integers(1, 16), d_out=st.integers(1, 16), seed=st.integers(0, 999))
def test_linear_matches_f_linear(lead, d_in, d_out, seed):
    torch.manual_seed(seed)
    layer = Linear(d_in, d_out)
    x = torch.randn(*lead, d_in)
    assert layer.weight.shape == (d_out, d_in)
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight))


@settings(max_examples=25, deadline=None)
@given(lead=leading_dims, vocab=st.integers(1, 30), dim=st.integers(1, 8), seed=st.integers(0, 999))
def test_embedding_matches_f_embedding(lead, vocab, dim, seed):
    torch.manual_seed(seed)
    emb = Embedding(vocab, dim)
    ids = torch.randint(0, vocab, (*lead, 3))
    torch.testing.assert_close(emb(ids), F.embedding(ids, emb.weight))


def _truncated_std(sigma: float) -> float:
    """Std of N(0, sigma^2) cut at ±3 sigma: sigma * sqrt(1 - 2·3·pdf(3) / (cdf(3) - cdf(-3)))."""
    pdf3 = math.exp(-4.5) / math.sqrt(2 * math.pi)
    mass = math.erf(3 / math.sqrt(2))
    return sigma * math.sqrt(1 - 6 * pdf3 / mass)


def test_init_statistics_match_the_spec():
    torch.manual_seed(0)
    lin = Linear(300, 500)
    sigma = math.sqrt(2 / (300 + 500))
    assert lin.weight.std().item() == pytest.approx(_truncated_std(sigma), rel=0.01)
    assert lin.weight.abs().max().item() <= 3 * sigma + 1e-7
    assert lin.weight.abs().max().item() > 2.9 * sigma  # really cut at 3σ, not narrower
    assert abs(lin.weight.mean().item()) < 0.01 * sigma * 3
    emb = Embedding(1000, 200)
    assert emb.weight.std().item() == pytest.approx(_truncated_std(1.0), rel=0.01)
    assert 2.9 < emb.weight.abs().max().item() <= 3.0
    assert torch.equal(RMSNorm(7).weight, torch.ones(7))


@settings(max_examples=25, deadline=None)
@given(lead=leading_dims, d=st.integers(1, 32), eps=st.sampled_from([1e-5, 1e-2]), seed=st.integers(0, 999))
def test_rmsnorm_matches_the_formula(lead, d, eps, seed):
    torch.manual_seed(seed)
    norm = RMSNorm(d, eps=eps)
    torch.nn.init.uniform_(norm.weight, 0.5, 1.5)
    x = torch.randn(*lead, d) * 3
    x64 = x.double()
    expected = x64 / torch.sqrt((x64**2).mean(-1, keepdim=True) + eps) * norm.weight.double()
    torch.testing.assert_close(norm(x), expected.float())


def test_rmsnorm_computes_in_float32_and_returns_the_input_dtype():
    norm = RMSNorm(64)
    x = (torch.randn(4, 64) * 100).bfloat16()
    out = norm(x)
    assert out.dtype == torch.bfloat16
    x32 = x.float()
    expected = (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-5)).bfloat16()
    torch.testing.assert_close(out, expected, atol=0, rtol=0)


def test_feed_forwards_match_their_formulas():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16)
    swiglu, plain = SwiGLU(16, 40), SiLUFFN(16, 40)
    gated = F.silu(F.linear(x, swiglu.w1.weight)) * F.linear(x, swiglu.w3.weight)
    torch.testing.assert_close(swiglu(x), F.linear(gated, swiglu.w2.weight))
    torch.testing.assert_close(plain(x), F.linear(F.silu(F.linear(x, plain.w1.weight)), plain.w2.weight))


# --- RoPE ------------------------------------------------------------------------------------------------------


def _rope_complex(x, positions, theta):
    """Independent formulation: pair (x_2k, x_2k+1) is the complex number x_2k + i·x_2k+1, multiplied by
    exp(i · pos · theta^(-2k/d))."""
    d = x.shape[-1]
    z = torch.view_as_complex(x.double().reshape(*x.shape[:-1], d // 2, 2).contiguous())
    freqs = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angle = positions.double()[..., None] * freqs
    return torch.view_as_real(z * torch.polar(torch.ones_like(angle), angle)).reshape(x.shape).float()


@settings(max_examples=25, deadline=None)
@given(
    batch=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    seq=st.integers(1, 12),
    half_d=st.integers(1, 8),
    theta=st.sampled_from([10.0, 10000.0]),
    per_batch_positions=st.booleans(),
    seed=st.integers(0, 999),
)
def test_rope_matches_complex_rotation(batch, seq, half_d, theta, per_batch_positions, seed):
    g = torch.Generator().manual_seed(seed)
    d, max_len = 2 * half_d, 64
    x = torch.randn(*batch, seq, d, generator=g)
    # arbitrary (unsorted, repeated) positions, either one row shared by the batch or one row per sequence
    pos_shape = (*batch, seq) if per_batch_positions else (seq,)
    positions = torch.randint(0, max_len, pos_shape, generator=g)
    rope = RotaryPositionalEmbedding(theta, d, max_len)
    torch.testing.assert_close(rope(x, positions), _rope_complex(x, positions.expand(*batch, seq), theta))


def test_rope_buffers_are_not_in_the_state_dict_and_odd_dims_are_rejected():
    assert RotaryPositionalEmbedding(10000.0, 8, 16).state_dict() == {}
    with pytest.raises(ValueError, match="even"):
        RotaryPositionalEmbedding(10000.0, 7, 16)


# --- attention ------------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    lead=leading_dims, q=st.integers(1, 9), k=st.integers(1, 9), d=st.integers(1, 8), seed=st.integers(0, 999)
)
def test_sdpa_matches_torch_with_and_without_mask(lead, q, k, d, seed):
    g = torch.Generator().manual_seed(seed)
    Q, K, V = (
        torch.randn(*lead, q, d, generator=g),
        torch.randn(*lead, k, d, generator=g),
        torch.randn(*lead, k, 5, generator=g),
    )
    torch.testing.assert_close(scaled_dot_product_attention(Q, K, V), F.scaled_dot_product_attention(Q, K, V))
    mask = torch.rand(*lead, q, k, generator=g) > 0.5
    mask[..., 0] = True  # every query may attend somewhere, otherwise the row is undefined
    expected = F.scaled_dot_product_attention(Q, K, V, attn_mask=mask)
    torch.testing.assert_close(scaled_dot_product_attention(Q, K, V, mask), expected)


def _naive_causal_mha(attn, x):
    """Per-head loop with torch ops: an independent reference for CausalMultiHeadSelfAttention without RoPE."""
    heads, seq = attn.num_heads, x.shape[-2]
    q, k, v = (F.linear(x, p.weight).chunk(heads, dim=-1) for p in (attn.q_proj, attn.k_proj, attn.v_proj))
    causal = torch.ones(seq, seq, dtype=torch.bool).tril()
    outs = [F.scaled_dot_product_attention(q[h], k[h], v[h], attn_mask=causal) for h in range(heads)]
    return F.linear(torch.cat(outs, dim=-1), attn.output_proj.weight)


@pytest.mark.parametrize("backend", ["scratch", "torch"])
def test_multihead_attention_matches_per_head_loop(backend):
    torch.manual_seed(0)
    attn = CausalMultiHeadSelfAttention(32, 4, backend=backend)
    x = torch.randn(2, 3, 10, 32)  # two leading batch dims
    torch.testing.assert_close(attn(x), _naive_causal_mha(attn, x))


def test_attention_backends_agree_with_rope_and_bad_arguments_are_rejected():
    torch.manual_seed(0)
    rope = RotaryPositionalEmbedding(10000.0, 8, 32)
    scratch = CausalMultiHeadSelfAttention(32, 4, rope=rope, backend="scratch")
    fused = CausalMultiHeadSelfAttention(32, 4, rope=rope, backend="torch")
    fused.load_state_dict(scratch.state_dict())
    x = torch.randn(3, 20, 32)
    positions = torch.randint(0, 32, (3, 20))
    torch.testing.assert_close(scratch(x, positions), fused(x, positions))
    with pytest.raises(ValueError, match="divisible"):
        CausalMultiHeadSelfAttention(30, 4)
    with pytest.raises(ValueError, match="backend"):
        CausalMultiHeadSelfAttention(32, 4, backend="flash")


# --- the whole model vs HF Llama ------------------------------------------------------------------------------


def _to_hf_llama(model: TransformerLM):
    """An HF LlamaForCausalLM with our architecture and weights (converted by cs336_basics.hf, which permutes
    W_q and W_k from our interleaved RoPE pairs to Llama's rotate-half layout); HF's eager attention is the
    reference."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from cs336_basics.hf import llama_config, to_llama_state

    hf_config = LlamaConfig.from_dict(llama_config(model.config))
    hf_config._attn_implementation = "eager"
    hf = LlamaForCausalLM(hf_config).eval()
    hf.load_state_dict(to_llama_state(model), strict=True)
    return hf


@pytest.mark.parametrize("backend", ["scratch", "torch"])
def test_transformer_lm_matches_hf_llama(backend):
    torch.manual_seed(0)
    model = TransformerLM(ModelConfig(**TINY, attn_backend=backend)).eval()
    _randomize_norm_gains(model)
    hf = _to_hf_llama(model)
    ids = torch.randint(0, TINY["vocab_size"], (3, TINY["context_length"]))
    with torch.no_grad():
        ours, theirs = model(ids), hf(input_ids=ids).logits
    assert ours.shape == (3, TINY["context_length"], TINY["vocab_size"])
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


# --- the whole model: behaviour ---------------------------------------------------------------------------------


def test_block_adapter_names_and_pre_norm_formula():
    torch.manual_seed(0)
    block = TransformerBlock(32, 4, 48)
    assert sorted(block.state_dict()) == sorted(
        f"{m}.weight"
        for m in ["attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.output_proj", "ln1", "ffn.w1", "ffn.w2"]
        + ["ffn.w3", "ln2"]
    )
    x = torch.randn(2, 6, 32)
    h = x + block.attn(block.ln1(x))
    torch.testing.assert_close(block(x), h + block.ffn(block.ln2(h)))


def test_post_norm_block_formula():
    torch.manual_seed(0)
    block = TransformerBlock(32, 4, 48, norm="post")
    x = torch.randn(2, 6, 32)
    h = block.ln1(x + block.attn(x))
    torch.testing.assert_close(block(x), block.ln2(h + block.ffn(h)))


def test_gradients_reach_every_parameter_and_are_finite():
    torch.manual_seed(0)
    model = TransformerLM(ModelConfig(**TINY))
    ids = torch.randint(0, TINY["vocab_size"], (2, 16))
    F.cross_entropy(model(ids).flatten(0, 1), ids.roll(-1, dims=1).flatten()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


VARIANTS = list(
    itertools.product(
        ["pre", "post", "none"], ["rope", "nope"], ["swiglu", "silu"], [False, True], ["scratch", "torch"]
    )
)


@pytest.mark.parametrize("norm,positions,ffn,tie,backend", VARIANTS)
def test_every_variant_builds_runs_and_trains(norm, positions, ffn, tie, backend):
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=50, context_length=16, d_model=32, num_layers=2, num_heads=4,
        norm=norm, positions=positions, ffn=ffn, tie_embeddings=tie, attn_backend=backend,
    )  # fmt: skip
    model = TransformerLM(config)
    ids = torch.randint(0, 50, (2, 16))
    logits = model(ids)
    assert logits.shape == (2, 16, 50) and torch.isfinite(logits).all()
    logits.logsumexp(-1).mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    keys = model.state_dict().keys()
    assert ("layers.0.ln1.weight" in keys) == (norm != "none")
    assert ("layers.0.ffn.w3.weight" in keys) == (ffn == "swiglu")
    assert (model.lm_head.weight is model.token_embeddings.weight) == tie
    # a state dict round-trips into a fresh model of the same config
    fresh = TransformerLM(config)
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(fresh(ids), logits)


def test_tied_embeddings_share_one_tensor_and_use_the_head_init():
    torch.manual_seed(0)
    model = TransformerLM(ModelConfig(**TINY | {"tie_embeddings": True}))
    assert model.token_embeddings.weight is model.lm_head.weight
    n_params = sum(p.numel() for p in model.parameters())  # parameters() deduplicates shared tensors
    untied = sum(p.numel() for p in TransformerLM(ModelConfig(**TINY)).parameters())
    assert n_params == untied - TINY["vocab_size"] * TINY["d_model"]
    sigma = math.sqrt(2 / (TINY["vocab_size"] + TINY["d_model"]))
    assert model.lm_head.weight.abs().max().item() <= 3 * sigma + 1e-7


def test_nope_model_is_not_position_aware_beyond_causality():
    torch.manual_seed(0)
    model = TransformerLM(ModelConfig(**TINY | {"positions": "nope"}))
    ids = torch.randint(0, 97, (1, 8))
    assert model.layers[0].attn.rope is None
    assert torch.isfinite(model(ids)).all()


def test_config_round_trips_and_resolves_d_ff():
    config = ModelConfig(**TINY | {"norm": "post", "tie_embeddings": True})
    assert ModelConfig(**dataclasses.asdict(config)) == config
    assert ModelConfig(d_model=512).resolved_d_ff == 1344
    assert ModelConfig(d_model=768).resolved_d_ff == 2048
    assert ModelConfig(d_model=512, ffn="silu").resolved_d_ff == 2048
    assert ModelConfig(d_model=512, d_ff=1000).resolved_d_ff == 1000


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"d_model": 100, "num_heads": 16}, "divisible"),
        ({"norm": "layer"}, "norm"),
        ({"positions": "alibi"}, "positions"),
        ({"ffn": "gelu"}, "ffn"),
        ({"attn_backend": "flash"}, "attn_backend"),
        ({"num_layers": 0}, "num_layers"),
        ({"d_ff": -1}, "d_ff"),
        ({"d_model": 12, "num_heads": 4}, "even"),
    ],
)
def test_bad_config_raises_a_clear_value_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**overrides)


def test_bad_input_raises_a_clear_value_error():
    model = TransformerLM(ModelConfig(**TINY))
    with pytest.raises(ValueError, match="context_length"):
        model(torch.zeros(1, TINY["context_length"] + 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"vocab_size=97\).*max 97"):
        model(torch.tensor([[1, 2, 97]]))
    with pytest.raises(ValueError, match="min -1"):
        model(torch.tensor([[-1, 2]]))
    with pytest.raises(ValueError, match="integer"):
        model(torch.zeros(1, 4))


@pytest.mark.parametrize("backend", ["scratch", "torch"])
def test_kv_cache_decoding_matches_full_recompute(backend):
    torch.manual_seed(0)
    model = TransformerLM(ModelConfig(**TINY, attn_backend=backend)).eval()
    ids = torch.randint(0, 97, (2, 20))
    with torch.no_grad():
        full = model(ids)
        cache = model.new_kv_cache()
        steps = [model(ids[:, :5], kv_cache=cache)]  # the prompt in one go
        assert cache.length == 5
        steps.append(model(ids[:, 5:9], kv_cache=cache))  # a multi-token chunk after a cache
        steps += [model(ids[:, i : i + 1], kv_cache=cache) for i in range(9, 20)]  # then one token at a time
    assert cache.length == 20
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_kv_cache_refuses_to_grow_past_the_context():
    model = TransformerLM(ModelConfig(**TINY))
    cache = model.new_kv_cache()
    model(torch.zeros(1, 30, dtype=torch.long), kv_cache=cache)
    model(torch.zeros(1, 2, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match="after 32 cached positions exceeds context_length 32"):
        model(torch.zeros(1, 1, dtype=torch.long), kv_cache=cache)


def test_scratch_path_uses_no_torch_shortcuts(monkeypatch):
    """The default path is built from primitives: the forbidden torch functions are never called."""

    def forbidden(*args, **kwargs):
        raise AssertionError("torch shortcut called in the scratch path")

    shortcuts = [
        "linear",
        "embedding",
        "softmax",
        "log_softmax",
        "scaled_dot_product_attention",
        "cross_entropy",
    ]
    for name in [*shortcuts, "silu"]:
        monkeypatch.setattr(F, name, forbidden)
    torch.manual_seed(0)
    model = TransformerLM(ModelConfig(**TINY))
    model(torch.randint(0, 97, (2, 16))).sum().backward()


def test_backends_agree_on_the_whole_model_and_its_gradients():
    torch.manual_seed(0)
    scratch = TransformerLM(ModelConfig(**TINY))
    fused = TransformerLM(ModelConfig(**TINY | {"attn_backend": "torch"}))
    fused.load_state_dict(scratch.state_dict())
    ids = torch.randint(0, 97, (2, 24))
    out_s, out_f = scratch(ids), fused(ids)
    torch.testing.assert_close(out_s, out_f)
    out_s.square().mean().backward()
    out_f.square().mean().backward()
    for (name, p_s), p_f in zip(scratch.named_parameters(), fused.parameters()):
        torch.testing.assert_close(p_s.grad, p_f.grad, msg=name)


def test_adapters_reach_the_modules():
    """The model adapters in tests/adapters.py construct, load and call our modules (the contract)."""
    torch.manual_seed(0)
    model = TransformerLM(ModelConfig(**TINY))
    ids = torch.randint(0, 97, (2, 12))
    c = model.config
    logits = adapters.run_transformer_lm(
        c.vocab_size, c.context_length, c.d_model, c.num_layers, c.num_heads, c.d_ff, c.rope_theta,
        model.state_dict(), ids,
    )  # fmt: skip
    torch.testing.assert_close(logits, model(ids))
    block = model.layers[0]
    x = torch.randn(2, 12, c.d_model)
    block_weights = {
        k.removeprefix("layers.0."): v for k, v in model.state_dict().items() if k.startswith("layers.0.")
    }
    out = adapters.run_transformer_block(
        c.d_model, c.num_heads, c.d_ff, c.context_length, c.rope_theta, block_weights, x
    )
    torch.testing.assert_close(out, block(x))
    attn = block.attn
    weights = [attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight, attn.output_proj.weight]
    positions = torch.arange(12)[None]  # (1, seq), broadcast over the batch
    out = adapters.run_multihead_self_attention_with_rope(
        c.d_model, c.num_heads, 32, c.rope_theta, *weights, x, positions
    )
    torch.testing.assert_close(out, attn(x))
