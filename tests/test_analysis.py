"""Per-token analysis (cs336_basics.analysis, `python -m cs336_basics.analyze`): KL against
torch.nn.functional.kl_div, windowed scores against direct forward passes, bins and E[conv] against plain-Python
statements of their rules, and the CLI on two tiny runs trained by the project."""

from __future__ import annotations

import dataclasses
import itertools
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cs336_basics.analysis import (
    checkpoint_kl,
    expected_convergence,
    frequency_bins,
    kl_to_uniform,
    plan_windows,
    score_tokens,
    seeds_divergence,
    surprisal_bins,
    token_kl,
    unigram_log_probs,
    window_log_probs,
)
from cs336_basics.analysis.divergence import SURPRISAL_EDGES
from cs336_basics.analyze import main
from cs336_basics.model import ModelConfig, TransformerLM
from cs336_basics.training.config import resolve
from cs336_basics.training.trainer import Trainer
from tests.adapters import run_token_kl

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def random_lm(seed: int, context: int = 16, vocab: int = 50) -> TransformerLM:
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=vocab, context_length=context, d_model=16, num_layers=1, num_heads=2)
    return TransformerLM(config).eval()


# ------------------------------------------------------------------------------------------- KL


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(2, 40), st.floats(0.1, 10.0), st.integers(0, 2**16))
def test_token_kl_equals_torch_kl_div(rows, vocab, scale, seed):
    g = torch.Generator().manual_seed(seed)
    logits_p = torch.randn(rows, 3, vocab, generator=g) * scale
    logits_q = torch.randn(rows, 3, vocab, generator=g) * scale
    log_p, log_q = F.log_softmax(logits_p, -1), F.log_softmax(logits_q, -1)
    expected = F.kl_div(log_q, log_p, log_target=True, reduction="none").sum(-1)
    torch.testing.assert_close(run_token_kl(logits_p, logits_q), expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(token_kl(log_p, log_q), expected, atol=1e-5, rtol=1e-4)


def test_token_kl_is_float32_from_half_logits():
    logits = torch.randn(5, 30).to(torch.bfloat16)
    assert run_token_kl(logits, logits.flip(-1)).dtype == torch.float32


def test_kl_to_uniform_is_log_v_minus_entropy():
    log_p = F.log_softmax(torch.randn(7, 33) * 3, -1)
    entropy = -(log_p.exp() * log_p).sum(-1)
    torch.testing.assert_close(kl_to_uniform(log_p), math.log(33) - entropy, atol=1e-5, rtol=1e-5)


def test_kl_of_a_checkpoint_with_itself_is_zero():
    model = random_lm(0)
    ids = np.random.default_rng(0).integers(0, 50, size=100)
    result = checkpoint_kl(model, model, ids)
    assert len(result["kl"]) == 99 and np.all(result["kl"] == 0)


def test_unigram_is_add_one_smoothed():
    u = unigram_log_probs(np.array([3, 0, 1])).exp()
    torch.testing.assert_close(u, torch.tensor([4 / 7, 1 / 7, 2 / 7]))


# ------------------------------------------------------------------------------------------- windowed scoring


def direct_log_probs(model, ids: np.ndarray) -> torch.Tensor:
    """log p(ids[t] | ids[:t]) for t = 1 .. len - 1 by one forward pass (the text must fit the context)."""
    with torch.no_grad():
        logits = model(torch.tensor(ids[:-1])[None])[0]
    return F.log_softmax(logits.double(), -1).gather(-1, torch.tensor(ids[1:])[:, None]).squeeze(-1)


def test_windowed_scores_equal_one_full_pass_when_the_text_fits():
    model = random_lm(1, context=16)
    ids = np.random.default_rng(1).integers(0, 50, size=17)  # 16 inputs: exactly one context
    scores = score_tokens(model, ids)
    np.testing.assert_array_equal(scores["positions"], np.arange(1, 17))
    np.testing.assert_array_equal(scores["targets"], ids[1:])
    np.testing.assert_allclose(scores["log_prob"], direct_log_probs(model, ids).numpy(), atol=1e-5)
    np.testing.assert_array_equal(scores["surprisal"], -scores["log_prob"])
    with torch.no_grad():
        p = F.softmax(model(torch.tensor(ids[:-1])[None])[0].double(), -1)
    np.testing.assert_allclose(scores["entropy"], -(p * p.log()).sum(-1).numpy(), atol=1e-5)


def own_window_start(t: int, context: int) -> int:
    """The rule, stated directly: target t is scored in window 0 if t <= C, else in the first window (start a
    multiple of S = C // 2) whose end reaches it."""
    stride = context // 2
    return 0 if t <= context else math.ceil((t - context) / stride) * stride


@pytest.mark.parametrize("context,length", [(16, 100), (15, 61), (16, 18), (2, 9)])
def test_long_text_scores_each_token_once_from_its_own_window(context, length):
    model = random_lm(2, context=context)
    ids = np.random.default_rng(2).integers(0, 50, size=length)
    scores = score_tokens(model, ids, batch_size=3)
    np.testing.assert_array_equal(scores["positions"], np.arange(1, length))  # each target once, in order
    for t, got in zip(scores["positions"], scores["log_prob"]):
        start = own_window_start(int(t), context)
        end = min(start + context, length - 1)
        assert start == 0 or t - 1 - start >= context - context // 2  # at least half a context of history
        expected = direct_log_probs(model, ids[start : end + 1])[t - 1 - start]
        assert got == pytest.approx(float(expected), abs=1e-5)


@given(st.integers(2, 300), st.integers(2, 64))
def test_windows_cover_every_target_exactly_once(num_tokens, context):
    seen = []
    for w in plan_windows(num_tokens, context):
        assert 0 < w.end - w.start <= context
        seen += list(range(w.start + 1 + w.keep, w.end + 1))
    assert seen == list(range(1, num_tokens))


# ------------------------------------------------------------------------------------------- bins and E[conv]


def test_frequency_bins_are_decades_of_the_count():
    counts = [0, 1, 9, 10, 99, 100, 999, 1000, 123456]
    expected = [0 if c == 0 else len(str(c)) for c in counts]  # the number of digits = decade + 1
    assert frequency_bins(np.array(counts)).tolist() == expected == [0, 1, 1, 2, 2, 3, 3, 4, 6]


def test_surprisal_bins():
    values = [0.0, 0.99, 1.0, 1.5, 2.0, 3.99, 4.0, 7.9, 8.0, 30.0]
    expected = [sum(v >= edge for edge in SURPRISAL_EDGES) for v in values]
    assert surprisal_bins(np.array(values)).tolist() == expected == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_expected_convergence_on_a_hand_built_matrix():
    pair_kl = np.array([[0.0, 1.0, 2.0], [3.0, 0.0, 4.0], [5.0, 6.0, 0.0]])
    e_conv, spread = expected_convergence(pair_kl)
    assert e_conv == pytest.approx(-3.5)  # -(1 + 2 + 3 + 4 + 5 + 6) / 6; the diagonal is not a pair
    assert spread == pytest.approx(np.std([1, 2, 3, 4, 5, 6], ddof=1))
    with pytest.raises(ValueError, match="at least 2 seeds"):
        expected_convergence(np.zeros((1, 1)))


def test_seeds_divergence_matches_a_naive_per_bin_mean():
    models = [random_lm(seed, context=32, vocab=12) for seed in (0, 1, 2)]
    ids = np.random.default_rng(3).integers(0, 12, size=30)  # fits one context: one forward pass each
    freq_of_id = np.array([0, 1, 1, 2, 2, 3, 0, 1, 2, 3, 3, 1])
    surp_of_pos = np.random.default_rng(4).integers(0, 5, size=29)
    log_unigram = unigram_log_probs(np.arange(12))
    d = seeds_divergence(models, ids, freq_of_id, surp_of_pos, log_unigram, num_freq_bins=4, batch_size=2)
    with torch.no_grad():
        logps = [F.log_softmax(m(torch.tensor(ids[:-1])[None])[0], -1) for m in models]
    targets = ids[1:]
    for i, j in itertools.permutations(range(3), 2):
        kl = F.kl_div(logps[j], logps[i], log_target=True, reduction="none").sum(-1).numpy()
        assert d.pair_kl[i, j] == pytest.approx(kl.mean(), rel=1e-5)
        for b in range(4):
            sel = [k for k in range(29) if freq_of_id[targets[k]] == b]
            assert d.pair_kl_freq[i, j, b] == pytest.approx(np.mean(kl[sel]), rel=1e-5)
        for b in range(5):
            sel = [k for k in range(29) if surp_of_pos[k] == b]
            if sel:
                assert d.pair_kl_surprisal[i, j, b] == pytest.approx(np.mean(kl[sel]), rel=1e-5)
    assert d.freq_tokens.tolist() == [sum(freq_of_id[t] == b for t in targets) for b in range(4)]
    for i in range(3):
        loss = -logps[i].gather(-1, torch.tensor(targets)[:, None]).mean()
        assert d.loss[i] == pytest.approx(float(loss), rel=1e-5)
        uni = F.kl_div(log_unigram.expand(29, -1), logps[i], log_target=True, reduction="none").sum(-1).mean()
        assert d.kl_unigram[i] == pytest.approx(float(uni), rel=1e-5)


# ------------------------------------------------------------------------------------------- the CLI on real runs


@pytest.fixture(scope="module")
def seed_runs(tmp_path_factory):
    """Two tiny runs (seeds 0 and 1) with log2 checkpoints: steps 0, 1, 2, 4 (and 4 is the last)."""
    root = tmp_path_factory.mktemp("analysis")
    runs = []
    for seed in (0, 1):
        config = resolve("tiny", overrides={
            "schedule": {"max_steps": 4}, "data": {"cache_dir": str(root / "cache")},
            "run": {"out_dir": str(root / "runs"), "name": f"s{seed}", "seed": seed, "checkpoint_steps": "log2",
                    "checkpoint_every": 1000, "eval_every": 1000, "sample_tokens": 4}})
        trainer = Trainer(config, progress=False)
        trainer.train()
        runs.append(trainer.run_dir)
    text = root / "held_out.txt"
    text.write_text("ROMEO.\nBut soft, what light through yonder window breaks?\n" * 30)
    return runs, text


def run(args: list[str], capsys) -> tuple[int, str, str]:
    rc = main([*args, "--no-progress"])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_score_cli(seed_runs, tmp_path, capsys):
    runs, text = seed_runs
    out = tmp_path / "scores.npz"
    rc, stdout, _ = run(["score", str(runs[0]), "--step", "2", "--text", str(text), "--out", str(out), "--full"],
                        capsys)
    lines = stdout.splitlines()
    size_line = next(i for i, line in enumerate(lines) if line.startswith("--full:") and "MB" in line)
    assert rc == 0 and size_line < next(i for i, line in enumerate(lines) if line.startswith("wrote"))
    scores = np.load(out)
    assert set(scores.files) == {"positions", "targets", "log_prob", "surprisal", "entropy"}
    assert all(scores[k].dtype == np.float32 for k in ("log_prob", "surprisal", "entropy"))
    full = np.load(tmp_path / "scores.logprobs.npy")
    assert full.dtype == np.float16 and full.shape == (len(scores["targets"]), 320)
    picked = full[scores["positions"] - 1, scores["targets"]].astype(np.float32)
    np.testing.assert_allclose(picked, scores["log_prob"], atol=2e-2, rtol=1e-2)
    assert not list(tmp_path.glob(".*tmp*"))


def test_kl_cli_and_self_kl(seed_runs, tmp_path, capsys):
    runs, text = seed_runs
    out = tmp_path / "kl.npz"
    rc, _, _ = run(["kl", str(runs[0]), str(runs[1]), "--step", "4", "--text", str(text), "--out", str(out)], capsys)
    kl = np.load(out)
    assert rc == 0 and set(kl.files) == {"kl", "targets", "positions", "kl_uniform", "kl_unigram"}
    assert kl["kl"].dtype == np.float32 and (kl["kl"] > 0).all()
    rc, _, _ = run(["kl", str(runs[0]), str(runs[0]), "--text", str(text), "--out", str(out), "--no-unigram"],
                   capsys)
    assert rc == 0 and (np.load(out)["kl"] == 0).all()


def test_convergence_cli(seed_runs, tmp_path, capsys):
    runs, text = seed_runs
    rc, _, _ = run(["convergence", *map(str, runs), "--text", str(text), "--out", str(tmp_path / "c")], capsys)
    assert rc == 0
    lines = (tmp_path / "c" / "convergence.csv").read_text().splitlines()
    assert lines[0].startswith("step,e_conv,spread") and [int(x.split(",")[0]) for x in lines[1:]] == [0, 1, 2, 4]
    for name in ("convergence.png", "convergence_by_frequency.png", "convergence_by_surprisal.png",
                 "convergence_by_frequency.csv", "convergence_by_surprisal.csv", "pairs.csv"):
        assert (tmp_path / "c" / name).is_file()
    # two seeds: E[conv] is minus the mean of KL(0 || 1) and KL(1 || 0)
    pairs = [line.split(",") for line in (tmp_path / "c" / "pairs.csv").read_text().splitlines()[1:]]
    at4 = [float(p[3]) for p in pairs if p[0] == "4"]
    e_conv = float(lines[-1].split(",")[1])
    assert len(at4) == 2 and e_conv == pytest.approx(-sum(at4) / 2, rel=1e-4)


def test_missing_step_is_a_clear_error(seed_runs, tmp_path, capsys):
    runs, text = seed_runs
    rc, _, err = run(["score", str(runs[0]), "--step", "3", "--text", str(text), "--out", str(tmp_path / "x.npz")],
                     capsys)
    assert rc == 2 and "no checkpoint at step 3" in err and "0, 1, 2, 4" in err and len(err.splitlines()) == 1
    rc, _, err = run(["convergence", *map(str, runs), "--steps", "2,8", "--text", str(text), "--out",
                      str(tmp_path / "c")], capsys)
    assert rc == 2 and "no checkpoint at step 8" in err


def test_different_tokenizers_are_refused(seed_runs, tmp_path, capsys):
    runs, text = seed_runs
    other = tmp_path / "other"
    import shutil

    shutil.copytree(runs[1], other)
    merges = (other / "tokenizer" / "merges.txt").read_text().splitlines()
    (other / "tokenizer" / "merges.txt").write_text("\n".join(merges[:-1]) + "\n")  # one merge fewer
    rc, _, err = run(["kl", str(runs[0]), str(other), "--text", str(text), "--out", str(tmp_path / "k.npz"),
                      "--no-unigram"], capsys)
    assert rc == 2 and "different tokenizers" in err and len(err.splitlines()) == 1
    rc, _, err = run(["convergence", str(runs[0]), str(other), "--text", str(text), "--out", str(tmp_path / "c")],
                     capsys)
    assert rc == 2 and "different tokenizers" in err


def test_convergence_refuses_runs_that_differ_in_more_than_the_seed(seed_runs, tmp_path, capsys):
    runs, text = seed_runs
    rc, _, err = run(["convergence", str(runs[0]), str(runs[0]), "--text", str(text), "--out", str(tmp_path)],
                     capsys)
    assert rc == 2 and "same seed" in err


@pytest.mark.parametrize("problem,expected", [
    ("missing text", "does not exist"),
    ("bad utf-8", "not valid UTF-8 (at byte offset 7)"),
    ("bad out", "must end in .npz"),
])
def test_bad_inputs_are_one_line_errors(seed_runs, tmp_path, capsys, problem, expected):
    runs, _ = seed_runs
    text, out = tmp_path / "t.txt", tmp_path / "o.npz"
    if problem == "bad utf-8":
        text.write_bytes(b"ROMEO. \xff\xfe more")
    elif problem == "bad out":
        text.write_text("some text to score")
        out = tmp_path / "o.csv"
    rc, _, err = run(["score", str(runs[0]), "--text", str(text), "--out", str(out)], capsys)
    assert rc == 2 and expected in err and len(err.splitlines()) == 1 and not out.exists()


def test_help_answers_without_importing_torch():
    code = "import sys, cs336_basics.analyze as a; a.build_parser(); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
    for command in ("score", "kl", "convergence"):
        help_text = subprocess.run([sys.executable, "-m", "cs336_basics.analyze", command, "--help"], cwd=REPO,
                                   capture_output=True, text=True, check=True).stdout
        assert "--text" in help_text


def test_step_zero_checkpoint_is_the_initialisation(seed_runs):
    runs, _ = seed_runs
    from cs336_basics.analysis import load_scorer

    model, _, _, config = load_scorer(runs[0], step=0)
    torch.manual_seed(config["run"]["seed"])  # the trainer seeds, then builds the model first
    init = TransformerLM(ModelConfig(**config["model"]))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), init.state_dict().values()))
    assert dataclasses.asdict(model.config) == config["model"]


def test_seed_runs_must_agree_on_all_but_the_run_section(tmp_path):
    from cs336_basics.analysis.convergence import check_seed_runs

    base = {"model": {"d_model": 32}, "run": {"seed": 0, "name": "a"}}
    other = {"model": {"d_model": 64}, "run": {"seed": 1, "name": "b"}}
    with pytest.raises(ValueError, match=r"differ in model\.d_model \(32 vs 64\)"):
        check_seed_runs([tmp_path / "a", tmp_path / "b"], [base, other])
    check_seed_runs([tmp_path / "a", tmp_path / "b"], [base, {**base, "run": {"seed": 1, "name": "b"}}])


def test_batches_stay_bounded_whatever_the_text_length():
    """Memory per step is one batch of windows: its size depends on batch_size and the context, not on the text."""
    model = random_lm(5, context=16)
    for length in (100, 2000):
        ids = np.random.default_rng(length).integers(0, 50, size=length)
        sizes = [len(b.targets) for b in window_log_probs([model], ids, batch_size=4)]
        assert sum(sizes) == length - 1 and max(sizes) <= 4 * 16
