"""Ctrl-C during a long tokenize_data: the workers stop and no output is left, neither final nor partial."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from cs336_basics.tokenizer import Tokenizer

FIXTURES = Path(__file__).parent / "fixtures"
EOT = "<|endoftext|>"


def _random_words(path: Path, num_words: int) -> None:
    """Random lowercase words: nearly every one is new, so encoding runs BPE on each and takes seconds."""
    rng = np.random.default_rng(0)
    letters = rng.integers(ord("a"), ord("z") + 1, size=(num_words, 9), dtype=np.uint8)
    letters[:, 0] = ord(" ")
    letters[::20, 0] = ord("\n")
    path.write_bytes(letters.tobytes())


@pytest.mark.parametrize("to_group", [False, True])  # kill -INT to the parent alone; Ctrl-C in a terminal (all)
def test_ctrl_c_stops_the_workers_and_leaves_no_output(tmp_path, to_group):
    Tokenizer.from_files(FIXTURES / "gpt2_vocab.json", FIXTURES / "gpt2_merges.txt", [EOT]).save(tmp_path / "tok")
    corpus, out = tmp_path / "big.txt", tmp_path / "ids.npy"
    _random_words(corpus, 1_500_000)  # 13.5 MB
    proc = subprocess.Popen(
        [sys.executable, "-m", "cs336_basics.tokenize_data", "--tokenizer", str(tmp_path / "tok"), str(corpus),
         "--output", str(out), "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 120
    while len(workers := parent.children(recursive=True)) < 2:  # wait until both workers are encoding
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the workers never started"
        time.sleep(0.05)
    assert Path(str(out) + ".part").exists()
    if to_group:
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"orphaned workers: {alive}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.txt", "tok"]  # no ids.npy, no ids.npy.part
