"""Runs that outlive their processes: ``--resume auto`` (torchrun ``--max-restarts``, a requeued job)
and the per-rank part of a checkpoint that makes a multi-process resume exact.

``--resume auto --name NAME`` means "this command is both the start and the continuation of the
run NAME": rank 0 looks for a checkpoint in ``OUTPUT_DIR/NAME`` and every rank follows its choice
(resume it, or start it). A group that torchrun restarts after a failure runs the same command, so
it resumes on its own. The command line stays the description of the run: a resumed run takes
every field from it except what the run decided once at its start (precision, mean pixel), which
come from its ``config.json``.

Each rank draws its own dropout masks and augmentations and sums its own epoch statistics, so a
checkpoint keeps every rank's RNG states and sums (gathered to rank 0, which writes) and each rank
restores its own; resuming with another number of processes is refused (the data each rank takes
and the global batch would change).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..core.errors import UserError
from ..core.seed import get_rng_state
from ..core.text import counted
from .config import TrainConfig, resume_config
from .distributed import World, broadcast_object, max_restarts, restart_count
from .progress import log

# Fields a run decides once at its start and keeps on resume, whatever the command line says.
DECIDED_AT_START = ("precision", "precision_reason", "pixel_mean", "resident_device")


def has_checkpoint(run_dir: Path) -> bool:
    ck = Path(run_dir) / "checkpoints"
    return (ck / "last.pt").is_file() or (ck / "last.prev.pt").is_file()


def never_trained(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a run of ours that stopped before it trained anything (its data
    could not be read, say): its config.json (a training config: its model and recipe) and
    classes.json, and no checkpoint, no weights and no row in metrics.csv. Nothing of it is worth
    keeping. Another tool's folder with a config.json is not such a run."""
    import json

    if (not (run_dir / "classes.json").is_file() or has_checkpoint(run_dir)
            or (run_dir / "weights.safetensors").exists()):
        return False
    try:
        saved = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(saved, dict) or not {"model", "recipe", "epochs"} <= saved.keys():
        return False
    try:
        with open(run_dir / "metrics.csv") as f:
            return sum(1 for line in f if line.strip()) <= 1  # its header at most
    except FileNotFoundError:
        return True
    except (OSError, UnicodeDecodeError):
        return False


def resolve_auto_resume(cfg: TrainConfig, world: World) -> tuple[TrainConfig, bool]:
    """A copy of ``cfg`` to run, and whether it starts over a run directory whose run was killed
    before its first checkpoint. ``--resume auto``: resume ``output_dir/name`` when it holds a
    checkpoint, start it when it holds none; rank 0 looks and every rank follows (a shared file
    system can show the other nodes an older view). Other configs are copied as they are."""
    if cfg.resume != "auto":
        if max_restarts() and not cfg.resume:
            log(world, f"warning: torchrun --max-restarts {max_restarts()}: a restarted group starts this run "
                       f"again from scratch (and meets its run directory); give --resume auto --name NAME "
                       f"to have it resume")
        return dataclasses.replace(cfg), False
    path = Path(cfg.output_dir).expanduser() / cfg.name
    found = broadcast_object(has_checkpoint(path) if world.is_main else None)
    attempt = restart_count()
    again = f"torchrun restart {attempt}: " if attempt else ""
    if not found:
        if cfg.test_only:
            raise UserError(f"--resume auto --test-only: {path} holds no checkpoint to evaluate")
        log(world, f"{again}--resume auto: {path} holds no checkpoint; starting the run")
        return dataclasses.replace(cfg, resume=""), path.exists()
    given = {k: v for k, v in cfg.to_dict().items() if k not in DECIDED_AT_START + ("resume",)}
    log(world, f"{again}--resume auto: resuming {path} from its checkpoint")
    return resume_config(str(path), **given), False


def rank_state(pos: Any, bad_log: Any) -> dict[str, Any]:
    """This process's own part of a checkpoint: its RNG states, its epoch sums so far (a loop
    `Position`'s) and the unreadable files it met (a `BadSampleLog`'s)."""
    return {"rng": get_rng_state(), "epoch_stats": list(pos.epoch_stats), "bad_samples": bad_log.state_dict()}


def own_rank_state(ck: dict[str, Any], world: World, path: Path) -> dict[str, Any]:
    """This rank's part of checkpoint ``ck``; a resume with another number of processes is one line.

    A checkpoint written before ranks were kept apart holds rank 0's part only (``rng``,
    ``epoch_stats``, ``bad_samples`` at the top): every rank gets that, as it always did."""
    ranks = ck.get("ranks")
    if ranks is None:
        return {"rng": ck["rng"], "epoch_stats": ck["epoch_stats"], "bad_samples": ck.get("bad_samples", {})}
    n = len(ranks)
    if n != world.world_size:
        how = f"torchrun --nproc-per-node {n} -m alexnet train …" if n > 1 else "alexnet train … without torchrun"
        raise UserError(f"{path}: the run trained with {counted(n, 'process', 'processes')}; resume it with {n} "
                        f"({how}), not {world.world_size} — each process's data and random state, and the global batch, "
                        f"depend on the count")
    return ranks[world.rank]
