"""The training loop: one optimiser step, one epoch of steps, the loss read back from the device
and checked, progress lines, Ctrl-C.

`TrainLoop.step` is the whole training step (normalise on the device, forward under autocast,
cross-entropy, backward through the grad scaler, optional clipping, optimiser step), as in
torchvision's reference ``train_one_epoch``. `TrainLoop.train_one_epoch` runs steps from the
run's `Position` to the end of the epoch; the `Trainer` (engine/train.py) saves and validates.
"""

from __future__ import annotations

import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.device import Precision
from ..core.errors import UserError, worker_death_line, worker_died
from ..core.seed import set_rng_state
from .config import TrainConfig
from .distributed import World, broadcast_flag, restart_count, resume_command
from .ema import ModelEma
from .optim import Lookahead
from .progress import EpochProgress, log
from .schedule import LRSchedule

ACCELERATOR_SYNC_EVERY = 20  # on a GPU, read the loss back (and check it) every this many steps
CPU_SYNC_EVERY = 1  # on a CPU reading it back is free


def debug_kill_here(world: World) -> bool:
    """Tests only (ALEXNET_DEBUG_KILL_AT_STEP=N kills at step N like a crashed machine): whether this
    process dies — every rank, or only rank ALEXNET_DEBUG_KILL_RANK; under torchrun only on the first
    attempt, so that the group torchrun restarts runs on."""
    rank = os.environ.get("ALEXNET_DEBUG_KILL_RANK", "")
    return (not rank or int(rank) == world.rank) and restart_count() == 0


class DivergedError(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class StoppedBySignal(KeyboardInterrupt):
    """A run stopped by Ctrl-C or SIGTERM; the CLI exits with ``128 + signum`` (130, 143)."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__()
        self.exit_code = 128 + int(signum)


class LoaderDiedError(UserError):
    """A data-loader worker process died (killed: on Linux most often by the out-of-memory killer)."""


def defer_worker_deaths() -> None:
    """Leave a loader worker's death to be found where the loop waits for that worker's batch.
    PyTorch's SIGCHLD handler (set when the first loader with workers starts) raises it in the main
    thread at whatever line runs then — mid-step, say between the optimiser's update and the
    position's — and a run stopped there could not be saved as it stands. Without the handler the
    loader's own check (its workers polled after 5 s without a batch) raises it between two steps.
    Whatever handler PyTorch's wrapped comes back; other handlers are left alone."""
    import inspect
    import threading

    if not hasattr(signal, "SIGCHLD") or threading.current_thread() is not threading.main_thread():
        return
    handler = signal.getsignal(signal.SIGCHLD)
    if callable(handler) and getattr(handler, "__module__", "") == "torch.utils.data._utils.signal_handling":
        previous = inspect.getclosurevars(handler).nonlocals.get("previous_handler")
        signal.signal(signal.SIGCHLD, previous if previous is not None else signal.SIG_DFL)


def loader_died(e: BaseException, after: str) -> LoaderDiedError:
    """The one line for a worker's death (``e``), ending with what became of the run (``after``)."""
    return LoaderDiedError(f"{worker_death_line(e)} {after}")


def unsaved_note(checkpoints: Path, world: World) -> str:
    """What becomes of a run stopped where nothing can be saved: its last checkpoint, if any, is kept."""
    if (checkpoints / "last.pt").exists():
        return f"The last checkpoint is kept: {resume_command(checkpoints.parent, world)}"
    return "No checkpoint was written yet: start the run again"


def loader_died_unsaved(e: BaseException, checkpoints: Path, world: World) -> LoaderDiedError:
    """`loader_died` where nothing can be saved now: the run's last checkpoint, if it has one, is where
    it goes on from."""
    return loader_died(e, unsaved_note(checkpoints, world))


class PeerLostError(UserError):
    """Another process of a torchrun group died mid-step (killed, out of memory, its machine gone)."""


PEER_LOST = ("Connection reset by peer", "Connection closed by peer", "Broken pipe", "NCCL communicator was aborted",
             "Socket Timeout", "Connection refused")


def peer_lost(e: BaseException) -> str:
    """How a collective failed because a peer process is gone (gloo's and NCCL's words for it), or "".
    Only errors of the process group count: a remote shard's refused connection is the data's."""
    text = str(e)
    if not any(w in text for w in ("gloo", "NCCL", "ProcessGroup", "c10d")):
        return ""
    return next((w.lower() for w in PEER_LOST if w in text), "")


@dataclass
class Position:
    """Where a run is: the next epoch to run, optimiser steps done in it and in total, and the
    epoch's running sums (loss × images, correct answers, images) so far."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    epoch_stats: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])


class DeviceSums:
    """Loss and correct answers summed on the device and read back only every few steps: on a GPU
    each read (.item()) makes the host wait for the device, so the next step's kernels would not be
    queued while this one runs. On a CPU a read costs nothing, so every step is read."""

    def __init__(self, device: torch.device, first_step: int):
        self.acc = torch.zeros(2, device=device, dtype=torch.float32 if device.type == "mps" else torch.float64)
        self.unsynced_from = first_step  # the first step (in the epoch) not read back yet
        self.last_loss = float("nan")

    @torch.no_grad()
    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.acc[0] += loss.detach() * labels.numel()
        self.acc[1] += (logits.topk(1, dim=1).indices[:, 0] == labels).sum()  # ties as evaluation scores them

    def read(self) -> tuple[float, float]:
        """(loss sum, correct) since the last read, in one host-device transfer; zeroes the sums."""
        loss_sum, correct = self.acc.tolist()
        self.acc.zero_()
        return loss_sum, correct


class TrainLoop:
    """Trains ``model`` (through ``net``, its DDP/compiled wrapper) epoch by epoch from ``pos``.

    ``save_last`` writes the resumable checkpoint (``--checkpoint-every``); ``checkpoints`` is
    where it goes, named when the loss diverges."""

    def __init__(self, cfg: TrainConfig, world: World, device: torch.device, pos: Position, *, model: nn.Module,
                 net: nn.Module, optimizer: torch.optim.Optimizer, scaler: Any, schedule: LRSchedule,
                 lookahead: Lookahead | None, normalize: Callable, precision: Precision, channels_last: bool,
                 frozen: Any, loader: Any, bad_log: Any, batch_size: int, checkpoints: Path,
                 save_last: Callable[[], None], ema: ModelEma | None = None):
        self.cfg, self.world, self.device, self.pos = cfg, world, device, pos
        self.model, self.net, self.optimizer, self.scaler = model, net, optimizer, scaler
        self.schedule, self.lookahead, self.normalize, self.precision = schedule, lookahead, normalize, precision
        self.channels_last, self.frozen, self.loader, self.bad_log = channels_last, frozen, loader, bad_log
        self.batch_size, self.checkpoints, self.save_last = batch_size, checkpoints, save_last
        self.ema = ema  # --ema: the average of ``model`` (engine/ema.py), updated after each step
        self.steps_per_epoch = len(loader)
        self.rng_to_restore: dict | None = None  # a resumed run's RNG states, set once its workers exist
        self.stop_requested = False  # Ctrl-C or SIGTERM: stop after this step, with a checkpoint
        self.stop_signal = signal.SIGINT  # which one
        self.worker_death: RuntimeError | None = None  # a loader worker died: stopped after the last step, to be saved
        self.img_per_s = 0.0  # of the last epoch
        self.sums: DeviceSums | None = None
        self.nan_at = 0
        self.first_step: int | None = None  # the global step this process started at (a resume's checkpoint)
        self.first_time = 0.0  # and when
        self.end_step = 0  # the run's last step when it falls inside an epoch (--time-budget's plan); 0: none

    def on_stop_signal(self, signum, frame) -> None:
        if self.stop_requested:  # a second one: stop now ...
            if self.world.distributed:  # ... but not under torchrun: a rank gets each Ctrl-C twice (the
                return  # terminal's and torchrun's), and one leaving mid-collective would hang the others
            raise StoppedBySignal(signum)
        self.stop_requested, self.stop_signal = True, signum
        name, again = ("Ctrl-C", "press it") if signum == signal.SIGINT else (signal.Signals(signum).name, "send it")
        later = ("torchrun ends the processes 30 s after its own Ctrl-C" if self.world.distributed
                 else f"{again} again to stop at once")
        log(self.world, f"\n{name}: finishing this step and saving a resumable checkpoint ({later})")

    def agree_to_stop(self) -> bool:
        """Whether to stop here, as every rank agrees (any rank's Ctrl-C stops all; a collective under
        torchrun): each rank must act on the agreed answer, not on its own flag, which a Ctrl-C
        landing after the agreement sets for the next read-back."""
        if not self.world.distributed:
            return self.stop_requested
        stop = broadcast_flag(self.stop_requested, self.device)
        self.stop_requested = self.stop_requested or stop
        return stop

    def catch_stop_signals(self) -> Callable[[], None]:
        """Ctrl-C and, in a one-process run, SIGTERM (a scheduler's or `kill`'s request to stop)
        finish the step and save; returns what puts the handlers it found back. Under torchrun
        Ctrl-C reaches every rank (the terminal's, and torchrun passes its own on, then waits 30 s
        before SIGKILL): each rank notes it, and at the next read-back they agree to stop at the same
        step (a rank that saw none stops with the others) and save together. SIGTERM keeps its default:
        torchrun sends it to every rank of a group it tears down, and a rank that stopped to save
        would wait for peers that are gone. Only the main thread can take signals: a run started
        from another thread (a notebook's, a server's) leaves them as they are."""
        import threading

        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        wanted = [signal.SIGINT] + ([] if self.world.distributed else [signal.SIGTERM])
        found = {s: signal.signal(s, self.on_stop_signal) for s in wanted}

        def restore() -> None:
            for s, handler in found.items():
                signal.signal(s, handler)

        return restore

    def step(self, images: torch.Tensor, labels: torch.Tensor, lr: float,
             lighting: torch.Tensor | None = None) -> torch.Tensor:
        """One optimiser step on one batch at rate ``lr`` (× each group's ``lr_mult``); the loss.
        ``lighting``: a `LitBatch`'s PCA lighting, added while normalising."""
        cfg, dev, pos = self.cfg, self.device, self.pos
        for g in self.optimizer.param_groups:
            g["lr"] = lr * g.get("lr_mult", 1.0)
        labels = labels.to(dev, non_blocking=True)
        x = images.to(dev, non_blocking=True)
        x = self.normalize(x) if lighting is None else self.normalize(x, lighting.to(dev, non_blocking=True))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self.precision.autocast(dev):
            logits = self.net(x)
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=cfg.label_smoothing)
        if self.nan_at and pos.global_step + 1 == self.nan_at:  # tests: a diverging step
            loss = loss * float("nan")
        self.sums.add(loss, logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if cfg.clip_grad_norm:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        pos.step_in_epoch += 1
        pos.global_step += 1
        if self.lookahead is not None:
            self.lookahead.step(pos.global_step)
        if self.ema is not None:  # after lookahead: the average follows the weights the run goes on with
            self.ema.update(self.model)
        pos.epoch_stats[2] += labels.numel()
        return loss

    def train_one_epoch(self) -> bool:
        """Train from the current position to the end of the epoch. False if stopped early."""
        cfg, world, pos = self.cfg, self.world, self.pos
        if self.first_step is None:
            self.first_step, self.first_time = pos.global_step, time.time()
        batches = self._start_epoch()
        progress = EpochProgress(world, pos.epoch, cfg.epochs, pos.step_in_epoch, self.steps_per_epoch,
                                 cfg.print_freq)
        kill_at = int(os.environ.get("ALEXNET_DEBUG_KILL_AT_STEP", "0"))
        self.nan_at = int(os.environ.get("ALEXNET_DEBUG_NAN_AT_STEP", "0"))
        step_sleep = float(os.environ.get("ALEXNET_DEBUG_STEP_SLEEP", "0"))  # tests: steps slow enough to stop
        sync_every = int(os.environ.get("ALEXNET_DEBUG_SYNC_EVERY", "0")) or (
            CPU_SYNC_EVERY if self.device.type == "cpu" else ACCELERATOR_SYNC_EVERY)
        self.sums = DeviceSums(self.device, pos.step_in_epoch + 1)
        loss, lr = None, 0.0
        try:
            for batch in batches:
                images, labels, bad = batch[:3]  # a `LitBatch` also carries its lighting
                if self.end_step and pos.global_step >= self.end_step:  # the plan's end: the epoch counts as complete
                    break
                if bad:
                    self.bad_log.add(bad)
                lr = self.schedule.lr(pos.global_step)
                loss = self.step(images, labels, lr, getattr(batch, "lighting", None))
                if step_sleep:
                    time.sleep(step_sleep)
                progress.step(labels.numel())
                print_now = bool(cfg.print_freq) and pos.global_step % cfg.print_freq == 0
                save_now = bool(cfg.checkpoint_every) and pos.global_step % cfg.checkpoint_every == 0
                last_step = (pos.step_in_epoch >= self.steps_per_epoch or self.max_steps_reached()
                             or pos.global_step == self.end_step)
                # Every rank must read back at the same steps (the nan check is collective), so only
                # step counts decide; the timed progress line waits for the next read.
                if not (pos.step_in_epoch % sync_every == 0 or print_now or save_now or last_step
                        or (self.stop_requested and not world.distributed) or pos.global_step == kill_at):
                    continue
                self._sync(loss, lr)  # before anything is saved: a diverged run never overwrites a checkpoint
                progress.show(self.sums.last_loss, lr, pos.global_step, pos.step_in_epoch, print_now, last_step)
                if save_now:
                    self.save_last()
                if kill_at and pos.global_step == kill_at and debug_kill_here(world):  # tests: a crash
                    os.kill(os.getpid(), signal.SIGKILL)
                if self.agree_to_stop() or self.max_steps_reached():
                    return False
        except RuntimeError as e:
            if world.distributed and peer_lost(e):  # another rank died: nothing can be saved with it gone
                raise PeerLostError(f"another process of this torchrun group stopped during step "
                                    f"{pos.global_step + 1} ({peer_lost(e)}). "
                                    + unsaved_note(self.checkpoints, world)) from None
            if not worker_died(e):
                raise
            if world.distributed:  # the other ranks wait at the next collective: nothing can be saved
                raise loader_died_unsaved(e, self.checkpoints, world) from None
            if loss is not None and pos.step_in_epoch >= self.sums.unsynced_from:
                self._sync(loss, lr)  # the steps since the last read-back, into the epoch's statistics
            self.worker_death = e  # the trainer saves where the run stopped, then raises
            return False
        finally:
            self.img_per_s = progress.close()
        return True

    def max_steps_reached(self) -> bool:
        return bool(self.cfg.max_steps) and self.pos.global_step >= self.cfg.max_steps

    def _start_epoch(self) -> Iterator:
        """Position the sampler (mid-epoch after a resume), restore a resumed run's RNG states and
        put the model in training mode; the epoch's batches."""
        pos, sampler = self.pos, self.loader.sampler
        sampler.set_epoch(pos.epoch)
        if pos.step_in_epoch:
            sampler.start_at(pos.step_in_epoch * self.batch_size)
        else:
            pos.epoch_stats = [0.0, 0.0, 0.0]
        batches = iter(self.loader)
        defer_worker_deaths()  # a dead worker stops the loop between two steps, where the run can be saved
        if self.rng_to_restore is not None:  # after iter(): creating workers draws from the RNG
            set_rng_state(self.rng_to_restore)
            self.rng_to_restore = None
        self.net.train()
        start_epoch = getattr(self.model, "start_epoch", None)  # e.g. alexnet-cifar-fast stops training a layer
        if start_epoch is not None:
            start_epoch(pos.epoch)
        if self.frozen is not None:
            self.frozen.set_eval()  # batch norm in the frozen part keeps its statistics
        return batches

    def _sync(self, loss: torch.Tensor, lr: float) -> None:
        """Move the device sums into the epoch's statistics; stop all ranks if any loss was nan/inf."""
        pos, sums = self.pos, self.sums
        loss_sum, correct = sums.read()
        bad = not math.isfinite(loss_sum)  # a nan/inf loss makes the sum nan/inf
        if self.world.distributed:
            bad = broadcast_flag(bad, self.device)
        if bad:
            where = (f"at epoch {pos.epoch + 1}, step {pos.step_in_epoch}" if sums.unsynced_from == pos.step_in_epoch
                     else f"in epoch {pos.epoch + 1}, steps {sums.unsynced_from}–{pos.step_in_epoch}")
            paper_init = (pos.epoch == 0 and not self.cfg.weights
                          and getattr(self.model, "init_scheme", "") == "paper")
            kept = ((f"the last good checkpoint is kept: {self.checkpoints / 'last.pt'}")
                    if (self.checkpoints / "last.pt").exists() else "no checkpoint was written before it")
            last = self.checkpoints / "last.pt"
            if (self.cfg.resume and pos.global_step - (self.first_step or 0) <= self.steps_per_epoch and last.exists()
                    and last.stat().st_mtime < self.first_time):  # still the one resumed from
                prev = self.checkpoints / "last.prev.pt"  # soon after a resume: the checkpoint may be what is wrong
                kept += (f" (this process resumed from it {pos.global_step - self.first_step} steps ago: if it is "
                         f"damaged, {prev} holds the one before; move it to last.pt to resume from it)"
                         if prev.exists() else "")
            raise DivergedError(
                f"loss became nan/inf {where} (lr {lr:.3g}); stopped without saving — {kept}. Try a lower "
                f"--lr or --clip-grad-norm"
                + ("; or --model-arg init=caffe (Caffe's bias 0.1 and FC std 0.005: smaller first steps than "
                   "the paper's bias 1)" if paper_init else ""))
        pos.epoch_stats[0] += loss_sum
        pos.epoch_stats[1] += correct
        sums.unsynced_from, sums.last_loss = pos.step_in_epoch + 1, loss.item()
