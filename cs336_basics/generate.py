"""Sample text from a trained run.

    uv run python -m cs336_basics.generate --checkpoint runs/latest --prompt "ROMEO." \
        --temperature 0.7 --top-p 0.9

--checkpoint takes a run directory (its newest checkpoint that loads is used) or a checkpoint file. The model is
rebuilt from the config stored in the checkpoint, and the tokenizer is read from the run's tokenizer/ folder.
torch is imported inside the functions, so --help answers at once.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cs336_basics.runs import find_tokenizer, load_model

__all__ = ["find_tokenizer", "load_model", "main"]


def read_prompt_file(path: str) -> str:
    """A prompt file's text (UTF-8); a missing or undecodable file is a ValueError naming it."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"prompt file {path} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"prompt file {path} is a directory") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"prompt file {path}: invalid UTF-8 at byte offset {e.start}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cs336_basics.generate",
        description="Continue prompts with a trained model (the run's newest checkpoint and its tokenizer).",
    )
    parser.add_argument("--checkpoint", required=True,
                        help="run directory (runs/<name>, or runs/latest for the last run), checkpoint file, or a "
                        "Hugging Face Llama folder (config.json + safetensors + tokenizer.json)")
    parser.add_argument("--prompt", action="append", default=None,
                        help="text to continue; repeat for a batch (default: '', i.e. start a new document)")
    parser.add_argument("--prompt-file", action="append", default=None, metavar="FILE",
                        help="a UTF-8 file whose whole text is one prompt; repeatable, after any --prompt")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="per prompt (default: %(default)s)")
    parser.add_argument("--temperature", type=float, default=0.8,
                        help="0 = greedy, which ignores --top-p and --top-k (default: %(default)s)")
    parser.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling mass (default: %(default)s)")
    parser.add_argument("--top-k", type=int, default=None, help="keep only the k most likely tokens (default: off)")
    parser.add_argument("--num-samples", type=int, default=1, help="continuations per prompt (default: 1)")
    parser.add_argument("--seed", type=int, default=None, help="for reproducible samples (default: random)")
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder (default: the run's tokenizer/)")
    parser.add_argument("--device", default="auto",
                        help="auto (cuda, else mps, else cpu), cpu, cuda, cuda:N or mps (default: auto)")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.num_samples < 1:
        parser.error(f"--num-samples must be >= 1, got {args.num_samples}")
    from cs336_basics.device import resolve_device
    from cs336_basics.generation import check_sampling, generate
    from cs336_basics.hf import is_hf_folder, load_llama, tokenizer_from_hf
    from cs336_basics.tokenizer import load_tokenizer

    try:
        device = resolve_device(args.device)  # before the checkpoint: a bad device is not a bad file
        check_sampling(args.temperature, args.top_p, args.top_k)
        given = (args.prompt or []) + [read_prompt_file(f) for f in args.prompt_file or []]
        prompts = [p for p in (given or [""]) for _ in range(args.num_samples)]
        if is_hf_folder(args.checkpoint):  # a Llama-format folder (export_hf's, or one from elsewhere)
            model, tokenizer = load_llama(args.checkpoint, device), tokenizer_from_hf(args.checkpoint)
        else:
            model, path = load_model(args.checkpoint, device)
            tokenizer = load_tokenizer(args.tokenizer or find_tokenizer(path))
        texts = generate(model, tokenizer, prompts, max_new_tokens=args.max_new_tokens,
                         temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, seed=args.seed)
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    for i, (prompt, text) in enumerate(zip(prompts, texts)):
        if i:
            print("\n" + "-" * 40)
        print(prompt + text)


if __name__ == "__main__":
    main()
