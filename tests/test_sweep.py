"""Sweeps: spec expansion against plain nested loops, a 4-run tiny sweep that resumes a killed run, completes and
is skipped when rerun, recorded failures, the dry run, and the Modal fan-out (built, not run)."""

from __future__ import annotations

import contextlib
import csv
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cs336_basics.scaling.sweep import expand, load_spec, modal_calls, run_modal
from cs336_basics.sweep import main

REPO = Path(__file__).resolve().parents[1]


def write_spec(tmp_path: Path, cache_dir: Path, **changes) -> Path:
    spec = {
        "name": "s", "out_dir": str(tmp_path / "sweeps"),
        "base": {"preset": "tiny", "overrides": {"data.cache_dir": str(cache_dir), "run": {"checkpoint_every": 10}}},
        "grid": {"model.d_model": [16, 32]},
        "zip": {"model.num_layers": [1, 2], "model.num_heads": [1, 2]},
    }  # fmt: skip
    spec.update(changes)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def rows(tmp_path: Path) -> list[dict]:
    with open(tmp_path / "sweeps" / "s" / "sweep.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


# ------------------------------------------------------------------------------------------- the spec


def test_grid_times_zip_matches_nested_loops():
    spec = load_spec({"grid": {"C": [1e12, 1e13], "model.d_model": [64, 128]},
                      "zip": [{"model.num_layers": [2, 4], "model.num_heads": [2, 4]}, {"seed": [1, 2, 3]}],
                      "base": {"overrides": {"schedule.max_steps": "{C}/flops", "model": {"d_ff": 256}}}})
    points = expand(spec)
    expected = [(c, d, lh, s) for c in [1e12, 1e13] for d in [64, 128] for lh in [(2, 2), (4, 4)] for s in [1, 2, 3]]
    assert [(p.values["C"], p.values["model.d_model"], (p.values["model.num_layers"], p.values["model.num_heads"]),
             p.values["seed"]) for p in points] == expected
    first = points[0]
    assert first.overrides == {"schedule": {"max_steps": "1000000000000.0/flops"},
                               "model": {"d_ff": 256, "d_model": 64, "num_layers": 2, "num_heads": 2}}
    assert first.name == "C=1e+12_d_model=64_num_layers=2_num_heads=2_seed=1"
    assert len({p.name for p in points}) == len(points)


@pytest.mark.parametrize(("spec", "message"), [
    ({"grid": {"model.d_model": []}}, "axis 'model.d_model' must be a non-empty list"),
    ({"grid": {"model.d_model": 64}}, "axis 'model.d_model' must be a non-empty list"),
    ({"zip": {"model.d_model": [1, 2], "model.num_heads": [1]}}, "zipped axes must have the same length"),
    ({"grid": {"a": [1]}, "zip": {"a": [2]}}, "an axis appears twice"),
    ({"grids": {}}, "unknown key(s) ['grids']"),
    ({"base": {"preset": "tiny", "extra": 1}}, "base must be an object with keys among"),
    ({"name": "a/b"}, "name must be letters"),
])  # fmt: skip
def test_bad_specs_are_named(spec, message):
    with pytest.raises(ValueError) as info:
        load_spec(spec)
    assert message in str(info.value)


def test_bad_spec_file_is_one_line_at_the_cli(tmp_path, capsys):
    (tmp_path / "bad.json").write_text("{grid: 1")
    with pytest.raises(SystemExit) as info:
        main([str(tmp_path / "bad.json")])
    assert info.value.code == 2 and "bad.json is not valid JSON" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing.json")])
    assert "does not exist" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- running


KILL_AFTER_FIRST_SAVE = textwrap.dedent("""
    import os, signal, sys
    from cs336_basics import sweep
    from cs336_basics.training import trainer
    save = trainer.Trainer.save
    def save_then_die(self):
        path = save(self)
        os.kill(os.getpid(), signal.SIGKILL)  # no clean-up of any kind, as if the machine died
    trainer.Trainer.save = save_then_die
    sys.exit(sweep.main(sys.argv[1:]))
""")


def test_tiny_sweep_resumes_a_killed_run_completes_and_is_skipped_when_rerun(tmp_path, cache_dir):
    spec = write_spec(tmp_path, cache_dir)
    # 1. Killed (SIGKILL) right after the first run's first checkpoint, at step 10 of 20.
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER_FIRST_SAVE, str(spec), "--workers", "0",
                             "--no-progress"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    first = tmp_path / "sweeps" / "s" / "d_model=16_num_layers=1_num_heads=1"
    assert [p.name for p in (first / "checkpoints").glob("*.pt")] == ["step_0000010.pt"]
    assert not (first / "sweep_result.json").exists()

    # 2. Rerun with two worker processes: the killed run resumes at step 10, the other three start; all finish.
    out = subprocess.run([sys.executable, "-m", "cs336_basics.sweep", str(spec), "--workers", "2", "--no-progress"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    table = rows(tmp_path)
    assert [r["status"] for r in table] == ["done"] * 4
    assert [int(r["resumed_from"]) for r in table] == [10, 0, 0, 0]
    assert [r["run"] for r in table] == ["d_model=16_num_layers=1_num_heads=1", "d_model=16_num_layers=2_num_heads=2",
                                        "d_model=32_num_layers=1_num_heads=1", "d_model=32_num_layers=2_num_heads=2"]
    for r in table:
        run = tmp_path / "sweeps" / "s" / r["run"]
        steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert steps == sorted(steps) and steps[-1] == 20  # no repeated records after the resume
        assert float(r["val_bpb"]) == pytest.approx(json.loads((run / "sweep_result.json").read_text())["val_bpb"])
        # The accounting columns against an independent count: 2 x vocab x d embeddings, the rest non-embedding.
        d, layers = int(r["model.d_model"]), int(r["model.num_layers"])
        assert int(r["N_embed"]) == 2 * 320 * d and int(r["tokens"]) == 20 * 8 * 32
        assert int(r["N"]) == layers * (4 * d * d + 3 * d * 64 + 2 * d) + d

    # 3. Rerun again: nothing trains, nothing changes.
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "sweeps").rglob("*") if p.is_file() and p.suffix != ".csv"}
    again = subprocess.run([sys.executable, "-m", "cs336_basics.sweep", str(spec), "--no-progress"], cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "4 run(s) already done, skipped" in again.stdout + again.stderr
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}
    assert [r["status"] for r in rows(tmp_path)] == ["done"] * 4


def test_failed_runs_are_recorded_and_do_not_stop_the_others(tmp_path, cache_dir, capsys):
    spec = write_spec(tmp_path, cache_dir, grid={"run.device": ["cpu", "nonexistent"]},
                      zip={"model.num_heads": [2, 3]})
    assert main([str(spec), "--workers", "0", "--no-progress"]) == 1
    table = {(r["run.device"], r["model.num_heads"]): r for r in rows(tmp_path)}
    assert table[("cpu", "2")]["status"] == "done" and float(table[("cpu", "2")]["val_loss"]) > 0
    assert table[("nonexistent", "2")]["status"] == "failed"
    assert "nonexistent" in table[("nonexistent", "2")]["error"]  # the worker's own error, in one line
    for device in ("cpu", "nonexistent"):
        assert "divisible by num_heads (3)" in table[(device, "3")]["error"]  # refused before training
    assert "1 done, 3 failed" in capsys.readouterr().out


def test_dry_run_prints_the_table_and_trains_nothing(tmp_path, cache_dir, capsys):
    spec = write_spec(tmp_path, cache_dir, base={"preset": "tiny", "overrides": {"schedule.max_steps": "{C}/flops"}},
                      grid={"C": [1e8, 1e9]}, zip={"model.d_model": [16, 32]})
    assert main([str(spec), "--dry-run", "--workers", "2"]) == 0
    text = capsys.readouterr().out
    assert "N_total" in text and "est. time" in text and "4 runs; estimated" in text
    assert "C=1e+08_d_model=16" in text and "C=1e+09_d_model=32" in text
    assert not (tmp_path / "sweeps").exists()


def test_modal_backend_builds_one_call_per_point_without_running(tmp_path, cache_dir, monkeypatch):
    from cs336_basics import train_modal

    base = tmp_path / "base.json"
    base.write_text(json.dumps({"optim": {"weight_decay": 0.0}}))
    spec = load_spec(write_spec(tmp_path, cache_dir, base={"preset": "shakespeare", "config": str(base),
                                                           "overrides": {"schedule.max_steps": 100}}))
    calls = modal_calls(spec)
    assert len(calls) == 4
    overrides, preset, resume, download = calls[0]
    assert (preset, resume, download) == ("shakespeare", "", "")
    assert overrides["optim"] == {"weight_decay": 0.0} and overrides["schedule"] == {"max_steps": 100}
    assert overrides["run"] == {"name": "d_model=16_num_layers=1_num_heads=1", "out_dir": str(spec.sweep_dir)}
    assert callable(train_modal.train_remote.starmap)  # the existing GPU function is what is mapped over

    seen = {}

    class FakeFunction:  # stands in for Modal's remote function: records the call list, answers like the Trainer
        def starmap(self, args, return_exceptions):
            seen["calls"], seen["return_exceptions"] = list(args), return_exceptions
            return [{"final_val_loss": 1.0, "final_val_bpb": 0.5, "time": 3.0}, RuntimeError("GPU lost"), *[{}] * 2]

    class FakeApp:
        def run(self):
            seen["app_run"] = True
            return contextlib.nullcontext()

    monkeypatch.setattr(train_modal, "app", FakeApp())
    monkeypatch.setattr(train_modal, "train_remote", FakeFunction())
    result = run_modal(spec)
    assert seen == {"calls": calls, "return_exceptions": True, "app_run": True}
    assert [r["status"] for r in result] == ["done", "failed", "failed", "failed"]
    table = rows(tmp_path)
    assert table[0]["val_bpb"] == "0.5" and "GPU lost" in table[1]["error"]
