"""The Trainer: one object that owns the model, optimizer, data and run directory of a training run.

    trainer = Trainer(resolve("tiny"))        # prepares data + tokenizer (cached), builds model and optimizer
    summary = trainer.train()                 # train_step() until the last step, evaluate() and save() on the way

A step: for each of grad_accum_steps micro-batches, loss = cross_entropy(model(x), y) / grad_accum_steps,
backward; clip the global gradient norm; set the cosine-schedule learning rate; AdamW step.

The run directory (runs/<name>/) holds config.json, metrics.jsonl, checkpoints/step_XXXXXXX.pt, tokenizer/,
learning_curve.png and sample.txt. A checkpoint holds, besides model and optimizer, the resolved config, every RNG
state and the batch sampler's position, so `resume()` continues exactly where `save()` left off.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Int
from torch import Tensor
from tqdm.auto import tqdm

from cs336_basics import distributed
from cs336_basics.accounting import training_flops_per_token
from cs336_basics.atomic import atomic_write_text
from cs336_basics.device import resolve_device
from cs336_basics.mfu import mfu, peak_flops
from cs336_basics.model import build_model
from cs336_basics.nn_utils import clip_gradients, cross_entropy, log_softmax
from cs336_basics.runs import find_tokenizer, load_latest_checkpoint
from cs336_basics.tokenizer import load_tokenizer
from cs336_basics.training.checkpoint import (
    prune_checkpoints,
    restore_checkpoint,
    save_checkpoint,
)
from cs336_basics.training.config import (
    TrainConfig,
    checkpoint_steps,
    load_config,
    merge,
    read_json,
    save_json,
    to_dict,
    validate,
)
from cs336_basics.training.corpus import PreparedData, prepare_data
from cs336_basics.training.data import eval_batches, get_batch, open_tokens
from cs336_basics.training.optimizer import AdamW, get_lr_cosine_schedule

Batch = tuple[Int[Tensor, "batch seq"], Int[Tensor, "batch seq"]]


def token_byte_lengths(tokenizer, vocab_size: int) -> Int[Tensor, " vocab_size"]:
    """UTF-8 bytes of each token id's text: len(vocab[id]); 0 for special tokens and ids past the vocabulary."""
    lengths = torch.zeros(vocab_size, dtype=torch.long)
    specials = {tokenizer.special_token_id(t) for t in tokenizer.special_tokens}
    for i, token in tokenizer.vocab.items():
        if i < vocab_size and i not in specials:
            lengths[i] = len(token)
    return lengths


class TrainingDiverged(RuntimeError):
    """The loss or gradient norm stopped being finite; the run stops without checkpointing the bad state."""


def pick_device(name: str = "auto") -> torch.device:
    """"auto" -> cuda if available, else mps, else cpu; a named device is checked (ValueError if absent)."""
    return resolve_device(name)


def rng_state() -> dict[str, Any]:
    """Every global RNG state as tensors and strings (weights_only-loadable)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": json.dumps(random.getstate()),
        "numpy": json.dumps([kind, keys.tolist(), pos, has_gauss, gauss]),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = json.loads(state["python"])
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = json.loads(state["numpy"])
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay matrices (linear and embedding weights) but not gains: shrinking an RMSNorm gain towards 0 helps nothing."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]


class _StopOnSigint:
    """While active, the first Ctrl-C only asks the training loop to stop at the next step boundary (so the
    checkpoint it saves is consistent); a second Ctrl-C interrupts at once.

    A repeat within `repeat_window_s` counts as the same Ctrl-C: under torchrun a terminal's Ctrl-C reaches each
    worker twice, directly and forwarded by torchrun a moment later.
    """

    def __init__(self, repeat_window_s: float = 0.0):
        self.requested = False
        self._previous = None
        self._window, self._first = repeat_window_s, 0.0

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested and time.monotonic() - self._first > self._window:
            raise KeyboardInterrupt
        if not self.requested:
            self.requested, self._first = True, time.monotonic()

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class Trainer:
    """Trains `config.model` on `config.data` as `config` says; see the module docstring."""

    def __init__(self, config: TrainConfig | dict[str, Any], run_dir: str | Path | None = None, *,
                 progress: bool = True, init_weights: bool = True):
        config = load_config(config)
        validate(config)
        device = pick_device(config.run.device)  # first: a missing GPU is not a bad checkpoint or corpus
        init = None
        if config.run.init_from is not None and init_weights:
            init = load_latest_checkpoint(config.run.init_from)
            if config.data.tokenizer_dir is None:  # the weights only make sense with their own tokenizer
                config = merge(config, {"data": {"tokenizer_dir": str(find_tokenizer(init[0]))}})
        self.config = config
        # Under torchrun: this rank's place and device (see cs336_basics/distributed.py); else a world of one.
        self.ranks = distributed.setup(device)
        distributed.check_batch(config.data.batch_size, self.ranks)
        self.progress = progress and self.ranks.is_main
        name = config.run.name or time.strftime("run-%Y%m%d-%H%M%S")
        run_dir = Path(run_dir) if run_dir is not None else Path(config.run.out_dir) / name
        self.run_dir = Path(self.ranks.broadcast(str(run_dir)))  # rank 0's name: clocks may differ by a tick
        self.device = self.ranks.device
        use_bf16 = config.run.dtype == "bfloat16" or (config.run.dtype == "auto" and self.device.type == "cuda")
        self.autocast_dtype = torch.bfloat16 if use_bf16 else None

        self.data: PreparedData = self.ranks.main_first(
            lambda: prepare_data(config.data, config.model.vocab_size, progress=self.progress))
        self.tokenizer = load_tokenizer(self.data.tokenizer_dir)
        self.train_data = open_tokens(self.data.train_tokens, config.model.vocab_size)
        self.valid_data = open_tokens(self.data.valid_tokens, config.model.vocab_size)

        random.seed(config.run.seed)
        np.random.seed(config.run.seed)
        torch.manual_seed(config.run.seed)
        self.batch_rng = np.random.default_rng(config.run.seed)
        self.model = build_model(config.model).to(self.device)
        if init is not None:  # fine-tuning: trained weights (before any sharding), fresh optimizer and schedule
            restore_checkpoint(init[1], self.model, name=repr(str(init[0])))
        self.target_bytes = token_byte_lengths(self.tokenizer, config.model.vocab_size).to(self.device)
        # DDP around the model, or the model sharded in place by FSDP; the model itself in a world of one.
        self.parallel_model = distributed.wrap(self.model, config.run.parallel, self.ranks)
        opt = config.optim
        self.optimizer = AdamW(param_groups(self.model, opt.weight_decay), lr=config.schedule.max_lr,
                               betas=(opt.beta1, opt.beta2), eps=opt.eps, weight_decay=opt.weight_decay)
        # The compiled wrapper shares parameters with self.model; checkpoints always save the plain model.
        self.forward = torch.compile(self.parallel_model) if config.run.compile else self.parallel_model

        self.step = 0  # optimizer steps done
        self.tokens = 0  # training tokens seen
        self.elapsed = 0.0  # seconds spent in train(), summed over resumes
        self.total_steps = config.total_steps
        self.resumed_from: Path | None = None
        self._wandb = None

    # ----------------------------------------------------------------------------------------- one step, one eval

    def lr_at(self, step: int) -> float:
        s = self.config.schedule
        warmup = round(s.warmup_frac * self.total_steps)
        return get_lr_cosine_schedule(step, s.max_lr, s.min_lr, warmup, self.total_steps)

    def _autocast(self):
        if self.autocast_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def next_batch(self) -> Batch:
        """This rank's share of the next global batch (every rank draws the same one)."""
        d = self.config.data
        x, y = get_batch(self.train_data, d.batch_size, self.config.model.context_length, self.device,
                         generator=self.batch_rng)
        return self.ranks.share(x), self.ranks.share(y)

    def train_step(self, batch: Batch | None = None) -> dict[str, float]:
        """One optimizer step over grad_accum_steps micro-batches (`batch` for each of them if given).

        Raises TrainingDiverged, before touching the weights, when the loss or gradient norm is not finite.
        """
        self.model.train()
        accum = self.config.data.grad_accum_steps
        lr = self.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss_sum, left_out = torch.zeros((), device=self.device), 0.0
        for i in range(accum):
            x, y = batch if batch is not None else self.next_batch()
            keep = self.model.target_mask(x)  # None: every target counts (SpaceByte leaves some out)
            # gradients are reduced over ranks on the last micro-batch only
            with distributed.gradient_sync(self.parallel_model, i == accum - 1):
                with self._autocast():
                    logits = self.forward(x).float()
                    loss = cross_entropy(logits, y) if keep is None else cross_entropy(logits[keep], y[keep])
                (loss / accum).backward()
            loss_sum += loss.detach()
            left_out += 0.0 if keep is None else 1.0 - keep.float().mean().item()
        max_norm = self.config.optim.max_grad_norm
        grad_norm = float(clip_gradients(self.model.parameters(), max_norm if max_norm > 0 else math.inf))
        loss_value = self.ranks.mean(loss_sum).item() / accum  # the same on every rank, so all stop together
        if not (math.isfinite(loss_value) and math.isfinite(grad_norm)):
            self.optimizer.zero_grad(set_to_none=True)
            raise TrainingDiverged(
                f"training diverged at step {self.step + 1}: loss {loss_value}, gradient norm {grad_norm} "
                f"(learning rate {lr:.3g}). Try a lower schedule.max_lr or optim.max_grad_norm; the last good "
                f"checkpoint is kept in {self.run_dir / 'checkpoints'}"
            )
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.tokens += self.config.tokens_per_step
        metrics = {"train_loss": loss_value, "lr": lr, "grad_norm": grad_norm}
        if keep is not None:  # the share of targets the model left out of its loss (SpaceByte past global_context)
            metrics["left_out_frac"] = left_out / accum
        return metrics

    @torch.no_grad()
    def evaluate(self, max_batches: int | None = -1) -> dict[str, float]:
        """Mean loss over fixed validation windows and bits per byte = Σ nats / (ln 2 · Σ UTF-8 bytes), both
        sums over the predicted targets that are text (see `score`).

        max_batches=-1 uses config.run.eval_batches batches of windows evenly spread over the split (the same
        windows every call, so a learning curve compares like with like); None covers the whole validation set.
        """
        if max_batches == -1:
            max_batches = self.config.run.eval_batches
        self.model.eval()
        totals = torch.zeros(4, dtype=torch.float64)
        for x, y in eval_batches(self.valid_data, self.config.data.batch_size, self.config.model.context_length,
                                 self.device, max_batches=max_batches):
            x, y = self.ranks.share(x), self.ranks.share(y)  # may be empty; FSDP still needs every rank's forward
            with self._autocast():
                logits = self.forward(x).float()
            if y.numel():
                totals += self.score(x, logits, y)
        self.model.train()
        total_nats, num_tokens, text_nats, num_bytes = self.ranks.sum(*totals.tolist())
        if num_tokens == 0:
            raise ValueError(f"the validation set {self.data.valid_tokens} is shorter than one context window")
        return {"val_loss": total_nats / num_tokens, "val_bpb": text_nats / math.log(2) / max(num_bytes, 1.0)}

    def score(self, x: Tensor, logits: Tensor, y: Tensor) -> Tensor:
        """[Σ nats, targets, Σ nats of text targets, Σ their UTF-8 bytes] over one batch, as float64 on the CPU.

        A target's bytes are the length of its vocabulary entry; special tokens have none, so their predictions
        count in neither bits-per-byte sum, whatever the tokenizer. Targets the model leaves out of its loss
        (SpaceByte past global_context) count nowhere.
        """
        nats = -log_softmax(logits, dim=-1).gather(-1, y[..., None])[..., 0]  # (B, T)
        keep = self.model.target_mask(x)
        keep = torch.ones_like(y, dtype=torch.bool) if keep is None else keep
        num_bytes = self.target_bytes[y] * keep
        sums = [(nats * keep).sum(), keep.sum(), (nats * (num_bytes > 0)).sum(), num_bytes.sum()]
        return torch.stack([s.double() for s in sums]).cpu()

    # ----------------------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """Everything but model and optimizer weights that a checkpoint needs to continue exactly."""
        return {
            "config": to_dict(self.config),
            "rng": rng_state(),
            "data_state": {"batch_rng": json.dumps(self.batch_rng.bit_generator.state)},
            "tokens": self.tokens,
            "time": self.elapsed,
        }

    def load_state_dict(self, extra: dict[str, Any]) -> None:
        set_rng_state(extra["rng"])
        self.batch_rng.bit_generator.state = json.loads(extra["data_state"]["batch_rng"])
        self.tokens = int(extra["tokens"])
        self.elapsed = float(extra["time"])

    def checkpoint_path(self, step: int) -> Path:
        return self.run_dir / "checkpoints" / f"step_{step:07d}.pt"

    def save(self) -> Path:
        """Write checkpoints/step_XXXXXXX.pt (atomically) for the current step: rank 0 writes, gathering FSDP
        shards first (every rank takes part), so the file is the single-device format. Then rank 0 applies
        run.keep_checkpoints (the newest N and the run.checkpoint_steps ones stay) and clears temp files of
        interrupted writes."""
        path = self.checkpoint_path(self.step)
        model, optimizer = distributed.full_state(self.model, self.optimizer)
        if self.ranks.is_main:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_checkpoint(model, optimizer, self.step, path, extra=self.state_dict())
            run = self.config.run
            prune_checkpoints(path.parent, run.keep_checkpoints,
                              checkpoint_steps(run.checkpoint_steps, self.total_steps))
        return path

    def resume(self, checkpoint: str | Path | None = None) -> Path:
        """Load the latest checkpoint of the run directory (or `checkpoint`) and continue from its step.

        metrics.jsonl is cut back to that step, so records of steps that are about to be redone do not repeat.
        """
        # every rank reads the same file (and, under FSDP, keeps its shards); a damaged newest one is skipped
        path, ckpt = load_latest_checkpoint(checkpoint if checkpoint is not None else self.run_dir)
        ckpt_here = distributed.shard_checkpoint(ckpt, self.model, self.optimizer)  # ckpt itself unless FSDP
        self.step = restore_checkpoint(ckpt_here, self.model, self.optimizer, name=repr(str(path)))
        self.load_state_dict(ckpt)
        self.resumed_from = path
        metrics = self.run_dir / "metrics.jsonl"
        if metrics.is_file() and self.ranks.is_main:
            lines = metrics.read_text().splitlines()
            kept = [line for line in lines if line and json.loads(line)["step"] <= self.step]
            if kept != lines:
                atomic_write_text(metrics, "".join(line + "\n" for line in kept))
        return path

    @property
    def finished(self) -> bool:
        """Trained to the last step and wrapped up (the sample, written last, is there)."""
        return self.step >= self.total_steps and (self.run_dir / "sample.txt").is_file()

    @classmethod
    def from_run(cls, run_dir: str | Path, overrides: dict[str, Any] | None = None,
                 config_file: str | Path | None = None, **kwargs) -> Trainer:
        """Rebuild a run's Trainer from its config.json < `config_file` < `overrides`; resume its latest checkpoint."""
        run_dir = Path(run_dir)
        config = run_config(run_dir)
        if config_file is not None:
            config = merge(config, read_json(config_file))
        trainer = cls(merge(config, overrides or {}), run_dir, init_weights=False, **kwargs)
        trainer.resume()
        return trainer

    # ----------------------------------------------------------------------------------------- the loop

    def _start_run_dir(self) -> None:
        run = self.run_dir
        fresh = self.step == 0 and self.resumed_from is None
        if fresh and (run / "checkpoints").is_dir() and any((run / "checkpoints").iterdir()):
            raise ValueError(f"{run} already holds checkpoints: resume it with --resume {run}, or pick another "
                             f"--run.name")
        if not self.ranks.is_main:
            return
        run.mkdir(parents=True, exist_ok=True)
        if fresh:  # metrics of an attempt killed before its first checkpoint are stale
            (run / "metrics.jsonl").unlink(missing_ok=True)
        save_json(self.config, run / "config.json")
        shutil.copytree(self.data.tokenizer_dir, run / "tokenizer", dirs_exist_ok=True)

    def log(self, record: dict[str, Any]) -> None:
        """Append one record to metrics.jsonl (and to wandb when it is on); rank 0 only."""
        if not self.ranks.is_main:
            return
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._wandb is not None:
            try:
                self._wandb.log(record, step=record["step"])
            except Exception as e:  # a logging service must never end the run
                warnings.warn(f"wandb logging failed, turning it off: {e}", stacklevel=2)
                self._wandb = None

    def _start_wandb(self) -> None:
        if not self.config.run.wandb or not self.ranks.is_main:
            return
        try:
            import wandb

            mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
            self._wandb = wandb.init(project=self.config.run.wandb_project, name=self.run_dir.name,
                                     config=to_dict(self.config), dir=str(self.run_dir), mode=mode)
        except Exception as e:
            warnings.warn(f"wandb unavailable, logging to metrics.jsonl only: {e}", stacklevel=2)
            self._wandb = None

    def _finish_wandb(self) -> None:
        if self._wandb is not None:
            try:
                self._wandb.finish()
            except Exception as e:
                warnings.warn(f"wandb finish failed: {e}", stacklevel=2)
            self._wandb = None

    def train(self) -> dict[str, Any]:
        """Train to the last step. Returns a summary; summary["interrupted"] is True after a Ctrl-C.

        Periodic logging (with MFU next to tokens/s), evaluation (on run.eval_batches evenly spread batches, also
        at the last step) and checkpoints (every run.checkpoint_every steps and after run.checkpoint_minutes) as
        config.run says; after the last step a checkpoint, an evaluation on the whole validation set (recorded as
        final_val_loss / final_val_bpb: another set of windows than the curve's, so another key), the learning
        curve and a sample. Ctrl-C stops at the next step boundary and saves. TrainingDiverged propagates (no
        checkpoint of it). A finished run is left as it is (summary["already_finished"]); a run that fails
        before its first step leaves no run directory behind.
        """
        if self.finished:
            return {"run_dir": str(self.run_dir), "already_finished": True, "step": self.step}
        fresh = not self.run_dir.exists()
        try:
            return self._train()
        except Exception:
            if fresh and self.step == 0 and self.ranks.is_main and self.run_dir.is_dir():
                shutil.rmtree(self.run_dir)
            raise

    def _train(self) -> dict[str, Any]:
        self._start_run_dir()
        self._start_wandb()
        run = self.config.run
        bar = tqdm(total=self.total_steps, initial=self.step, unit="step", disable=not self.progress,
                   dynamic_ncols=True, desc=self.run_dir.name)
        peak = peak_flops(self.device, self.autocast_dtype)
        flops_per_token = training_flops_per_token(self.config.model)
        summary: dict[str, Any] = {"run_dir": str(self.run_dir), "peak_flops": peak.flops,
                                   "peak_flops_source": peak.source}
        window_tokens, window_time = 0, 0.0
        start = time.perf_counter() - self.elapsed
        last_save = time.perf_counter()
        keep_steps = checkpoint_steps(run.checkpoint_steps, self.total_steps)
        if self.step == 0 and 0 in keep_steps and self.resumed_from is None:
            self.save()  # the initialisation
        try:
            with _StopOnSigint(repeat_window_s=2.0 if self.ranks.distributed else 0.0) as stop:
                # a Ctrl-C seen by any rank stops them all at the same step
                while self.step < self.total_steps and not self.ranks.any(stop.requested):
                    t0 = time.perf_counter()
                    metrics = self.train_step()
                    window_time += time.perf_counter() - t0
                    window_tokens += self.config.tokens_per_step
                    bar.update(1)
                    last = self.step == self.total_steps
                    record: dict[str, Any] = {}
                    if self.step % run.log_every == 0 or last:
                        tokens_per_s = window_tokens / window_time
                        # tokens_per_s counts the global batch, so the peak is every rank's
                        record.update(metrics, tokens_per_s=tokens_per_s,
                                      mfu=mfu(tokens_per_s, flops_per_token, peak.flops * self.ranks.world_size))
                        window_tokens, window_time = 0, 0.0
                        bar.set_postfix(loss=f"{metrics['train_loss']:.3f}", lr=f"{metrics['lr']:.2e}",
                                        tok_s=f"{tokens_per_s:.0f}", mfu=f"{record['mfu']:.1%}")
                    if self.step % run.eval_every == 0 or last:
                        record.update(self.evaluate())
                    self.elapsed = time.perf_counter() - start
                    if record:
                        self.log({"step": self.step, "tokens": self.tokens, "time": round(self.elapsed, 3), **record})
                    overdue = (run.checkpoint_minutes is not None
                               and time.perf_counter() - last_save >= 60 * run.checkpoint_minutes)
                    if self.step % run.checkpoint_every == 0 or last or self.step in keep_steps or overdue:
                        summary["checkpoint"] = str(self.save())
                        last_save = time.perf_counter()
                summary["interrupted"] = self.step < self.total_steps
                summary["loop_time"] = self.elapsed
                if summary["interrupted"]:
                    summary["checkpoint"] = str(self.save())
        finally:
            bar.close()
            if summary.get("interrupted", True):
                self._finish_wandb()
        if not summary["interrupted"]:
            try:
                final = {f"final_{key}": value for key, value in self.evaluate(max_batches=None).items()}
                self.elapsed = time.perf_counter() - start
                self.log({"step": self.step, "tokens": self.tokens, "time": round(self.elapsed, 3), **final})
                summary.update(final, checkpoint=str(self.checkpoint_path(self.step)))
            finally:
                self._finish_wandb()
            summary["learning_curve"] = self.plot()
            summary["sample"] = str(self.write_sample())
        summary.update(step=self.step, tokens=self.tokens, time=time.perf_counter() - start)
        return summary

    def plot(self) -> str | None:
        """learning_curve.png from metrics.jsonl (None, with a warning, if plotting fails: the run is done)."""
        from cs336_basics.plot import plot_runs

        out = self.run_dir / "learning_curve.png"
        if not self.ranks.is_main:
            return str(out)
        try:
            plot_runs([self.run_dir], x="step", out=out)
        except Exception as e:
            warnings.warn(f"could not draw the learning curve: {e}", stacklevel=2)
            return None
        return str(out)

    def write_sample(self) -> Path:
        """sample.txt: the prompt and the model's continuation (config.run.sample_*), seeded for reproducibility."""
        from cs336_basics.generation import generate

        run = self.config.run
        self.model.eval()
        # every rank generates (a sharded model needs them all for each forward; seeded, they agree); rank 0 writes
        text = generate(self.model, self.tokenizer, run.sample_prompt, max_new_tokens=run.sample_tokens,
                        temperature=run.sample_temperature, top_p=run.sample_top_p, seed=run.seed)
        self.model.train()
        path = self.run_dir / "sample.txt"
        if self.ranks.is_main:
            atomic_write_text(path, run.sample_prompt + text + "\n")
        return path


def describe(trainer: Trainer) -> str:
    """One line about what is about to be trained."""
    c = trainer.config
    n_params = sum(p.numel() for p in trainer.model.parameters())
    return (f"{n_params / 1e6:.2f}M parameters, {trainer.total_steps} steps x {c.tokens_per_step} tokens "
            f"({trainer.total_steps * c.tokens_per_step / 1e6:.1f}M tokens; train set "
            f"{trainer.data.train_num_tokens / 1e6:.2f}M tokens) on {trainer.device}"
            + (f" x {trainer.ranks.world_size} ranks ({c.run.parallel})" if trainer.ranks.distributed else "")
            + (", bf16 autocast" if trainer.autocast_dtype else "") + (", compiled" if c.run.compile else ""))


def run_config(run_dir: str | Path) -> TrainConfig:
    """A run's config.json, or, when that is missing or damaged, the config stored in its newest checkpoint."""
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    try:
        return load_config(read_json(path))
    except ValueError as e:
        reason = str(e)
    try:
        ckpt_path, ckpt = load_latest_checkpoint(run_dir)
    except ValueError as e:
        raise ValueError(f"cannot resume {run_dir}: {reason}, and no checkpoint to rebuild it from ({e})") from None
    if not isinstance(ckpt.get("config"), dict):
        raise ValueError(f"cannot resume {run_dir}: {reason}, and {ckpt_path} holds no config")
    warnings.warn(f"{reason}; rebuilt the config from {ckpt_path} (config.json is rewritten when training starts)",
                  stacklevel=2)
    return load_config(ckpt["config"])

