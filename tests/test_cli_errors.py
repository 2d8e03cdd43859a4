"""Issue 12 §3: every named bad input ends in one clear error line that names the real cause, a non-zero exit,
no traceback, and nothing deleted. CLIs run in-process through their main(): any exception other than the
SystemExit of a clean error would be the traceback a user sees."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cs336_basics import data as data_cli
from cs336_basics import generate as generate_cli
from cs336_basics import plot as plot_cli
from cs336_basics import tokenize_data as tokenize_cli
from cs336_basics import train as train_cli
from cs336_basics import train_bpe as train_bpe_cli
from cs336_basics.model import ModelConfig, TransformerLM
from cs336_basics.tokenizer import Tokenizer, train_bpe
from cs336_basics.training.checkpoint import save_checkpoint
from cs336_basics.training.corpus import read_text

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"


def fails(main, argv: list[str], capsys) -> str:
    """Run a CLI's main(argv) expecting a clean error; return its one error line."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code not in (0, None)
    err = capsys.readouterr().err
    error_lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(error_lines) == 1, err
    return error_lines[0]


@pytest.fixture
def tokenizer_dir(tmp_path) -> Path:
    tok = Tokenizer({**{i: bytes([i]) for i in range(256)}, 257: b"ab"}, [(b"a", b"b")], ["<|endoftext|>"])
    tok.save(tmp_path / "tok")
    return tmp_path / "tok"


@pytest.fixture
def run(tmp_path, tokenizer_dir) -> Path:
    """A run directory with one config-bearing checkpoint and the tokenizer above."""
    run_dir = tmp_path / "run"
    shutil.copytree(tokenizer_dir, run_dir / "tokenizer")
    config = ModelConfig(vocab_size=258, context_length=16, d_model=16, num_layers=1, num_heads=2)
    extra = {"config": {"model": dataclasses.asdict(config)}}
    save_checkpoint(TransformerLM(config), None, 5, run_dir / "checkpoints" / "step_0000005.pt", extra=extra)
    return run_dir


# ------------------------------------------------------------------------------- checkpoints and tokenizer files


class _Payload:
    def __reduce__(self):  # what a malicious checkpoint holds: a call to run at load time
        return (print, ("this must never run",))


def test_pickled_code_is_refused_without_suggesting_an_unsafe_load(run, capsys):
    path = run / "checkpoints" / "step_0000005.pt"
    state = torch.load(path, weights_only=True)
    torch.save({**state, "payload": _Payload()}, path)
    line = fails(generate_cli.main, ["--checkpoint", str(run), "--device", "cpu"], capsys)
    assert "print) that a safe (weights_only) load refuses" in line and "holds Python objects (" in line
    assert "corrupt" not in line and "weights_only=False" not in line and "set to `False`" not in line
    assert path.is_file()


@pytest.mark.parametrize("broken", ["vocab.json", "merges.txt", "special_tokens.json"])
def test_tokenizer_file_syntax_errors_name_the_file(run, tmp_path, capsys, broken):
    path = run / "tokenizer" / broken
    text = path.read_text()
    path.write_text({"vocab.json": text[:-10] + ",,\n", "merges.txt": text + "a b c\n",
                     "special_tokens.json": "[\"<|endoftext|>\""}[broken])
    text_file = tmp_path / "in.txt"
    text_file.write_text("hello")
    for main, argv in ((tokenize_cli.main, ["--tokenizer", str(run / "tokenizer"), str(text_file), "--output",
                                            str(tmp_path / "o.npy")]),
                       (generate_cli.main, ["--checkpoint", str(run), "--device", "cpu"])):
        assert str(path) in fails(main, argv, capsys)


def test_train_names_a_broken_tokenizer_file(run, tmp_path, capsys):
    (run / "tokenizer" / "vocab.json").write_text("{\"a\": 1,")
    argv = ["--preset", "tiny", "--data.tokenizer_dir", str(run / "tokenizer"), "--run.out_dir",
            str(tmp_path / "runs"), "--data.cache_dir", str(tmp_path / "cache")]
    assert f"{run / 'tokenizer' / 'vocab.json'}: not valid JSON" in fails(train_cli.main, argv, capsys)
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------------- invalid UTF-8 in training text


def test_invalid_utf8_is_an_error_naming_file_and_offset_like_the_bpe_trainer(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"hello world " * 10 + b"\xff\xfe" + b" more text" * 10)
    with pytest.raises(ValueError) as bpe_error:
        train_bpe(bad, 300, ["<|endoftext|>"])
    for max_bytes in (None, 500):
        with pytest.raises(ValueError) as ours:
            read_text(bad, max_bytes)
        assert str(ours.value) == str(bpe_error.value) == f"{bad}: invalid UTF-8 at byte offset 120 (b'\\xff\\xfe m')"
    packed = tmp_path / "bad.txt.gz"
    packed.write_bytes(gzip.compress(bad.read_bytes()))
    with pytest.raises(ValueError, match=r"bad\.txt\.gz: invalid UTF-8 at byte offset 120"):
        read_text(packed, 500)
    with pytest.raises(ValueError, match=r"bad\.txt\.gz \(decompressed\): invalid UTF-8 at byte offset 120"):
        train_bpe(packed, 300, ["<|endoftext|>"])  # the user's file, not the temporary copy


def test_max_bytes_cutting_a_character_drops_only_that_character(tmp_path):
    path = tmp_path / "euro.txt"
    path.write_text("ab€cd")  # € is 3 bytes: a cut after 4 bytes falls inside it
    assert read_text(path, 4) == "ab" and read_text(path, 5) == "ab€" and read_text(path) == "ab€cd"


def test_tiny_preset_on_random_bytes_fails_clearly(tmp_path, capsys):
    noise = tmp_path / "noise.bin"
    noise.write_bytes(os.urandom(20_000))
    argv = ["--preset", "tiny", "--data.train_path", str(noise), "--run.out_dir", str(tmp_path / "runs"),
            "--data.cache_dir", str(tmp_path / "cache")]
    assert f"{noise}: invalid UTF-8 at byte offset" in fails(train_cli.main, argv, capsys)
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------------- train_bpe, tokenize_data


def test_train_bpe_on_a_folder(tmp_path, capsys):
    assert "is a directory: give a text file" in fails(train_bpe_cli.main, [str(tmp_path), "--out",
                                                                            str(tmp_path / "t")], capsys)


def test_train_bpe_out_is_checked_before_training(tmp_path, capsys, monkeypatch):
    existing = tmp_path / "file"
    existing.write_text("keep me")
    monkeypatch.setattr(train_bpe_cli, "train_bpe", lambda *a, **k: pytest.fail("trained before checking --out"))
    line = fails(train_bpe_cli.main, [str(FIXTURES / "address.txt"), "--out", str(existing)], capsys)
    assert f"--out {existing} is a file" in line and existing.read_text() == "keep me"


def test_train_bpe_says_where_it_stopped(tmp_path, capsys):
    train_bpe_cli.main([str(FIXTURES / "address.txt"), "--vocab-size", "1000000", "--out", str(tmp_path / "t")])
    out = capsys.readouterr().out
    vocab = json.loads((tmp_path / "t" / "vocab.json").read_text())
    assert f"stopped at vocabulary {len(vocab)} of the 1000000 asked for" in out and len(vocab) < 1000


def test_tokenize_data_on_an_empty_file(tokenizer_dir, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    argv = ["--tokenizer", str(tokenizer_dir), str(empty), "--output", str(tmp_path / "o.npy")]
    assert "empty.txt is empty: there is nothing to encode" in fails(tokenize_cli.main, argv, capsys)
    assert not (tmp_path / "o.npy").exists()


# ------------------------------------------------------------------------------- plot


@pytest.fixture
def metrics_run(tmp_path) -> Path:
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    records = [{"step": s, "tokens": 10 * s, "time": s, "train_loss": 5 - s / 10} for s in range(1, 6)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run_dir


def test_plot_out_is_a_directory(metrics_run, tmp_path, capsys):
    line = fails(plot_cli.main, [str(metrics_run), "--out", str(tmp_path)], capsys)
    assert f"--out {tmp_path} is a directory" in line


def test_plot_format_follows_the_suffix(metrics_run, tmp_path, capsys):
    magic = {"x.jpg": b"\xff\xd8\xff", "x.png": b"\x89PNG", "x.pdf": b"%PDF", "x.svg": b"<?xml"}
    for name, start in magic.items():
        plot_cli.main([str(metrics_run), "--out", str(tmp_path / name)])
        assert (tmp_path / name).read_bytes().startswith(start), name
    assert "unknown image type '.bmpx'" in fails(plot_cli.main, [str(metrics_run), "--out",
                                                                 str(tmp_path / "x.bmpx")], capsys)
    assert not list(tmp_path.glob(".*.tmp"))


def test_plot_on_a_binary_metrics_file_names_it(metrics_run, capsys):
    (metrics_run / "metrics.jsonl").write_bytes(os.urandom(300) + b"\xff")
    line = fails(plot_cli.main, [str(metrics_run), "--out", str(metrics_run / "c.png")], capsys)
    assert f"{metrics_run / 'metrics.jsonl'} is not a text metrics file" in line


# ------------------------------------------------------------------------------- data download, usage lines


def test_download_arguments_are_checked(tmp_path, capsys):
    assert "--retries must be >= 0, got -1" in fails(data_cli.main, ["download", "tinystories", "--retries", "-1",
                                                                     "--dest", str(tmp_path)], capsys)
    file = tmp_path / "f"
    file.write_text("keep")
    line = fails(data_cli.main, ["download", "tinystories", "--dest", str(file)], capsys)
    assert f"--dest {file} is a file" in line and file.read_text() == "keep"


MODULES = ["train", "train_bpe", "tokenize_data", "generate", "evaluate", "plot", "accounting", "data", "export_hf"]


@pytest.mark.parametrize("module", MODULES)
def test_usage_names_the_python_m_command(module):
    result = subprocess.run([sys.executable, "-m", f"cs336_basics.{module}", "--no-such-flag"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"usage: python -m cs336_basics.{module}")
