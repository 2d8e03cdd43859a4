"""One rank of the distributed tests, started by torchrun from tests/test_distributed.py (not a test module).

    torchrun --standalone --nproc_per_node 2 tests/distributed_worker.py runs OUT CACHE   # the training runs
    torchrun --standalone --nproc_per_node 2 tests/distributed_worker.py raise OUT CACHE  # Ctrl-C, then a failure

"runs" trains, in one process group (starting torch costs more than these runs): DDP with gradient accumulation
(OUT/runs/ddp), FSDP (OUT/runs/fsdp), FSDP resumed from DDP's step-3 checkpoint (OUT/runs/resumed), then the
train CLI itself (OUT/runs/cli). The test compares them with the same runs on one process.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sys
from pathlib import Path

import torch

from cs336_basics import train
from cs336_basics.training.config import resolve
from cs336_basics.training.trainer import Trainer, TrainingDiverged

STEPS = 6


def overrides(out: Path, cache: Path, name: str, parallel: str = "ddp") -> dict:
    """The tiny preset, 6 steps of 2 micro-batches of 8 sequences, a metrics line every step."""
    return {
        "schedule": {"max_steps": STEPS},
        "data": {"cache_dir": str(cache), "grad_accum_steps": 2},
        "run": {"out_dir": str(out / "runs"), "name": name, "device": "cpu", "parallel": parallel, "log_every": 1,
                "eval_every": 3, "checkpoint_every": 3, "sample_tokens": 8},
    }


def copy_until_step_3(src: Path, dst: Path) -> None:
    """A run directory as a run killed right after its step-3 checkpoint would leave it."""
    (dst / "checkpoints").mkdir(parents=True)
    shutil.copy(src / "checkpoints" / "step_0000003.pt", dst / "checkpoints")
    for name in ("config.json", "metrics.jsonl"):
        shutil.copy(src / name, dst / name)
    shutil.copytree(src / "tokenizer", dst / "tokenizer")


def runs(out: Path, cache: Path) -> None:
    Trainer(resolve("tiny", overrides=overrides(out, cache, "ddp")), progress=False).train()
    Trainer(resolve("tiny", overrides=overrides(out, cache, "fsdp", "fsdp")), progress=False).train()
    trainer = Trainer(resolve("tiny", overrides=overrides(out, cache, "ddp")), progress=False)
    if trainer.ranks.is_main:
        copy_until_step_3(out / "runs" / "ddp", out / "runs" / "resumed")
    trainer.ranks.barrier()
    Trainer.from_run(out / "runs" / "resumed", {"run": {"parallel": "fsdp"}}, progress=False).train()
    sys.exit(train.main(["--preset", "tiny", "--run.device", "cpu", "--run.out_dir", str(out / "runs"),
                         "--run.name", "cli", "--data.cache_dir", str(cache), "--schedule.max_steps", "4",
                         "--run.sample_tokens", "8"]))


def raising(out: Path, cache: Path) -> None:
    """A NaN loss on rank 1 alone in step 2 (OUT/diverged_rank{r}.json: where each rank stopped); a Ctrl-C that
    reaches rank 1 alone in step 2 (OUT/interrupt_rank{r}.json); then the train CLI, with rank 1 failing in its
    second step."""
    trainer = Trainer(resolve("tiny", overrides=overrides(out, cache, "diverge")), progress=False)
    forward = trainer.forward
    trainer.forward = lambda x: forward(x) * (math.nan if trainer.ranks.rank == 1 and trainer.step == 1 else 1.0)
    try:
        trainer.train()
    except TrainingDiverged as e:
        (out / f"diverged_rank{trainer.ranks.rank}.json").write_text(json.dumps({"step": trainer.step,
                                                                                 "error": str(e)}))
    original = Trainer.train_step

    def interrupted_step(self, batch=None):
        if self.ranks.rank == 1 and self.step == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, batch)

    Trainer.train_step = interrupted_step
    trainer = Trainer(resolve("tiny", overrides=overrides(out, cache, "interrupt")), progress=False)
    summary = trainer.train()
    (out / f"interrupt_rank{trainer.ranks.rank}.json").write_text(json.dumps(summary))

    def train_step(self, batch=None):
        if self.ranks.rank == 1 and self.step == 1:
            raise RuntimeError("injected failure on rank 1")
        return original(self, batch)

    Trainer.train_step = train_step
    sys.exit(train.main(["--preset", "tiny", "--run.device", "cpu", "--run.out_dir", str(out / "runs"),
                         "--run.name", "raise", "--data.cache_dir", str(cache), "--schedule.max_steps", "50"]))


if __name__ == "__main__":
    torch.set_num_threads(1)
    mode, out, cache = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    {"runs": runs, "raise": raising}[mode](out, cache)
