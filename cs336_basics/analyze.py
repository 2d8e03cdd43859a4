"""Per-token analysis of checkpoints: scores, KL between two checkpoints, and seed convergence.

    uv run python -m cs336_basics.analyze score RUN --step 64 --text held_out.txt --out scores.npz [--full]
    uv run python -m cs336_basics.analyze kl RUN_A RUN_B --step 64 --text held_out.txt --out kl.npz
    uv run python -m cs336_basics.analyze convergence RUN_A RUN_B ... --text held_out.txt --out results/conv

A thin wrapper over cs336_basics.analysis (see scoring.py, divergence.py, convergence.py there).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cs336_basics.analyze",
        description="Per-token log-probabilities, KL divergences and seed convergence of a run's checkpoints on a "
        "text. Texts longer than the context are scored in windows with a stride of half the context; each token "
        "is scored once.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{score,kl,convergence}")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--text", required=True, help="UTF-8 text file to score")
        p.add_argument("--max-tokens", type=int, default=None, help="score only the first N tokens of the text")
        p.add_argument("--batch-size", type=int, default=8, help="windows per forward pass (default: %(default)s)")
        p.add_argument("--device", default="cpu", help="cpu, cuda, mps (default: %(default)s)")
        p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s; small "
                       "models gain little from more, and on a busy machine extra threads cost a lot)")
        p.add_argument("--no-progress", action="store_true", help="no progress bars")

    score = sub.add_parser("score", help="per-token id, position, log-prob, surprisal, entropy -> .npz",
                           description="Score a text with one checkpoint: per target token its id, position, "
                           "log-probability, surprisal (nats) and the entropy of the predicted distribution, as "
                           "float32 arrays in an .npz file.")
    score.add_argument("checkpoint", help="run directory (with --step, or its latest checkpoint) or checkpoint file")
    score.add_argument("--step", type=int, default=None, help="which checkpoint of the run (default: the latest)")
    score.add_argument("--out", required=True, help="output .npz")
    score.add_argument("--full", action="store_true", help="also write the full log-probability distributions "
                       "as float16 OUT.logprobs.npy (tokens x vocab; its size is printed first)")
    common(score)

    kl = sub.add_parser("kl", help="per-token KL(p || q) of two checkpoints, and of p to uniform / unigram",
                        description="Per-token KL(p || q) between two checkpoints on the same text, from the "
                        "logits in float32, window by window; also KL of p to the uniform distribution and to the "
                        "add-one-smoothed unigram of p's training tokens. Output .npz: kl, targets, positions, "
                        "kl_uniform, kl_unigram.")
    kl.add_argument("p", help="run directory or checkpoint file of p")
    kl.add_argument("q", help="run directory or checkpoint file of q")
    kl.add_argument("--step", type=int, default=None, help="step of both runs (default: each run's latest)")
    kl.add_argument("--out", required=True, help="output .npz")
    kl.add_argument("--no-unigram", action="store_true",
                    help="skip KL to the unigram (which needs p's training data, read through the data cache)")
    common(kl)

    conv = sub.add_parser("convergence", help="E[conv] per step of runs that differ only in seed -> CSV + plots",
                          description="Expected convergence E[conv](step) = -mean over ordered pairs of seeds of "
                          "the mean per-token KL, at every step all runs have a checkpoint of; also per "
                          "training-frequency decade of the target and per final-surprisal bin, and KL to "
                          "uniform / unigram. Writes CSV files and PNG plots into OUT.")
    conv.add_argument("runs", nargs="+", help="run directories (one per seed, otherwise identical)")
    conv.add_argument("--out", required=True, help="output folder")
    conv.add_argument("--steps", default=None, help="comma-separated steps (default: all shared steps)")
    conv.add_argument("--reference", type=int, default=0,
                      help="index of the run whose latest checkpoint defines the surprisal bins (default: 0)")
    common(conv)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.max_tokens is not None and args.max_tokens < 2:
        parser.error(f"--max-tokens must be >= 2, got {args.max_tokens}")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    steps = None
    if args.command == "convergence" and args.steps is not None:
        try:
            steps = [int(s) for s in args.steps.split(",") if s.strip()]
        except ValueError:
            parser.error(f"--steps: expected comma-separated integers, got {args.steps!r}")
    import torch  # lazily, so that --help answers at once

    torch.set_num_threads(args.threads)

    try:
        torch.device(args.device)
    except RuntimeError:
        parser.error(f"--device: unknown device {args.device!r} (cpu, cuda, mps, ...)")
    try:
        if args.command == "score":
            return _score(args)
        if args.command == "kl":
            return _kl(args)
        return _convergence(args, steps)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _score(args) -> int:
    import numpy as np

    from cs336_basics.analysis import load_scorer, score_tokens, tokenize_text
    from cs336_basics.analysis.outputs import atomic_output

    out = _output_path(args.out, ".npz")
    model, tokenizer, path, _ = load_scorer(args.checkpoint, args.step, args.device)
    ids = tokenize_text(tokenizer, args.text, args.max_tokens)
    print(f"scoring {len(ids) - 1} tokens of {args.text} with {path}", flush=True)
    full = None
    with _maybe_full(args, out, len(ids) - 1, model.config.vocab_size) as full_tmp:
        if full_tmp is not None:
            full = np.lib.format.open_memmap(full_tmp, mode="w+", dtype=np.float16,
                                             shape=(len(ids) - 1, model.config.vocab_size))
        scores = score_tokens(model, ids, args.batch_size, not args.no_progress, full)
        if full is not None:
            full.flush()
            del full
        with atomic_output(out) as tmp:
            np.savez(tmp, **scores)
    print(f"wrote {out}: mean surprisal {scores['surprisal'].mean():.4f} nats over {len(scores['targets'])} tokens")
    return 0


def _maybe_full(args, out: Path, tokens: int, vocab: int):
    """atomic_output for OUT.logprobs.npy when --full, after printing its size; else a no-op context."""
    import contextlib

    from cs336_basics.analysis.outputs import atomic_output

    if not args.full:
        return contextlib.nullcontext(None)
    path = out.with_suffix(".logprobs.npy")
    print(f"--full: {tokens} tokens x {vocab} log-probabilities in float16 = {tokens * vocab * 2 / 1e6:.1f} MB "
          f"-> {path}", flush=True)
    return atomic_output(path)


def _kl(args) -> int:
    import numpy as np

    from cs336_basics.analysis import checkpoint_kl, load_scorer, tokenize_text, unigram_log_probs
    from cs336_basics.analysis.divergence import check_same_vocabulary, training_token_counts
    from cs336_basics.analysis.outputs import atomic_output

    out = _output_path(args.out, ".npz")
    model_p, tok_p, path_p, config_p = load_scorer(args.p, args.step, args.device)
    model_q, tok_q, path_q, _ = load_scorer(args.q, args.step, args.device)
    check_same_vocabulary((str(path_p), tok_p), (str(path_q), tok_q))
    log_unigram = None
    if not args.no_unigram:
        counts = training_token_counts(config_p, model_p.config.vocab_size, progress=not args.no_progress)
        log_unigram = unigram_log_probs(counts).to(args.device)
    ids = tokenize_text(tok_p, args.text, args.max_tokens)
    print(f"KL({path_p} || {path_q}) on {len(ids) - 1} tokens of {args.text}", flush=True)
    result = checkpoint_kl(model_p, model_q, ids, log_unigram, args.batch_size, not args.no_progress)
    with atomic_output(out) as tmp:
        np.savez(tmp, **result)
    line = f"wrote {out}: mean KL {result['kl'].mean():.4f} nats, to uniform {result['kl_uniform'].mean():.4f}"
    if "kl_unigram" in result:
        line += f", to unigram {result['kl_unigram'].mean():.4f}"
    print(line)
    return 0


def _convergence(args, steps: list[int] | None) -> int:
    from cs336_basics.analysis import convergence

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {args.out!r} exists and is not a folder")
    result = convergence(args.runs, args.text, out, steps, args.reference, args.max_tokens, args.batch_size,
                         args.device, not args.no_progress)
    for row in result["rows"]["overall"]:
        print(f"step {row['step']:>7}: E[conv] {row['e_conv']:9.4f} ± {row['spread']:.4f}   "
              f"KL to uniform {row['kl_uniform']:.4f}   to unigram {row['kl_unigram']:.4f}   loss {row['loss']:.4f}")
    print(f"wrote {', '.join(result['files'].values())}")
    return 0


def _output_path(out: str, suffix: str) -> Path:
    path = Path(out)
    if path.suffix != suffix:
        raise ValueError(f"--out {out!r} must end in {suffix}")
    if path.is_dir():
        raise ValueError(f"--out {out!r} is a folder; give a file name ending in {suffix}")
    return path


if __name__ == "__main__":
    sys.exit(main())
