"""Looking inside training: per-token scores of a text (scoring) and how seeds diverge and converge (divergence,
convergence). `python -m cs336_basics.analyze {score,kl,convergence}` is the command line."""

from cs336_basics.analysis.convergence import convergence
from cs336_basics.analysis.divergence import (
    checkpoint_kl,
    expected_convergence,
    frequency_bins,
    kl_to_uniform,
    logits_kl,
    seeds_divergence,
    surprisal_bins,
    token_kl,
    unigram_log_probs,
)
from cs336_basics.analysis.scoring import (
    load_scorer,
    plan_windows,
    score_tokens,
    tokenize_text,
    window_log_probs,
)

__all__ = [
    "checkpoint_kl",
    "convergence",
    "expected_convergence",
    "frequency_bins",
    "kl_to_uniform",
    "load_scorer",
    "logits_kl",
    "plan_windows",
    "score_tokens",
    "seeds_divergence",
    "surprisal_bins",
    "token_kl",
    "tokenize_text",
    "unigram_log_probs",
    "window_log_probs",
]
