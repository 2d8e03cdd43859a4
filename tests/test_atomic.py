"""Atomic writes: a file the project writes appears whole or not at all (issue 12 §4)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from cs336_basics.atomic import atomic_open, atomic_write_bytes, atomic_write_text
from cs336_basics.tokenizer import Tokenizer
from cs336_basics.training.config import TrainConfig, save_json


def test_writes_and_replaces(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    assert atomic_write_text(path, "héllo\n") == path and path.read_text(encoding="utf-8") == "héllo\n"
    atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert os.listdir(path.parent) == ["a.txt"]  # no temporary file left behind


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("old")
    for error in (RuntimeError, KeyboardInterrupt):
        with pytest.raises(error), atomic_open(path, "w") as f:
            f.write("half of the new conte")
            raise error("killed mid-write")
        assert path.read_text() == "old"
        assert os.listdir(tmp_path) == ["config.json"]


def test_normal_file_mode(tmp_path):
    mask = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "m.txt", "x")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not the 0600 of a bare temporary file


def test_only_whole_file_modes(tmp_path):
    with pytest.raises(ValueError, match="mode must be"), atomic_open(tmp_path / "x", "a"):
        pass


def test_project_writers_go_through_the_helper(tmp_path, monkeypatch):
    """config.json and the tokenizer files: a failure inside the write leaves the previous file whole."""
    save_json(TrainConfig(), tmp_path / "config.json")
    before = (tmp_path / "config.json").read_text()
    tok = Tokenizer({i: bytes([i]) for i in range(256)}, [], ["<|endoftext|>"])
    tok.save(tmp_path / "tok")
    vocab_before = (tmp_path / "tok" / "vocab.json").read_text()

    def broken_dumps(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(json, "dumps", broken_dumps)
    monkeypatch.setattr(json, "dump", broken_dumps)
    with pytest.raises(OSError):
        save_json(TrainConfig(), tmp_path / "config.json")
    with pytest.raises(OSError):
        tok.save(tmp_path / "tok")
    assert (tmp_path / "config.json").read_text() == before
    assert (tmp_path / "tok" / "vocab.json").read_text() == vocab_before
    assert not list(tmp_path.rglob("*.tmp"))


def test_the_data_is_fsynced_before_the_rename_and_the_rename_after(tmp_path, monkeypatch):
    """A crash after the rename must not leave an empty file: the data reaches the disk first (fsync of the
    temporary file), then the rename, then the directory entry (fsync of the folder)."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(src, dst):
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic_write_text(tmp_path / "config.json", "{}")
    assert events == ["fsync file", "rename", "fsync dir"]

