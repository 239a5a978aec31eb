"""What a run says and records: console lines (rank 0 only), each epoch's progress, ``metrics.csv``,
TensorBoard events and, with ``--log mlflow``, an MLflow run.

Console lines go through ``tqdm.write`` so they do not tear a progress bar. An epoch shows a
progress bar on a terminal; written to a file or a pipe it shows a line a minute instead. ``metrics.csv`` is
rewritten atomically for every row, so a run killed at any moment leaves a whole file; after a
resume the rows of epochs the checkpoint had not finished are dropped, never duplicated.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from ..core.errors import UserError
from ..core.io import atomic_write
from .distributed import World

METRICS_COLUMNS = ["epoch", "step", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5",
                   "lr", "time", "img_per_s"]
_TB_SCALARS = ("train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "lr", "img_per_s")
PROGRESS_LINE_SECONDS = 60.0  # without a terminal: one progress line this often ($ALEXNET_PROGRESS_SECONDS)


def log(world: World, *msg: Any) -> None:
    """Print one line on rank 0, above any progress bar."""
    if world.is_main:
        from tqdm import tqdm

        tqdm.write(" ".join(str(m) for m in msg), file=sys.stdout)
        sys.stdout.flush()


def clock(seconds: float) -> str:
    """``83`` → ``1:23``, ``4000`` → ``1:06:40``."""
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def count(n: int) -> str:
    return f"{n:,}"


def progress_seconds() -> float:
    """Seconds between progress lines when output is not a terminal: $ALEXNET_PROGRESS_SECONDS or 60."""
    raw = os.environ.get("ALEXNET_PROGRESS_SECONDS", "")
    if not raw:
        return PROGRESS_LINE_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UserError(f"ALEXNET_PROGRESS_SECONDS must be a positive number of seconds, not {raw!r}")
    return value


class EpochProgress:
    """One epoch's progress on rank 0: a tqdm bar on a terminal. Output to a file or pipe gets no
    bar; it gets a line every `progress_seconds` instead (unless ``print_freq`` asks for lines by
    step), so a log shows that a long epoch is moving. Images per second count all processes."""

    def __init__(self, world: World, epoch: int, epochs: int, first_step: int, steps: int, print_freq: int):
        from tqdm import tqdm

        self.world, self.epoch, self.epochs, self.first, self.steps = world, epoch, epochs, first_step, steps
        self.bar = tqdm(total=steps, initial=first_step, desc=f"epoch {epoch + 1}/{epochs}",
                        disable=(not world.is_main) or None, leave=False, dynamic_ncols=True, file=sys.stdout)
        self.t0 = self.now = self.last_line = time.perf_counter()
        self.seen = 0
        self.every_s = progress_seconds() if world.is_main and not print_freq and not sys.stdout.isatty() else 0.0

    def rate(self, now: float) -> float:
        """Images per second since the epoch (or its resumed part) began, over all processes."""
        return self.seen * self.world.world_size / max(1e-9, now - self.t0)

    def step(self, images: int) -> None:
        self.seen += images
        self.now = time.perf_counter()
        self.bar.update(1)

    def show(self, loss: float, lr: float, global_step: int, step_in_epoch: int, print_now: bool,
             last_step: bool) -> None:
        """After a read-back of the loss: the bar's numbers, the --print-freq line when ``print_now``,
        and the timed line when it is due (not at the epoch's last step: the epoch line follows)."""
        ips = self.rate(self.now)
        self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.3g}", img_s=f"{ips:.0f}", refresh=False)
        if print_now:
            log(self.world, f"  step {global_step}  loss {loss:.4f}  lr {lr:.4g}  {ips:.0f} img/s")
        if self.every_s and self.now - self.last_line >= self.every_s and not last_step:
            self.last_line = self.now
            left = (self.steps - step_in_epoch) * (self.now - self.t0) / (step_in_epoch - self.first)
            log(self.world, f"  epoch {self.epoch + 1}/{self.epochs}  step {step_in_epoch}/{self.steps}  "
                            f"loss {loss:.4f}  lr {lr:.4g}  {ips:.0f} img/s  epoch ETA {clock(left)}")

    def close(self) -> float:
        """Close the bar; the epoch's images per second."""
        self.bar.close()
        return self.rate(time.perf_counter())


class MetricsLog:
    """``metrics.csv`` (one row per epoch) and, when tensorboard is installed, its event files; with
    ``--log mlflow`` also an MLflow run (engine/tracking.py).

    Writes only on rank 0 (``enabled``); on other ranks every method does nothing.
    """

    def __init__(self, run_dir: Path, enabled: bool = True, extra_columns: tuple[str, ...] = ()):
        self.path = Path(run_dir) / "metrics.csv"
        self.enabled = enabled
        self.columns = METRICS_COLUMNS + list(extra_columns)  # extra: after the usual ones (--ema's)
        self.tb = None
        self.mlflow = None
        self.purge_step: int | None = None  # after a resume: TensorBoard hides the dropped epochs' events

    def open_loggers(self, cfg: Any) -> None:
        """TensorBoard when it is installed; the MLflow run when ``cfg.log`` asks (not for --test-only)."""
        if self.enabled and "mlflow" in cfg.log and not cfg.test_only:
            from .tracking import MlflowTracker

            self.mlflow = MlflowTracker.open(cfg.saved_dict(), self.path.parent, cfg.mlflow_uri)
        self.open_tensorboard()

    def open_tensorboard(self) -> None:
        if not self.enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.path.parent), purge_step=self.purge_step)
        except ImportError:  # tensorboard is optional
            self.tb = None

    def trim(self, epochs_done: int) -> str | None:
        """After a resume, drop rows of epochs the checkpoint had not finished (no duplicates), and
        rows that are not whole (a file cut short or edited by hand: wrong number of fields, an
        epoch that is not a number); returns a line saying what was dropped that way, if anything."""
        self.purge_step = epochs_done + 1
        if not self.enabled or not self.path.is_file():
            return None
        lines = self.path.read_text(errors="replace").splitlines()
        whole_header = bool(lines) and lines[0].split(",")[:len(METRICS_COLUMNS)] == METRICS_COLUMNS
        header = lines[0] if whole_header else ",".join(self.columns)
        keep, damaged = [header], 0
        for ln in lines[1:] if whole_header else lines:
            if not ln or ln.startswith("epoch,"):
                continue
            fields = ln.split(",")
            if len(fields) != header.count(",") + 1 or not fields[0].isdigit():
                damaged += 1
            elif int(fields[0]) <= epochs_done:
                keep.append(ln)
        kept_as = None
        if damaged or not whole_header:  # what it held stays readable beside it: nothing is lost
            kept_as = self.path.with_name(self.path.name + ".damaged")
            n = 1
            while kept_as.exists():  # an earlier repair's copy stays too
                n += 1
                kept_as = self.path.with_name(f"{self.path.name}.damaged.{n}")
            atomic_write(kept_as, self.path.read_bytes())
        atomic_write(self.path, "\n".join(keep) + "\n")
        if kept_as is not None:
            return (f"note: {self.path} had {damaged} damaged row{'s' * (damaged != 1)}"
                    f"{'' if whole_header else ' and no whole header'}; rewritten with "
                    f"{len(keep) - 1} whole row{'s' * (len(keep) != 2)} (the checkpoint, not this file, "
                    f"holds the run's state), the file as it was kept as {kept_as.name}")
        return None

    def append(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        old = self.path.read_text() if self.path.is_file() else ",".join(self.columns) + "\n"
        line = ",".join("" if row.get(c) is None else (f"{row[c]:.6g}" if isinstance(row[c], float) else str(row[c]))
                        for c in self.columns)
        atomic_write(self.path, old + line + "\n")
        if self.tb is not None:
            for k in (*_TB_SCALARS, *self.columns[len(METRICS_COLUMNS):]):
                if row.get(k) is not None:
                    self.tb.add_scalar(k, row[k], row["epoch"])
            self.tb.flush()
        if self.mlflow is not None:
            self.mlflow.log_epoch(row)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None
        if self.mlflow is not None:
            self.mlflow.close()  # the run's files as artifacts (or KILLED/FAILED when an exception is leaving)
            self.mlflow = None
