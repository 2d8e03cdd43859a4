"""Train on a cloud GPU with Modal, using the same config tree and Trainer as the local command.

    uv run modal run cs336_basics/train_modal.py --config run.json                  # TinyStories preset + run.json
    uv run modal run cs336_basics/train_modal.py --preset shakespeare
    uv run modal run cs336_basics/train_modal.py --config run.json --download tinystories   # fetch data first
    uv run modal run cs336_basics/train_modal.py --resume runs/NAME                  # continue a run on the volume
    uv run modal run cs336_basics/train_modal.py --config run.json --gpus 4         # 4 GPUs, DDP under torchrun

The container image is built from the project's pyproject.toml + uv.lock. A Modal Volume mounted at /vol holds
data/ (corpora and data/cache/) and runs/, so paths in the config mean the same thing as in a local checkout and
runs survive the container: fetch one with `modal volume get cs336-basics runs/NAME`.

With --gpus N > 1 the container gets N GPUs and runs the same train CLI under torchrun (one process per GPU, see
cs336_basics/distributed.py); data.batch_size stays the global batch.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
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


def gpu_request(gpus: int) -> str:
    """Modal's GPU string: "H100" for one, "H100:4" for four on one machine."""
    if gpus < 1:
        raise ValueError(f"--gpus must be >= 1, got {gpus}")
    return GPU if gpus == 1 else f"{GPU}:{gpus}"


def torchrun_command(gpus: int, preset: str, config_file: str, resume: str = "") -> list[str]:
    """The command each multi-GPU container runs: the train CLI under torchrun, one process per GPU."""
    command = ["torchrun", "--standalone", f"--nproc_per_node={gpus}", "-m", "cs336_basics.train"]
    command += ["--resume", resume] if resume else ["--preset", preset]
    return command + ["--config", config_file]


def _train_with_torchrun(overrides: dict, preset: str, resume: str, gpus: int) -> dict:
    """Launch torchrun inside the container; the ranks write into /vol like a local run."""
    from cs336_basics.training.config import resolve

    if not resume:
        run = overrides.setdefault("run", {})
        run.setdefault("name", f"{preset}-{time.strftime('%Y%m%d-%H%M%S')}")
        run_dir = str(Path(resolve(preset, overrides=overrides).run.out_dir) / run["name"])
    else:
        run_dir = resume
    config_file = "/tmp/overrides.json"
    Path(config_file).write_text(json.dumps(overrides))
    result = subprocess.run(torchrun_command(gpus, preset, config_file, resume))
    if result.returncode != 0:
        raise RuntimeError(f"torchrun exited with status {result.returncode}; see the log above")
    return {"run_dir": run_dir, "gpus": gpus}


@app.function(image=image, gpu=GPU, volumes={VOLUME_DIR: volume}, timeout=TIMEOUT_S)
def train_remote(overrides: dict, preset: str = "tinystories", resume: str = "", download: str = "",
                 gpus: int = 1) -> dict:
    """Run the Trainer inside the container with /vol as the working directory; returns the run's summary.
    With gpus > 1 (the caller asks Modal for that many), the train CLI runs under torchrun instead."""
    from cs336_basics.training.config import resolve
    from cs336_basics.training.trainer import Trainer, describe

    os.chdir(VOLUME_DIR)
    Path("data").mkdir(exist_ok=True)
    bundled = Path("data/shakespeare.txt.gz")
    if not bundled.exists():
        bundled.write_bytes(Path("/root/bundled/shakespeare.txt.gz").read_bytes())
    if download:
        from cs336_basics.download import download as fetch

        fetch(download, "data")
        volume.commit()
    if gpus > 1:
        try:
            return _train_with_torchrun(overrides, preset, resume, gpus)
        finally:
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


def remote_function(gpus: int) -> modal.Function:
    """train_remote on one GPU, or the same function asking Modal for `gpus` GPUs in one container."""
    if gpus == 1:
        return train_remote
    return train_remote.with_options(gpu=gpu_request(gpus), volumes={VOLUME_DIR: volume})


@app.local_entrypoint()
def main(config: str = "", preset: str = "tinystories", resume: str = "", download: str = "", gpus: int = 1):
    """Read the JSON config file here (it lives on your machine) and train remotely on `gpus` GPUs."""
    from cs336_basics.training.config import read_json

    overrides = read_json(config) if config else {}
    summary = remote_function(gpus).remote(overrides, preset, resume, download, gpus)
    print(json.dumps(summary, indent=2))
    print(f"fetch the run with: modal volume get {VOLUME_NAME} {summary['run_dir']}")
