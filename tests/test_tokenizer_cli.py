"""The train_bpe and tokenize_data command lines: --help, a full run, clear errors."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cs336_basics import tokenize_data
from cs336_basics import train_bpe as train_bpe_cli
from cs336_basics.tokenizer import Tokenizer, train_bpe_naive

FIXTURES = Path(__file__).parent / "fixtures"
EOT = "<|endoftext|>"


@pytest.mark.parametrize("module", ["cs336_basics.train_bpe", "cs336_basics.tokenize_data"])
def test_help(module):
    out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, check=True)
    assert "usage:" in out.stdout and "--help" in out.stdout


def test_train_then_tokenize(tmp_path, capsys):
    corpus = FIXTURES / "tinystories_sample.txt"
    train_bpe_cli.main(
        [str(corpus), "--vocab-size", "400", "--special-token", EOT, "--out", str(tmp_path / "tok")]
    )
    printed = capsys.readouterr().out
    assert "peak memory" in printed and "longest token" in printed
    tok = Tokenizer.from_dir(tmp_path / "tok")
    vocab, merges = train_bpe_naive(corpus, 400, [EOT])
    assert tok.vocab == vocab and tok.merges == merges and tok.special_tokens == [EOT]

    out = tmp_path / "ids.npy"
    tokenize_data.main(["--tokenizer", str(tmp_path / "tok"), str(corpus), "--output", str(out)])
    assert "bytes/token" in capsys.readouterr().out
    assert np.load(out).tolist() == tok.encode(corpus.read_text(encoding="utf-8"))


def test_clear_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        train_bpe_cli.main([str(tmp_path / "missing.txt"), "--out", str(tmp_path / "tok")])
    assert exc.value.code == 2 and "missing.txt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_bpe_cli.main(
            [str(FIXTURES / "corpus.en"), "--vocab-size", "100", "--out", str(tmp_path / "tok")]
        )
    assert "too small" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tokenize_data.main(["--tokenizer", str(tmp_path), str(FIXTURES / "corpus.en"), "--output", "x.npy"])
    assert "not a saved tokenizer directory" in capsys.readouterr().err


def test_no_special_tokens(tmp_path):
    out = tmp_path / "tok"
    train_bpe_cli.main(
        [
            str(FIXTURES / "tinystories_sample.txt"),
            "--vocab-size",
            "300",
            "--special-token",
            "",
            "--out",
            str(out),
        ]
    )
    tok = Tokenizer.from_dir(out)
    assert tok.special_tokens == [] and len(tok.vocab) == 300
    assert b"<|endoftext|>" not in tok.vocab.values()
