"""The quick-budget tables of writeup.md section 14 say what the committed results/*_steps100.json files hold."""

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def table_after(header_start: str) -> list[list[str]]:
    """The body rows (cells stripped) of the writeup table whose header line starts with `header_start`."""
    lines = (REPO / "writeup.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def first_number(cell: str) -> float:
    return float(re.search(r"-?\d+\.\d+", cell).group())


def test_batch_size_table_matches_its_results():
    results = json.loads((REPO / "results" / "batch_size_steps100.json").read_text())
    rows = table_after("| batch | peak lr | steps × tokens |")
    assert {row[0] for row in rows} == set(results)
    assert len(rows) == sum(len(r["rates"]) for r in results.values())  # every rate tried, none left out
    for batch, lr, steps_tokens, loss, bpb in rows:
        if loss.startswith("**"):  # the best rate of its batch size is in bold
            assert results[batch]["best_rate"] == f"{float(lr):g}", batch
        outcome = results[batch]["rates"][f"{float(lr):g}"]
        assert steps_tokens == f"{outcome['steps']} × {outcome['tokens_per_step']:,}", (batch, lr)
        assert round(outcome["val_loss"], 3) == first_number(loss), (batch, lr)
        assert round(outcome["val_bpb"], 3) == first_number(bpb), (batch, lr)
    assert sum(row[3].startswith("**") for row in rows) == len(results)


def mean_std(cell: str) -> tuple[float, float]:
    mean, std = re.fullmatch(r"\**(\d+\.\d+) ± (\d+\.\d+)\**", cell).groups()
    return float(mean), float(std)


def check_seed_row(cells: list[str], over_seeds: dict) -> None:
    """cells: label, one loss per seed, loss mean ± std, bits/byte mean ± std."""
    losses = over_seeds["val_loss"]
    assert [first_number(c) for c in cells[1:-2]] == [round(v, 3) for v in losses["values"]], cells[0]
    assert mean_std(cells[-2]) == (round(losses["mean"], 3), round(losses["std"], 3)), cells[0]
    bpb = over_seeds["val_bpb"]
    assert mean_std(cells[-1]) == (round(bpb["mean"], 3), round(bpb["std"], 3)), cells[0]


def test_learning_rate_seed_table_matches_its_results():
    results = json.loads((REPO / "results" / "lr_sweep_steps100.json").read_text())
    rows = table_after("| peak lr | seed 0 | seed 1 | seed 2 |")
    assert [f"{float(row[0]):g}" for row in rows] == [lr for lr, r in results.items() if "over_seeds" in r]
    for row in rows:
        check_seed_row(row, results[f"{float(row[0]):g}"]["over_seeds"])


def test_ablation_seed_table_matches_its_results():
    results = json.loads((REPO / "results" / "ablations_steps100.json").read_text())
    rows = table_after("| variant | seed 0 | seed 1 | seed 2 |")
    names = {"baseline": "baseline", "NoPE": "nope", "post-norm": "post_norm", "SiLU": "silu", "no RMSNorm": "no_norm"}
    assert len(rows) == 5
    for row in rows:
        check_seed_row(row, results[next(v for k, v in names.items() if row[0].startswith(k))]["over_seeds"])


def test_batch_size_seed_table_matches_its_results():
    results = json.loads((REPO / "results" / "batch_size_steps100.json").read_text())
    rows = table_after("| batch | best peak lr | seed 0 | seed 1 | seed 2 |")
    assert [row[0] for row in rows] == list(results)
    for row in rows:
        assert f"{float(row[1]):g}" == results[row[0]]["best_rate"], row[0]
        check_seed_row([row[0]] + row[2:], results[row[0]]["best_over_seeds"])
