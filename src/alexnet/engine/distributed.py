"""torchrun / DDP plumbing: NCCL on GPUs, gloo on CPU; rank 0 logs and saves.

``torchrun --nproc_per_node=N -m alexnet train …`` sets RANK, WORLD_SIZE and LOCAL_RANK; multi-node
runs add torchrun's rendezvous flags (``--nnodes --node_rank --rdzv_endpoint``) and need nothing
else here (docs/distributed.md). The batch size is per process: the global batch is
``batch_size × WORLD_SIZE`` (or ``--global-batch``, split over the processes: `plan_batch`).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


_RESUMED_BY: contextvars.ContextVar[str | None] = contextvars.ContextVar("resumed_by", default=None)


@contextlib.contextmanager
def resumed_by(command: str) -> Iterator[None]:
    """Within the block, `resume_command` is ``command``: the runs an experiment trains continue
    when the experiment's own command runs again (which also trains the arms after them and writes
    its page), not by resuming the one run with ``alexnet train``."""
    token = _RESUMED_BY.set(command)
    try:
        yield
    finally:
        _RESUMED_BY.reset(token)


def resume_command(run_dir: Any, world: World) -> str:
    """The command that continues the run in ``run_dir`` with as many processes as this one: a run
    resumes with the count it trained with (each process's data and random state depend on it)."""
    if _RESUMED_BY.get():
        return str(_RESUMED_BY.get())
    if not world.distributed:
        return f"alexnet train --resume {run_dir}"
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE") or world.world_size)
    nodes = world.world_size // max(1, per_node)
    launch = f"torchrun --nnodes {nodes} --nproc-per-node {per_node} …" if nodes > 1 else \
        f"torchrun --nproc-per-node {per_node}"
    return f"{launch} -m alexnet train --resume {run_dir}"


def restart_count() -> int:
    """How many times torchrun (``--max-restarts``) has restarted this group: 0 on the first attempt
    and outside torchrun."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def max_restarts() -> int:
    """torchrun's ``--max-restarts`` for this group (0 outside torchrun)."""
    return int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0") or 0)


def init_distributed(device_type: str | None = None) -> World:
    """Join the process group torchrun set up (a no-op for a single process).

    The group's keys live under a prefix of their own for each torchrun attempt: a restarted group
    may meet the rendezvous store of the failed one, whose keys (the dead worker's address) made
    gloo's full-mesh connect hang; under a fresh prefix nothing stale is seen."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return World()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        use_cuda = (device_type or ("cuda" if torch.cuda.is_available() else "cpu")) == "cuda"
        if use_cuda:
            torch.cuda.set_device(local % torch.cuda.device_count())
        store, rank, world_size = next(dist.rendezvous("env://"))
        store = dist.PrefixStore(f"alexnet/attempt{restart_count()}", store)
        dist.init_process_group("nccl" if use_cuda else "gloo", store=store, rank=rank, world_size=world_size)
    return World(rank, world_size, local)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum a list of numbers over all processes (identity for one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def all_reduce_max(value: float, device: torch.device) -> float:
    """The largest ``value`` over all processes (``value`` itself for one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every process (``obj`` itself for one process): what one rank decided
    or measured (a run directory's name, the mean pixel, the precision), the same on all."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_object(obj: Any) -> list[Any] | None:
    """Every process's ``obj`` in rank order on rank 0, None on the others (``[obj]`` for one
    process). A collective: every rank calls it at the same point."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast_flag(flag: bool, device: torch.device) -> bool:
    """True on every process if it is True on any (used to stop all ranks together)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


@dataclass(frozen=True)
class BatchPlan:
    """How a run's batch and learning rate work out over ``world_size`` processes."""

    per_process: int
    global_batch: int
    lr: float
    note: str  # one line for the start of the run


def plan_batch(batch_size: int, lr: float, world_size: int, global_batch: int = 0,
               scale_lr: bool = False) -> BatchPlan:
    """The batch per process and the learning rate under ``world_size`` processes.

    - ``global_batch > 0`` (the ``paper`` recipe: 128, §5): the global batch is kept; each process
      takes ``global_batch / world_size`` (an error when it does not divide), the rate is unchanged.
    - otherwise ``batch_size`` is per process (torchvision's convention) and the global batch is
      ``batch_size × world_size``; with ``scale_lr`` the rate is multiplied by ``world_size`` (the
      linear scaling rule, Goyal et al. 2017: ``lr`` is the rate for one process's batch).
    """
    from ..core.errors import EveryRankError  # the same flags and process count on every rank: said once
    from ..core.text import counted

    n = max(1, int(world_size))
    procs = counted(n, "process", "processes")
    if global_batch > 0:
        if scale_lr:
            raise EveryRankError("--scale-lr and --global-batch: give one of them")
        if global_batch % n:
            raise EveryRankError(f"--global-batch {global_batch} does not split evenly over {procs}; use a process "
                            f"count that divides it, or -b N (per process) with --scale-lr to scale the rate")
        per = global_batch // n
        return BatchPlan(per, global_batch, lr, f"global batch {global_batch} kept = {procs} × {per} "
                                                f"(--global-batch); lr {lr:g} unchanged")
    if scale_lr:
        return BatchPlan(batch_size, batch_size * n, lr * n,
                         f"global batch {batch_size * n} = {procs} × {batch_size} (-b is per process); "
                         f"lr scaled linearly (--scale-lr): {lr:g} × {n} = {lr * n:g}")
    return BatchPlan(batch_size, batch_size * n, lr,
                     f"global batch {batch_size * n} = {procs} × {batch_size} (-b is per process); "
                     f"lr {lr:g} unchanged")
