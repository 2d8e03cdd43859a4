"""The experiment scripts draw the figures issue 12 asked for: the learning-rate sweep clipped so that a divergent
run does not set the y-range, the second dataset in bits per byte. Training and plotting are replaced by recorders:
this checks what the scripts ask the plot command for (tests/test_plot.py checks that the plot command does it)."""

import json
import math
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def experiments(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(REPO / "experiments"))
    monkeypatch.chdir(tmp_path)
    plots = []

    def record_plot(runs, name, **kwargs):
        plots.append({"runs": [str(r) for r in runs], "name": name, **kwargs})

    def outcome(experiment, variant, args, *overrides, seed=0):
        run_dir = tmp_path / "runs" / experiment / variant
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps({"model": {"vocab_size": 2048}}))
        (run_dir / "sample.txt").write_text("a sample")
        return {"status": "finished", "val_loss": 4.6, "val_bpb": 2.4, "run_dir": str(run_dir)}

    def patch(module):
        monkeypatch.setattr(module, "setup", lambda args: None)
        monkeypatch.setattr(module, "plot", record_plot)
        monkeypatch.setattr(module, "write_results", lambda name, results: None)
        for name in ("train_run", "seeded_runs"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, outcome)
        return module

    return patch, plots, outcome


def test_lr_sweep_clips_its_all_runs_figure_at_a_uniform_guess(experiments, monkeypatch):
    patch, plots, outcome = experiments
    import lr_sweep

    patch(lr_sweep)
    monkeypatch.setattr(lr_sweep, "runs_dir", lambda experiment, args: Path("runs") / experiment)
    monkeypatch.setattr(lr_sweep, "never_rose", lambda run: True)
    monkeypatch.setattr(sys, "argv", ["lr_sweep.py", "--rates", "0.001", "1.0"])
    lr_sweep.main()
    all_runs = next(p for p in plots if p["name"] == "lr_sweep.png")
    assert all_runs["ymax"] == pytest.approx(math.log(2048) + 0.5)
    assert "learning-rate sweep" in all_runs["title"]


def test_second_dataset_figure_is_in_bits_per_byte(experiments, monkeypatch):
    patch, plots, outcome = experiments
    import second_dataset

    patch(second_dataset)
    monkeypatch.setattr(second_dataset, "baseline_run", lambda args, experiment, name: (
        Path("runs/lr_sweep/lr_0.003"), outcome(experiment, name, args)))
    monkeypatch.setattr(sys, "argv", ["second_dataset.py"])
    second_dataset.main()
    (figure,) = plots
    assert figure["name"] == "second_dataset.png" and figure["metric"] == "bpb"
    assert "bits per byte" in figure["title"]
