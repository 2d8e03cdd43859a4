"""Train on a cloud GPU with Modal, using the same config tree and Trainer as the local command.

    uv run modal run cs336_basics/train_modal.py --config run.json                  # TinyStories preset + run.json
    uv run modal run cs336_basics/train_modal.py --preset shakespeare
    uv run modal run cs336_basics/train_modal.py --config run.json --download tinystories   # fetch data first
    uv run modal run cs336_basics/train_modal.py --resume runs/NAME                  # continue a run on the volume

The container image is built from the project's pyproject.toml + uv.lock. A Modal Volume mounted at /vol holds
data/ (corpora and data/cache/) and runs/, so paths in the config mean the same thing as in a local checkout and
runs survive the container: fetch one with `modal volume get cs336-basics runs/NAME`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import modal

REPO = Path(__file__).resolve().parents[1]
VOLUME_NAME = "cs336-basics"
VOLUME_DIR = "/vol"
GPU = "H100"
TIMEOUT_S = 24 * 60 * 60

app = modal.App("cs336-basics-train")
image = (
    modal.Image.debian_slim(python_version="3.11")
    .pip_install("uv")
    .uv_sync(str(REPO), frozen=True)
    .add_local_file(REPO / "data" / "shakespeare.txt.gz", "/root/bundled/shakespeare.txt.gz")
    .add_local_python_source("cs336_basics")
)
volume = modal.Volume.from_name(VOLUME_NAME, create_if_missing=True)


@app.function(image=image, gpu=GPU, volumes={VOLUME_DIR: volume}, timeout=TIMEOUT_S)
def train_remote(overrides: dict, preset: str = "tinystories", resume: str = "", download: str = "") -> dict:
    """Run the Trainer inside the container with /vol as the working directory; returns the run's summary."""
    from cs336_basics.config import resolve
    from cs336_basics.trainer import Trainer, describe

    os.chdir(VOLUME_DIR)
    Path("data").mkdir(exist_ok=True)
    bundled = Path("data/shakespeare.txt.gz")
    if not bundled.exists():
        bundled.write_bytes(Path("/root/bundled/shakespeare.txt.gz").read_bytes())
    if download:
        from cs336_basics.download import download as fetch

        fetch(download, "data")
        volume.commit()
    if resume:
        trainer = Trainer.from_run(resume, overrides)
    else:
        trainer = Trainer(resolve(preset, overrides=overrides))
    print(f"run {trainer.run_dir}: {describe(trainer)}", flush=True)
    try:
        summary = trainer.train()
    finally:
        volume.commit()  # checkpoints written so far survive even a crash of the function
    return summary


@app.local_entrypoint()
def main(config: str = "", preset: str = "tinystories", resume: str = "", download: str = ""):
    """Read the JSON config file here (it lives on your machine) and train remotely."""
    from cs336_basics.config import read_json

    overrides = read_json(config) if config else {}
    summary = train_remote.remote(overrides, preset, resume, download)
    print(json.dumps(summary, indent=2))
    print(f"fetch the run with: modal volume get {VOLUME_NAME} {summary['run_dir']}")
