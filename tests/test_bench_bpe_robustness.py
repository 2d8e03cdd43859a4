"""benchmarks/bench_bpe_robustness.py at a tiny size: every case trains, agrees with the naive trainer on a prefix,
and lands in the results file, where a rerun of one case replaces its record and keeps the others."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_bpe_robustness.py"


def run(tmp_path: Path, out: Path, cases: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--mb", "0.05", "--cases", cases, "--vocab-size", "300",
                           "--prefix-mb", "0.02", "--dir", str(tmp_path), "--out", str(out)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)


def test_cases_train_agree_with_naive_and_are_kept(tmp_path):
    out = tmp_path / "robustness.json"
    first = run(tmp_path, out, "no-special,special-at-end,one-line,one-char")
    assert first.returncode == 0, first.stderr
    records = json.loads(out.read_text())
    assert sorted(r["case"] for r in records) == ["no-special", "one-char", "one-line", "special-at-end"]
    assert all(r["naive_agrees_on_prefix"] and r["peak_mb"] > 0 for r in records)
    # 'a' * N runs out of pairs after a few merges (a+a, aa+aa, ...); the other files give all 300 - 257
    assert {r["case"]: r["merges"] for r in records if r["case"] != "one-char"} == dict.fromkeys(
        ["no-special", "special-at-end", "one-line"], 300 - 257)
    again = run(tmp_path, out, "one-char")
    assert again.returncode == 0, again.stderr
    assert sorted(r["case"] for r in json.loads(out.read_text())) == sorted(r["case"] for r in records)
    assert list(tmp_path.glob("bpe_robustness_*")) == []  # the generated files are removed


def test_unknown_case_is_named():
    result = subprocess.run([sys.executable, str(SCRIPT), "--cases", "one-chr"], capture_output=True, text=True)
    assert result.returncode == 2 and "one-chr" in result.stderr and "Traceback" not in result.stderr
