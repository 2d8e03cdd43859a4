"""SpaceByte and sliding-window attention, each against an independent reference: patch starts against a
plain-Python statement of the rule, windowed attention against an explicit band mask, SpaceByte without global
blocks against a windowed byte Transformer, cached decoding against recomputation."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cs336_basics.generation import generate_ids
from cs336_basics.model import (
    CausalMultiHeadSelfAttention,
    LayerKVCache,
    ModelConfig,
    SpaceByteConfig,
    TransformerLM,
    build_model,
    scaled_dot_product_attention,
)
from tests.adapters import get_spacebyte_lm, run_spacebyte_patch_starts

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def starts_reference(ids: list[int]) -> list[bool]:
    """The rule, stated plainly: a byte is spacelike unless it is an ASCII letter or digit or a UTF-8 continuation
    byte; specials (>= 256) are spacelike. A patch starts at a spacelike byte whose predecessor is not spacelike
    (or that comes first), and at every special token."""

    def is_spacelike(b: int) -> bool:
        if b >= 256:
            return True
        return not (chr(b).isascii() and chr(b).isalnum()) and not 0x80 <= b <= 0xBF

    out = []
    for t, b in enumerate(ids):
        first_of_run = is_spacelike(b) and (t == 0 or not is_spacelike(ids[t - 1]))
        out.append(first_of_run or b >= 256)
    return out


def starts_of(text: str | bytes) -> list[int]:
    data = text.encode() if isinstance(text, str) else text
    mask = run_spacebyte_patch_starts(torch.tensor([list(data)], dtype=torch.long))[0]
    return mask.nonzero().flatten().tolist()


@pytest.mark.parametrize(
    "text,expected",
    [
        ("hello world", [5]),  # the space
        ("hi,  there", [2]),  # a run of punctuation and spaces starts one patch, at its first byte
        (" lead", [0]),  # a spacelike first byte starts a patch
        ("abc123 x9", [6]),  # digits are word bytes
        ("a\n\nb.c", [1, 4]),
        # é = C3 A9: the lead byte C3 is spacelike (only continuation bytes 80-BF are not), so it starts a patch
        ("café crème", [3, 5, 8]),
        ("naïve", [2]),
        ("", []),
    ],
)
def test_patch_starts_on_hand_worked_strings(text, expected):
    assert starts_of(text) == expected


def test_patch_starts_special_tokens_always_start_a_patch():
    ids = torch.tensor([[104, 105, 256, 256, 32, 256, 120]])  # "hi" EOT EOT " " EOT "x"
    assert run_spacebyte_patch_starts(ids)[0].tolist() == [False, False, True, True, False, True, False]
    assert starts_reference(ids[0].tolist()) == run_spacebyte_patch_starts(ids)[0].tolist()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 257), min_size=1, max_size=40), min_size=1, max_size=3).filter(
    lambda rows: len({len(r) for r in rows}) == 1))
def test_patch_starts_match_the_plain_rule(rows):
    ids = torch.tensor(rows)
    assert run_spacebyte_patch_starts(ids).tolist() == [starts_reference(r) for r in rows]


# ------------------------------------------------------------------------------------------- windowed attention


def band_mask(num_queries: int, num_keys: int, window: int) -> torch.Tensor:
    offset = num_keys - num_queries
    return torch.tensor([[offset + i - window < j <= offset + i for j in range(num_keys)]
                         for i in range(num_queries)])


@pytest.mark.parametrize("backend", ["scratch", "torch"])
@pytest.mark.parametrize("window", [1, 3, 8])
def test_windowed_attention_equals_full_attention_with_a_band_mask(backend, window):
    torch.manual_seed(0)
    d, heads, seq = 16, 2, 12
    attn = CausalMultiHeadSelfAttention(d, heads, backend=backend, window=window).double()
    x = torch.randn(2, seq, d, dtype=torch.float64)
    q, k, v = (p(x).view(2, seq, heads, d // heads).transpose(1, 2) for p in (attn.q_proj, attn.k_proj, attn.v_proj))
    reference = F.scaled_dot_product_attention(q, k, v, attn_mask=band_mask(seq, seq, window))
    expected = attn.output_proj(reference.transpose(1, 2).reshape(2, seq, d))
    torch.testing.assert_close(attn(x), expected)
    # and with a KV cache: the prefix, then one position at a time
    cache = LayerKVCache()
    cache_out = [attn(x[:, :5], kv_cache=cache)]
    cache_out += [attn(x[:, t : t + 1], kv_cache=cache) for t in range(5, seq)]
    torch.testing.assert_close(torch.cat(cache_out, dim=1), expected)


@pytest.mark.parametrize("backend", ["scratch", "torch"])
def test_a_window_as_long_as_the_sequence_is_plain_causal_attention(backend):
    torch.manual_seed(0)
    full = CausalMultiHeadSelfAttention(16, 2, backend=backend)
    windowed = CausalMultiHeadSelfAttention(16, 2, backend=backend, window=10)
    windowed.load_state_dict(full.state_dict())
    x = torch.randn(3, 10, 16)
    torch.testing.assert_close(windowed(x), full(x))
    mask = band_mask(4, 4, 4)
    q, k, v = torch.randn(3, 1, 4, 8).unbind(0)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, mask), F.scaled_dot_product_attention(
        q, k, v, is_causal=True))


# ------------------------------------------------------------------------------------------- SpaceByte


def test_spacebyte_adapter_shapes_and_overrides():
    model = get_spacebyte_lm()
    ids = torch.randint(0, 257, (3, 64))
    assert model(ids).shape == (3, 64, 257)
    assert get_spacebyte_lm(d_local=16, num_local_layers=4, context_length=32)(ids[:, :32]).shape == (3, 32, 257)
    assert model.config.spacebyte.global_context == 16 and model.config.spacebyte.d_local == 32


@pytest.mark.parametrize("patching", ["spacelike", "periodic"])
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_spacebyte_is_causal_even_when_later_patch_boundaries_move(patching, data):
    torch.manual_seed(0)
    model = get_spacebyte_lm(patching=patching, patch_size=4, context_length=32, global_context=6,
                             attention_window=8).double().eval()
    alphabet = st.sampled_from(list(b"ab ,.\n") + [0xC3, 0xA9, 256])
    ids = data.draw(st.lists(alphabet, min_size=32, max_size=32))
    t = data.draw(st.integers(0, 30))
    changed = ids[: t + 1] + data.draw(st.lists(alphabet, min_size=31 - t, max_size=31 - t))
    a, b = model(torch.tensor([ids])), model(torch.tensor([changed]))
    torch.testing.assert_close(a[0, : t + 1], b[0, : t + 1])


def test_spacebyte_uses_the_global_blocks_only_at_patch_starts():
    """Perturbing the global blocks changes the logits at patch starts (and, through the later local layers,
    after them) but never before the first patch start."""
    torch.manual_seed(0)
    model = get_spacebyte_lm(context_length=16).double()
    ids = torch.tensor([list(b"abcdefg hij klmn")])
    before = model(ids)
    with torch.no_grad():
        model.global_out.weight.add_(1.0)
    after = model(ids)
    torch.testing.assert_close(before[0, :7], after[0, :7])
    assert not torch.allclose(before[0, 7], after[0, 7])


def test_spacebyte_without_global_blocks_is_a_windowed_byte_transformer():
    torch.manual_seed(0)
    spacebyte = get_spacebyte_lm(num_layers=0, num_local_layers=3, attention_window=8)
    transformer = TransformerLM(ModelConfig(vocab_size=257, context_length=64, d_model=32, num_layers=3,
                                            num_heads=2, attention_window=8))
    renamed = {}
    for key, value in spacebyte.state_dict().items():
        for prefix, index in (("local_in.", lambda i: i), ("local_out.", lambda i: i + len(spacebyte.local_in))):
            if key.startswith(prefix):
                i, rest = key[len(prefix):].split(".", 1)
                key = f"layers.{index(int(i))}.{rest}"
        renamed[key] = value
    transformer.load_state_dict(renamed)
    ids = torch.randint(0, 257, (2, 64))
    torch.testing.assert_close(spacebyte(ids), transformer(ids))
    assert spacebyte.target_mask(ids) is None


def test_targets_past_the_global_context_are_left_out():
    model = get_spacebyte_lm(global_context=2, context_length=16)
    ids = torch.tensor([list(b"a b c d e f g h "[:16])])
    starts = starts_reference(ids[0].tolist())
    seen, expected = 0, []
    for s in starts:
        seen += s
        expected.append(seen <= 2)
    assert model.target_mask(ids)[0].tolist() == expected
    assert expected.count(False) == 11  # from the third patch start (position 5) on
    periodic = get_spacebyte_lm(global_context=2, patching="periodic", patch_size=4, context_length=16)
    assert periodic.target_mask(ids)[0].tolist() == [t < 8 for t in range(16)]


def _greedy(model, prompt: list[int], use_cache: bool) -> list[int]:
    return generate_ids(model, [prompt], max_new_tokens=200, temperature=0.0, use_cache=use_cache)[0]


@pytest.mark.parametrize("arch", ["transformer", "spacebyte-spacelike", "spacebyte-periodic"])
@pytest.mark.parametrize("context", [256, 64])  # 64: past the context the window slides (recomputed)
def test_cached_generation_equals_recomputation(arch, context):
    torch.manual_seed(0)
    if arch == "transformer":
        model = TransformerLM(ModelConfig(vocab_size=257, context_length=context, d_model=32, num_layers=2,
                                          num_heads=2, attention_window=16))
    else:
        model = get_spacebyte_lm(context_length=context, attention_window=16, patching=arch.split("-")[1],
                                 patch_size=4, global_context=24)
    model = model.double()
    with torch.no_grad():  # a sharper model, so that greedy decoding visits spaces and letters alike
        model.lm_head.weight.mul_(20)
    prompt = list(b"to be, or not to be")
    cached, recomputed = _greedy(model, prompt, True), _greedy(model, prompt, False)
    assert len(cached) == 200
    assert cached == recomputed
    if arch != "transformer":
        assert any(s for s in starts_reference(prompt + cached)[len(prompt):])  # the global stream did advance


def test_cached_spacebyte_batch_rows_advance_their_global_streams_separately():
    torch.manual_seed(0)
    model = get_spacebyte_lm().double().eval()
    ids = torch.tensor([list(b"ab cd ef gh ij kl mn op"), list(b"abcdefgh, ijklmnopqrstu")])
    cache = model.new_kv_cache()
    pieces = [model(ids[:, :5], kv_cache=cache)] + [model(ids[:, t : t + 1], kv_cache=cache) for t in range(5, 23)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), model(ids))
    assert [row.patches for row in cache.rows] == [7, 1]


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"global_context": 0}, "global_context must be >= 1"),
        ({"d_local": 128}, "d_local .* must not exceed model.d_model"),
        ({"patching": "periodic", "patch_size": 5}, "patch_size .* must divide model.context_length"),
        ({"patching": "words"}, "patching"),
        ({"vocab_size": 100}, "at least 256"),
        ({"num_local_heads": 3}, "divisible"),
        ({"attention_window": 0}, "attention_window"),
    ],
)
def test_bad_spacebyte_config_is_a_clear_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        get_spacebyte_lm(**overrides)


def test_config_round_trips_and_old_configs_load():
    config = get_spacebyte_lm(patching="periodic", patch_size=4).config
    assert ModelConfig(**dataclasses.asdict(config)) == config
    old = {"vocab_size": 97, "context_length": 16, "d_model": 32, "num_layers": 1, "num_heads": 2}  # no new fields
    assert ModelConfig(**old).arch == "transformer" and ModelConfig(**old).attention_window is None
    assert isinstance(build_model(ModelConfig(**old)), TransformerLM)
    assert SpaceByteConfig().patching == "spacelike"


def test_spacebyte_trains():
    torch.manual_seed(0)
    model = get_spacebyte_lm(context_length=32)
    ids = torch.tensor([list(b"the cat sat on the mat. the cat ")] * 4)
    x, y = ids[:, :-1], ids[:, 1:]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        keep = model.target_mask(x)
        loss = F.cross_entropy(model(x)[keep], y[keep])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0] and math.isfinite(losses[-1])
    assert all(p.grad is not None for p in model.parameters())
