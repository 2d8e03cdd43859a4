"""Which checkpoints a run keeps: run.checkpoint_steps (a list or "log2", step 0 = the initialisation),
run.keep_checkpoints (newest N plus the requested steps), no temp files left by interrupted writes, normal modes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from cs336_basics.training.checkpoint import list_checkpoints, prune_checkpoints, save_checkpoint
from cs336_basics.training.config import checkpoint_steps, resolve
from cs336_basics.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def tiny(tmp_path: Path, cache_dir: Path, **run) -> dict:
    return {"data": {"cache_dir": str(cache_dir)}, "schedule": {"max_steps": 20},
            "run": {"out_dir": str(tmp_path), "name": "t", "eval_every": 1000, "sample_tokens": 4, **run}}


@pytest.mark.parametrize("total", [1, 16, 20, 1000])
def test_log2_steps_are_zero_and_the_powers_of_two(total):
    expected = [0] + [2**k for k in range(40) if 2**k <= total]
    assert sorted(checkpoint_steps("log2", total)) == expected


def test_checkpoint_steps_lists_and_errors():
    assert checkpoint_steps(None, 20) == set()
    assert checkpoint_steps([0, 5, 100], 20) == {0, 5}  # steps past the end are never reached
    assert checkpoint_steps("0,5, 7", 20) == {0, 5, 7}  # the command-line form
    assert checkpoint_steps("[3]", 20) == {3}
    with pytest.raises(ValueError, match='run.checkpoint_steps: expected "log2" or a list'):
        checkpoint_steps("log3", 20)
    with pytest.raises(ValueError, match="steps must be >= 0, got -1"):
        checkpoint_steps([4, -1], 20)
    with pytest.raises(ValueError, match="run.keep_checkpoints must be >= 1"):
        resolve("tiny", overrides={"run": {"keep_checkpoints": 0}})


def test_checkpoint_steps_from_the_command_line():
    result = subprocess.run([sys.executable, "-m", "cs336_basics.train", "--preset", "tiny", "--print-config",
                             "--run.checkpoint_steps", "log2", "--run.keep_checkpoints", "2"],
                            cwd=REPO, capture_output=True, text=True, check=True)
    assert '"checkpoint_steps": "log2"' in result.stdout and '"keep_checkpoints": 2' in result.stdout
    bad = subprocess.run([sys.executable, "-m", "cs336_basics.train", "--preset", "tiny", "--print-config",
                          "--run.checkpoint_steps", "often"], cwd=REPO, capture_output=True, text=True,
                         check=False)
    assert bad.returncode == 2 and "run.checkpoint_steps" in bad.stderr and "Traceback" not in bad.stderr


def test_prune_keeps_the_newest_and_the_protected(tmp_path):
    for step in range(1, 11):
        (tmp_path / f"step_{step:07d}.pt").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    prune_checkpoints(tmp_path, keep=3, protected={2, 3})
    newest3 = sorted(range(1, 11))[-3:]
    assert sorted(list_checkpoints(tmp_path)) == sorted({2, 3, *newest3}) == [2, 3, 8, 9, 10]
    assert (tmp_path / "notes.txt").is_file()
    prune_checkpoints(tmp_path, keep=None)
    assert sorted(list_checkpoints(tmp_path)) == [2, 3, 8, 9, 10]


def test_trainer_keeps_requested_steps_and_the_newest(tmp_path, cache_dir):
    trainer = Trainer(resolve("tiny", overrides=tiny(tmp_path, cache_dir, checkpoint_every=5, checkpoint_steps=[0, 7],
                                                     keep_checkpoints=2)), progress=False)
    trainer.train()
    # every 5 steps and at 0 and 7; of the periodic ones only the newest two (15, 20) stay
    assert sorted(list_checkpoints(trainer.run_dir / "checkpoints")) == [0, 7, 15, 20]


def test_log2_run_keeps_every_power_of_two(tmp_path, cache_dir):
    trainer = Trainer(resolve("tiny", overrides=tiny(tmp_path, cache_dir, checkpoint_every=10,
                                                     checkpoint_steps="log2")), progress=False)
    trainer.train()
    assert sorted(list_checkpoints(trainer.run_dir / "checkpoints")) == [0, 1, 2, 4, 8, 10, 16, 20]


def test_resume_from_the_step_zero_checkpoint(tmp_path, cache_dir):
    config = resolve("tiny", overrides=tiny(tmp_path, cache_dir, checkpoint_steps="log2", checkpoint_every=1000))
    first = Trainer(config, progress=False)
    first._start_run_dir()
    first.save()  # what train() does first; then the process dies
    again = Trainer.from_run(first.run_dir, progress=False)
    assert again.step == 0
    assert again.train()["step"] == 20


def test_interrupted_write_leaves_no_temp_file(tmp_path, monkeypatch):
    model = torch.nn.Linear(3, 3)
    path = tmp_path / "step_0000001.pt"
    save_checkpoint(model, None, 1, path)
    before = path.read_bytes()

    def die_midway(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", die_midway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(model, None, 1, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_0000001.pt"] and path.read_bytes() == before


def test_temp_file_of_a_killed_write_is_cleared_by_the_next_save(tmp_path, cache_dir):
    folder = tmp_path / "t" / "checkpoints"
    killed = textwrap.dedent(f"""
        import os, signal, torch
        from cs336_basics.training.checkpoint import save_checkpoint
        def die(obj, f, *a, **k):
            f.write(b"partial"); f.flush(); os.kill(os.getpid(), signal.SIGKILL)
        torch.save = die
        save_checkpoint(torch.nn.Linear(2, 2), None, 5, {str(folder / "step_0000005.pt")!r})
    """)
    result = subprocess.run([sys.executable, "-c", killed], cwd=REPO, capture_output=True, check=False)
    assert result.returncode == -9
    assert [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]  # a kill cannot clean up after itself
    trainer = Trainer(resolve("tiny", overrides=tiny(tmp_path, cache_dir)), progress=False)
    trainer.save()
    assert [p.name for p in folder.iterdir()] == ["step_0000000.pt"]


def test_checkpoints_get_the_usual_file_mode(tmp_path):
    old = os.umask(0o022)
    try:
        save_checkpoint(torch.nn.Linear(2, 2), None, 1, tmp_path / "c.pt")
        with open(tmp_path / "plain", "wb"):
            pass  # what any other file written by open() gets
    finally:
        os.umask(old)
    mode = (tmp_path / "c.pt").stat().st_mode & 0o777
    assert mode == (tmp_path / "plain").stat().st_mode & 0o777 == 0o644
