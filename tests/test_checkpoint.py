"""Checkpoints: round trips (path and file object, plain and compiled models), clear errors on bad files, and
atomic writes that survive a failure or a SIGKILL in the middle of a save."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from cs336_basics.training.checkpoint import (
    checkpoint_path,
    find_latest_checkpoint,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from cs336_basics.training.optimizer import AdamW


def tiny_model(seed: int = 0, d: int = 8) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Embedding(16, d), torch.nn.Linear(d, 16))


def trained(seed: int = 0, steps: int = 3) -> tuple[torch.nn.Module, AdamW]:
    """A model and optimizer a few steps in, so the optimizer state (step, moments) is non-trivial."""
    model = tiny_model(seed)
    opt = AdamW(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        model(torch.arange(16)).logsumexp(-1).mean().backward()
        opt.step()
    return model, opt


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def assert_same_optimizer(a: torch.optim.Optimizer, b: torch.optim.Optimizer) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    for i, state in sa["state"].items():
        assert state["step"] == sb["state"][i]["step"]
        assert torch.equal(state["exp_avg"], sb["state"][i]["exp_avg"])
        assert torch.equal(state["exp_avg_sq"], sb["state"][i]["exp_avg_sq"])


@pytest.mark.parametrize("to_file_object", [False, True])
def test_round_trip_restores_model_optimizer_and_iteration(tmp_path, to_file_object):
    model, opt = trained()
    target = io.BytesIO() if to_file_object else tmp_path / "ckpt.pt"
    save_checkpoint(model, opt, 1234, target)
    if to_file_object:
        target.seek(0)
    fresh = tiny_model(seed=1)
    fresh_opt = AdamW(fresh.parameters(), lr=1e-2)
    assert load_checkpoint(target, fresh, fresh_opt) == 1234
    assert_same_state(model, fresh)
    assert_same_optimizer(opt, fresh_opt)


def test_resumed_training_continues_identically(tmp_path):
    model, opt = trained(steps=3)
    save_checkpoint(model, opt, 3, tmp_path / "c.pt")
    resumed = tiny_model(seed=5)
    resumed_opt = AdamW(resumed.parameters(), lr=1e-2)
    load_checkpoint(tmp_path / "c.pt", resumed, resumed_opt)
    for m, o in [(model, opt), (resumed, resumed_opt)]:
        o.zero_grad()
        m(torch.arange(16)).logsumexp(-1).mean().backward()
        o.step()
    assert_same_state(model, resumed)


def test_extra_entries_are_saved_and_reserved_keys_refused(tmp_path):
    model, opt = trained()
    extra = {
        "config": {"model": {"d_model": 8}},
        "rng": {"torch": torch.get_rng_state(), "python": (3, (1, 2))},
    }
    save_checkpoint(model, opt, 7, tmp_path / "c.pt", extra=extra)
    ckpt = read_checkpoint(tmp_path / "c.pt")
    assert ckpt["iteration"] == 7 and ckpt["config"] == extra["config"]
    assert torch.equal(ckpt["rng"]["torch"], extra["rng"]["torch"])
    with pytest.raises(ValueError, match="iteration"):
        save_checkpoint(model, opt, 7, tmp_path / "d.pt", extra={"iteration": 3})


def test_model_only_checkpoint(tmp_path):
    model, _ = trained()
    save_checkpoint(model, None, 0, tmp_path / "m.pt")
    fresh = tiny_model(seed=3)
    assert load_checkpoint(tmp_path / "m.pt", fresh) == 0
    assert_same_state(model, fresh)
    with pytest.raises(ValueError, match="no optimizer state"):
        load_checkpoint(tmp_path / "m.pt", fresh, AdamW(fresh.parameters()))


def test_compiled_and_plain_models_share_checkpoints(tmp_path):
    model, opt = trained()
    compiled = torch.compile(model)  # wrapping is lazy: nothing is compiled until a forward pass
    assert any(k.startswith("_orig_mod.") for k in compiled.state_dict())
    save_checkpoint(compiled, opt, 1, tmp_path / "c.pt")
    assert not any(k.startswith("_orig_mod.") for k in read_checkpoint(tmp_path / "c.pt")["model"])

    plain = tiny_model(seed=2)
    load_checkpoint(tmp_path / "c.pt", plain)
    assert_same_state(model, plain)

    save_checkpoint(plain, opt, 2, tmp_path / "p.pt")
    target = torch.compile(tiny_model(seed=4))
    load_checkpoint(tmp_path / "p.pt", target)
    assert_same_state(model, target._orig_mod)


def test_checkpoint_with_compile_prefix_still_loads(tmp_path):
    """Files written by other code straight from a compiled model's state_dict carry the prefix."""
    model, opt = trained()
    state = {"model": torch.compile(model).state_dict(), "optimizer": opt.state_dict(), "iteration": 4}
    torch.save(state, tmp_path / "raw.pt")
    plain = tiny_model(seed=9)
    assert load_checkpoint(tmp_path / "raw.pt", plain) == 4
    assert_same_state(model, plain)


# --- bad files


def test_missing_checkpoint(tmp_path):
    with pytest.raises(ValueError, match=r"absent\.pt.*does not exist"):
        load_checkpoint(tmp_path / "absent.pt", tiny_model())


def test_truncated_checkpoint(tmp_path):
    model, opt = trained()
    path = tmp_path / "cut.pt"
    save_checkpoint(model, opt, 1, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"cut\.pt.*corrupt or truncated"):
        load_checkpoint(path, tiny_model())


def test_corrupt_checkpoint(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(os.urandom(2048))
    with pytest.raises(ValueError, match=r"junk\.pt.*corrupt or truncated"):
        read_checkpoint(path)


def test_pickled_code_is_refused(tmp_path):
    """weights_only loading: a file holding an arbitrary Python object is rejected, not executed."""
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "optimizer": None, "iteration": 0, "payload": Path("x")}, path)
    with pytest.raises(ValueError, match=r"evil\.pt"):
        read_checkpoint(path)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match=r"weights\.pt' is not a checkpoint"):
        read_checkpoint(path)


def test_checkpoint_of_another_shape_names_file_and_key(tmp_path):
    model, opt = trained()
    save_checkpoint(model, opt, 1, tmp_path / "small.pt")
    with pytest.raises(ValueError, match=r"small\.pt.*'0\.weight' has shape \(16, 8\).*\(16, 12\)"):
        load_checkpoint(tmp_path / "small.pt", tiny_model(d=12))
    deeper = torch.nn.Sequential(*tiny_model(), torch.nn.Linear(16, 16))
    with pytest.raises(ValueError, match=r"small\.pt.*'2\.bias' is only in the model"):
        load_checkpoint(tmp_path / "small.pt", deeper)


# --- atomic writes


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model, opt = trained()
    path = tmp_path / "c.pt"
    save_checkpoint(model, opt, 1, path)

    def half_written_then_interrupted(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", half_written_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tiny_model(seed=8), opt, 2, path)
    monkeypatch.undo()
    assert load_checkpoint(path, tiny_model(seed=3)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp file left behind


def test_sigkill_during_write_keeps_previous_checkpoint(tmp_path):
    """A process killed while writing (here: stalled half-way through torch.save) cannot harm the old file."""
    script = textwrap.dedent(
        """
        import sys, time, torch
        from cs336_basics.training.checkpoint import save_checkpoint
        model = torch.nn.Linear(4, 4)
        save_checkpoint(model, None, 1, sys.argv[1])
        real_save = torch.save
        def stalled(obj, f, *a, **k):
            f.write(b"PK partial bytes")
            f.flush()
            print("writing", flush=True)
            time.sleep(60)
        torch.save = stalled
        save_checkpoint(torch.nn.Linear(4, 4), None, 2, sys.argv[1])
        """
    )
    path = tmp_path / "step_0000001.pt"
    proc = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert read_checkpoint(path)["iteration"] == 1
    assert find_latest_checkpoint(tmp_path) == path  # a stale temp file is never taken for a checkpoint


# --- run layout


def test_find_latest_checkpoint(tmp_path):
    model, opt = trained()
    for it in (500, 1500, 1000):
        save_checkpoint(model, opt, it, checkpoint_path(tmp_path, it))
    (tmp_path / "checkpoints" / "notes.txt").write_text("ignored")
    latest = tmp_path / "checkpoints" / "step_0001500.pt"
    assert find_latest_checkpoint(tmp_path) == latest
    assert find_latest_checkpoint(tmp_path / "checkpoints") == latest
    assert find_latest_checkpoint(latest.with_name("step_0000500.pt")).name == "step_0000500.pt"


def test_find_latest_checkpoint_errors(tmp_path):
    with pytest.raises(ValueError, match="neither a checkpoint file nor a run directory"):
        find_latest_checkpoint(tmp_path / "missing")
    with pytest.raises(ValueError, match="no checkpoints"):
        find_latest_checkpoint(tmp_path)
