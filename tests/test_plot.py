"""Learning-curve plots: the drawn lines carry exactly the records' values; PNGs written; bad runs named."""

from __future__ import annotations

import json

import matplotlib.image
import numpy as np
import pytest

from cs336_basics.plot import main, make_figure, plot_runs, read_metrics


def write_run(root, name, records, tail: str = ""):
    run = root / name
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return run


RECORDS = [
    {"step": 10, "tokens": 1280, "time": 30.0, "train_loss": 5.0, "lr": 1e-3},
    {"step": 20, "tokens": 2560, "time": 60.0, "train_loss": 4.0, "val_loss": 4.5, "val_bpb": 1.9},
    {"step": 30, "tokens": 3840, "time": 90.0, "train_loss": 3.5},
    {"step": 40, "tokens": 5120, "time": 120.0, "val_loss": 3.9},
]


@pytest.mark.parametrize(
    "x, train_xs, val_xs",
    [
        ("step", [10, 20, 30], [20, 40]),
        ("tokens", [1280, 2560, 3840], [2560, 5120]),
        ("time", [0.5, 1, 1.5], [1, 2]),
    ],
)
def test_lines_hold_the_recorded_values(tmp_path, x, train_xs, val_xs):
    run = write_run(tmp_path, "alpha", RECORDS)
    (ax,) = make_figure([run], x=x).axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"alpha train", "alpha val (sample)"}
    np.testing.assert_allclose(lines["alpha train"].get_xdata(), train_xs)
    np.testing.assert_allclose(lines["alpha train"].get_ydata(), [5.0, 4.0, 3.5])
    np.testing.assert_allclose(lines["alpha val (sample)"].get_xdata(), val_xs)
    np.testing.assert_allclose(lines["alpha val (sample)"].get_ydata(), [4.5, 3.9])


def test_runs_are_overlaid_in_distinct_colours(tmp_path):
    a = write_run(tmp_path, "a", RECORDS)
    b = write_run(tmp_path, "b", [{"step": 5, "tokens": 1, "time": 1.0, "train_loss": 6.0}])
    (ax,) = make_figure([a, b]).axes
    colours = {line.get_label(): line.get_color() for line in ax.get_lines()}
    assert set(colours) == {"a train", "a val (sample)", "b train"}
    assert colours["a train"] == colours["a val (sample)"] != colours["b train"]


def test_plot_runs_writes_a_png(tmp_path):
    run = write_run(tmp_path, "alpha", RECORDS)
    out = plot_runs([run], x="tokens", out=tmp_path / "curves" / "alpha.png", title="test")
    image = matplotlib.image.imread(out)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 0  # something was drawn


def test_truncated_last_line_is_skipped(tmp_path):
    run = write_run(tmp_path, "killed", RECORDS, tail='{"step": 50, "train_lo')
    with pytest.warns(UserWarning, match="truncated last line"):
        assert read_metrics(run) == RECORDS


def test_bad_runs_are_named(tmp_path):
    with pytest.raises(ValueError, match="nothere.*no metrics.jsonl"):
        make_figure([tmp_path / "nothere"])
    broken = write_run(tmp_path, "broken", RECORDS[:1], tail="garbage\n" + json.dumps(RECORDS[1]) + "\n")
    with pytest.raises(ValueError, match=r"metrics.jsonl, line 2: not valid JSON"):
        read_metrics(broken)
    empty = write_run(tmp_path, "empty", [{"step": 1, "lr": 0.1}])
    with pytest.raises(ValueError, match="empty.*no train_loss or val_loss or final_val_loss"):
        make_figure([empty])
    with pytest.raises(ValueError, match="x must be one of"):
        make_figure([write_run(tmp_path, "ok", RECORDS)], x="epoch")


def test_cli_writes_default_path(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_run(tmp_path, "a", RECORDS)
    write_run(tmp_path, "b", RECORDS)
    main(["a", "b", "--x", "time"])
    assert (tmp_path / "learning_curves" / "a_vs_b.png").is_file()
    assert "learning_curves/a_vs_b.png" in capsys.readouterr().out


def test_cli_help_and_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert "--x {step,time,tokens}" in help_text and "--out" in help_text
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "missing")])
    assert exit_info.value.code == 2
    assert "no metrics.jsonl" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- what the figure says

FINISHED = [  # as the trainer writes them: sampled validation at 20 and 40, then the whole split at 40
    {"step": 20, "tokens": 2560, "time": 60.0, "train_loss": 4.0, "val_loss": 4.5, "val_bpb": 1.9},
    {"step": 40, "tokens": 5120, "time": 120.0, "train_loss": 3.6, "val_loss": 3.9, "val_bpb": 1.6},
    {"step": 40, "tokens": 5120, "time": 125.0, "final_val_loss": 3.95, "final_val_bpb": 1.62},
]


def test_the_whole_split_figure_is_a_separate_star_not_a_curve_point(tmp_path):
    run = write_run(tmp_path, "done", FINISHED)
    (ax,) = make_figure([run]).axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    val, final = lines["done val (sample)"], lines["done final (whole split)"]
    np.testing.assert_allclose(val.get_ydata(), [4.5, 3.9])  # the curve: the sampled points only
    np.testing.assert_allclose(final.get_ydata(), [3.95])
    assert final.get_marker() == "*" and final.get_linestyle() == "None" and final.get_color() == val.get_color()


def test_bits_per_byte_metric(tmp_path):
    run = write_run(tmp_path, "done", FINISHED)
    (ax,) = make_figure([run], metric="bpb").axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"done val (sample)", "done final (whole split)"}  # no bits/byte for training records
    np.testing.assert_allclose(lines["done val (sample)"].get_ydata(), [1.9, 1.6])
    np.testing.assert_allclose(lines["done final (whole split)"].get_ydata(), [1.62])
    assert "bits per byte" in ax.get_ylabel()
    with pytest.raises(ValueError, match="metric must be one of"):
        make_figure([run], metric="accuracy")


def test_ymax_clips_and_names_the_runs_it_cuts(tmp_path):
    calm = write_run(tmp_path, "calm", FINISHED)
    wild = write_run(tmp_path, "wild", [{"step": 1, "tokens": 1, "time": 1.0, "train_loss": 80.0}])
    (ax,) = make_figure([calm, wild], ymax=6.0).axes
    assert ax.get_ylim()[1] == 6.0
    notes = [t.get_text() for t in ax.texts]
    assert len(notes) == 1 and "wild" in notes[0] and "calm" not in notes[0]


def test_default_title_names_run_data_and_model_size(tmp_path):
    from cs336_basics.model import TransformerLM
    from cs336_basics.training.config import resolve, save_json

    config = resolve("tiny")
    run = write_run(tmp_path, "tiny-run", FINISHED)
    save_json(config, run / "config.json")
    params = sum(p.numel() for p in TransformerLM(config.model).parameters())  # the built model, not the formula
    title = make_figure([run]).axes[0].get_title()
    assert "tiny-run" in title and "shakespeare.txt.gz" in title and f"{params / 1e6:.2f}M-parameter" in title
    other = write_run(tmp_path, "other", FINISHED)
    save_json(resolve("tiny", overrides={"model": {"d_model": 64}}), other / "config.json")
    both = make_figure([run, other]).axes[0].get_title()
    assert "models differ" in both and "shakespeare.txt.gz" in both and "batch 8 x 32 tokens, 20 steps" in both
    assert make_figure([run], title="mine").axes[0].get_title() == "mine"
