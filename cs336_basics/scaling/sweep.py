"""Sweeps: many training runs from one JSON spec, in parallel worker processes, restartable, one CSV row per run.

    {"name": "isoflop", "out_dir": "runs/sweeps",
     "base": {"preset": "shakespeare", "config": "base.json", "overrides": {"schedule.max_steps": "{C}/flops"}},
     "grid": {"C": [1e13, 3e13], "model.d_model": [64, 96, 128]},            every combination
     "zip":  {"model.num_layers": [2, 4], "model.num_heads": [2, 4]}}         walked together (or a list of such)

Axes with a dotted name set that config field (values may be expressions); axes without a dot are sweep variables
(a budget `C`, a label) that `{C}` inside any string of the spec is replaced with. Each point is a normal run
directory, out_dir/name/<varied values>/, plus sweep_result.json, written last: a run that has it with status
"done" is skipped on a rerun; one with checkpoints but no result (killed) resumes from its latest checkpoint; a
failed one is recorded with its error and tried again on the next rerun. out_dir/name/sweep.csv gets one row per run.
"""

from __future__ import annotations

import copy
import csv
import io
import itertools
import json
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPEC_KEYS = {"name", "out_dir", "base", "grid", "zip"}
BASE_KEYS = {"preset", "config", "overrides"}
RESULT_FILE = "sweep_result.json"
CSV_METRICS = ["status", "N", "N_total", "N_embed", "steps", "tokens", "flops", "flops_per_token",
               "inference_flops_per_byte", "val_loss", "val_bpb", "wall_s", "resumed_from", "arch", "error"]


@dataclass
class Spec:
    name: str
    out_dir: str = "runs/sweeps"
    preset: str | None = None
    config: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list] = field(default_factory=dict)
    zip: list[dict[str, list]] = field(default_factory=list)

    @property
    def sweep_dir(self) -> Path:
        return Path(self.out_dir) / self.name

    @property
    def axes(self) -> list[str]:
        return [*self.grid, *(k for group in self.zip for k in group)]


@dataclass
class Point:
    """One run of the sweep: its directory name, the values of the axes and its nested config overrides."""

    name: str
    values: dict[str, Any]
    overrides: dict[str, Any]
    config: Any = None  # the resolved TrainConfig, or None when resolving failed
    error: str | None = None


def write_text_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same directory, fsync, rename: readers see the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------------------------
# The spec and its points


def load_spec(path_or_dict: str | Path | dict[str, Any]) -> Spec:
    """A checked Spec from a JSON file (its name defaults to the file's stem) or a dict."""
    from cs336_basics.training.config import read_json

    if isinstance(path_or_dict, dict):
        data, default_name, where = path_or_dict, "sweep", "spec"
    else:
        data = read_json(path_or_dict, "sweep spec")
        default_name, where = Path(path_or_dict).stem, f"sweep spec {path_or_dict}"
    if unknown := set(data) - SPEC_KEYS:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(SPEC_KEYS)}")
    base = data.get("base", {})
    if not isinstance(base, dict) or (unknown := set(base) - BASE_KEYS):
        raise ValueError(f"{where}: base must be an object with keys among {sorted(BASE_KEYS)}")
    grid = data.get("grid", {})
    groups = data.get("zip", [])
    groups = [groups] if isinstance(groups, dict) else groups
    if not isinstance(grid, dict) or not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise ValueError(f"{where}: grid must be an object of lists, zip an object of lists (or a list of them)")
    for axis, values in [*grid.items(), *(kv for g in groups for kv in g.items())]:
        if not isinstance(values, list) or not values:
            raise ValueError(f"{where}: axis {axis!r} must be a non-empty list, got {values!r}")
    for group in groups:
        if len({len(v) for v in group.values()}) > 1:
            lengths = ", ".join(f"{k}: {len(v)}" for k, v in group.items())
            raise ValueError(f"{where}: zipped axes must have the same length ({lengths})")
    axes = [*grid, *(k for g in groups for k in g)]
    if len(set(axes)) != len(axes):
        raise ValueError(f"{where}: an axis appears twice in {axes}")
    overrides = base.get("overrides", {})
    if not isinstance(overrides, dict):
        raise ValueError(f"{where}: base.overrides must be an object")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise ValueError(f"{where}: name must be letters, digits, '.', '_' or '-', got {name!r}")
    return Spec(name=name, out_dir=data.get("out_dir", "runs/sweeps"), preset=base.get("preset"),
                config=base.get("config"), overrides=overrides, grid=grid, zip=groups)


def nested(overrides: dict[str, Any]) -> dict[str, Any]:
    """Overrides with dotted keys ({"model.d_model": 64}), nested ones, or both, as one nested dict."""
    from cs336_basics.training.config import nest

    def flatten(node: dict[str, Any], prefix: str) -> dict[str, Any]:
        flat = {}
        for key, value in node.items():
            flat.update(flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value})
        return flat

    return nest(flatten(overrides, ""))


def deep_merge(base: dict, *updates: dict) -> dict:
    """Nested dicts merged left to right (later values win)."""
    out = copy.deepcopy(base)
    for update in updates:
        for key, value in update.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = deep_merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


def substitute(value: Any, variables: dict[str, Any]) -> Any:
    """Replace {name} in every string of `value` by the sweep variable's value: "{C}/flops" -> "1e+13/flops"."""
    if isinstance(value, str):
        for name, v in variables.items():
            value = value.replace("{" + name + "}", repr(v) if isinstance(v, float) else str(v))
        return value
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    return value


def _label(value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return re.sub(r"[^A-Za-z0-9.+=-]+", "-", text).strip("-") or "x"


def expand(spec: Spec) -> list[Point]:
    """Every point: the grid's product times the zipped groups' product, named after the varied values."""
    grid_axes = [[(k, v) for v in values] for k, values in spec.grid.items()]
    zip_axes = [[tuple(zip(g.keys(), vs)) for vs in zip(*g.values())] for g in spec.zip]
    short = {k: k.split(".")[-1] for k in spec.axes}
    if len(set(short.values())) < len(short):  # two axes with the same leaf: keep their full names
        short = {k: k for k in spec.axes}
    points, seen = [], set()
    for combo in itertools.product(*grid_axes, *zip_axes):
        values = {}
        for item in combo:
            values.update([item] if isinstance(item[0], str) else dict(item))
        variables = {k: v for k, v in values.items() if "." not in k}
        fields = {k: substitute(v, variables) for k, v in values.items() if "." in k}
        overrides = substitute(deep_merge(nested(spec.overrides), nested(fields)), variables)
        name = "_".join(f"{short[k]}={_label(v)}" for k, v in values.items()) or "run"
        unique, i = name, 1
        while unique in seen:
            i, unique = i + 1, f"{name}-{i + 1}"
        seen.add(unique)
        points.append(Point(unique, values, overrides))
    return points


def resolve_points(spec: Spec) -> list[Point]:
    """expand() with each point's config resolved (or its error kept): base preset < file < overrides < run dir."""
    from cs336_basics.training.config import resolve

    points = expand(spec)
    for p in points:
        run = {"run": {"name": p.name, "out_dir": str(spec.sweep_dir)}}
        try:
            p.config = resolve(spec.preset, spec.config, deep_merge(p.overrides, run))
        except ValueError as e:
            p.error = str(e)
    return points


# ---------------------------------------------------------------------------------------------------------------
# What each run costs


def run_numbers(config: Any, bytes_per_token: float | None = None) -> dict[str, Any]:
    """Parameters (both conventions), tokens and training FLOPs of a run, from its config alone (accounting)."""
    from cs336_basics.accounting import forward_flops, parameter_counts, training_flops_per_token

    counts = parameter_counts(config.model)
    embed = counts["token embeddings"] + counts["LM head"]
    per_token = training_flops_per_token(config.model)
    steps = config.total_steps
    out = {"N": sum(counts.values()) - embed, "N_total": sum(counts.values()), "N_embed": embed, "steps": steps,
           "tokens": steps * config.tokens_per_step, "flops": per_token * steps * config.tokens_per_step,
           "flops_per_token": per_token, "arch": getattr(config.model, "arch", "transformer")}
    if bytes_per_token:
        forward_per_token = sum(forward_flops(config.model).values()) / config.model.context_length
        out["inference_flops_per_byte"] = forward_per_token / bytes_per_token
    return out


def measure_step_seconds(config: Any, repeats: int = 3) -> float:
    """Seconds of one optimizer step of this model and batch on random tokens (after one warm-up step)."""
    import torch

    from cs336_basics.model import TransformerLM
    from cs336_basics.nn_utils import cross_entropy
    from cs336_basics.training.optimizer import AdamW
    from cs336_basics.training.trainer import pick_device

    device = pick_device(config.run.device)
    model = TransformerLM(config.model).to(device)
    optimizer = AdamW(model.parameters(), lr=1e-3)
    m, d = config.model, config.data
    x = torch.randint(0, m.vocab_size, (d.batch_size, m.context_length + 1), device=device)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        for _ in range(d.grad_accum_steps):
            cross_entropy(model(x[:, :-1]), x[:, 1:]).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[len(times[1:]) // 2]


def dry_run_table(points: list[Point], workers: int, measure: bool = True) -> str:
    """The runs with their varied values, parameters, FLOPs and time estimated from a measured step."""
    import torch

    from cs336_basics.training.config import to_dict

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, workers)))  # as each worker will run
    step_cache: dict[str, float] = {}
    rows, total = [], 0.0
    axes = list(points[0].values) if points else []
    for p in points:
        if p.config is None:
            rows.append([p.name, *map(str, p.values.values()), "-", "-", "-", "-", "-", f"error: {p.error}"])
            continue
        n = run_numbers(p.config)
        key = json.dumps([to_dict(p.config)["model"], p.config.data.batch_size, p.config.data.grad_accum_steps])
        if measure and key not in step_cache:
            step_cache[key] = measure_step_seconds(p.config, repeats=5)
        seconds = step_cache.get(key, math.nan) * n["steps"]
        total += 0.0 if math.isnan(seconds) else seconds
        rows.append([p.name, *(_label(v) for v in p.values.values()), f"{n['N']:,}", f"{n['N_total']:,}",
                     f"{n['steps']:,}", f"{n['tokens']:.3g}", f"{n['flops']:.3g}", _duration(seconds)])
    headers = ["run", *axes, "N", "N_total", "steps", "tokens", "FLOPs", "est. time"]
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [headers, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"{len(points)} runs; estimated {_duration(total)} of training in all, about "
                 f"{_duration(total / max(1, workers))} with {max(1, workers)} worker(s) (from one measured step "
                 "per shape, without evaluation)")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.1f}min" if seconds < 7200 else f"{seconds / 3600:.1f}h"


# ---------------------------------------------------------------------------------------------------------------
# Running


def read_result(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / RESULT_FILE
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def train_point(config: dict[str, Any], run_dir: str, threads: int | None = None) -> dict[str, Any]:
    """Train (or resume) one run in this process; write and return its result. Never raises for a failed run."""
    import torch

    from cs336_basics.training.trainer import Trainer

    if threads:
        torch.set_num_threads(threads)
    run = Path(run_dir)
    start = time.perf_counter()
    try:
        if any((run / "checkpoints").glob("step_*.pt")):
            trainer = Trainer.from_run(run, progress=False)  # its config.json, expressions already resolved
        else:
            trainer = Trainer(config, run, progress=False)
        resumed_from = trainer.step
        summary = trainer.train()
        if summary.get("interrupted"):
            return {"status": "interrupted", "resumed_from": resumed_from}
        final = final_metrics(summary) or trainer.evaluate(max_batches=None)  # a finished run resumed: no summary
        result = {"status": "done", "val_loss": final["val_loss"], "val_bpb": final["val_bpb"],
                  "wall_s": round(trainer.elapsed, 3), "resumed_from": resumed_from,
                  "bytes_per_token": trainer.data.valid_bytes_per_token}
    except Exception as e:  # noqa: BLE001 - a failed run is recorded, the sweep goes on
        message = " ".join(f"{type(e).__name__}: {e}".split())
        result = {"status": "failed", "error": message, "wall_s": round(time.perf_counter() - start, 3)}
    write_text_atomic(run / RESULT_FILE, json.dumps(result, indent=2) + "\n")
    return result


def final_metrics(summary: dict[str, Any]) -> dict[str, float] | None:
    """The whole-validation-set loss and bits per byte of a Trainer summary (final_val_* or, older, val_*)."""
    for prefix in ("final_", ""):
        if f"{prefix}val_bpb" in summary:
            return {"val_loss": summary[f"{prefix}val_loss"], "val_bpb": summary[f"{prefix}val_bpb"]}
    return None


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def write_csv(points: list[Point], results: dict[str, dict[str, Any]], path: Path) -> None:
    """sweep.csv: one row per point, the axes' values then CSV_METRICS (blank where unknown)."""
    axes = list(points[0].values) if points else []
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["run", *axes, *CSV_METRICS], extrasaction="ignore")
    writer.writeheader()
    for p in points:
        row: dict[str, Any] = {"run": p.name, **p.values, "status": "pending"}
        result = results.get(p.name, {})
        if p.config is not None:
            row.update(run_numbers(p.config, result.get("bytes_per_token")))
        else:
            row.update(status="failed", error=p.error)
        row.update({k: v for k, v in result.items() if k in CSV_METRICS})
        writer.writerow(row)
    write_text_atomic(path, buffer.getvalue())


def run_sweep(spec: Spec, workers: int | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """Run every point not done yet (workers=0: one after another in this process); returns the CSV rows' results.

    Data is prepared (and cached) here first, once per distinct data setting, so workers never race on it.
    """
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    from tqdm.auto import tqdm

    from cs336_basics.training.config import to_dict
    from cs336_basics.training.corpus import prepare_data

    cores = os.cpu_count() or 1
    workers = cores if workers is None else workers
    threads = max(1, cores // max(1, workers))
    points = resolve_points(spec)
    csv_path = spec.sweep_dir / "sweep.csv"
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for p in points:
        previous = read_result(spec.sweep_dir / p.name)
        if previous is not None and previous.get("status") == "done":
            results[p.name] = {**previous, "status": "done"}
        elif p.config is None:
            results[p.name] = {"status": "failed", "error": p.error}
        else:
            todo.append(p)
    prepared: dict[str, Any] = {}
    for p in todo:
        key = json.dumps([to_dict(p.config)["data"], p.config.model.vocab_size])
        try:
            if key not in prepared:
                prepared[key] = prepare_data(p.config.data, p.config.model.vocab_size, progress=progress)
        except (ValueError, OSError) as e:
            prepared[key] = e
        if isinstance(prepared[key], Exception):
            results[p.name] = {"status": "failed", "error": str(prepared[key])}
    todo = [p for p in todo if p.name not in results]
    write_csv(points, results, csv_path)
    skipped = sum(r.get("status") == "done" for r in results.values())
    bar = tqdm(total=len(points), initial=len(points) - len(todo), unit="run", desc=spec.name,
               disable=not progress, dynamic_ncols=True)
    if skipped:
        bar.write(f"{skipped} run(s) already done, skipped")

    def finished(p: Point, result: dict[str, Any]) -> None:
        results[p.name] = result
        bar.update(1)
        detail = (f"val_loss {result['val_loss']:.4f}, {result['val_bpb']:.4f} bits/byte, {result['wall_s']:.0f}s"
                  if result["status"] == "done" else result.get("error", ""))
        bar.write(f"{result['status']:>8}  {p.name}  {detail}")
        write_csv(points, results, csv_path)

    try:
        if workers == 0:
            for p in todo:
                bar.write(f"   start  {p.name}")
                finished(p, train_point(to_dict(p.config), str(spec.sweep_dir / p.name)))
        elif todo:
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker,
                                     initargs=(threads,)) as pool:
                futures = {pool.submit(train_point, to_dict(p.config), str(spec.sweep_dir / p.name)): p
                           for p in todo}
                try:
                    for future in as_completed(futures):
                        try:
                            result = future.result()
                        except Exception as e:  # noqa: BLE001 - the worker process itself died
                            result = {"status": "failed", "error": " ".join(f"{type(e).__name__}: {e}".split())}
                        finished(futures[future], result)
                except KeyboardInterrupt:
                    # Start nothing new; the running runs got the Ctrl-C too and stop at a checkpoint.
                    for future in futures:
                        future.cancel()
                    raise
    finally:
        bar.close()
        write_csv(points, results, csv_path)
    return [{"run": p.name, **p.values, **results.get(p.name, {"status": "pending"})} for p in points]


# ---------------------------------------------------------------------------------------------------------------
# Modal


def modal_calls(spec: Spec) -> list[tuple[dict[str, Any], str, str, str]]:
    """The arguments of train_modal.train_remote for each point: (overrides, preset, resume, download).

    The base config file is read here (it lives on this machine) and folded into each point's overrides.
    """
    from cs336_basics.training.config import read_json

    base = read_json(spec.config) if spec.config else {}
    calls = []
    for p in expand(spec):
        run = {"run": {"name": p.name, "out_dir": str(spec.sweep_dir)}}
        calls.append((deep_merge(base, p.overrides, run), spec.preset or "tinystories", "", ""))
    return calls


def run_modal(spec: Spec) -> list[dict[str, Any]]:
    """Fan the points out over Modal's `starmap` on the existing GPU function; sweep.csv from their summaries."""
    from cs336_basics import train_modal

    calls = modal_calls(spec)
    with train_modal.app.run():
        summaries = list(train_modal.train_remote.starmap(calls, return_exceptions=True))
    points = resolve_points(spec)
    results = {}
    for p, summary in zip(points, summaries):
        if isinstance(summary, dict) and (final := final_metrics(summary)):
            results[p.name] = {"status": "done", **final, "wall_s": summary.get("time")}
        else:
            results[p.name] = {"status": "failed", "error": " ".join(str(summary).split())}
    write_csv(points, results, spec.sweep_dir / "sweep.csv")
    return [{"run": p.name, **p.values, **results[p.name]} for p in points]
