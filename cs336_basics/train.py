"""Train a language model: `uv run python -m cs336_basics.train [--preset NAME] [--config run.json] [--model.d_model 256 ...]`.

With no arguments it trains the bundled Shakespeare default end to end in a few minutes on a laptop CPU.
A thin wrapper over cs336_basics.training.config (resolve) and cs336_basics.training.trainer (Trainer).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from cs336_basics.scaling.expressions import HELP as EXPRESSION_HELP
from cs336_basics.training.config import (
    DEFAULT_PRESET,
    PRESETS,
    add_config_arguments,
    merge,
    overrides_from_args,
    resolve,
    to_dict,
)

EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cs336_basics.train",
        description="Train a Transformer LM. The configuration is resolved as dataclass defaults (the assignment's "
        f"TinyStories settings) < --preset (default: {DEFAULT_PRESET}, the bundled corpus, a few CPU minutes) "
        "< --config FILE < --section.field flags. The resolved config is written to runs/<name>/config.json.",
        usage="%(prog)s [--preset NAME] [--config FILE] [--resume [RUN_DIR]] [--init-from RUN_OR_CHECKPOINT] "
        "[--wandb] [--print-config] [--section.field VALUE ...]",
        epilog=EXPRESSION_HELP,
    )
    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS),
                        help=f"named preset applied over the defaults (default: {DEFAULT_PRESET}; tinystories = "
                        "exactly the defaults; shakespeare-char = character level; tiny = a seconds-long smoke run)")
    parser.add_argument("--config", metavar="FILE", help="JSON object of overrides, e.g. {\"model\": {\"d_model\": 256}}")
    parser.add_argument("--resume", nargs="?", const="latest", metavar="RUN_DIR",
                        help="continue a run from its latest checkpoint: RUN_DIR, or with no value the most recently "
                        "changed run in run.out_dir; its config.json is the base and flags still override")
    parser.add_argument("--wandb", action="store_true", help="also log to Weights & Biases (same as --run.wandb; "
                        "offline unless WANDB_API_KEY is set)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit "
                        "(with --resume: the config the run would continue with)")
    parser.add_argument("--init-from", metavar="RUN_OR_CHECKPOINT",
                        help="start from trained weights (fine-tuning): the model shape and tokenizer come from that "
                        "run, the optimizer and schedule are new (same as --run.init_from)")
    add_config_arguments(parser)
    return parser


def latest_run(out_dir: Path) -> Path:
    """The run directory under out_dir whose checkpoints changed last."""
    runs = [p.parent.parent.resolve() for p in out_dir.glob("*/checkpoints/step_*.pt")]
    if not runs:
        raise ValueError(f"--resume: no run with checkpoints under {out_dir}/")
    return max(runs, key=lambda r: max(p.stat().st_mtime for p in (r / "checkpoints").glob("step_*.pt")))


def init_overrides(config) -> dict:
    """The model shape and tokenizer of the run.init_from source, as overrides (flags still win over them)."""
    from cs336_basics.runs import find_tokenizer, load_latest_checkpoint

    path, ckpt = load_latest_checkpoint(config.run.init_from)
    if not isinstance(ckpt.get("config"), dict) or not isinstance(ckpt["config"].get("model"), dict):
        raise ValueError(f"--init-from: {path} holds no model config; checkpoints written by the trainer have one")
    return {"model": ckpt["config"]["model"], "data": {"tokenizer_dir": str(find_tokenizer(path))},
            "run": {"init_from": config.run.init_from}}


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    finally:
        if "torch.distributed" in sys.modules:  # leave torchrun's process group, if this run joined one
            from cs336_basics.distributed import teardown

            teardown()


def _main(argv: list[str] | None) -> int:
    # Under torchrun every rank runs this; rank 0 alone reports, any rank reports its own error.
    rank, world_size = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    say = print if rank == 0 else (lambda *args, **kwargs: None)
    where = f"rank {rank}: " if world_size > 1 else ""
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = overrides_from_args(args, parser)
    if args.wandb:
        overrides.setdefault("run", {})["wandb"] = True
    if args.init_from is not None:
        overrides.setdefault("run", {})["init_from"] = args.init_from
    try:
        config = resolve(args.preset, args.config, overrides)
        if args.resume and args.print_config:
            from cs336_basics.training.trainer import (
                run_config,  # torch: only the checkpoint fallback needs it
            )

            run_dir = latest_run(Path(config.run.out_dir)) if args.resume == "latest" else Path(args.resume)
            config = resolve(None, args.config, overrides, base=run_config(run_dir))
        elif config.run.init_from is not None and not args.resume:
            config = resolve(None, args.config, overrides, base=merge(resolve(args.preset), init_overrides(config)))
        if args.print_config:
            print(json.dumps(to_dict(config), indent=2))
            return 0
        # Imported here so that --help and --print-config answer without loading torch.
        from cs336_basics.runs import point_latest
        from cs336_basics.training.trainer import Trainer, TrainingDiverged, describe

        if args.resume:
            run_dir = latest_run(Path(config.run.out_dir)) if args.resume == "latest" else Path(args.resume)
            run_dir = run_dir.resolve() if run_dir.is_symlink() else run_dir
            say(f"resuming {run_dir}", flush=True)
            trainer = Trainer.from_run(run_dir, overrides, args.config)
            if trainer.finished:
                say(f"{run_dir} already finished at step {trainer.step} of {trainer.total_steps}; nothing to do "
                      "(nothing was changed). To train further, extend the schedule, e.g. --schedule.max_steps "
                      f"{2 * trainer.total_steps}", flush=True)
                return 0
        else:
            if config.run.name is None:
                name = base = f"{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
                for n in range(2, 1000):  # two runs started within one second get distinct names
                    if not (Path(config.run.out_dir) / name).exists():
                        break
                    name = f"{base}-{n}"
                config = merge(config, {"run": {"name": name}})
            trainer = Trainer(config)
    except ValueError as e:
        parser.error(str(e))
    except KeyboardInterrupt:  # while preparing data: no run directory exists yet
        print("\ninterrupted before training started; nothing was written to runs/", file=sys.stderr)
        return EXIT_INTERRUPTED
    say(f"run {trainer.run_dir}: {describe(trainer)}", flush=True)
    if trainer.step:
        say(f"continuing from step {trainer.step}", flush=True)
    try:
        summary = trainer.train()
    except KeyboardInterrupt:  # a second Ctrl-C, or one during the final evaluation / sample
        say(f"\ninterrupted; the checkpoints in {trainer.run_dir / 'checkpoints'} are intact", file=sys.stderr)
        return EXIT_INTERRUPTED
    except TrainingDiverged as e:
        say(f"error: {e}", file=sys.stderr)  # every rank stops at the same step; one message is enough
        return 1
    except ValueError as e:
        print(f"{where}error: {e}", file=sys.stderr)
        return 2
    if rank == 0:
        point_latest(trainer.run_dir)
    if summary["interrupted"]:
        launcher = f"uv run torchrun --nproc_per_node {world_size}" if world_size > 1 else "uv run python"
        say(f"\ninterrupted at step {summary['step']}: checkpoint saved to {summary['checkpoint']}\n"
            f"continue with: {launcher} -m cs336_basics.train --resume {trainer.run_dir}", flush=True)
        return EXIT_INTERRUPTED
    if rank == 0:
        print(summary_text(summary), flush=True)
    return 0


def summary_text(summary: dict) -> str:
    run = Path(summary["run_dir"])
    sample = Path(summary["sample"]).read_text() if summary.get("sample") else ""
    lines = [
        "",
        f"done: {summary['step']} steps, {summary['tokens'] / 1e6:.2f}M tokens in {summary['time']:.0f}s",
        f"final validation loss {summary['final_val_loss']:.4f}, {summary['final_val_bpb']:.4f} bits/byte "
        f"(whole validation split)",
        f"MFU (metrics.jsonl, progress bar) is relative to {summary['peak_flops'] / 1e9:,.1f} GFLOP/s, "
        f"{summary['peak_flops_source']}",
        f"run directory:  {run}/",
        f"  config        {run / 'config.json'}",
        f"  metrics       {run / 'metrics.jsonl'}",
        f"  checkpoint    {summary['checkpoint']}",
        f"  tokenizer     {run / 'tokenizer'}/",
        f"  curve         {summary.get('learning_curve') or '(not drawn)'}",
        f"  sample        {summary.get('sample')}",
        "",
        "sample:",
        sample.rstrip(),
        "",
        f"more text: uv run python -m cs336_basics.generate --checkpoint {run} --prompt '...'",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
