"""Sampling and generation.

- sampling_probs against a naive list-based reference (hypothesis) and hand-computed cases; sample_next as a
  distribution (many draws with a fixed generator against the expected frequencies).
- the decoding loop on a scripted model whose next token is known (stops, forcing of longer prompts, windows);
- a real TransformerLM: the KV cache gives the same tokens as recomputing without it, greedy equals a naive
  argmax loop, and generate() round-trips text through the project's Tokenizer.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cs336_basics.generation import generate, generate_ids, sample_next, sampling_probs
from cs336_basics.model import ModelConfig, TransformerLM
from cs336_basics.tokenizer import Tokenizer

FIXTURES = "tests/fixtures"


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


PROBS = [0.5, 0.3, 0.15, 0.05]


def logits_of(probs, order=(2, 0, 3, 1)) -> torch.Tensor:
    """Log-probabilities in a shuffled order (so nothing relies on the vocabulary being sorted)."""
    return torch.tensor([math.log(probs[i]) for i in order], dtype=torch.float64), list(order)


def naive_probs(logits: list[float], temperature: float, top_p: float, top_k: int | None) -> list[float]:
    """The sampling distribution written out with Python lists, step by step."""
    if temperature == 0:
        best = max(range(len(logits)), key=lambda i: (logits[i], -i))
        return [1.0 if i == best else 0.0 for i in range(len(logits))]
    scaled = [x / temperature for x in logits]
    if top_k is not None:
        kth = sorted(scaled, reverse=True)[min(top_k, len(scaled)) - 1]
        scaled = [x if x >= kth else -math.inf for x in scaled]
    top = max(scaled)
    weights = [math.exp(x - top) for x in scaled]
    probs = [w / sum(weights) for w in weights]
    kept, mass = set(), 0.0
    for i in sorted(range(len(probs)), key=lambda i: -probs[i]):
        if mass >= top_p:
            break
        kept.add(i)
        mass += probs[i]
    total = sum(probs[i] for i in kept)
    return [probs[i] / total if i in kept else 0.0 for i in range(len(probs))]


# --- sampling_probs


def expected_in_vocab_order(values_by_rank, order):
    """values given for PROBS' ranks (0.5, 0.3, ...) rearranged into the shuffled vocabulary order."""
    return torch.tensor([values_by_rank[i] for i in order], dtype=torch.float64)


@pytest.mark.parametrize(
    "top_p, top_k, by_rank",
    [
        (1.0, None, PROBS),
        (0.7, None, [0.5 / 0.8, 0.3 / 0.8, 0, 0]),  # 0.5 < 0.7, so 0.3 is needed to reach it
        (0.85, None, [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0]),
        (0.4, None, [1, 0, 0, 0]),  # the most likely token alone already reaches p
        (1.0, 2, [0.5 / 0.8, 0.3 / 0.8, 0, 0]),
        (1.0, 4, PROBS),
        (1.0, 100, PROBS),  # k beyond the vocabulary: no limit
        (
            0.8,
            3,
            [0.5 / 0.8, 0.3 / 0.8, 0, 0],
        ),  # top-k renormalizes to (.526, .316, .158), then top-p drops .158
    ],
)
def test_filters_by_hand(top_p, top_k, by_rank):
    logits, order = logits_of(PROBS)
    probs = sampling_probs(logits, temperature=1.0, top_p=top_p, top_k=top_k)
    torch.testing.assert_close(probs, expected_in_vocab_order(by_rank, order), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("temperature", [0.25, 0.5, 1.0, 2.0, 10.0])
def test_temperature_matches_torch_softmax(temperature):
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    expected = torch.softmax(logits / temperature, dim=-1)
    torch.testing.assert_close(sampling_probs(logits, temperature), expected)


def test_temperature_then_top_p():
    """Temperature reshapes the distribution before top-p: at T=0.5 probabilities go as p², so top_p=0.9 keeps
    three tokens where it would keep three at T=1 too, but with the weights of p²."""
    logits, order = logits_of(PROBS)
    squared = [p * p for p in PROBS]
    z = sum(squared)
    kept = squared[:2]  # p²/z = (.685, .247, .062, .007): the first two reach .932 >= 0.9
    by_rank = [kept[0] / sum(kept), kept[1] / sum(kept), 0, 0]
    assert squared[0] / z < 0.9 <= (squared[0] + squared[1]) / z
    probs = sampling_probs(logits, temperature=0.5, top_p=0.9)
    torch.testing.assert_close(probs, expected_in_vocab_order(by_rank, order), rtol=1e-9, atol=1e-12)


def test_greedy_is_one_hot_on_argmax():
    logits = torch.tensor([[0.1, 3.0, -2.0], [5.0, 4.9, 0.0]])
    expected = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert torch.equal(sampling_probs(logits, temperature=0), expected)
    assert torch.equal(sampling_probs(logits, temperature=0, top_p=0.1, top_k=2), expected)


def test_top_k_keeps_ties_with_the_kth():
    probs = sampling_probs(torch.tensor([2.0, 1.0, 1.0, 0.0]), top_k=2)
    assert (probs > 0).tolist() == [True, True, True, False]


@settings(max_examples=150, deadline=None)
@given(
    # distinct, 0.01 apart: ties would make "the k most likely" and the argmax order-dependent
    logits=st.lists(st.integers(-800, 800), min_size=1, max_size=12, unique=True).map(
        lambda xs: [x / 100 for x in xs]
    ),
    temperature=st.sampled_from([0.0, 0.3, 1.0, 1.7]),
    top_p=st.floats(0.05, 1.0),
    top_k=st.one_of(st.none(), st.integers(1, 14)),
)
def test_sampling_probs_matches_naive_reference(logits, temperature, top_p, top_k):
    expected = naive_probs(logits, temperature, top_p, top_k)
    if temperature > 0:  # skip cases within rounding of the top-p boundary (float32 vs float64 cumsum)
        base = naive_probs(logits, temperature, 1.0, top_k)
        sorted_probs = sorted(base, reverse=True)
        assume(all(abs(sum(sorted_probs[:i]) - top_p) > 1e-4 for i in range(1, len(sorted_probs) + 1)))
    probs = sampling_probs(torch.tensor(logits, dtype=torch.float32), temperature, top_p, top_k)
    torch.testing.assert_close(probs, torch.tensor(expected, dtype=torch.float32), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"temperature": -0.1}, "temperature must be >= 0"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
        ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
        ({"top_k": 0}, "top_k must be >= 1"),
    ],
)
def test_bad_sampling_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sampling_probs(torch.zeros(5), **kwargs)
    with pytest.raises(ValueError, match=message):
        sample_next(torch.zeros(5), **kwargs)


# --- sample_next as a distribution

N_DRAWS = 40_000


def frequencies(samples: torch.Tensor, vocab: int) -> torch.Tensor:
    return torch.bincount(samples.flatten(), minlength=vocab).double() / samples.numel()


@pytest.mark.parametrize(
    "temperature, top_p, top_k",
    [(1.0, 1.0, None), (2.0, 1.0, None), (0.5, 1.0, None), (1.0, 0.85, None), (1.0, 1.0, 2), (0.7, 0.9, 3)],
)
def test_sample_frequencies_match_probabilities(temperature, top_p, top_k):
    """40k draws with a fixed generator: each frequency within 5 standard errors (sd <= 0.0025) of its
    probability, and tokens filtered out never drawn. Seeded, so the outcome is fixed (no flakes)."""
    logits, _ = logits_of(PROBS)
    expected = torch.tensor(naive_probs(logits.tolist(), temperature, top_p, top_k), dtype=torch.float64)
    generator = torch.Generator().manual_seed(1234)
    samples = sample_next(logits.expand(N_DRAWS, -1), temperature, top_p, top_k, generator=generator)
    assert samples.shape == (N_DRAWS,) and samples.dtype == torch.int64
    observed = frequencies(samples, 4)
    assert torch.all(observed[expected == 0] == 0)
    stderr = (expected * (1 - expected) / N_DRAWS).sqrt()
    assert torch.all((observed - expected).abs() <= 5 * stderr + 1e-12), (observed, expected)


def test_greedy_sampling_and_shapes():
    logits = torch.randn(2, 3, 7, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sample_next(logits, temperature=0), logits.argmax(-1))
    assert sample_next(logits, generator=torch.Generator().manual_seed(0)).shape == (2, 3)


def test_same_generator_seed_same_samples():
    logits = torch.zeros(1000, 50)
    a = sample_next(logits, generator=torch.Generator().manual_seed(5))
    b = sample_next(logits, generator=torch.Generator().manual_seed(5))
    c = sample_next(logits, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


# --- the decoding loop on a scripted model


class ScriptedCache:
    def __init__(self):
        self.length = 0


class ScriptedLM(torch.nn.Module):
    """Always predicts (last token + 1) mod vocab, emitting 9 after 8 only when 9 is the end token; records
    the length of every input and checks it never sees more than context_length positions."""

    def __init__(self, vocab: int = 10, context_length: int = 64):
        super().__init__()
        self.config = ModelConfig(vocab_size=vocab, context_length=context_length, d_model=4, num_heads=1)
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the model a device
        self.calls: list[int] = []

    def new_kv_cache(self):
        return ScriptedCache()

    def forward(self, ids, kv_cache=None):
        offset = 0 if kv_cache is None else kv_cache.length
        assert offset + ids.shape[-1] <= self.config.context_length
        if kv_cache is not None:
            kv_cache.length += ids.shape[-1]
        self.calls.append(ids.shape[-1])
        next_ids = (ids + 1) % self.config.vocab_size
        return torch.nn.functional.one_hot(next_ids, self.config.vocab_size).double() * 20


def test_stops_at_end_of_text_and_at_max_new_tokens():
    model = ScriptedLM()
    assert generate_ids(model, [[3]], 50, temperature=0, eot_id=9) == [[4, 5, 6, 7, 8]]
    assert generate_ids(model, [[3]], 3, temperature=0, eot_id=9) == [[4, 5, 6]]
    assert generate_ids(model, [[3]], 0, temperature=0, eot_id=9) == [[]]
    assert generate_ids(model, [[3]], 8, temperature=0, eot_id=None) == [[4, 5, 6, 7, 8, 9, 0, 1]]


def test_batched_prompts_of_unequal_length_force_their_own_tokens():
    model = ScriptedLM()
    prompts = [
        [3],
        [1, 2, 7, 4, 5],
        [8],
    ]  # the middle prompt breaks the +1 pattern: it must be forced, not sampled
    assert generate_ids(model, prompts, 50, temperature=0, eot_id=9) == [[4, 5, 6, 7, 8], [6, 7, 8], []]
    # each row's result equals decoding it alone
    assert [generate_ids(model, [p], 50, temperature=0, eot_id=9)[0] for p in prompts] == [
        [4, 5, 6, 7, 8],
        [6, 7, 8],
        [],
    ]


def test_cache_feeds_one_token_per_step_and_window_slides_at_context():
    model = ScriptedLM(context_length=4)
    out = generate_ids(model, [[1, 2]], 6, temperature=0, eot_id=None)
    assert out == [[3, 4, 5, 6, 7, 8]]
    # prefill 2, then single tokens until 4 are cached, then a recomputed 4-token window per step
    assert model.calls == [2, 1, 1, 4, 4, 4]
    model.calls.clear()
    generate_ids(model, [[1, 2]], 6, temperature=0, eot_id=None, use_cache=False)
    assert model.calls == [2, 3, 4, 4, 4, 4]


def test_prompt_longer_than_context_is_cropped():
    model = ScriptedLM(context_length=4)
    assert generate_ids(model, [list(range(9))], 2, temperature=0, eot_id=None) == [[9, 0]]
    assert model.calls[0] == 4


def test_loop_argument_errors():
    with pytest.raises(ValueError, match="at least one token"):
        generate_ids(ScriptedLM(), [[1], []], 5)
    with pytest.raises(ValueError, match="max_new_tokens must be >= 0"):
        generate_ids(ScriptedLM(), [[1]], -1)


# --- a real TransformerLM


def random_lm(vocab: int, context: int = 16, seed: int = 0, **variant) -> TransformerLM:
    torch.manual_seed(seed)
    config = ModelConfig(
        vocab_size=vocab, context_length=context, d_model=32, num_layers=2, num_heads=4, d_ff=64, **variant
    )
    model = TransformerLM(config, dtype=torch.float64)
    with torch.no_grad():  # sharper logits than at init, so samples depend visibly on the context
        model.lm_head.weight.mul_(20)
    return model


def naive_greedy(model: TransformerLM, prompt: list[int], max_new: int, eot: int | None) -> list[int]:
    """Recompute the whole (cropped) sequence for every token and take the argmax."""
    seq, out = list(prompt), []
    with torch.no_grad():
        while len(out) < max_new:
            logits = model(torch.tensor([seq[-model.config.context_length :]]))[0, -1]
            token = int(logits.argmax())
            if token == eot:
                break
            out.append(token)
            seq.append(token)
    return out


@pytest.mark.parametrize(
    "variant", [{}, {"attn_backend": "torch"}, {"positions": "nope", "norm": "post", "tie_embeddings": True}]
)
def test_kv_cache_gives_the_same_tokens_as_recomputing(variant):
    model = random_lm(vocab=64, context=16, **variant)
    prompts = [[1, 2, 3], [5, 6, 7, 8, 9, 10, 11], [12, 13, 14, 15]]
    # 30 new tokens > context 16: decoding crosses the window
    kwargs = {"max_new_tokens": 30, "temperature": 1.0, "top_p": 0.95, "eot_id": 0}
    cached = generate_ids(model, prompts, **kwargs, generator=torch.Generator().manual_seed(3))
    recomputed = generate_ids(
        model, prompts, **kwargs, generator=torch.Generator().manual_seed(3), use_cache=False
    )
    assert cached == recomputed
    assert max(len(row) for row in cached) > 16 - 7  # at least one row decoded past the context window


def test_greedy_matches_naive_argmax_loop():
    model = random_lm(vocab=64, context=16, seed=1)
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8]]
    ours = generate_ids(model, prompts, max_new_tokens=25, temperature=0, eot_id=63)
    assert ours == [naive_greedy(model, p, 25, eot=63) for p in prompts]


def test_training_mode_is_restored():
    model = random_lm(vocab=32)
    model.train()
    generate_ids(model, [[1]], 3)
    assert model.training


@pytest.fixture(scope="module")
def gpt2_tokenizer() -> Tokenizer:
    return Tokenizer.from_files(
        f"{FIXTURES}/gpt2_vocab.json", f"{FIXTURES}/gpt2_merges.txt", ["<|endoftext|>"]
    )


def test_generate_text_end_to_end(gpt2_tokenizer):
    model = random_lm(vocab=gpt2_tokenizer.vocab_size, context=32)
    text = generate(model, gpt2_tokenizer, "Once upon a time", max_new_tokens=10, temperature=0)
    ids = gpt2_tokenizer.encode("Once upon a time")
    eot = gpt2_tokenizer.special_token_id("<|endoftext|>")
    assert isinstance(text, str) and text == gpt2_tokenizer.decode(naive_greedy(model, ids, 10, eot))

    prompts, options = (
        ["Once upon a time", "The"],
        {"max_new_tokens": 8, "temperature": 0.8, "top_p": 0.9, "top_k": 50},
    )
    batch = generate(model, gpt2_tokenizer, prompts, **options, seed=11)
    again = generate(model, gpt2_tokenizer, prompts, **options, seed=11)
    other = generate(model, gpt2_tokenizer, prompts, **options, seed=12)
    assert isinstance(batch, list) and len(batch) == 2 and batch == again and batch != other


def test_empty_prompt_starts_from_end_of_text(gpt2_tokenizer):
    model = random_lm(vocab=gpt2_tokenizer.vocab_size, context=32)
    eot = gpt2_tokenizer.special_token_id("<|endoftext|>")
    text = generate(model, gpt2_tokenizer, "", max_new_tokens=6, temperature=0)
    assert text == gpt2_tokenizer.decode(naive_greedy(model, [eot], 6, eot))


class BytesOnly:
    """A tokenizer without special tokens."""

    def encode(self, text):
        return list(text.encode())

    def decode(self, ids):
        return bytes(ids).decode(errors="replace")


def test_generate_without_end_token_and_errors():
    model = random_lm(vocab=256)
    assert len(generate(model, BytesOnly(), "ab", max_new_tokens=5, temperature=0).encode()) >= 1
    with pytest.raises(ValueError, match="empty prompt needs a tokenizer with the special token"):
        generate(model, BytesOnly(), "", max_new_tokens=5)
    with pytest.raises(ValueError, match="no prompts"):
        generate(model, BytesOnly(), [], max_new_tokens=5)
