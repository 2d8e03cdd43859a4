"""From a sweep.csv to fits.json and plots: both fits under both parameter conventions, and the Pareto frontier.

    analyze("runs/sweeps/isoflop/sweep.csv", "results/scaling")   # what `python -m cs336_basics.scaling` does

Conventions: "non-embedding" uses N (the csv's N column) and "total" uses N_total; D is the run's training tokens.
At small scale the embedding and LM head are a large share of N_total, which moves the fitted exponent.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from cs336_basics.scaling.fit import isoflop_fit, lower_convex_hull, parametric_fit, parametric_optimum

CONVENTIONS = {"non-embedding": "N", "total": "N_total"}
CHINCHILLA = {"a": 0.49, "b": 0.51, "tokens_per_parameter": 20.0}  # approach 2 exponents; the 20 D/N rule


def read_sweep_csv(path: str | Path) -> list[dict[str, Any]]:
    """The finished runs of a sweep.csv, numbers parsed."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    needed = {"status", "N", "N_total", "tokens", "flops", "val_loss"}
    if rows and (missing := needed - set(rows[0])):
        raise ValueError(f"{path} is not a sweep.csv: no column(s) {sorted(missing)}")
    done = []
    for row in rows:
        if row["status"] != "done":
            continue
        parsed = {}
        for key, value in row.items():
            try:
                parsed[key] = float(value)
            except (TypeError, ValueError):
                parsed[key] = value
        done.append(parsed)
    return done


def budgets(rows: list[dict[str, Any]], column: str | None = "C") -> list[float]:
    """Each run's budget: the sweep's C column when it has one, else its training FLOPs rounded to 2 digits."""
    if column and rows and isinstance(rows[0].get(column), float):
        return [r[column] for r in rows]
    return [float(f"{r['flops']:.2g}") for r in rows]


def fit_records(rows: list[dict[str, Any]], convention: str, budget_column: str | None = "C",
                loss: str = "val_loss") -> list[dict[str, float]]:
    column = CONVENTIONS[convention]
    return [{"N": r[column], "D": r["tokens"], "C": c, "loss": r[loss]}
            for r, c in zip(rows, budgets(rows, budget_column))]


def analyze(csv_path: str | Path, out_dir: str | Path, budget_column: str | None = "C", loss: str = "val_loss",
            bootstrap: int = 200) -> dict[str, Any]:
    """Fit approaches 2 and 3 under both conventions, write fits.json and the plots; return the fits."""
    rows = read_sweep_csv(csv_path)
    if not rows:
        raise ValueError(f"{csv_path} has no finished runs")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fits: dict[str, Any] = {"csv": str(csv_path), "runs": len(rows), "loss": loss, "conventions": {}}
    for convention in CONVENTIONS:
        records = fit_records(rows, convention, budget_column, loss)
        entry: dict[str, Any] = {}
        for name, fit, kwargs in (("isoflop", isoflop_fit, {"bootstrap": bootstrap}),
                                  ("isoflop_bracketed", isoflop_fit, {"bootstrap": bootstrap, "bracketed_only": True}),
                                  ("parametric", parametric_fit, {"bootstrap": min(bootstrap, 100)})):
            try:
                entry[name] = fit(records, **kwargs)
            except ValueError as e:
                entry[name] = {"error": str(e)}
        fits["conventions"][convention] = entry
        plot_isoflops(records, entry.get("isoflop", {}), out / f"isoflop_{convention.replace('-', '_')}.png",
                      convention)
        plot_optimal(entry, out / f"optimal_{convention.replace('-', '_')}.png", convention)
    if all("inference_flops_per_byte" in r and isinstance(r["inference_flops_per_byte"], float) for r in rows):
        fits["pareto"] = plot_pareto(rows, out / "pareto.png")
    from cs336_basics.scaling.sweep import write_text_atomic

    write_text_atomic(out / "fits.json", json.dumps(fits, indent=2) + "\n")
    return fits


def summary_text(fits: dict[str, Any]) -> str:
    """The fitted exponents as a small table, with intervals."""
    lines = [f"{fits['runs']} finished runs, loss = {fits['loss']}",
             f"{'convention':<15} {'approach':<17} {'a (N_opt ~ C^a)':<24} {'b (D_opt ~ C^b)':<24}"]
    for convention, entry in fits["conventions"].items():
        for name in ("isoflop", "isoflop_bracketed", "parametric"):
            fit = entry[name]
            if "error" in fit:
                lines.append(f"{convention:<15} {name:<17} {fit['error']}")
                continue
            cells = []
            for k in ("a", "b"):
                ci = fit.get(f"{k}_ci")
                cells.append(f"{fit[k]:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
            lines.append(f"{convention:<15} {name:<17} {cells[0]:<24} {cells[1]:<24}")
    lines.append(f"isoflop_bracketed: only budgets whose minimum lies inside their range of N. "
                 f"Chinchilla (approach 2): a = {CHINCHILLA['a']}, b = {CHINCHILLA['b']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_isoflops(records: list[dict[str, float]], fit: dict[str, Any], path: Path, convention: str) -> None:
    """Loss against N for each budget, the fitted parabolas and their minima."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    budgets_ = sorted({r["C"] for r in records})
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(budgets_)))
    minima = {m["C"]: m for m in fit.get("minima", [])}
    for c, color in zip(budgets_, colors):
        runs = sorted((r for r in records if r["C"] == c), key=lambda r: r["N"])
        ax.scatter([r["N"] for r in runs], [r["loss"] for r in runs], color=color, label=f"C = {c:.2g}", s=18)
        if c in minima:
            m = minima[c]
            grid = np.linspace(math.log(runs[0]["N"]), math.log(runs[-1]["N"]), 100)
            ax.plot(np.exp(grid), np.polyval(m["parabola"], grid), color=color, lw=1)
            ax.scatter([m["N_opt"]], [m["loss_opt"]], color=color, marker="*", s=120, edgecolor="k", zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel(f"parameters N ({convention})")
    ax.set_ylabel("final validation loss (nats/token)")
    ax.set_title("IsoFLOP curves (stars: fitted minima)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_optimal(entry: dict[str, Any], path: Path, convention: str) -> None:
    """N_opt and D_opt against C: the IsoFLOP minima, both fitted power laws, and Chinchilla's 20 tokens/parameter."""
    plt = _pyplot()
    iso, par = entry.get("isoflop", {}), entry.get("parametric", {})
    if "minima" not in iso:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    c = np.array([m["C"] for m in iso["minima"]])
    grid = np.geomspace(c.min() / 2, c.max() * 2, 50)
    chin_n = np.sqrt(grid / (6 * CHINCHILLA["tokens_per_parameter"]))  # C = 6 N D, D = 20 N
    for ax, key, k, exp, chin in ((axes[0], "N_opt", "k_N", "a", chin_n),
                                  (axes[1], "D_opt", "k_D", "b", CHINCHILLA["tokens_per_parameter"] * chin_n)):
        ax.scatter(c, [m[key] for m in iso["minima"]], color="C0", zorder=3, label="IsoFLOP minima")
        ci = iso.get(f"{exp}_ci")
        label = f"approach 2: {exp} = {iso[exp]:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
        ax.plot(grid, iso[k] * grid ** iso[exp], color="C0", label=label)
        if "G" in par:
            n_opt, d_opt = parametric_optimum(par, grid)
            ax.plot(grid, n_opt if key == "N_opt" else d_opt, color="C1", ls="--",
                    label=f"approach 3: {exp} = {par[exp]:.2f}")
        ax.plot(grid, chin, color="gray", ls=":", label="Chinchilla: D = 20 N, exponent 0.5")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training FLOPs C")
        ax.set_ylabel(f"{key} ({convention} parameters)" if key == "N_opt" else "D_opt (tokens)")
        ax.legend(fontsize=7)
    fig.suptitle(f"Compute-optimal model size and data ({convention} N)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_pareto(rows: list[dict[str, Any]], path: Path) -> dict[str, list[str]]:
    """Best bits per byte against inference FLOPs per byte, per architecture, with the lower convex hull (in
    log FLOPs) of all runs; returns the runs on the frontier."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = np.log([r["inference_flops_per_byte"] for r in rows])
    y = np.array([r["val_bpb"] for r in rows])
    for i, arch in enumerate(sorted({str(r.get("arch", "transformer")) for r in rows})):
        idx = [j for j, r in enumerate(rows) if str(r.get("arch", "transformer")) == arch]
        ax.scatter(np.exp(x[idx]), y[idx], s=18, color=f"C{i}", label=arch)
    hull = lower_convex_hull(x, y)
    ax.plot(np.exp(x[hull]), y[hull], color="k", lw=1, label="Pareto frontier (lower convex hull)")
    ax.set_xscale("log")
    ax.set_xlabel("inference FLOPs per byte")
    ax.set_ylabel("validation bits per byte")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return {"frontier": [str(rows[i]["run"]) for i in hull]}
