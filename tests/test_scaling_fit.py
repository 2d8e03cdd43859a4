"""Scaling fits: exact parabola minima, recovery of known exponents from synthetic sweeps made by a known
L(N, D) with noise, the Pareto hull against brute force, and the `python -m cs336_basics.scaling` CLI."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cs336_basics.scaling.fit import (
    chinchilla_loss,
    isoflop_fit,
    isoflop_minima,
    lower_convex_hull,
    parametric_fit,
)
from tests.adapters import run_isoflop_fit

REPO = Path(__file__).resolve().parents[1]
BUDGETS = [1e17, 3e17, 1e18, 3e18, 1e19, 3e19]


def test_isoflop_minimum_of_an_exact_parabola_is_exact():
    # loss = 0.3 (log N - log N*)^2 + 2 at each budget, with N* = 0.1 C^0.5: vertices and exponent exactly.
    records = []
    for c in (1e16, 1e18, 1e20):
        n_star = 0.1 * c**0.5
        for n in np.geomspace(n_star / 7, n_star * 3, 5):  # off-centre on purpose
            records.append({"N": n, "D": c / (6 * n), "C": c, "loss": 0.3 * math.log(n / n_star) ** 2 + 2})
    fit = run_isoflop_fit(records)
    for m in fit["minima"]:
        assert m["N_opt"] == pytest.approx(0.1 * m["C"] ** 0.5, rel=1e-9)
        assert m["D_opt"] == pytest.approx(m["C"] / (6 * m["N_opt"]), rel=1e-9)
        assert m["loss_opt"] == pytest.approx(2.0, abs=1e-9)
    assert fit["a"] == pytest.approx(0.5, abs=1e-9) and fit["b"] == pytest.approx(0.5, abs=1e-9)
    assert fit["k_N"] == pytest.approx(0.1, rel=1e-7)


def synthetic(alpha: float, beta: float, noise: float, seed: int = 0, sizes: int = 9, spread: float = 16.0):
    """A sweep made by L = E + A/N^alpha + B/D^beta (C = 6 N D) with multiplicative noise; N spans the optimum."""
    E, A, B = 1.69, 406.4, 410.7
    rng = np.random.default_rng(seed)
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    records = []
    for c in BUDGETS:
        n_opt = G * (c / 6) ** (beta / (alpha + beta))
        for n in np.geomspace(n_opt / spread, n_opt * spread, sizes):
            d = c / (6 * n)
            loss = float(chinchilla_loss(n, d, E, A, B, alpha, beta)) * math.exp(noise * rng.standard_normal())
            records.append({"N": n, "D": d, "C": c, "loss": loss})
    return records


@pytest.mark.parametrize(("alpha", "beta"), [(0.34, 0.28), (0.5, 0.25), (0.3, 0.6)])
def test_isoflop_fit_recovers_known_exponents(alpha, beta):
    a_true, b_true = beta / (alpha + beta), alpha / (alpha + beta)
    fit = isoflop_fit(synthetic(alpha, beta, noise=0.003), bootstrap=100)
    # Tolerance 0.04: the parabola only approximates the true IsoFLOP curve over +-16x, and the noise is 0.3%.
    assert fit["a"] == pytest.approx(a_true, abs=0.04) and fit["b"] == pytest.approx(b_true, abs=0.04)
    assert fit["a"] + fit["b"] == pytest.approx(1.0, abs=1e-6)  # C = 6 N D makes the exponents sum to 1
    lo, hi = fit["a_ci"]
    assert lo <= fit["a"] <= hi and hi - lo < 0.2 and fit["bootstrap"] == 100
    assert all(m["inside"] for m in fit["minima"])


@pytest.mark.parametrize(("alpha", "beta"), [(0.34, 0.28), (0.5, 0.25)])
def test_parametric_fit_recovers_known_exponents(alpha, beta):
    fit = parametric_fit(synthetic(alpha, beta, noise=0.002, sizes=7), bootstrap=20)
    assert fit["alpha"] == pytest.approx(alpha, abs=0.05) and fit["beta"] == pytest.approx(beta, abs=0.05)
    assert fit["a"] == pytest.approx(beta / (alpha + beta), abs=0.03)
    assert fit["b"] == pytest.approx(alpha / (alpha + beta), abs=0.03)
    assert fit["E"] == pytest.approx(1.69, abs=0.1)
    assert fit["a_ci"][0] <= fit["a"] <= fit["a_ci"][1]


def test_parametric_fit_is_exact_without_noise():
    fit = parametric_fit(synthetic(0.34, 0.28, noise=0.0, sizes=5))
    assert fit["alpha"] == pytest.approx(0.34, abs=2e-3) and fit["beta"] == pytest.approx(0.28, abs=2e-3)


def test_bracketed_only_drops_budgets_whose_minimum_is_extrapolated():
    records = synthetic(0.34, 0.28, noise=0.0, sizes=7)
    c_low = BUDGETS[0]
    sizes_low = sorted(r["N"] for r in records if r["C"] == c_low)
    # At the lowest budget keep only the three sizes above the optimum: its vertex now lies left of its runs.
    shifted = [r for r in records if r["C"] != c_low or r["N"] >= sizes_low[4]]
    every = isoflop_fit(shifted, bootstrap=0)
    bracketed = isoflop_fit(shifted, bootstrap=0, bracketed_only=True)
    assert [m["inside"] for m in every["minima"]] == [False] + [True] * (len(BUDGETS) - 1)
    assert [m["C"] for m in bracketed["minima"]] == BUDGETS[1:]
    with pytest.raises(ValueError, match="with its minimum inside"):
        isoflop_fit([r for r in shifted if r["C"] in BUDGETS[:2]], bootstrap=0, bracketed_only=True)


def test_fits_refuse_too_little_data():
    with pytest.raises(ValueError, match="needs >= 2 budgets with >= 3 model sizes"):
        isoflop_fit([{"N": 1, "D": 1, "C": 1, "loss": 1}] * 3)
    with pytest.raises(ValueError, match="needs >= 5 runs"):
        parametric_fit([{"N": 1, "D": 1, "C": 1, "loss": 1}] * 3)
    concave = [{"N": n, "D": 1.0, "C": 1.0, "loss": -math.log(n) ** 2} for n in (1.0, 10.0, 100.0)]
    assert isoflop_minima(concave) == []  # a parabola opening downwards has no minimum


def test_lower_convex_hull_example():
    assert lower_convex_hull(np.array([0.0, 1.0, 2.0, 3.0]), np.array([2.0, 2.0, 0.0, 1.0])) == [0, 2]
    assert lower_convex_hull(np.array([0.0, 1.0, 2.0, 3.0]), np.array([3.0, 1.0, 0.5, 2.0])) == [0, 1, 2]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), min_size=1, max_size=15, unique=True))
def test_lower_convex_hull_against_brute_force(points):
    x, y = np.array([p[0] for p in points], float), np.array([p[1] for p in points], float)
    hull = lower_convex_hull(x, y)
    # Brute force: every point lies on or above each hull segment's line within its x-range, the hull's x increase,
    # it starts at the leftmost point (lowest of those) and ends at the lowest point (leftmost of those).
    assert list(x[hull]) == sorted(x[hull]) and len(set(x[hull])) == len(hull)
    assert hull[0] == min(range(len(x)), key=lambda i: (x[i], y[i]))
    assert hull[-1] == min(range(len(x)), key=lambda i: (y[i], x[i]))
    for i, j in zip(hull, hull[1:]):
        for k in range(len(x)):
            if x[i] <= x[k] <= x[j]:
                line = y[i] + (y[j] - y[i]) * (x[k] - x[i]) / (x[j] - x[i])
                assert y[k] >= line - 1e-9


def write_csv(path: Path, records: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, ["run", "C", "status", "N", "N_total", "tokens", "flops", "inference_flops_per_byte",
                               "val_loss", "val_bpb", "arch"])
        w.writeheader()
        for i, r in enumerate(records):
            w.writerow({"run": f"r{i}", "C": r["C"], "status": "done", "N": r["N"], "N_total": r["N"] + 5e7,
                        "tokens": r["D"], "flops": r["C"], "inference_flops_per_byte": 2 * r["N"] / 4,
                        "val_loss": r["loss"], "val_bpb": r["loss"] / 4 / math.log(2), "arch": "transformer"})
        w.writerow({"run": "broken", "C": 1e17, "status": "failed", "N": 1, "N_total": 1, "tokens": 1})


def test_scaling_cli_writes_fits_and_plots(tmp_path):
    write_csv(tmp_path / "sweep.csv", synthetic(0.34, 0.28, noise=0.003, sizes=5))
    out = subprocess.run([sys.executable, "-m", "cs336_basics.scaling", str(tmp_path / "sweep.csv"), "--out",
                          str(tmp_path / "fit"), "--bootstrap", "20"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    fits = json.loads((tmp_path / "fit" / "fits.json").read_text())
    assert fits["runs"] == 30  # the failed row is left out
    non_embedding = fits["conventions"]["non-embedding"]
    assert non_embedding["isoflop"]["a"] == pytest.approx(0.28 / 0.62, abs=0.04)
    assert set(fits["conventions"]) == {"non-embedding", "total"}
    # N_total = N + 5e7 (a fixed embedding) bends the power law: the two conventions give different exponents, as the issue says.
    assert abs(fits["conventions"]["total"]["isoflop"]["a"] - non_embedding["isoflop"]["a"]) > 0.01
    for name in ("isoflop_non_embedding", "isoflop_total", "optimal_non_embedding", "optimal_total", "pareto"):
        assert (tmp_path / "fit" / f"{name}.png").stat().st_size > 1000
    assert "non-embedding" in out.stdout and "Chinchilla" in out.stdout


def test_scaling_cli_bad_input_is_one_line(tmp_path):
    for argv, message in ([str(tmp_path / "missing.csv")], "does not exist"), ([str(REPO / "README.md")], "not a"):
        out = subprocess.run([sys.executable, "-m", "cs336_basics.scaling", *argv, "--out", str(tmp_path)],
                             cwd=REPO, capture_output=True, text=True)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
