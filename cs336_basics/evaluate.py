"""Evaluate a trained model without training: loss and bits per byte on its validation split or any text file.

    uv run python -m cs336_basics.evaluate runs/latest                       # the run's own validation split
    uv run python -m cs336_basics.evaluate runs/latest --data some_text.txt  # any UTF-8 text (or .gz)

Every token after the first of each context window is predicted once (the windows of `eval_batches`), so the
figure on the run's validation split equals the trainer's final whole-split evaluation. Bits per byte =
total nats / ln 2 / bytes covered, the bytes being tokens evaluated x (bytes / tokens of the text).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch


def evaluate_tokens(
    model: torch.nn.Module, tokens: np.ndarray, bytes_per_token: float, batch_size: int = 32,
    device: str | torch.device = "cpu", max_batches: int | None = None,
) -> dict[str, float]:
    """Mean next-token loss (nats) over the fixed windows of `tokens`, and bits per byte."""
    import torch

    from cs336_basics.data import eval_batches
    from cs336_basics.nn_utils import cross_entropy

    context = model.config.context_length
    total_nats, count = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for x, y in eval_batches(tokens, batch_size, context, device, max_batches=max_batches):
            total_nats += cross_entropy(model(x).float(), y).item() * y.numel()
            count += y.numel()
    return {"loss": total_nats / count, "bits_per_byte": total_nats / math.log(2) / (count * bytes_per_token),
            "tokens": count}


def validation_split(ckpt: dict[str, Any], tokenizer_dir: Path) -> tuple[str, float]:
    """(token file, bytes per token) of the run's validation split: from the data cache when it is still there,
    else prepared again from the run's data settings with the run's own tokenizer."""
    import json

    from cs336_basics.config import load_config, merge
    from cs336_basics.corpus import cache_dir_for, prepare_data

    config = load_config(ckpt["config"])
    done = cache_dir_for(config.data, config.model.vocab_size) / "prepared.json"
    if done.is_file():
        prepared = json.loads(done.read_text())
        return prepared["valid_tokens"], prepared["valid_num_bytes"] / prepared["valid_num_tokens"]
    data = merge(config, {"data": {"tokenizer_dir": str(tokenizer_dir)}}).data
    prepared = prepare_data(data, config.model.vocab_size)
    return prepared.valid_tokens, prepared.valid_bytes_per_token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cs336_basics.evaluate",
        description="Loss (nats/token) and bits per byte of a trained model on its run's validation split or on "
        "a text file, without training.",
    )
    parser.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT",
                        help="run directory (runs/<name>, runs/latest) or checkpoint file")
    parser.add_argument("--data", metavar="FILE", help="UTF-8 text file (or .gz) to evaluate on "
                        "(default: the run's validation split)")
    parser.add_argument("--tokenizer", metavar="DIR", help="tokenizer folder (default: the run's tokenizer/)")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per batch (default: %(default)s)")
    parser.add_argument("--max-batches", type=int, default=None,
                        help="stop after this many batches for a quick estimate (default: the whole text)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or (args.max_batches is not None and args.max_batches < 1):
        parser.error("--batch-size and --max-batches must be >= 1")

    from cs336_basics.data import open_tokens
    from cs336_basics.device import resolve_device
    from cs336_basics.runs import find_tokenizer, load_latest_checkpoint, load_model
    from cs336_basics.tokenizer import Tokenizer, encode_file

    try:
        device = resolve_device(args.device)
        if args.data is not None and not os.path.isfile(args.data):
            raise ValueError(f"--data {args.data} is not a file")
        model, path = load_model(args.checkpoint, device)
        tokenizer_dir = Path(args.tokenizer) if args.tokenizer else find_tokenizer(path)
        with tempfile.TemporaryDirectory(prefix="cs336_eval_") as tmp:
            if args.data is None:
                token_file, bytes_per_token = validation_split(load_latest_checkpoint(path)[1], tokenizer_dir)
                source = f"the validation split of {path.parent.parent}"
            else:
                token_file = Path(tmp) / "tokens.npy"
                encoded = encode_file(Tokenizer.from_dir(tokenizer_dir), args.data, token_file, progress=False)
                bytes_per_token, source = encoded.bytes_per_token, args.data
            tokens = open_tokens(token_file, model.config.vocab_size)
            result = evaluate_tokens(model, tokens, bytes_per_token, args.batch_size, device, args.max_batches)
            del tokens  # release the memory map before the temporary folder goes
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    print(f"{path}: loss {result['loss']:.4f} nats/token, {result['bits_per_byte']:.4f} bits/byte "
          f"over {result['tokens']:,} tokens of {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
