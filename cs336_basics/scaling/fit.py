"""Compute-optimal scaling fits from a sweep's runs, the two ways of Chinchilla (Hoffmann et al. 2022).

A run is a record {"N": parameters, "D": training tokens, "C": its FLOP budget, "loss": final validation loss}.

Approach 2, IsoFLOP: for each budget C, fit loss = p2 (log N)^2 + p1 log N + p0 over the runs of that budget; the
vertex is N_opt(C) and D_opt(C) the tokens at N_opt (interpolated in log space from the runs, or C / 6 N_opt). Then
N_opt = k_N C^a and D_opt = k_D C^b by least squares in log space; intervals by resampling runs within each budget.

Approach 3, parametric: L(N, D) = E + A / N^alpha + B / D^beta, fitted as log L = LSE(a - alpha log N,
b - beta log D, e) with a Huber loss on the residuals from a grid of starting points (BFGS); minimising L under
C = 6 N D gives a = beta / (alpha + beta) and b = alpha / (alpha + beta).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from typing import Any

import numpy as np


def parabola_vertex(log_n: np.ndarray, loss: np.ndarray) -> tuple[float, np.ndarray]:
    """The log N of the least-squares parabola's minimum and its coefficients (p2, p1, p0); nan if it opens down.

    parabola_vertex(log([1, 10, 100]), [2, 1, 2]) -> (log 10, ...): the vertex of an exact parabola is exact.
    """
    coeffs = np.polyfit(log_n, loss, 2)
    if coeffs[0] <= 0:
        return math.nan, coeffs
    return float(-coeffs[1] / (2 * coeffs[0])), coeffs


def group_by_budget(records: list[dict[str, Any]]) -> dict[float, list[dict[str, Any]]]:
    groups: dict[float, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[float(r["C"])].append(r)
    return dict(sorted(groups.items()))


def isoflop_minima(records: list[dict[str, Any]], tokens: str = "interpolate") -> list[dict[str, Any]]:
    """Per budget with >= 3 distinct N: N_opt, D_opt, the loss at the vertex and the parabola.

    tokens="interpolate": D_opt from a line through the budget's (log N, log D); "6N": D_opt = C / (6 N_opt).
    """
    minima = []
    for c, runs in group_by_budget(records).items():
        log_n = np.log([float(r["N"]) for r in runs])
        if len(set(log_n.round(12))) < 3:
            continue
        loss = np.array([float(r["loss"]) for r in runs])
        vertex, coeffs = parabola_vertex(log_n, loss)
        if math.isnan(vertex):
            continue
        n_opt = math.exp(vertex)
        if tokens == "6N":
            d_opt = c / (6 * n_opt)
        else:
            slope, intercept = np.polyfit(log_n, np.log([float(r["D"]) for r in runs]), 1)
            d_opt = math.exp(intercept + slope * vertex)
        minima.append({"C": c, "N_opt": n_opt, "D_opt": d_opt, "loss_opt": float(np.polyval(coeffs, vertex)),
                       "parabola": coeffs.tolist(), "runs": len(runs),
                       "inside": bool(log_n.min() <= vertex <= log_n.max())})
    return minima


def power_law(c: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(k, exponent) of y = k C^exponent by least squares on log y = log k + exponent log C."""
    exponent, log_k = np.polyfit(np.log(c), np.log(y), 1)
    return (math.exp(log_k) if log_k < 700 else math.inf), float(exponent)  # a wild bootstrap resample may overflow


def isoflop_fit(records: list[dict[str, Any]], bootstrap: int = 200, seed: int = 0, tokens: str = "interpolate",
                level: float = 0.95, bracketed_only: bool = False) -> dict[str, Any]:
    """Approach 2: the per-budget minima and the power laws N_opt = k_N C^a, D_opt = k_D C^b, with bootstrap
    intervals (runs resampled with replacement within each budget; resamples with < 2 usable budgets are dropped).

    bracketed_only: use only budgets whose vertex lies within their runs' range of N (no extrapolated minima).
    """

    def minima_of(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found = isoflop_minima(runs, tokens)
        return [m for m in found if m["inside"]] if bracketed_only else found

    minima = minima_of(records)
    if len(minima) < 2:
        raise ValueError(f"an IsoFLOP fit needs >= 2 budgets with >= 3 model sizes each and a convex loss curve"
                         f"{' with its minimum inside' if bracketed_only else ''}; got {len(minima)} usable "
                         f"budget(s) from {len(records)} runs")
    c = np.array([m["C"] for m in minima])
    k_n, a = power_law(c, np.array([m["N_opt"] for m in minima]))
    k_d, b = power_law(c, np.array([m["D_opt"] for m in minima]))
    result = {"a": a, "b": b, "k_N": k_n, "k_D": k_d, "minima": minima, "bootstrap": 0}
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        groups = list(group_by_budget(records).values())
        samples = []
        for _ in range(bootstrap):
            resampled = [g[i] for g in groups for i in rng.integers(0, len(g), len(g))]
            m = minima_of(resampled)
            if len(m) >= 2 and len({x["C"] for x in m}) >= 2:
                cc = np.array([x["C"] for x in m])
                samples.append((power_law(cc, np.array([x["N_opt"] for x in m]))[1],
                                power_law(cc, np.array([x["D_opt"] for x in m]))[1]))
        if samples:
            s = np.array(samples)
            lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
            result.update(a_ci=np.percentile(s[:, 0], [lo, hi]).tolist(),
                          b_ci=np.percentile(s[:, 1], [lo, hi]).tolist(), bootstrap=len(samples))
    return result


# ---------------------------------------------------------------------------------------------------------------
# Approach 3


def _huber_objective(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_loss: np.ndarray,
                     delta: float) -> tuple[float, np.ndarray]:
    """Sum of Huber(LSE(a - alpha log N, b - beta log D, e) - log L) and its gradient in (a, b, e, alpha, beta)."""
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    top = terms.max(axis=0)
    weights = np.exp(terms - top)
    total = weights.sum(axis=0)
    lse = top + np.log(total)
    weights /= total  # softmax: d lse / d term
    r = lse - log_loss
    small = np.abs(r) <= delta
    value = np.where(small, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta)).sum()
    dr = np.clip(r, -delta, delta)
    grad = np.array([(dr * weights[0]).sum(), (dr * weights[1]).sum(), (dr * weights[2]).sum(),
                     -(dr * weights[0] * log_n).sum(), -(dr * weights[1] * log_d).sum()])
    return float(value), grad


def _fit_from(starts, log_n, log_d, log_loss, delta, keep: int = 10):
    """The best BFGS solution from the `keep` starting points with the lowest objective (all are evaluated)."""
    from scipy.optimize import minimize

    scale = 1.0 / (len(log_n) * delta**2)  # objective values of order 1: BFGS's tolerances are absolute
    starts = sorted((np.array(s, dtype=float) for s in starts),
                    key=lambda s: _huber_objective(s, log_n, log_d, log_loss, delta)[0])[:keep]
    best = None
    for start in starts:
        res = minimize(lambda t: tuple(v * scale for v in _huber_objective(t, log_n, log_d, log_loss, delta)),
                       start, jac=True, method="BFGS")
        if np.all(np.isfinite(res.x)) and min(res.x[3:]) > 0 and (best is None or res.fun < best.fun):
            best = res
    if best is None:
        raise ValueError("the parametric fit found no solution with positive exponents")
    best.fun /= scale
    return best


DEFAULT_GRID = {"a": (0.0, 5.0, 10.0, 15.0, 20.0), "b": (0.0, 5.0, 10.0, 15.0, 20.0), "e": (-1.0, 0.0, 1.0),
                "alpha": (0.2, 0.5, 1.0), "beta": (0.2, 0.5, 1.0)}


def parametric_fit(records: list[dict[str, Any]], delta: float = 1e-3, grid: dict[str, tuple] | None = None,
                   bootstrap: int = 0, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Approach 3: E, A, B, alpha, beta of L = E + A/N^alpha + B/D^beta (Huber on log L, best of a grid of starts)
    and a = beta/(alpha+beta), b = alpha/(alpha+beta). The whole grid is evaluated and BFGS polishes its 10 best
    points; bootstrap intervals by refitting resampled runs from the best solution."""
    if len(records) < 5:
        raise ValueError(f"a parametric fit of 5 parameters needs >= 5 runs, got {len(records)}")
    log_n = np.log([float(r["N"]) for r in records])
    log_d = np.log([float(r["D"]) for r in records])
    log_loss = np.log([float(r["loss"]) for r in records])
    g = grid or DEFAULT_GRID
    best = _fit_from(itertools.product(g["a"], g["b"], g["e"], g["alpha"], g["beta"]), log_n, log_d, log_loss, delta)
    result = _describe(best.x)
    result["huber"] = float(best.fun)
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        samples = []
        for _ in range(bootstrap):
            i = rng.integers(0, len(records), len(records))
            try:
                d = _describe(_fit_from([best.x], log_n[i], log_d[i], log_loss[i], delta).x)
            except ValueError:
                continue
            samples.append((d["a"], d["b"], d["alpha"], d["beta"]))
        s = np.array(samples).reshape(-1, 4)
        lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
        for j, name in enumerate(("a", "b", "alpha", "beta") if len(samples) else ()):
            result[f"{name}_ci"] = np.percentile(s[:, j], [lo, hi]).tolist()
        result["bootstrap"] = len(samples)
    return result


def _describe(theta: np.ndarray) -> dict[str, Any]:
    a, b, e, alpha, beta = (float(x) for x in theta)
    A, B, E = math.exp(a), math.exp(b), math.exp(e)
    # Minimising E + A N^-alpha + B D^-beta with D = C / (6N): N_opt = G (C/6)^(beta/(alpha+beta)).
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    return {"E": E, "A": A, "B": B, "alpha": alpha, "beta": beta, "a": beta / (alpha + beta),
            "b": alpha / (alpha + beta), "G": G}


def parametric_optimum(fit: dict[str, Any], c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """N_opt(C) and D_opt(C) = C / (6 N_opt) of a parametric fit."""
    n = fit["G"] * (np.asarray(c) / 6) ** fit["a"]
    return n, np.asarray(c) / (6 * n)


def chinchilla_loss(n, d, E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28):
    """Chinchilla's fitted L(N, D) (approach 3 of Hoffmann et al.), used to make synthetic sweeps in the tests."""
    return E + A / np.asarray(n, dtype=float) ** alpha + B / np.asarray(d, dtype=float) ** beta


# ---------------------------------------------------------------------------------------------------------------
# Pareto frontier


def lower_convex_hull(x: np.ndarray, y: np.ndarray) -> list[int]:
    """Indices of the points on the lower convex hull of (x, y), by increasing x (Andrew's monotone chain).

    lower_convex_hull([0, 1, 2, 3], [2, 2, 0, 1]) -> [0, 2]: (1, 2) lies above the chord, and past the lowest point
    (2, 0) more FLOPs buy nothing.
    """
    order = sorted(range(len(x)), key=lambda i: (x[i], y[i]))
    hull: list[int] = []
    for i in order:
        while len(hull) >= 2:
            o, p = hull[-2], hull[-1]
            cross = (x[p] - x[o]) * (y[i] - y[o]) - (y[p] - y[o]) * (x[i] - x[o])
            if cross > 0:
                break
            hull.pop()
        hull.append(i)
    # Keep the falling part only: past the lowest point, more FLOPs buy nothing.
    lowest = min(range(len(hull)), key=lambda k: y[hull[k]])
    return hull[: lowest + 1]
