"""The Trainer and the train CLI: a step against a hand-written torch reference, exact resume after a kill,
Ctrl-C, NaN stop, overfitting, the end-to-end default run at a tiny size, wandb and bad inputs."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cs336_basics.train import main
from cs336_basics.training.checkpoint import read_checkpoint
from cs336_basics.training.config import merge, resolve, to_dict
from cs336_basics.training.data import eval_batches
from cs336_basics.training.trainer import Trainer, TrainingDiverged, pick_device

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One data cache for the whole session: the tiny slice is split, BPE-trained and tokenized once."""
    return tmp_path_factory.mktemp("cache")


def tiny(tmp_path: Path, cache_dir: Path, **sections) -> dict:
    """Overrides for the tiny preset writing into tmp_path (plus `sections`, e.g. run={"log_every": 1})."""
    overrides = {"run": {"out_dir": str(tmp_path / "runs"), "name": "t"}, "data": {"cache_dir": str(cache_dir)}}
    for section, values in sections.items():
        overrides.setdefault(section, {}).update(values)
    return overrides


def flags(overrides: dict) -> list[str]:
    return [arg for section, values in overrides.items() for key, value in values.items()
            for arg in (f"--{section}.{key}", str(value))]


def run_cli(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cs336_basics.train", "--preset", "tiny", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=240, **kwargs)


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------------------------------- one step, one eval


def test_train_step_matches_torch_reference(tmp_path, cache_dir):
    """Our step (our cross_entropy, clipping, schedule, AdamW, 2 micro-batches) == torch's, on the same batches."""
    config = resolve("tiny", overrides=tiny(tmp_path, cache_dir, data={"grad_accum_steps": 2},
                                            optim={"max_grad_norm": 0.05}))
    trainer = Trainer(config, progress=False)
    reference = Trainer(config, progress=False).model  # same seed -> same initial weights
    groups = [{"params": [p for p in reference.parameters() if p.ndim >= 2], "weight_decay": config.optim.weight_decay},
              {"params": [p for p in reference.parameters() if p.ndim < 2], "weight_decay": 0.0}]
    torch_opt = torch.optim.AdamW(groups, betas=(config.optim.beta1, config.optim.beta2), eps=config.optim.eps)
    for _ in range(4):
        state = trainer.batch_rng.bit_generator.state
        batches = [trainer.next_batch() for _ in range(2)]
        trainer.batch_rng.bit_generator.state = state  # train_step draws the same two batches
        lr = trainer.lr_at(trainer.step)
        ours = trainer.train_step()

        losses = [F.cross_entropy(reference(x).flatten(0, 1), y.flatten()) for x, y in batches]
        sum(loss / 2 for loss in losses).backward()
        norm = torch.nn.utils.clip_grad_norm_(reference.parameters(), config.optim.max_grad_norm)
        for group in torch_opt.param_groups:
            group["lr"] = lr
        torch_opt.step()
        torch_opt.zero_grad()

        assert ours["train_loss"] == pytest.approx(sum(loss.item() for loss in losses) / 2, rel=1e-5)
        assert ours["grad_norm"] == pytest.approx(norm.item(), rel=1e-4)
        assert ours["grad_norm"] > config.optim.max_grad_norm  # clipping was active
    for p, q in zip(trainer.model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
    assert trainer.tokens == 4 * config.tokens_per_step


def test_evaluate_is_exact_loss_and_bits_per_byte(tmp_path, cache_dir):
    trainer = Trainer(resolve("tiny", overrides=tiny(tmp_path, cache_dir)), progress=False)
    result = trainer.evaluate(max_batches=None)
    nats, n_targets = 0.0, 0
    with torch.no_grad():
        for x, y in eval_batches(trainer.valid_data, 8, 32, "cpu"):
            nats += F.cross_entropy(trainer.model(x).flatten(0, 1), y.flatten(), reduction="sum").item()
            n_targets += y.numel()
    assert result["val_loss"] == pytest.approx(nats / n_targets, rel=1e-5)
    # Bytes of exactly the tokens predicted, decoded: close to our bytes-per-token estimate (only a tail is unused).
    covered = trainer.tokenizer.decode(trainer.valid_data[1 : 1 + n_targets].tolist()).encode("utf-8")
    assert result["val_bpb"] == pytest.approx(nats / math.log(2) / len(covered), rel=0.02)


def test_periodic_evaluation_is_one_fixed_evenly_spread_sample(tmp_path, cache_dir):
    """evaluate() (run.eval_batches = 4 batches of 8) scores windows spread over the whole split, the same ones
    at every call: checked against F.cross_entropy on the windows a plain formula picks."""
    trainer = Trainer(resolve("tiny", overrides=tiny(tmp_path, cache_dir)), progress=False)
    context, n_windows, k = 32, (len(trainer.valid_data) - 1) // 32, 4 * 8
    assert n_windows > 2 * k  # a real sample, not the whole split
    picked = [round(i * (n_windows - 1) / (k - 1)) for i in range(k)]
    windows = torch.stack([torch.from_numpy(trainer.valid_data[w * context : w * context + context + 1].astype("int64"))
                           for w in picked])
    with torch.no_grad():
        expected = F.cross_entropy(trainer.model(windows[:, :-1]).flatten(0, 1), windows[:, 1:].flatten()).item()
    first, second = trainer.evaluate(), trainer.evaluate()
    assert first["val_loss"] == pytest.approx(expected, rel=1e-5) and first == second
    assert trainer.evaluate(max_batches=None)["val_loss"] != pytest.approx(first["val_loss"], rel=1e-9)


def test_mfu_is_tokens_per_second_times_flops_per_token_over_the_peak(tmp_path, cache_dir):
    overrides = tiny(tmp_path, cache_dir, schedule={"max_steps": 4}, run={"log_every": 2, "eval_every": 100})
    trainer = Trainer(resolve("tiny", overrides=overrides), progress=False)
    summary = trainer.train()
    # forward matmul FLOPs per token of the tiny model written out by hand (2 per multiply-add), x3 for training
    L, d, f, V, T = 2, 32, 64, 320, 32
    per_token = 3 * (2 * (4 * d * d * L + 3 * d * f * L + d * V) + 2 * 2 * T * d * L)
    logged = [r for r in metrics(trainer.run_dir) if "tokens_per_s" in r]
    assert [r["step"] for r in logged] == [2, 4]
    for r in logged:
        assert r["mfu"] == pytest.approx(r["tokens_per_s"] * per_token / summary["peak_flops"], rel=1e-9)
        assert 0 < r["mfu"] < 1
    assert summary["peak_flops_source"].startswith("measured")  # a CPU has no datasheet figure here


def test_overfitting_one_batch_drives_the_loss_near_zero(tmp_path, cache_dir):
    overrides = tiny(tmp_path, cache_dir, model={"d_model": 64, "d_ff": 128, "context_length": 16},
                     schedule={"max_lr": 1e-2, "min_lr": 1e-2, "warmup_frac": 0.0, "max_steps": 1000},
                     data={"batch_size": 4}, optim={"weight_decay": 0.0})
    trainer = Trainer(resolve("tiny", overrides=overrides), progress=False)
    batch = trainer.next_batch()
    first = trainer.train_step(batch)["train_loss"]
    for _ in range(150):
        last = trainer.train_step(batch)["train_loss"]
    assert first > 5.0 and last < 0.05


def test_total_steps_from_a_token_budget():
    config = resolve("tiny", overrides={"schedule": {"max_steps": None, "total_tokens": 100_000},
                                        "data": {"grad_accum_steps": 3}})
    assert config.total_steps == 100_000 // (8 * 3 * 32)


def test_device_auto_detection(monkeypatch):
    assert pick_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device() == torch.device("cuda")


# ------------------------------------------------------------------------------------------- end to end


def test_default_run_end_to_end_at_tiny_size(tmp_path, cache_dir, capsys):
    overrides = tiny(tmp_path, cache_dir)
    out = run_cli(flags(overrides))
    assert out.returncode == 0, out.stderr
    run = tmp_path / "runs" / "t"
    assert str(run) in out.stdout and "bits/byte" in out.stdout
    for name in ["config.json", "metrics.jsonl", "learning_curve.png", "sample.txt", "tokenizer/vocab.json",
                 "tokenizer/merges.txt", "checkpoints/step_0000020.pt", "checkpoints/step_0000010.pt"]:
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert config == to_dict(resolve("tiny", overrides=overrides))
    ckpt = read_checkpoint(run / "checkpoints" / "step_0000020.pt")
    assert ckpt["config"] == config and ckpt["iteration"] == 20
    records = metrics(run)
    assert [r["step"] for r in records if "train_loss" in r] == [5, 10, 15, 20]
    # every curve point (10, and 20 = the last step) on the same sample; the whole split under its own keys
    assert [r["step"] for r in records if "val_loss" in r] == [10, 20]
    assert set(records[-1]) == {"step", "tokens", "time", "final_val_loss", "final_val_bpb"}
    assert records[-1]["step"] == 20 and records[-1]["final_val_bpb"] > 0
    assert all(k in records[-2] for k in ("tokens", "time", "lr", "grad_norm", "tokens_per_s", "mfu", "val_loss"))
    assert "mfu=" in out.stderr  # next to tok_s in the progress bar
    assert "MFU" in out.stdout and "measured" in out.stdout
    assert (run / "sample.txt").read_text().startswith("ROMEO.\n")
    assert (run / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"

    # A second run finds everything cached (no new tokenizer training) and refuses to overwrite the first.
    assert main(["--preset", "tiny", *flags(overrides)]) == 2
    again = capsys.readouterr()
    assert "already holds checkpoints" in again.err and "--resume" in again.err
    assert "training a" not in again.out
    assert len(list(cache_dir.glob("*/prepared.json"))) == 1


def test_no_arguments_means_the_shakespeare_preset(capsys):
    assert main(["--print-config"]) == 0
    assert json.loads(capsys.readouterr().out) == to_dict(resolve("shakespeare"))
    assert (REPO / "data" / "shakespeare.txt.gz").is_file()


# ------------------------------------------------------------------------------------------- resume, kill, Ctrl-C


KILL_AFTER_FIRST_SAVE = textwrap.dedent("""
    import os, signal, sys
    from cs336_basics import train
    from cs336_basics.training import trainer
    save = trainer.Trainer.save
    def save_then_die(self):
        save(self)
        os.kill(os.getpid(), signal.SIGKILL)  # no clean-up of any kind, as if the machine died
    trainer.Trainer.save = save_then_die
    sys.exit(train.main(sys.argv[1:]))
""")


def test_resume_after_kill_reproduces_the_losses_exactly(tmp_path, cache_dir):
    every_step = {"log_every": 1, "eval_every": 5, "checkpoint_every": 10}
    straight = tiny(tmp_path, cache_dir, run={**every_step, "name": "straight"})
    Trainer(resolve("tiny", overrides=straight), progress=False).train()  # uninterrupted, in this process

    killed = tiny(tmp_path, cache_dir, run={**every_step, "name": "killed"})
    out = subprocess.run([sys.executable, "-c", KILL_AFTER_FIRST_SAVE, "--preset", "tiny", *flags(killed)],
                         cwd=REPO, capture_output=True, text=True, timeout=240)
    assert out.returncode == -signal.SIGKILL
    run = tmp_path / "runs" / "killed"
    assert [p.name for p in (run / "checkpoints").glob("*.pt")] == ["step_0000010.pt"]
    resumed = run_cli(["--resume", str(run)])
    assert resumed.returncode == 0, resumed.stderr
    assert "continuing from step 10" in resumed.stdout

    def losses(name):
        return [(r["step"], r.get("train_loss"), r.get("val_loss"), r["tokens"]) for r in metrics(tmp_path / "runs" / name)]

    assert losses("killed") == losses("straight")  # exact equality, every step, train and validation
    a = read_checkpoint(tmp_path / "runs" / "straight" / "checkpoints" / "step_0000020.pt")["model"]
    b = read_checkpoint(run / "checkpoints" / "step_0000020.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path, cache_dir):
    overrides = tiny(tmp_path, cache_dir, schedule={"max_steps": 1_000_000}, run={"log_every": 1, "eval_every": 1000})
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with open(out, "w") as stdout_file, open(err, "w") as stderr_file:  # files: a full pipe would block the child
        proc = subprocess.Popen([sys.executable, "-m", "cs336_basics.train", "--preset", "tiny", *flags(overrides)],
                                cwd=REPO, stdout=stdout_file, stderr=stderr_file)
        run = tmp_path / "runs" / "t"
        deadline = time.monotonic() + 120
        while not ((run / "metrics.jsonl").is_file() and len(metrics(run)) >= 3) and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    stdout, stderr = out.read_text(), err.read_text()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted at step" in stdout and "--resume" in stdout
    step = int(stdout.split("interrupted at step ")[1].split(":")[0])
    ckpt = read_checkpoint(run / "checkpoints" / f"step_{step:07d}.pt")
    assert ckpt["iteration"] == step >= 3


# ------------------------------------------------------------------------------------------- failures


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, cache_dir):
    trainer = Trainer(resolve("tiny", overrides=tiny(tmp_path, cache_dir)), progress=False)
    model = trainer.model
    trainer.forward = lambda x: model(x) * (math.nan if trainer.step >= 12 else 1.0)  # poison step 13
    with pytest.raises(TrainingDiverged, match="diverged at step 13: loss nan.*last good checkpoint"):
        trainer.train()
    assert trainer.step == 12
    kept = sorted(p.name for p in (trainer.run_dir / "checkpoints").iterdir())
    assert kept == ["step_0000010.pt"]
    weights = read_checkpoint(trainer.run_dir / "checkpoints" / kept[0])["model"]
    assert all(torch.isfinite(w).all() for w in weights.values())
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the bad step never touched the weights


def test_absurd_learning_rate_stops_the_cli_with_a_clear_message(tmp_path, cache_dir, capsys):
    overrides = tiny(tmp_path, cache_dir, schedule={"max_lr": 1e30, "min_lr": 1e30, "warmup_frac": 0.0},
                     optim={"max_grad_norm": 0.0})
    assert main(["--preset", "tiny", *flags(overrides)]) == 1
    assert "error: training diverged at step" in capsys.readouterr().err


def test_missing_tinystories_says_how_to_get_it(tmp_path, capsys):
    argv = ["--preset", "tinystories", "--data.train_path", str(tmp_path / "TinyStoriesV2-GPT4-train.txt")]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "TinyStoriesV2-GPT4-train.txt not found" in err
    assert "uv run python -m cs336_basics.data download tinystories" in err


def test_resume_with_another_model_shape_is_a_clear_error(tmp_path, cache_dir, capsys):
    trainer = Trainer(resolve("tiny", overrides=tiny(tmp_path, cache_dir, schedule={"max_steps": 2})),
                      progress=False)
    trainer.train()
    with pytest.raises(SystemExit) as exit_info:
        main(["--resume", str(trainer.run_dir), "--model.d_model", "64", "--model.d_ff", "128"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "step_0000002.pt" in err and "in the checkpoint but" in err


def test_resume_of_something_that_is_not_a_run(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--resume", str(tmp_path)])
    assert "config.json does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--resume", "--run.out_dir", str(tmp_path)])
    assert "no run with checkpoints" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- wandb


class FakeWandb(types.ModuleType):
    """Stands in for the wandb package: records calls, never touches the network."""

    def __init__(self, fail_on: str | None = None):
        super().__init__("wandb")
        self.fail_on, self.inits, self.logged, self.finished = fail_on, [], [], 0

    def init(self, **kwargs):
        if self.fail_on == "init":
            raise RuntimeError("wandb is broken")
        self.inits.append(kwargs)
        return self

    def log(self, record, step):
        if self.fail_on == "log":
            raise RuntimeError("network down")
        self.logged.append((step, record))

    def finish(self):
        self.finished += 1


@pytest.mark.parametrize("fail_on", [None, "init", "log"])
def test_wandb_is_offline_without_a_key_and_never_fails_the_run(tmp_path, cache_dir, monkeypatch, fail_on):
    fake = FakeWandb(fail_on)
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    overrides = tiny(tmp_path, cache_dir, schedule={"max_steps": 10}, run={"wandb": True})
    trainer = Trainer(resolve("tiny", overrides=overrides), progress=False)
    if fail_on is None:
        summary = trainer.train()
        assert fake.inits[0]["mode"] == "offline" and fake.inits[0]["config"] == to_dict(trainer.config)
        assert [step for step, _ in fake.logged] == [r["step"] for r in metrics(trainer.run_dir)]
        assert fake.finished == 1
    else:
        with pytest.warns(UserWarning, match="wandb"):
            summary = trainer.train()
    assert summary["step"] == 10 and (trainer.run_dir / "checkpoints" / "step_0000010.pt").is_file()


def test_checkpoint_holds_everything_to_rebuild_the_run(tmp_path, cache_dir):
    trainer = Trainer(resolve("tiny", overrides=tiny(tmp_path, cache_dir, schedule={"max_steps": 3})),
                      progress=False)
    trainer.train()
    ckpt = read_checkpoint(trainer.run_dir / "checkpoints" / "step_0000003.pt")
    assert set(ckpt) >= {"model", "optimizer", "iteration", "config", "rng", "data_state", "tokens", "time"}
    again = Trainer(merge(resolve("tiny"), ckpt["config"]), tmp_path / "other", progress=False)
    again.resume(trainer.run_dir / "checkpoints" / "step_0000003.pt")
    assert again.step == 3 and again.tokens == trainer.tokens
    assert again.next_batch()[0].tolist() == trainer.next_batch()[0].tolist()  # same data position
    assert os.path.isdir(trainer.run_dir / "tokenizer")
