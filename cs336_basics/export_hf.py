"""Export a trained run as a Hugging Face Llama folder:

    uv run python -m cs336_basics.export_hf runs/NAME --out hf/NAME

RUN_OR_CHECKPOINT is a run directory (its latest checkpoint) or a checkpoint file. The folder loads with
transformers' AutoModelForCausalLM / AutoTokenizer.from_pretrained(DIR), no custom code; see cs336_basics/hf.py.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cs336_basics.export_hf",
        description="Write config.json (LlamaConfig), model.safetensors, generation_config.json and "
        "tokenizer.json for a trained run, loadable with transformers' Auto classes. Pre-norm RoPE SwiGLU models with a BPE "
        "tokenizer only; other variants are refused naming the setting.",
    )
    parser.add_argument("run_or_checkpoint", metavar="RUN_OR_CHECKPOINT", help="run directory or checkpoint file")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed)")
    args = parser.parse_args(argv)
    from cs336_basics.hf import export  # torch loads only now, so --help answers at once

    try:
        out = export(args.run_or_checkpoint, args.out)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}/: config.json, model.safetensors, generation_config.json, tokenizer.json\n"
          f"load it with: AutoModelForCausalLM.from_pretrained({str(out)!r}), AutoTokenizer.from_pretrained(...)\n"
          f"or sample with: uv run python -m cs336_basics.generate --checkpoint {out} --prompt '...'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
