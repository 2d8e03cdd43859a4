"""Distributed training on the CPU (gloo): 2 ranks under torchrun train exactly like 1 process, for DDP with
gradient accumulation and for FSDP; resuming under 2 ranks equals the uninterrupted run; a failing rank ends the job.

The 2-rank runs happen in one torchrun job (tests/distributed_worker.py); the reference runs here, in-process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cs336_basics.distributed import Ranks, check_batch, gradient_sync
from cs336_basics.model import TransformerLM
from cs336_basics.training.checkpoint import load_checkpoint
from cs336_basics.training.config import resolve
from cs336_basics.training.trainer import Trainer

sys.path.insert(0, str(Path(__file__).parent))
from distributed_worker import STEPS, overrides  # noqa: E402  (a sibling script, not a package)

WORKER = Path(__file__).parent / "distributed_worker.py"
REPO = Path(__file__).resolve().parents[1]


def torchrun(*args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(WORKER), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def final_state(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / f"step_{STEPS:07d}.pt", weights_only=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """The one-process reference (which also fills the data cache), then the 2-rank torchrun job."""
    out, cache = tmp_path_factory.mktemp("dist"), tmp_path_factory.mktemp("cache")
    Trainer(resolve("tiny", overrides=overrides(out, cache, "single")), progress=False).train()
    job = torchrun("runs", str(out), str(cache))
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    dirs = {name: out / "runs" / name for name in ("single", "ddp", "fsdp", "resumed", "cli")}
    return dirs | {"cache": cache, "stdout": job.stdout}  # type: ignore[dict-item]


def assert_same_run(reference: Path, run: Path) -> None:
    """Per-step train losses, validation losses and final weights and optimizer moments within 1e-5."""
    ours, theirs = metrics(reference), metrics(run)
    assert [r["step"] for r in ours] == [r["step"] for r in theirs]  # one metrics line per step: rank 0 alone
    for key in ("train_loss", "grad_norm", "val_loss", "val_bpb"):
        a = [r[key] for r in ours if key in r]
        b = [r[key] for r in theirs if key in r]
        assert len(a) == len(b) > 0
        assert max(abs(x - y) for x, y in zip(a, b)) < 1e-5, key
    ref, got = final_state(reference), final_state(run)
    for key, value in ref["model"].items():
        torch.testing.assert_close(got["model"][key], value, atol=1e-5, rtol=0)
    for i, state in ref["optimizer"]["state"].items():
        for name in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(got["optimizer"]["state"][i][name], state[name], atol=1e-5, rtol=0)


def test_ddp_with_gradient_accumulation_on_2_ranks_equals_1_process(runs):
    assert_same_run(runs["single"], runs["ddp"])


def test_fsdp_on_2_ranks_equals_1_process_and_saves_the_single_device_format(runs):
    assert_same_run(runs["single"], runs["fsdp"])
    # the gathered checkpoint loads into a plain model on one process
    model = TransformerLM(resolve("tiny").model)
    assert load_checkpoint(runs["fsdp"] / "checkpoints" / f"step_{STEPS:07d}.pt", model) == STEPS


def test_resume_under_2_ranks_equals_the_uninterrupted_run(runs):
    """DDP's step-3 checkpoint, resumed under FSDP on 2 ranks, continues like the run that never stopped."""
    assert_same_run(runs["single"], runs["resumed"])
    assert [r["step"] for r in metrics(runs["resumed"])] == [r["step"] for r in metrics(runs["single"])]


def test_the_train_cli_under_torchrun_reports_once(runs):
    out = runs["stdout"]
    assert out.count("done: 4 steps") == 1 and out.count("x 2 ranks (ddp)") == 1, out[-2000:]
    assert (runs["cli"] / "sample.txt").is_file() and (runs["cli"] / "learning_curve.png").is_file()


@pytest.fixture(scope="module")
def failures(tmp_path_factory, runs) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("failures")
    return out, torchrun("raise", str(out), str(runs["cache"]), timeout=300)


def test_divergence_on_one_rank_stops_all_ranks_at_the_same_step(failures):
    out, _ = failures
    stops = [json.loads((out / f"diverged_rank{r}.json").read_text()) for r in range(2)]
    assert stops[0]["step"] == stops[1]["step"] == 1  # step 2 is refused on both ranks, weights untouched
    assert all("diverged at step 2: loss nan" in s["error"] for s in stops)


def test_a_ctrl_c_on_one_rank_stops_all_ranks_at_the_same_step_with_a_checkpoint(failures):
    out, _ = failures
    summaries = [json.loads((out / f"interrupt_rank{r}.json").read_text()) for r in range(2)]
    assert all(s["interrupted"] for s in summaries)
    assert summaries[0]["step"] == summaries[1]["step"] == 2  # rank 1 saw it in step 2; both stop after it
    assert (out / "runs" / "interrupt" / "checkpoints" / "step_0000002.pt").is_file()


def test_a_rank_that_raises_ends_the_job_with_its_error(failures):
    out, job = failures
    assert job.returncode != 0
    assert "injected failure on rank 1" in job.stdout + job.stderr
    assert not (out / "runs" / "raise" / "checkpoints").exists()  # no checkpoint of the failed step


def test_global_batch_split_and_checks():
    rows = torch.arange(8)
    assert torch.cat([Ranks(rank=r, world_size=2).share(rows) for r in range(2)]).tolist() == list(range(8))
    assert [Ranks(rank=r, world_size=3).share(torch.arange(2)).tolist() for r in range(3)] == [[], [0], [1]]
    check_batch(8, Ranks(world_size=2))
    with pytest.raises(ValueError, match=r"data.batch_size \(6\) must be divisible by the number of ranks \(4\)"):
        check_batch(6, Ranks(world_size=4))
    with gradient_sync(torch.nn.Linear(2, 2), enabled=False):  # a plain module: nothing to switch off
        pass


def test_unknown_parallel_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="run.parallel"):
        resolve("tiny", overrides={"run": {"parallel": "zero3"}})
