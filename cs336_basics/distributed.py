"""Data-parallel and sharded training with torch.distributed: the process group, rank helpers, DDP/FSDP2 wrapping.

    uv run torchrun --standalone --nproc_per_node 2 -m cs336_basics.train --preset tiny --run.device cpu

torchrun starts one process per device and tells each its RANK, LOCAL_RANK and WORLD_SIZE; `setup` joins them
into one process group (nccl on CUDA, gloo on CPU). Without torchrun the same code runs as a world of one.

How a step stays independent of the number of ranks W: `data.batch_size` is the *global* batch. Every rank draws
the same global batch from the same seeded generator and keeps its contiguous share of the rows (`Ranks.share`),
so rank r trains on rows [r·B/W, (r+1)·B/W). Each rank's loss is a mean over its B/W rows; averaging gradients
over ranks (DDP's all-reduce, FSDP's reduce-scatter) gives the mean over all B rows, the same as one device.

`run.parallel` picks how the model is spread:
- "ddp": every rank holds the whole model and optimizer; DistributedDataParallel all-reduces gradients.
- "fsdp": parameters, gradients and optimizer state are sharded over ranks with FSDP2 (`fully_shard`, one unit
  per Transformer block plus the root). Checkpoints are gathered into the single-device format (`full_state`),
  so a checkpoint written by any number of ranks loads anywhere, and is cut back into shards on resume.

The Trainer calls this module; this module never imports the Trainer.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

T = TypeVar("T")
PARALLEL_MODES = ("ddp", "fsdp")


@dataclass(frozen=True)
class Ranks:
    """Where this process stands: rank in [0, world_size), local_rank on its node, and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def share(self, rows: Tensor) -> Tensor:
        """This rank's contiguous share of the rows of a global batch: rows[r·n/W : (r+1)·n/W].

        e.g. 8 rows over 2 ranks: rank 0 keeps rows 0-3, rank 1 rows 4-7. With fewer rows than ranks some
        shares are empty (evaluation's last batch); training batches are checked to divide evenly.
        """
        n = rows.shape[0]
        return rows[n * self.rank // self.world_size : n * (self.rank + 1) // self.world_size]

    # ------------------------------------------------------------------------------------------- collectives

    def sum(self, *values: float) -> list[float]:
        """Each value summed over ranks (float64, one all-reduce); the values themselves in a world of one."""
        if not self.distributed:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def mean(self, value: Tensor) -> Tensor:
        """A scalar tensor averaged over ranks."""
        if not self.distributed:
            return value
        value = value.detach().clone()
        dist.all_reduce(value)
        return value / self.world_size

    def any(self, flag: bool) -> bool:
        """True on every rank when it is True on at least one (so all ranks take the same branch)."""
        return self.sum(float(flag))[0] > 0

    def broadcast(self, obj: T) -> T:
        """Rank 0's value of a picklable object (e.g. a run directory named after rank 0's clock)."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def main_first(self, fn: Callable[[], T]) -> T:
        """Run fn() on rank 0 first, then on each other node's local rank 0, then on all other ranks.

        For work that fills a cache (data preparation): the first run does it, the others find it done.
        If fn raises on any rank, every rank raises (the others with a pointer to it) instead of waiting.
        """
        phase = 0 if self.rank == 0 else 1 if self.local_rank == 0 else 2
        result, error = None, None
        for turn in range(3 if self.distributed else 1):
            if turn == phase:
                try:
                    result = fn()
                except Exception as e:  # re-raised below, once every rank knows
                    error = e
            if self.any(error is not None):
                if error is not None:
                    raise error
                raise ValueError(f"rank {self.rank}: another rank failed (see its error); stopping this one too")
        return result  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------ process group


def setup(device: torch.device) -> Ranks:
    """Join torchrun's process group (when WORLD_SIZE > 1 in the environment) and pick this rank's device.

    `device` is the run's device type: on CUDA each rank takes cuda:LOCAL_RANK and the backend is nccl; on the
    CPU the backend is gloo. Without torchrun, a world of one on `device`. An existing process group is reused.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Ranks(device=device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise ValueError(f"run.device {device.type!r}: distributed training runs on cuda (nccl) or cpu (gloo)")
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=world_size,
                                device_id=device if device.type == "cuda" else None)
    return Ranks(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def teardown() -> None:
    """Leave the process group (a no-op outside one)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def check_batch(batch_size: int, ranks: Ranks) -> None:
    """The global batch must split evenly, or ranks would weigh their rows differently."""
    if batch_size % ranks.world_size:
        raise ValueError(f"data.batch_size ({batch_size}) must be divisible by the number of ranks "
                         f"({ranks.world_size}): it is the global batch, split evenly over ranks")


# ------------------------------------------------------------------------------------------------ wrapping


def wrap(model: nn.Module, parallel: str, ranks: Ranks) -> nn.Module:
    """The module to train: `model` itself in a world of one; DDP around it; or, for "fsdp", `model` sharded in
    place (each Transformer block, then the root) and returned. Build the optimizer after this call."""
    if parallel not in PARALLEL_MODES:
        raise ValueError(f"run.parallel must be one of {PARALLEL_MODES}, got {parallel!r}")
    if not ranks.distributed:
        return model
    if parallel == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        # RoPE's cos/sin buffers are the same on every rank, so there is nothing to broadcast per forward
        # (and a forward with no collective can run unevenly across ranks, e.g. in evaluation).
        no_buffer_sync = ({"forward_sync_buffers": False}
                          if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
                          else {"broadcast_buffers": False})  # the older name of the same switch
        device_ids = [ranks.device] if ranks.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids, **no_buffer_sync)
    from torch.distributed.fsdp import fully_shard

    for block in getattr(model, "layers", []):
        fully_shard(block)
    fully_shard(model)
    return model


@contextlib.contextmanager
def gradient_sync(module: nn.Module, enabled: bool) -> Iterator[None]:
    """Around a micro-batch's forward and backward: reduce gradients over ranks only when `enabled` (the last
    micro-batch); the others accumulate locally (DDP's no_sync, FSDP2's set_requires_gradient_sync)."""
    if hasattr(module, "no_sync") and not enabled:
        with module.no_sync():
            yield
    elif hasattr(module, "set_requires_gradient_sync"):
        module.set_requires_gradient_sync(enabled)
        yield
    else:
        yield


# ------------------------------------------------------------------------------------------------ checkpoints


def _is_sharded(t: Any) -> bool:
    return hasattr(t, "full_tensor") and hasattr(t, "placements")  # a DTensor


class StateSnapshot:
    """Stands for a module or optimizer whose state_dict() was already taken (e.g. gathered from shards)."""

    def __init__(self, state: dict[str, Any]):
        self._state = state

    def state_dict(self) -> dict[str, Any]:
        return self._state


def _map_tensors(state: Any, fn: Callable[[Any], Any]) -> Any:
    if isinstance(state, dict):
        return {k: _map_tensors(v, fn) for k, v in state.items()}
    if isinstance(state, list):
        return [_map_tensors(v, fn) for v in state]
    return fn(state)


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[Any, Any]:
    """(model, optimizer) as they can be passed to save_checkpoint: themselves when nothing is sharded; else
    snapshots whose state dicts hold the gathered full tensors (a collective: call it on every rank)."""
    if not any(_is_sharded(p) for p in model.parameters()):
        return model, optimizer

    def gather(t: Any) -> Any:
        return t.full_tensor().cpu() if _is_sharded(t) else t

    return (StateSnapshot(_map_tensors(model.state_dict(), gather)),
            StateSnapshot(_map_tensors(optimizer.state_dict(), gather)))


def shard_checkpoint(ckpt: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """A checkpoint dict (full tensors) with its model and optimizer tensors cut into this rank's shards, laid out
    like `model`'s parameters; unchanged when the model is not sharded. The inverse of `full_state`."""
    if not any(_is_sharded(p) for p in model.parameters()):
        return ckpt
    params = [p for group in optimizer.param_groups for p in group["params"]]  # the optimizer's numbering
    from torch.distributed.tensor import distribute_tensor

    def shard_like(full: Any, like: Any) -> Any:
        if not (isinstance(full, Tensor) and _is_sharded(like) and full.shape == like.shape):
            return full
        return distribute_tensor(full.to(like.device, like.dtype), like.device_mesh, like.placements,
                                 src_data_rank=None)  # every rank holds the full tensor: just keep its part

    current = model.state_dict()
    model_state = {k: shard_like(v, current.get(k.removeprefix("_orig_mod."))) for k, v in ckpt["model"].items()}
    optim = ckpt["optimizer"]
    if optim is not None:
        state = {i: {k: shard_like(v, params[int(i)]) for k, v in s.items()} if int(i) < len(params) else s
                 for i, s in optim["state"].items()}
        optim = {**optim, "state": state}
    return {**ckpt, "model": model_state, "optimizer": optim}
