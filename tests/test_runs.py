"""Nothing lost, nothing rewritten by surprise (issue 12 §4) and the run-level features of §6: a damaged newest
checkpoint is skipped (and kept), a missing config is rebuilt from a checkpoint, finished runs are left alone,
time-based checkpoints, failed runs leave no directory, --init-from, evaluate, generate --prompt-file."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cs336_basics import evaluate as evaluate_cli
from cs336_basics import generate as generate_cli
from cs336_basics.generation import generate
from cs336_basics.model import TransformerLM
from cs336_basics.runs import load_latest_checkpoint, point_latest
from cs336_basics.tokenizer import Tokenizer
from cs336_basics.train import main as train_main
from cs336_basics.training.checkpoint import read_checkpoint, restore_checkpoint
from cs336_basics.training.config import PRESETS, load_config, resolve
from cs336_basics.training.corpus import cache_dir_for
from cs336_basics.training.trainer import Trainer, TrainingDiverged

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def overrides(out: Path, cache_dir: Path, name: str = "t", **sections) -> dict:
    result = {"run": {"out_dir": str(out), "name": name}, "data": {"cache_dir": str(cache_dir)}}
    for section, values in sections.items():
        result.setdefault(section, {}).update(values)
    return result


def flags(o: dict) -> list[str]:
    return [arg for section, values in o.items() for key, value in values.items()
            for arg in (f"--{section}.{key}", str(value))]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, cache_dir) -> Path:
    """A finished tiny run (20 steps, checkpoints at 10 and 20) made by the CLI; tests copy it before changing it."""
    out = tmp_path_factory.mktemp("runs")
    assert train_main(["--preset", "tiny", *flags(overrides(out, cache_dir, "done"))]) == 0
    return out / "done"


def copy_run(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "runs" / run.name
    shutil.copytree(run, target, symlinks=True)
    return target


def snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------- a damaged newest checkpoint


def test_corrupt_newest_checkpoint_falls_back_with_a_warning_and_is_kept(finished, tmp_path):
    run = copy_run(finished, tmp_path)
    newest = run / "checkpoints" / "step_0000020.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # a truncated copy
    with pytest.warns(UserWarning, match=r"skipping .*step_0000020\.pt.*older checkpoint \(the file is kept\)"):
        path, ckpt = load_latest_checkpoint(run)
    assert path.name == "step_0000010.pt" and ckpt["iteration"] == 10
    assert newest.exists() and newest.stat().st_size == 1000  # never deleted
    # generate uses the same fallback; the model it loads is step 10's
    with pytest.warns(UserWarning, match="step_0000020"):
        model, used = generate_cli.load_model(run)
    reference = read_checkpoint(run / "checkpoints" / "step_0000010.pt")["model"]
    assert used.name == "step_0000010.pt"
    assert all(torch.equal(model.state_dict()[k], v) for k, v in reference.items())


def test_resume_skips_a_corrupt_newest_checkpoint(finished, tmp_path, cache_dir):
    run = copy_run(finished, tmp_path)
    (run / "checkpoints" / "step_0000020.pt").write_bytes(b"\0" * 64)
    with pytest.warns(UserWarning, match="step_0000020"):
        trainer = Trainer.from_run(run, progress=False)
    assert trainer.step == 10
    assert all(r["step"] <= 10 for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()))



def test_resume_cuts_metrics_back_atomically(finished, tmp_path, monkeypatch):
    """Resuming at step 10 cuts metrics.jsonl back to it: a kill during that rewrite leaves the old file whole."""
    import cs336_basics.atomic as atomic

    run = copy_run(finished, tmp_path)
    (run / "checkpoints" / "step_0000020.pt").unlink()
    before = (run / "metrics.jsonl").read_text()
    assert any(json.loads(line)["step"] > 10 for line in before.splitlines())  # records the resume cuts

    def killed(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        Trainer.from_run(run, progress=False)
    assert (run / "metrics.jsonl").read_text() == before
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    Trainer.from_run(run, progress=False)  # the same resume, not killed
    assert all(json.loads(line)["step"] <= 10 for line in (run / "metrics.jsonl").read_text().splitlines())

def test_no_loadable_checkpoint_names_the_newest(tmp_path):
    folder = tmp_path / "r" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "step_0000005.pt").write_bytes(b"junk")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"no checkpoint .* loads.*step_0000005"):
        load_latest_checkpoint(tmp_path / "r")


# ------------------------------------------------------------------------------- config.json and finished runs


def test_resume_rebuilds_a_missing_config_from_the_checkpoint(finished, tmp_path):
    run = copy_run(finished, tmp_path)
    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text("")  # what a kill during a non-atomic rewrite used to leave
    with pytest.warns(UserWarning, match="rebuilt the config from .*step_0000020.pt"):
        trainer = Trainer.from_run(run, {"schedule": {"max_steps": 22}}, progress=False)
    assert trainer.config.model == resolve("tiny").model and trainer.step == 20
    trainer.train()
    rewritten = json.loads((run / "config.json").read_text())
    assert rewritten["model"] == saved["model"] and rewritten["schedule"]["max_steps"] == 22


def test_resuming_a_finished_run_changes_nothing(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path)
    before = snapshot(run)
    assert train_main(["--preset", "tiny", "--resume", str(run)]) == 0
    assert "already finished at step 20" in capsys.readouterr().out
    assert snapshot(run) == before
    assert Trainer.from_run(run, progress=False).train()["already_finished"]
    assert snapshot(run) == before


def test_resuming_a_finished_run_with_an_extended_schedule_trains_on(finished, tmp_path):
    run = copy_run(finished, tmp_path)
    assert train_main(["--preset", "tiny", "--resume", str(run), "--schedule.max_steps", "25"]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 25 and (run / "checkpoints" / "step_0000025.pt").is_file()


def test_resume_print_config_prints_and_does_nothing(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path)
    before = snapshot(run)
    assert train_main(["--resume", str(run), "--print-config", "--schedule.max_steps", "99"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["schedule"]["max_steps"] == 99 and printed["run"]["name"] == "done"
    assert printed["model"] == json.loads((run / "config.json").read_text())["model"]
    assert snapshot(run) == before


# ------------------------------------------------------------------------------- checkpoints by time; failures


def test_checkpoint_by_time(tmp_path, cache_dir):
    """checkpoint_every far away, checkpoint_minutes tiny: a checkpoint after every step."""
    o = overrides(tmp_path, cache_dir, schedule={"max_steps": 4},
                  run={"checkpoint_every": 1000, "checkpoint_minutes": 1e-9, "eval_every": 1000})
    Trainer(resolve("tiny", overrides=o), progress=False).train()
    steps = sorted(p.name for p in (tmp_path / "t" / "checkpoints").iterdir())
    assert steps == [f"step_{s:07d}.pt" for s in (1, 2, 3, 4)]
    o["run"].update(name="u", checkpoint_minutes=None)
    Trainer(resolve("tiny", overrides=o), progress=False).train()
    assert sorted(p.name for p in (tmp_path / "u" / "checkpoints").iterdir()) == ["step_0000004.pt"]


def test_a_run_that_fails_before_training_leaves_no_directory(tmp_path, cache_dir):
    trainer = Trainer(resolve("tiny", overrides=overrides(tmp_path / "runs", cache_dir)), progress=False)

    def diverge(batch=None):
        raise TrainingDiverged("training diverged at step 1: loss nan")

    trainer.train_step = diverge
    with pytest.raises(TrainingDiverged):
        trainer.train()
    assert not (tmp_path / "runs" / "t").exists()
    # a directory that was there before (e.g. one being resumed) is never removed
    (tmp_path / "runs" / "t").mkdir(parents=True)
    (tmp_path / "runs" / "t" / "notes.txt").write_text("mine")
    with pytest.raises(TrainingDiverged):
        trainer.train()
    assert (tmp_path / "runs" / "t" / "notes.txt").read_text() == "mine"


def test_a_bad_device_is_reported_as_such_before_anything_else(tmp_path, cache_dir, capsys):
    for device, message in (("banana", "unknown device 'banana'"), ("tpu9", "unknown device 'tpu9'")):
        with pytest.raises(SystemExit) as exit_info:
            train_main(["--preset", "tiny", "--run.device", device, *flags(overrides(tmp_path, cache_dir))])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            train_main(["--preset", "tiny", "--run.device", "cuda", *flags(overrides(tmp_path, cache_dir))])
        assert "device 'cuda' is not available" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


# ------------------------------------------------------------------------------- init-from, evaluate, prompt files


def test_init_from_starts_a_new_run_from_trained_weights(finished, tmp_path, cache_dir):
    o = overrides(tmp_path, cache_dir, "tuned", schedule={"max_steps": 3, "max_lr": 1e-4, "min_lr": 1e-5})
    assert train_main(["--preset", "tiny", "--init-from", str(finished), *flags(o)]) == 0
    run = tmp_path / "tuned"
    config = json.loads((run / "config.json").read_text())
    assert config["run"]["init_from"] == str(finished) and config["schedule"]["max_steps"] == 3
    assert Path(config["data"]["tokenizer_dir"]) == finished / "tokenizer"
    assert (run / "tokenizer" / "merges.txt").read_bytes() == (finished / "tokenizer" / "merges.txt").read_bytes()
    # at step 0 the new run holds exactly the source's weights, with a fresh optimizer and schedule
    trainer = Trainer(resolve("tiny", overrides={**o, "run": {**o["run"], "init_from": str(finished)}}),
                      progress=False)
    source = read_checkpoint(finished / "checkpoints" / "step_0000020.pt")["model"]
    assert all(torch.equal(trainer.model.state_dict()[k], v) for k, v in source.items())
    assert trainer.step == 0 and not trainer.optimizer.state


def test_init_from_takes_the_model_shape_from_the_source(finished, capsys):
    """Under another preset, --init-from still builds the source's model (flags would still win)."""
    assert train_main(["--preset", "shakespeare", "--init-from", str(finished), "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["model"] == json.loads((finished / "config.json").read_text())["model"]
    assert printed["schedule"]["max_steps"] == PRESETS["shakespeare"]["schedule"]["max_steps"]


def test_init_from_a_different_shape_names_the_mismatch(finished, tmp_path, cache_dir):
    config = resolve("tiny", overrides=overrides(tmp_path, cache_dir, model={"d_model": 64, "d_ff": 96},
                                                  run={"init_from": str(finished)}))
    with pytest.raises(ValueError, match=r"step_0000020.pt' does not fit the model: '.*' has shape \(32, 32\)"):
        Trainer(config, progress=False)


def plain_loss(model, ids: torch.Tensor) -> tuple[float, int]:
    """Mean F.cross_entropy over the non-overlapping windows 0, T, 2T, ... (each T+1 tokens), and the targets."""
    context = model.config.context_length
    n = (len(ids) - 1) // context
    x = ids[: n * context].view(n, context)
    y = ids[1 : n * context + 1].view(n, context)
    with torch.no_grad():
        return F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item(), n * context


def test_evaluate_on_the_runs_validation_split(finished, cache_dir, capsys):
    assert evaluate_cli.main([str(finished), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    config = load_config(json.loads((finished / "config.json").read_text()))
    prepared = json.loads((cache_dir_for(config.data, config.model.vocab_size) / "prepared.json").read_text())
    model, _ = generate_cli.load_model(finished)
    loss, count = plain_loss(model, torch.from_numpy(np.load(prepared["valid_tokens"]).astype(np.int64)))
    bpb = loss / math.log(2) / (prepared["valid_num_bytes"] / prepared["valid_num_tokens"])
    assert f"loss {loss:.4f} nats/token, {bpb:.4f} bits/byte over {count:,} tokens of the validation split" in out


def test_evaluate_on_a_text_file_against_a_plain_computation(finished, tmp_path, capsys):
    text = (REPO / "tests" / "fixtures" / "tinystories_sample.txt").read_text()
    path = tmp_path / "eval.txt"
    path.write_text(text)
    assert evaluate_cli.main([str(finished), "--data", str(path), "--device", "cpu", "--batch-size", "3"]) == 0
    out = capsys.readouterr().out
    model, _ = generate_cli.load_model(finished)
    ids = torch.tensor(Tokenizer.from_dir(finished / "tokenizer").encode(text))
    loss, count = plain_loss(model, ids)
    bpb = loss / math.log(2) / (len(text.encode()) / len(ids))
    assert f"loss {loss:.4f} nats/token, {bpb:.4f} bits/byte over {count:,} tokens" in out


def test_evaluate_errors_are_one_line(finished, tmp_path):
    for args, message in (([str(tmp_path / "none")], "neither a checkpoint file nor a run directory"),
                          ([str(finished), "--data", str(tmp_path)], "is not a file"),
                          ([str(finished), "--device", "banana"], "unknown device 'banana'")):
        result = subprocess.run([sys.executable, "-m", "cs336_basics.evaluate", *args], capture_output=True,
                                text=True, timeout=120, cwd=REPO)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_generate_prompt_file(finished, tmp_path, capsys):
    prompt = "ROMEO.\nWhat light\n"
    path = tmp_path / "prompt.txt"
    path.write_text(prompt)
    generate_cli.main(["--checkpoint", str(finished), "--prompt-file", str(path), "--temperature", "0",
                       "--max-new-tokens", "8", "--device", "cpu"])
    model, _ = generate_cli.load_model(finished)
    expected = prompt + generate(model, Tokenizer.from_dir(finished / "tokenizer"), prompt, max_new_tokens=8,
                                 temperature=0)
    assert capsys.readouterr().out == expected + "\n"
    with pytest.raises(SystemExit):
        generate_cli.main(["--checkpoint", str(finished), "--prompt-file", str(tmp_path / "missing.txt")])
    assert "prompt file" in capsys.readouterr().err


def test_generate_greedy_accepts_top_p_zero_and_checks_the_device_first(finished, tmp_path, capsys):
    generate_cli.main(["--checkpoint", str(finished), "--prompt", "a", "--temperature", "0", "--top-p", "0",
                       "--max-new-tokens", "2", "--device", "cpu"])
    assert capsys.readouterr().out.startswith("a")
    for device in ("tpu9", "banana") + (() if torch.cuda.is_available() else ("cuda",)):
        with pytest.raises(SystemExit):
            generate_cli.main(["--checkpoint", str(finished), "--device", device])
        err = capsys.readouterr().err
        assert f"device '{device}'" in err and "corrupt" not in err and "checkpoint" not in err.splitlines()[-1]


def test_latest_points_at_the_last_run(finished, tmp_path):
    assert (finished.parent / "latest").resolve() == finished.resolve()
    other = tmp_path / "other"
    other.mkdir()
    assert point_latest(other) == tmp_path / "latest"
    assert (tmp_path / "latest").resolve() == other.resolve()


# ------------------------------------------------------------------------------- the character-level preset


def test_shakespeare_char_preset_is_one_token_per_character(tmp_path, cache_dir):
    config = resolve("shakespeare-char", overrides=overrides(
        tmp_path, cache_dir, data={"max_bytes": 60_000}, schedule={"max_steps": 2},
        model={"context_length": 32, "d_model": 32, "num_heads": 2, "num_layers": 1, "d_ff": 64}))
    assert PRESETS["shakespeare-char"]["model"]["vocab_size"] == 257
    trainer = Trainer(config, progress=False)
    text = "ROMEO.\nBut soft, what light through yonder window breaks?"
    assert trainer.tokenizer.vocab_size == 257 and not trainer.tokenizer.merges
    assert trainer.tokenizer.encode(text) == [ord(c) for c in text]  # ASCII: each character its own id
    assert trainer.train()["step"] == 2


def test_restore_checkpoint_is_what_init_from_uses(finished):
    """The weights --init-from loads are exactly the source checkpoint's (restore_checkpoint checks shapes)."""
    ckpt = read_checkpoint(finished / "checkpoints" / "step_0000020.pt")
    model = TransformerLM(resolve("tiny").model)
    assert restore_checkpoint(ckpt, model) == 20
