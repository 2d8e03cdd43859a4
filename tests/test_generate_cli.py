"""The generate CLI over a run directory laid out like the trainer's, and `--help` of every training-side CLI
run as `python -m` (so the module entry points themselves are exercised)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch

from cs336_basics.generate import find_tokenizer, load_model, main
from cs336_basics.generation import generate
from cs336_basics.model import ModelConfig, TransformerLM
from cs336_basics.tokenizer import Tokenizer
from cs336_basics.training.checkpoint import checkpoint_path, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture
def run(tmp_path):
    """runs/demo with config-bearing checkpoints at steps 10 and 20 and a byte-level tokenizer."""
    tokenizer = Tokenizer({i: bytes([i]) for i in range(256)}, [], ["<|endoftext|>"])
    run_dir = tmp_path / "demo"
    tokenizer.save(run_dir / "tokenizer")
    config = ModelConfig(
        vocab_size=tokenizer.vocab_size, context_length=32, d_model=16, num_layers=1, num_heads=2
    )
    for step, seed in ((10, 0), (20, 1)):
        torch.manual_seed(seed)
        model = TransformerLM(config)
        extra = {"config": {"model": dataclasses.asdict(config), "run": {"name": "demo"}}}
        save_checkpoint(model, None, step, checkpoint_path(run_dir, step), extra=extra)
    return run_dir, model, tokenizer  # `model` is the step-20 (latest) one


def test_load_model_takes_the_latest_checkpoint(run):
    run_dir, latest, _ = run
    model, path = load_model(run_dir)
    assert path.name == "step_0000020.pt" and not model.training
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), latest.state_dict().values()))
    assert find_tokenizer(path) == run_dir / "tokenizer"


def test_cli_prints_prompt_and_greedy_continuation(run, capsys):
    run_dir, latest, tokenizer = run
    main(["--checkpoint", str(run_dir), "--prompt", "Once", "--temperature", "0", "--max-new-tokens", "12"])
    expected = "Once" + generate(latest, tokenizer, "Once", max_new_tokens=12, temperature=0)
    assert capsys.readouterr().out == expected + "\n"


def test_cli_batch_of_prompts_and_samples_is_seeded(run, capsys):
    run_dir, _, _ = run
    file = run_dir / "checkpoints" / "step_0000010.pt"
    argv = [
        "--checkpoint",
        str(file),
        "--prompt",
        "a",
        "--prompt",
        "b",
        "--num-samples",
        "2",
        "--seed",
        "3",
        "--max-new-tokens",
        "5",
        "--top-k",
        "20",
        "--top-p",
        "0.9",
        "--temperature",
        "1.2",
        "--device",
        "cpu",
    ]
    main(argv)
    first = capsys.readouterr().out
    main(argv)
    assert capsys.readouterr().out == first
    blocks = first.split("\n" + "-" * 40 + "\n")
    assert len(blocks) == 4 and [b[0] for b in blocks] == ["a", "a", "b", "b"]


def test_cli_errors_are_clear(run, tmp_path, capsys):
    run_dir, latest, _ = run
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(tmp_path / "nothing")])
    assert "neither a checkpoint file nor a run directory" in capsys.readouterr().err

    bare = tmp_path / "bare.pt"
    save_checkpoint(latest, None, 1, bare)  # no config in it
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(bare)])
    assert "holds no model config" in capsys.readouterr().err

    lone = tmp_path / "lone" / "step_0000001.pt"
    save_checkpoint(latest, None, 1, lone, extra={"config": {"model": dataclasses.asdict(latest.config)}})
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(lone)])
    assert "no tokenizer/ folder" in capsys.readouterr().err

    with pytest.raises(SystemExit):
        main(["--checkpoint", str(run_dir), "--temperature", "-1"])
    assert "temperature must be >= 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    "module, words",
    [
        ("cs336_basics.generate", ["--checkpoint", "--temperature", "--top-p", "--max-new-tokens", "--seed"]),
        ("cs336_basics.plot", ["--x", "--out"]),
        ("cs336_basics.data", ["download"]),
    ],
)
def test_help_of_each_cli(module, words):
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert all(word in result.stdout for word in words)
