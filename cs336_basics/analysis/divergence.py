"""How far apart two next-token distributions are, token by token, and how a set of seeds converges.

    KL(p || q) = sum_v p_v (log p_v - log q_v)       per target token, from the logits, in float32
    KL(p || uniform) = log V - H(p);   KL(p || unigram), unigram u_v = (count_v + 1) / (N + V) over training tokens
    E[conv](step) = - mean over ordered pairs (i, j), i != j, of the mean per-token KL(p_i || p_j)

as in Fehlauer, Mahowald & Pimentel (2025), "Convergence and divergence of language models under different random
seeds". Tokens are also grouped by the training frequency of the target (decades: 0, [1, 10), [10, 100), ...) and
by its surprisal under a reference model (nats: [0,1), [1,2), [2,4), [4,8), >= 8).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

SURPRISAL_EDGES = (1.0, 2.0, 4.0, 8.0)
SURPRISAL_LABELS = ("[0,1)", "[1,2)", "[2,4)", "[4,8)", ">=8")


def token_kl(log_p: Float[Tensor, " ... vocab"], log_q: Float[Tensor, " ... vocab"]) -> Float[Tensor, " ..."]:
    """KL(p || q) = sum_v p_v (log p_v - log q_v) per row, from log-probabilities (float32; 0 for p == q)."""
    log_p, log_q = log_p.float(), log_q.float()
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def logits_kl(logits_p: Float[Tensor, " ... vocab"], logits_q: Float[Tensor, " ... vocab"]) -> Float[Tensor, " ..."]:
    """KL(softmax(logits_p) || softmax(logits_q)) per row, in float32."""
    from cs336_basics.nn_utils import log_softmax

    return token_kl(log_softmax(logits_p.float(), dim=-1), log_softmax(logits_q.float(), dim=-1))


def kl_to_uniform(log_p: Float[Tensor, " ... vocab"]) -> Float[Tensor, " ..."]:
    """KL(p || uniform over the V entries) = sum_v p_v (log p_v + log V)."""
    uniform = torch.full(log_p.shape[-1:], -math.log(log_p.shape[-1]), device=log_p.device)
    return token_kl(log_p, uniform)


def unigram_log_probs(counts: np.ndarray) -> Float[Tensor, " vocab"]:
    """log u_v with u_v = (count_v + 1) / (sum counts + V): add-one smoothing, so no token has probability 0.

    counts (3, 0, 1) -> u = (4/7, 1/7, 2/7).
    """
    counts = np.asarray(counts, dtype=np.float64)
    return torch.from_numpy(np.log((counts + 1) / (counts.sum() + len(counts)))).float()


def token_counts(tokens: np.ndarray, vocab_size: int, chunk: int = 1 << 24) -> np.ndarray:
    """How often each id occurs in a (memory-mapped) token array, read slice by slice: int64 (vocab_size,)."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for start in range(0, len(tokens), chunk):
        counts += np.bincount(np.asarray(tokens[start : start + chunk]), minlength=vocab_size)[:vocab_size]
    return counts


def training_token_counts(config: dict, vocab_size: int, progress: bool = False) -> np.ndarray:
    """Token counts of a run's training split, from its config (the data cache is reused, or rebuilt)."""
    from cs336_basics.training.config import load_config
    from cs336_basics.training.corpus import prepare_data
    from cs336_basics.training.data import open_tokens

    data = load_config(config).data
    prepared = prepare_data(data, load_config(config).model.vocab_size, progress=progress)
    return token_counts(open_tokens(prepared.train_tokens), vocab_size)


def frequency_bins(counts: np.ndarray) -> np.ndarray:
    """The decade of each count: 0 for 0, k + 1 for [10^k, 10^(k+1)).  (0, 1, 9, 10, 250) -> (0, 1, 1, 2, 3)."""
    powers = 10 ** np.arange(19, dtype=np.int64)  # exact integers, no log10 rounding at 1000 etc.
    return np.searchsorted(powers, np.asarray(counts, dtype=np.int64), side="right")


def frequency_label(b: int) -> str:
    """0 -> "0", 1 -> "[1,10)", 2 -> "[10,100)", ..."""
    return "0" if b == 0 else f"[{10 ** (b - 1)},{10 ** b})"


def surprisal_bins(surprisal: np.ndarray) -> np.ndarray:
    """Index of the SURPRISAL_EDGES bin of each value: (0.5, 1.0, 3.9, 8.0) -> (0, 1, 2, 4)."""
    return np.digitize(np.asarray(surprisal), SURPRISAL_EDGES)


def expected_convergence(pair_kl: np.ndarray) -> tuple[float, float]:
    """(E[conv], spread) from a (seeds, seeds) matrix of mean KL(p_i || p_j): -mean and standard deviation of the
    off-diagonal entries (the ordered pairs of different seeds). [[0, 1], [3, 0]] -> (-2.0, 1.414...)."""
    pair_kl = np.asarray(pair_kl, dtype=np.float64)
    n = len(pair_kl)
    if n < 2 or pair_kl.shape != (n, n):
        raise ValueError(f"expected convergence needs a square matrix of at least 2 seeds, got {pair_kl.shape}")
    off = pair_kl[~np.eye(n, dtype=bool)]
    if np.isnan(off).all():
        return math.nan, math.nan
    off = off[~np.isnan(off)]
    return float(-off.mean()), float(off.std(ddof=1)) if len(off) > 1 else 0.0


# ------------------------------------------------------------------------------------------- per-token KL of two runs


def checkpoint_kl(
    model_p: torch.nn.Module,
    model_q: torch.nn.Module,
    ids: np.ndarray,
    log_unigram: Float[Tensor, " vocab"] | None = None,
    batch_size: int = 16,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Per target token of `ids`: "kl" = KL(p || q), "kl_uniform" and (given log_unigram) "kl_unigram" of p,
    with "targets" and "positions"; computed window by window, no distribution kept."""
    from cs336_basics.analysis.scoring import window_log_probs

    if model_p.config.vocab_size != model_q.config.vocab_size:
        raise ValueError(f"the checkpoints have different vocabularies ({model_p.config.vocab_size} vs "
                         f"{model_q.config.vocab_size} tokens); per-token KL needs the same one")
    n = len(ids) - 1  # every target once (see scoring.py): outputs allocated up front, filled in place
    names = ("kl", "kl_uniform") + (("kl_unigram",) if log_unigram is not None else ())
    out = {name: np.empty(n, dtype=np.float32) for name in names}
    for batch in window_log_probs([model_p, model_q], ids, batch_size, progress, desc="KL"):
        log_p, log_q = batch.log_probs
        rows = batch.positions.numpy() - 1
        out["kl"][rows] = token_kl(log_p, log_q).numpy()
        out["kl_uniform"][rows] = kl_to_uniform(log_p).numpy()
        if log_unigram is not None:
            out["kl_unigram"][rows] = token_kl(log_p, log_unigram).numpy()
    return {**out, "targets": np.asarray(ids[1:], dtype=np.int64), "positions": np.arange(1, n + 1, dtype=np.int64)}


# ------------------------------------------------------------------------------------------- seeds at one step


@dataclass
class StepDivergence:
    """Everything `convergence` reports for one step of R seeds.

    pair_kl[i, j]: mean KL(p_i || p_j) over all tokens; pair_kl_freq[i, j, b] / pair_kl_surprisal[i, j, b]: the same
    over the tokens of a bin (nan for an empty bin); *_tokens[b]: tokens per bin; per seed i: mean KL to uniform, to
    the unigram, and the mean surprisal (cross-entropy, nats).
    """

    pair_kl: np.ndarray
    pair_kl_freq: np.ndarray
    pair_kl_surprisal: np.ndarray
    freq_tokens: np.ndarray
    surprisal_tokens: np.ndarray
    kl_uniform: np.ndarray
    kl_unigram: np.ndarray
    loss: np.ndarray


def seeds_divergence(
    models: list[torch.nn.Module],
    ids: np.ndarray,
    freq_bin_of_id: Int[np.ndarray, " vocab"],
    surprisal_bin_of_position: Int[np.ndarray, " tokens"],
    log_unigram: Float[Tensor, " vocab"],
    num_freq_bins: int,
    batch_size: int = 8,
    progress: bool = False,
    desc: str = "seeds",
) -> StepDivergence:
    """Pairwise per-token KL of `models` (one per seed) on `ids`, summed per bin as the windows stream by.

    surprisal_bin_of_position[t - 1] is the bin of the target at text position t.
    """
    from cs336_basics.analysis.scoring import window_log_probs

    r, nb_s = len(models), len(SURPRISAL_LABELS)
    freq_sum = torch.zeros(r, r, num_freq_bins, dtype=torch.float64)
    surp_sum = torch.zeros(r, r, nb_s, dtype=torch.float64)
    freq_n = torch.zeros(num_freq_bins, dtype=torch.float64)
    surp_n = torch.zeros(nb_s, dtype=torch.float64)
    uni_sum, unigram_sum, loss_sum = (torch.zeros(r, dtype=torch.float64) for _ in range(3))
    freq_of_id = torch.from_numpy(np.asarray(freq_bin_of_id, dtype=np.int64))
    surp_of_pos = torch.from_numpy(np.asarray(surprisal_bin_of_position, dtype=np.int64))
    for batch in window_log_probs(models, ids, batch_size, progress, desc=desc):
        fb, sb = freq_of_id[batch.targets], surp_of_pos[batch.positions - 1]
        freq_n += torch.bincount(fb, minlength=num_freq_bins).double()
        surp_n += torch.bincount(sb, minlength=nb_s).double()
        for i, j in itertools.permutations(range(r), 2):
            kl = token_kl(batch.log_probs[i], batch.log_probs[j]).double()
            freq_sum[i, j] += torch.bincount(fb, weights=kl, minlength=num_freq_bins)
            surp_sum[i, j] += torch.bincount(sb, weights=kl, minlength=nb_s)
        for i, lp in enumerate(batch.log_probs):
            uni_sum[i] += kl_to_uniform(lp).double().sum()
            unigram_sum[i] += token_kl(lp, log_unigram).double().sum()
            loss_sum[i] -= lp.gather(-1, batch.targets[:, None]).double().sum()
    n = freq_n.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return StepDivergence(
            pair_kl=(freq_sum.sum(-1) / n).numpy(),
            pair_kl_freq=(freq_sum / freq_n).numpy(),
            pair_kl_surprisal=(surp_sum / surp_n).numpy(),
            freq_tokens=freq_n.numpy().astype(np.int64),
            surprisal_tokens=surp_n.numpy().astype(np.int64),
            kl_uniform=(uni_sum / n).numpy(),
            kl_unigram=(unigram_sum / n).numpy(),
            loss=(loss_sum / n).numpy(),
        )


def check_same_vocabulary(a: tuple[str, object], b: tuple[str, object]) -> None:
    """Refuse two (name, tokenizer) whose vocabularies or merges differ: their per-token KL would be meaningless."""
    (name_a, tok_a), (name_b, tok_b) = a, b
    for what in ("vocab", "merges", "special_tokens"):
        if getattr(tok_a, what) != getattr(tok_b, what):
            raise ValueError(f"{name_a} and {name_b} use different tokenizers (their {what} differ); per-token KL "
                             "needs checkpoints that share one tokenizer")

