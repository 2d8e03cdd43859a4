"""The experiment log (results/experiment_log.md) keeps the rows of runs made in another checkout."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
from experiment_log import merge_rows  # noqa: E402

PREVIOUS = """| run | script | differs from the base model | steps x tokens | result | train s |
| --- | --- | --- | --- | --- | ---: |
| runs/ablations/nope | `experiments/ablations.py` | model.positions=nope | 200 x 2048 | val loss 4.701 | 99 |
| runs/lr_sweep/lr_1 | `experiments/lr_sweep.py` | schedule.max_lr=1 | 200 x 2048 | val loss 6.052 | 94 |
"""


def test_absent_runs_keep_their_rows_and_present_runs_replace_theirs():
    new = {"runs/lr_sweep/lr_1": "| runs/lr_sweep/lr_1 | new row |",
           "runs/batch_size-steps100/batch_128_lr_0.01": "| runs/batch_size-steps100/batch_128_lr_0.01 | new |"}
    rows = merge_rows(PREVIOUS, new)
    assert rows == ["| runs/ablations/nope | `experiments/ablations.py` | model.positions=nope | 200 x 2048 | "
                    "val loss 4.701 | 99 |",
                    "| runs/batch_size-steps100/batch_128_lr_0.01 | new |",
                    "| runs/lr_sweep/lr_1 | new row |"]


def test_no_previous_log():
    assert merge_rows("", {"runs/b/x": "| runs/b/x |", "runs/a/y": "| runs/a/y |"}) == ["| runs/a/y |", "| runs/b/x |"]


def test_the_committed_log_is_sorted_and_has_one_row_per_run():
    log = Path(__file__).resolve().parents[1] / "results" / "experiment_log.md"
    runs = [line.split("|")[1].strip() for line in log.read_text().splitlines() if line.startswith("| runs/")]
    assert runs == sorted(set(runs)) and len(runs) > 20


def test_the_writeup_shows_the_committed_log():
    repo = Path(__file__).resolve().parents[1]
    log = (repo / "results" / "experiment_log.md").read_text()
    writeup = (repo / "writeup.md").read_text()
    assert log.strip() in writeup.split("## Experiment log", 1)[1]
