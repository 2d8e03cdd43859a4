"""Sampling text from a TransformerLM: the next-token distribution (temperature, top-k, top-p) and generate().

    text = generate(model, tokenizer, "Once upon a time", max_new_tokens=100, temperature=0.7, top_p=0.9)

Decoding uses the model's KV cache, so each new token costs one position instead of the whole prefix.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from cs336_basics.nn_utils import softmax

EOT = "<|endoftext|>"


def check_sampling(temperature: float, top_p: float, top_k: int | None) -> None:
    """ValueError for settings that mean nothing; greedy decoding (temperature 0) ignores top_p and top_k."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 (or None for no limit), got {top_k}")


def sampling_probs(
    logits: Float[Tensor, " ... vocab"],
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int | None = None,
) -> Float[Tensor, " ... vocab"]:
    """The distribution `sample_next` draws from:

        p = softmax(logits / temperature), restricted to the k most likely tokens (ties with the k-th kept),
        then to the smallest set of most likely tokens whose probability reaches top_p, and renormalized.

    temperature 0 is greedy (all mass on the argmax). e.g. probs (.5, .3, .2), top_p 0.7 -> (.625, .375, 0).
    """
    check_sampling(temperature, top_p, top_k)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # half precision -> float32
    if temperature == 0:
        greedy = torch.zeros_like(logits)
        return greedy.scatter_(-1, logits.argmax(dim=-1, keepdim=True), 1.0)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth_largest = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    probs = softmax(logits, dim=-1)
    if top_p < 1:
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)
        # keep a token if the more likely ones before it have not yet reached top_p (the first is always kept)
        before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        keep = torch.zeros_like(probs, dtype=torch.bool).scatter_(-1, order, before < top_p)
        probs = probs.masked_fill(~keep, 0.0)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def sample_next(
    logits: Float[Tensor, " ... vocab"],
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> Int[Tensor, " ..."]:
    """One token id per row of logits, drawn from `sampling_probs` (argmax when temperature is 0)."""
    probs = sampling_probs(logits, temperature, top_p, top_k)
    if temperature == 0:
        return probs.argmax(dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])  # multinomial wants (rows, vocab)
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])


@torch.inference_mode()
def generate_ids(
    model: torch.nn.Module,
    prompts: list[list[int]],
    max_new_tokens: int = 256,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int | None = None,
    eot_id: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> list[list[int]]:
    """New token ids for each prompt (without the prompt; without the end-of-text token that stopped a row).

    Rows decode in lockstep from the shortest prompt's end: a row whose prompt is longer is fed its own prompt
    tokens instead of samples until it runs out, so all rows share positions and no padding mask is needed.
    The model sees at most its last context_length tokens; past that the window slides (recomputed, since the
    cache cannot drop its oldest position).
    """
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    model = getattr(model, "_orig_mod", model)  # torch.compile would recompile for every new length
    new: list[list[int]] = [[] for _ in prompts]
    if max_new_tokens == 0:
        return new
    context = model.config.context_length
    device = next(model.parameters()).device
    lengths = [len(p) for p in prompts]
    seq = torch.tensor([p[: min(lengths)] for p in prompts], device=device)  # (B, T): all rows in lockstep
    done = [False] * len(prompts)  # a row is done only after its prompt is used up
    cache = model.new_kv_cache() if use_cache else None

    was_training = model.training
    model.eval()
    try:
        logits = model(seq[:, -context:], kv_cache=cache)[:, -1]  # (B, vocab) for the next position
        while True:
            position = seq.shape[1]
            sampled = sample_next(logits, temperature, top_p, top_k, generator).tolist()
            column = []
            for row, token in enumerate(sampled):
                if position < lengths[row]:  # still inside this row's prompt: force it
                    token = prompts[row][position]
                elif done[row]:  # finished rows keep pace with a filler the caller never sees
                    token = eot_id if eot_id is not None else 0
                elif token == eot_id:
                    done[row] = True
                else:
                    new[row].append(token)
                    done[row] = len(new[row]) == max_new_tokens
                column.append(token)
            if all(done):
                break
            step = torch.tensor(column, device=device)[:, None]  # (B, 1)
            seq = torch.cat((seq, step), dim=1)
            if cache is not None and cache.length < context:
                logits = model(step, kv_cache=cache)[:, -1]
            else:  # no cache, or the window is full: recompute over the last context_length tokens
                cache = model.new_kv_cache() if use_cache else None
                logits = model(seq[:, -context:], kv_cache=cache)[:, -1]
    finally:
        model.train(was_training)
    return new


def generate(
    model: torch.nn.Module,
    tokenizer,
    prompt: str | list[str],
    max_new_tokens: int = 256,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int | None = None,
    seed: int | None = None,
    use_cache: bool = True,
) -> str | list[str]:
    """Continue `prompt` (a string, or a list of strings decoded as one batch); return the continuation(s).

    Stops a row at "<|endoftext|>" (when the tokenizer has it) or after max_new_tokens. An empty prompt starts
    from "<|endoftext|>", i.e. at the beginning of a new document. `seed` makes sampling reproducible.
    """
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    if not prompts:
        raise ValueError("no prompts given")
    try:
        eot_id = tokenizer.special_token_id(EOT)
    except (AttributeError, ValueError):
        eot_id = None
    encoded = [tokenizer.encode(p) for p in prompts]
    if any(not ids for ids in encoded):
        if eot_id is None:
            raise ValueError(
                f"an empty prompt needs a tokenizer with the special token {EOT!r} to start from"
            )
        encoded = [ids or [eot_id] for ids in encoded]
    generator = None
    if seed is not None:
        generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    new = generate_ids(
        model, encoded, max_new_tokens, temperature, top_p, top_k, eot_id, generator, use_cache
    )
    texts = [tokenizer.decode(ids) for ids in new]
    return texts[0] if isinstance(prompt, str) else texts
