"""benchmarks/bench_tokenizer_scale.py's own logic: the document batches the references encode, their ids against
tiktoken's encoding of the whole text, slopes and targets, and a --help that loads nothing heavy."""

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_tokenizer_scale as bench  # noqa: E402

EOT = bench.EOT
DOCS = ["Once upon a time, a cat.\n", "Ünïcödé — 東京 and 42 dogs!\n", "", "last one, no special token after it"]


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "docs.txt"
    path.write_bytes(EOT.join(DOCS * 50).encode("utf-8"))
    return path


def test_document_batches_cover_the_file(corpus, monkeypatch):
    monkeypatch.setattr(bench, "BATCH_BYTES", 300)  # many batches, cut inside documents and characters
    batches = list(bench.document_batches(str(corpus)))
    assert len(batches) > 10
    text = "".join(EOT.join(docs) + (EOT if eot_after else "") for docs, _, eot_after in batches)
    assert text == corpus.read_text(encoding="utf-8")
    assert sum(size for _, size, _ in batches) == corpus.stat().st_size
    limited = list(bench.document_batches(str(corpus), limit=1000))
    assert 1000 <= sum(size for _, size, _ in limited) < 1000 + 300 + len(DOCS[1].encode()) + len(EOT)


@pytest.mark.parametrize("tool", ["tiktoken", "hf"])
def test_reference_ids_equal_tiktoken_on_the_whole_text(corpus, tool, monkeypatch):
    monkeypatch.setattr(bench, "BATCH_BYTES", 500)
    result = bench._encode(tool, str(corpus), "", 0, 2000)
    enc, _ = bench.gpt2_references()
    expected = np.array(enc.encode(corpus.read_text(encoding="utf-8"), allowed_special="all"), dtype=np.uint16)
    assert result["sha256"] == hashlib.sha256(expected.tobytes()).hexdigest()
    assert result["tokens"] == len(expected) and result["bytes"] == corpus.stat().st_size
    assert result["prefix_sha256"] not in (None, result["sha256"])


def test_slope_between_half_a_gigabyte_and_the_largest():
    assert bench.slope([(0.1, 1.0), (0.5, 5.0), (1.0, 10.0), (2.0, 40.0)]) == {"slope": 1.5, "from_gb": 0.5,
                                                                              "to_gb": 2.0}
    assert bench.slope([(0.01, 2.0), (0.05, 10.0)])["slope"] == pytest.approx(1.0)  # below 0.5 GB: the smallest
    assert bench.slope([(0.5, 2.0)]) is None


def run(size, task, tool, seconds, rss, **extra):
    return {"size_gb": size, "mb": size * 1000, "task": task, "tool": tool, "seconds": seconds,
            "peak_rss_mb": rss, "peak_rss_main_mb": rss * 0.8, **extra}


def test_targets_and_extrapolation_from_runs():
    runs = []
    for size in (0.5, 1.0):
        for task in ("train 10K", "train 32K"):
            runs.append(run(size, task, "ours", 100 * size, 500 * size**0.5, pretokenize_seconds=60 * size,
                            distinct_pretokens=1000))
            runs.append(run(size, task, "hf", 80 * size, 300))
        runs += [run(size, "encode", "ours", 0, 200, mb_per_s=6.0), run(size, "encode", "tiktoken", 0, 100,
                                                                        mb_per_s=10.0)]
    summary = bench.summarize(runs)
    met = {t["target"]: t["met"] for t in summary["targets"]}

    def is_met(start: str, end: str = "") -> bool:
        (value,) = [m for name, m in met.items() if name.startswith(start) and name.endswith(end)]
        return value

    assert is_met("training time log-log slope, vocab 10K") and is_met("encode MB/s / tiktoken's")
    assert not is_met("training time / HF", "vocab 10K") and not is_met("training time / HF", "vocab 32K")  # 1.25
    assert is_met("training peak RSS") and is_met("encode peak RSS")
    tiny = summary["extrapolation"]["TinyStories"]
    assert tiny["pretokenize_seconds"] == round(60 * 2.1 * bench.os.cpu_count() / bench.LAPTOP_CORES)
    assert tiny["merge_seconds"] == round(40 * 2.1)  # merge time grew linearly between 0.5 and 1 GB


def test_help_is_fast_and_loads_nothing_heavy():
    script = REPO / "benchmarks" / "bench_tokenizer_scale.py"
    code = (f"import runpy, sys\nsys.argv = ['bench', '--help']\ntry:\n    runpy.run_path({str(script)!r}, "
            "run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', [m for m in ('matplotlib', 'tokenizers', 'tiktoken', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "--sizes" in out and out.rstrip().endswith("HEAVY []")
