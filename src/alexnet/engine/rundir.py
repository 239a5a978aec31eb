"""A run's directory: its files, its checkpoints, and what a resume finds there.

    runs/<name>/config.json            the TrainConfig (``alexnet train --resume`` reads it back)
                classes.json           class names and ids, in label order
                metrics.csv            one row per epoch (engine/progress.py)
                checkpoints/last.pt    everything an exact resume needs; last.prev.pt: the one before
                checkpoints/best.pt    the best epoch's weights and where they came from
                weights.safetensors    the best weights, and weights.json: how to use them

Every file is written atomically (a temp file, then a rename), so a run killed at any moment leaves
whole files and, at worst, temp files that the next start removes. Only rank 0 writes.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import torch.nn as nn

from ..core.errors import EveryRankError, UserError
from ..core.io import atomic_write, atomic_write_json, nearest_existing, remove_stale_temps, why_not_a_folder
from ..data.pipeline import format_bytes
from ..models import save_weights
from ..models.weights import shape_differences
from .checkpoint import load_checkpoint, newest_loadable, save_checkpoint
from .config import TrainConfig
from .distributed import World, broadcast_object, resume_command
from .elastic import never_trained
from .progress import log, plural

# What best.pt keeps: the weights and where they came from. Resuming reads last.pt only, so the
# optimiser (momentum: one more copy of the weights, Adam two), scaler, RNG and sampler states
# stay out of it — for alexnet-owt that is 244 MB instead of 489 MB.
BEST_KEYS = ("model", "epoch", "step_in_epoch", "global_step", "best_top1", "model_name", "num_classes",
             "classes", "config", "weights_from")  # weights_from: "raw" or "ema" (--ema), when known


def run_dir_path(cfg: TrainConfig, world: World) -> Path:
    """``--resume``'s directory, or ``output_dir/name`` (default name: ``<model>-<data>-<time>``)."""
    if cfg.resume:
        return Path(cfg.resume)
    name = cfg.name
    if not name:
        kind, _, path = cfg.data.partition(":") if ":" in cfg.data else ("", "", cfg.data)
        where = Path(path)  # a list file is named by its folder (pets/train.txt: pets)
        data = where.parent.name or where.stem if kind == "list" or where.suffix.lower() == ".txt" else where.name
        name = f"{cfg.model}-{data or 'data'}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
        name = broadcast_object(name)  # every rank must agree on the folder
    return Path(cfg.output_dir) / name


def disk_estimate(model: nn.Module, cfg: TrainConfig) -> dict[str, int]:
    """Bytes a run keeps, roughly: last.pt (weights + optimiser state) and the one before it
    (last.prev.pt), best.pt and weights.safetensors (weights each); metrics and logs are negligible."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    params = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    copies = {"sgd": 1 if cfg.momentum > 0 else 0, "adam": 2, "adamw": 2}.get(cfg.optimizer, 2)
    ema = weights if cfg.ema else 0  # --ema: last.pt also holds the average
    last = weights + copies * params + ema
    once = cfg.epochs == 1 and not cfg.checkpoint_every  # last.pt written once: no previous one is kept
    return {"checkpoints/last.pt": last, **({} if once else {"checkpoints/last.prev.pt": last}),
            "checkpoints/best.pt": weights, "weights.safetensors": weights}


def itemized(need: dict[str, int]) -> str:
    """``disk_estimate``'s files and sizes: "checkpoints/last.pt 9.31 MB, checkpoints/best.pt 3.1 MB, …"."""
    return ", ".join(f"{k} {format_bytes(v)}" for k, v in need.items())


def load_model_state(model: nn.Module, ck: dict[str, Any], path: Path, model_name: str, num_classes: int) -> None:
    """Load ``ck["model"]`` into ``model``; a checkpoint of another model is one line saying which
    layers differ and how."""
    found = ck["model"] if isinstance(ck.get("model"), dict) else {}
    diff = shape_differences(model.state_dict(), found)
    if ck["model_name"] != model_name or diff:
        what = f"{ck['model_name']!r} ({ck['num_classes']} classes)"
        raise UserError(f"--resume {path}: the checkpoint holds {what}, which does not fit {model_name!r} "
                        f"with {num_classes} classes" + (f" — {diff}" if diff else ""))
    try:
        model.load_state_dict(found)
    except (RuntimeError, ValueError) as e:
        raise UserError(f"--resume {path}: the checkpoint does not fit this model "
                        f"({str(e).splitlines()[0][:160]})") from None


# What makes a folder a run that a new run must not overwrite.
RUN_FILES = ("config.json", "checkpoints", "weights.safetensors")


_LOCKS: dict[str, Any] = {}  # run folder → its open lock file, for as long as this process trains it


class RunDir:
    """The files of one run at ``path``; writes happen on rank 0 only. ``start_over``: ``--resume
    auto`` starts the run here again, because its first attempt died before any checkpoint."""

    def __init__(self, path: Path, world: World, start_over: bool = False):
        self.path, self.world, self.start_over = Path(path), world, start_over
        self.checkpoints = self.path / "checkpoints"

    def lock(self) -> None:
        """Hold the run's lock (``.lock`` in its folder, ``flock``: the system drops it when the process
        ends, however it ends) while this process trains it: a second process training the same run —
        two ``--resume auto --name X`` at once — stops in one line instead of writing over the first's
        checkpoints and metrics. Re-entrant within a process (a notebook resuming what it trained)."""
        key = str(self.path.resolve())
        if not self.world.is_main or key in _LOCKS:
            return
        try:
            import fcntl
        except ImportError:  # not a POSIX system: no lock
            return
        f = open(self.path / ".lock", "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise UserError(f"{self.path}: another process is training this run now; let it end (or stop it) "
                            f"before training the run here") from None
        _LOCKS[key] = f

    def unlock(self) -> None:
        f = _LOCKS.pop(str(self.path.resolve()), None)
        if f is not None:
            f.close()

    def check(self, cfg: TrainConfig) -> None:
        """Before any data is loaded: the run's folder can be made and written to, and a new run
        does not land on an old one (which ``--resume`` continues instead) unless that one stopped
        before it trained anything (`never_trained`: its data could not be read, say)."""
        flag, given = ("--resume", cfg.resume) if cfg.resume else ("--output-dir", cfg.output_dir)
        why = why_not_a_folder(self.path)
        if why:
            raise UserError(f"{flag} {given}: {why}; give a folder you can write to")
        held = None
        if self.path.is_dir():  # a run there: no other process may be training it now (rank 0 looks)
            try:
                self.lock()
            except UserError as e:
                held = str(e)
        held = broadcast_object(held)  # every rank stops in rank 0's words, not in the process group's
        if held:
            raise EveryRankError(held)
        found = [f for f in RUN_FILES if (self.path / f).exists()
                 and not (self.start_over and f != "weights.safetensors")]  # weights: a run that did train
        if broadcast_object(bool(found) and not cfg.resume and never_trained(self.path) if self.world.is_main else None):
            self.start_over, found = True, []  # what it wrote goes, as for --resume auto (remove_stale_temps)
            log(self.world, f"{self.path} holds a run that stopped before it trained anything: this run starts in "
                            f"its place")
        if found and not cfg.resume:
            raise UserError(f"{self.path} already holds a run ({found[0]}): continue it with "
                            f"`{resume_command(self.path, self.world)}` (or --resume auto --name {self.path.name}), "
                            f"or give another --name")

    def check_space(self, need: dict[str, int]) -> None:
        """A new run whose files (``need``: `disk_estimate`) take more than its disk has free stops
        here, before its first epoch, rather than at its first checkpoint. Rank 0 looks; all stop."""
        problem = None
        if self.world.is_main:
            free, total = shutil.disk_usage(nearest_existing(self.path)).free, sum(need.values())
            peak = total + max(need.values(), default=0)  # a file is written whole beside the one it replaces
            if free < peak:
                problem = (f"{self.path}: this run writes about {format_bytes(total)} there ({itemized(need)}), "
                           f"{format_bytes(peak)} at most while it replaces a checkpoint, and the disk has "
                           f"{format_bytes(free)} free: free some space, or give an --output-dir on another disk")
        problem = broadcast_object(problem)
        if problem:
            raise EveryRankError(problem)

    def write_run_files(self, cfg: TrainConfig, classes: list[str], class_ids: list[Any]) -> None:
        """config.json and classes.json (the folders too)."""
        if not self.world.is_main:
            return
        try:
            self.checkpoints.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot make {self.checkpoints}: {e.strerror or e}") from None
        self.lock()  # a new run: from its first file on
        atomic_write(self.path / "config.json", cfg.to_json() + "\n")
        atomic_write_json(self.path / "classes.json", {"classes": classes, "class_ids": class_ids})

    def save(self, name: str, state: Callable[[], dict[str, Any]]) -> None:
        """Write ``checkpoints/<name>`` from ``state()`` (called on rank 0 only); best.pt keeps
        `BEST_KEYS`; ``last.pt``'s previous version is kept as ``last.prev.pt``."""
        if self.world.is_main:
            ck = state()
            if name == "best.pt":
                ck = {k: ck[k] for k in BEST_KEYS if k in ck}
            save_checkpoint(self.checkpoints / name, ck, keep_previous=name == "last.pt")

    def save_weights(self, model: nn.Module, meta: dict[str, Any]) -> None:
        """weights.safetensors + weights.json (rank 0 only)."""
        if self.world.is_main:
            save_weights(model, self.path, meta)

    def remove_stale_temps(self) -> None:
        """Temp files of writes that a kill cut short (``.last.pt.XXXXXXXX.tmp``, …) go at the start."""
        if not self.world.is_main:
            return
        removed = remove_stale_temps(self.path) + remove_stale_temps(self.checkpoints)
        if self.start_over:  # what the attempt that died before its first checkpoint logged goes too
            for p in [self.path / "metrics.csv", self.path / "mlflow.json", *self.path.glob("events.out.tfevents.*")]:
                p.unlink(missing_ok=True)
        if removed:
            size = sum(n for _, n in removed)
            log(self.world, f"removed {plural(len(removed), 'temp file')} ({size / 2**20:.1f} MB) left by an "
                            f"interrupted write: {', '.join(p.name for p, _ in removed[:3])}"
                            f"{'…' if len(removed) > 3 else ''}")

    def open_last(self) -> tuple[dict[str, Any], Path]:
        """The newest loadable of last.pt and last.prev.pt, and which it was: a broken last.pt (a
        kill while writing it) falls back to the previous one, with a line saying so."""
        path = self.checkpoints / "last.pt"
        if not path.is_file() and not (self.checkpoints / "last.prev.pt").is_file():
            train = (f"torchrun --nproc-per-node {self.world.world_size} -m alexnet train" if self.world.distributed
                     else "alexnet train")  # (a torchrun job over several nodes: its own torchrun flags)
            again = (f" (the run stopped before it trained anything: start it again with `{train} --config "
                     f"{self.path} --output-dir {self.path.parent} --name {self.path.name}`)"
                     if never_trained(self.path) else "")
            raise UserError(f"--resume {self.path}: no checkpoints/last.pt there{again}")
        # rank 0 chooses the file (or fails) and every rank follows (rank 0 sets a broken last.pt aside)
        chosen: tuple[str, str] = ("", "")
        if self.world.is_main:
            try:
                ck, used, skipped = newest_loadable(path)
                chosen = (str(used), "")
            except UserError as e:
                chosen = ("", str(e))
        chosen = broadcast_object(chosen)
        if chosen[1]:
            raise UserError(chosen[1])
        if not self.world.is_main:
            ck, used, skipped = load_checkpoint(chosen[0]), Path(chosen[0]), []
        for why in skipped:
            log(self.world, f"warning: {why}")
        if used != path:
            log(self.world, f"resuming from the previous checkpoint {used} (epoch {int(ck['epoch']) + 1}, "
                            f"step {int(ck['step_in_epoch'])}, {int(ck['global_step'])} steps done)")
            self.set_aside(path)
        return ck, used

    def set_aside(self, path: Path) -> None:
        """Move the unreadable ``path`` (last.pt) to ``last.pt.corrupt``: the next save rotates
        last.pt onto last.prev.pt, which must not be this file pushing out the good one."""
        if not (self.world.is_main and path.is_file()):
            return
        aside = path.with_name(path.name + ".corrupt")
        try:
            os.replace(path, aside)
        except OSError as e:
            raise UserError(f"cannot move the unreadable {path} aside to {aside.name}: {e.strerror or e}") from None
        log(self.world, f"moved the unreadable {path.name} aside to {aside} (kept for inspection)")

    def init_weights(self) -> dict[str, Any] | None:
        """Where the run's starting weights came from (weights.json's ``init_weights``), if known."""
        try:
            return json.loads((self.path / "weights.json").read_text()).get("init_weights")
        except (OSError, ValueError):
            return None

    def complete_final_files(self, ck: dict[str, Any], used: Path, model: nn.Module,
                             load: Callable[[dict[str, Any], Path], None],
                             meta: Callable[..., dict[str, Any]]) -> None:
        """A finished run whose last steps did not all reach the disk (or whose files were removed):
        write what is missing — best.pt, weights.safetensors + weights.json — and say so. ``load``
        puts a checkpoint's weights into ``model``; ``meta(**scores)`` is weights.json's content."""
        if not self.world.is_main:
            return
        wrote: list[str] = []
        best_path = self.checkpoints / "best.pt"
        best = None
        if best_path.is_file():
            try:
                best = load_checkpoint(best_path)
            except UserError as e:
                log(self.world, f"warning: {e}")
        if best is None:
            # the best epoch's state is gone; the final state is the best we still have
            save_checkpoint(best_path, {k: ck[k] for k in BEST_KEYS if k in ck})
            best = ck
            wrote.append(f"checkpoints/best.pt (from {used.name}: the best epoch's own state was lost)")
        if not ((self.path / "weights.safetensors").is_file() and (self.path / "weights.json").is_file()):
            load(best, best_path)
            row = self.best_metrics_row()
            if math.isfinite(float(best["best_top1"])):
                row["val_top1"] = float(best["best_top1"])
            if "weights_from" in best:  # --ema: best.pt may hold the average
                row["weights_from"] = best["weights_from"]
            self.save_weights(model, meta(**row))
            load(ck, used)
            wrote.append("weights.safetensors + weights.json (from checkpoints/best.pt)")
        if wrote:
            log(self.world, f"completed the final files of the interrupted run: {'; '.join(wrote)}")

    def best_metrics_row(self) -> dict[str, Any]:
        """val_top1, val_top5 and epoch of metrics.csv's best row ({} without one)."""
        try:
            rows = list(csv.DictReader((self.path / "metrics.csv").open()))
        except OSError:
            return {}
        rows = [r for r in rows if r.get("val_top1") not in (None, "")]
        if not rows:
            return {}
        r = max(rows, key=lambda r: float(r["val_top1"]))
        return {"val_top1": float(r["val_top1"]), "val_top5": float(r["val_top5"]), "epoch": int(r["epoch"])}
