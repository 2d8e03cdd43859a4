"""The writeup's experiment answers say what the committed results hold: the tables of sections 9 and 14 against
results/*.json, the batch-size and memory-limit experiments' coverage, and the statements issue 12 asked for."""

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



def test_section_9_batch_size_table_matches_its_results():
    results = json.loads((REPO / "results" / "batch_size.json").read_text())
    rows = table_after("| batch | steps | peak lr | final val loss | bits/byte |")
    assert len(rows) == sum(len(r["rates"]) for r in results.values())  # every rate tried, none left out
    for batch, steps, lr, loss, bpb in rows:
        outcome = results[batch]["rates"][f"{float(lr):g}"]
        assert loss.startswith("**") == (results[batch]["best_rate"] == f"{float(lr):g}"), (batch, lr)
        assert int(steps.replace(",", "")) == outcome["steps"], (batch, lr)
        assert round(outcome["val_loss"], 3) == first_number(loss), (batch, lr)
        assert round(outcome["val_bpb"], 3) == first_number(bpb), (batch, lr)

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


def writeup_section(title_start: str) -> str:
    text = (REPO / "writeup.md").read_text()
    start = text.index("\n## " + title_start)
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_batch_size_experiments_cover_batch_128_with_the_rate_retuned_for_each_size(monkeypatch):
    """Both budgets: batch 1 up to 256 including 128, at least three rates each, the best bracketed by worse rates
    unless it is at the edge of the grid."""
    monkeypatch.syspath_prepend(str(REPO / "experiments"))
    from batch_size import GRID

    for name in ("batch_size.json", "batch_size_steps100.json"):
        results = json.loads((REPO / "results" / name).read_text())
        assert {"1", "4", "16", "64", "128", "256"} <= set(results), name
        for batch, result in results.items():
            rates = sorted(float(r) for r in result["rates"])
            assert len(rates) >= 3, (name, batch)
            best = float(result["best_rate"])
            losses = {float(r): o["val_loss"] for r, o in result["rates"].items() if o["status"] == "finished"}
            assert losses[best] == min(losses.values()), (name, batch)
            if best not in (GRID[0], GRID[-1]):
                assert rates[0] < best < rates[-1], (name, batch, "the best rate is not bracketed")


def test_memory_limit_was_reached_in_practice():
    result = json.loads((REPO / "results" / "memory_limit.json").read_text())
    fits = [t["batch"] for t in result["tries"] if t["fits"]]
    fails = [t for t in result["tries"] if not t["fits"]]
    assert result["largest_batch_that_fits"] == max(fits) and result["first_batch_that_failed"] == min(
        t["batch"] for t in fails)
    assert max(fits) < min(t["batch"] for t in fails) <= max(fits) * 17 / 16  # bisected to within ~6%
    assert all("can't allocate memory" in t["error"] for t in fails)  # failed for memory, not something else
    section = " ".join(writeup_section("14.").split())
    assert f"**batch {max(fits)} trains, batch {result['first_batch_that_failed']} fails**" in section
    assert f"predicts {result['accounting_prediction']}" in section


def test_learning_rate_answer_states_the_search_and_that_the_targets_are_not_comparable():
    section = " ".join(writeup_section("14.").split())
    assert "**Learning rate (a): how we searched.**" in section
    assert "**The handout's targets are not comparable to our numbers**" in section
    for fact in ("≤ 1.45", "≤ 2.00", "TinyStories", "327.68M training tokens"):
        assert fact in section, fact


def test_leaderboard_answer_gives_the_rules_and_a_command_that_exists():
    section = " ".join(writeup_section("14.").split())
    assert "**Leaderboard: not run, and how it would be.**" in section
    for rule in ("1.5 hours on one H100", "OpenWebText", "**5.0**"):
        assert rule in section, rule
    command = re.search(r"uv run modal run (\S+) --config (\S+) --download (\S+)", section)
    assert command, "the exact Modal command"
    module, config, download = command.groups()
    assert (REPO / module).is_file() and (REPO / config).is_file()
    from cs336_basics.download import DATASETS

    assert download in DATASETS
    assert "closest honest CPU analogue" in section
