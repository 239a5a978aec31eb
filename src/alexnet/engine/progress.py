"""What a run says and records: console lines (rank 0 only), ``metrics.csv`` and TensorBoard events.

Console lines go through ``tqdm.write`` so they do not tear a progress bar. ``metrics.csv`` is
rewritten atomically for every row, so a run killed at any moment leaves a whole file; after a
resume the rows of epochs the checkpoint had not finished are dropped, never duplicated.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..core.io import atomic_write
from .distributed import World

METRICS_COLUMNS = ["epoch", "step", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5",
                   "lr", "time", "img_per_s"]
_TB_SCALARS = ("train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "lr", "img_per_s")


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


class MetricsLog:
    """``metrics.csv`` (one row per epoch) and, when tensorboard is installed, its event files.

    Writes only on rank 0 (``enabled``); on other ranks every method does nothing.
    """

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.path = Path(run_dir) / "metrics.csv"
        self.enabled = enabled
        self.tb = None

    def open_tensorboard(self) -> None:
        if not self.enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.path.parent))
        except ImportError:  # tensorboard is optional
            self.tb = None

    def trim(self, epochs_done: int) -> None:
        """After a resume, drop rows of epochs the checkpoint had not finished (no duplicates)."""
        if not self.enabled or not self.path.is_file():
            return
        lines = self.path.read_text().splitlines()
        keep = [lines[0]] + [ln for ln in lines[1:] if ln and int(ln.split(",")[0]) <= epochs_done]
        atomic_write(self.path, "\n".join(keep) + "\n")

    def append(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        old = self.path.read_text() if self.path.is_file() else ",".join(METRICS_COLUMNS) + "\n"
        line = ",".join("" if row.get(c) is None else (f"{row[c]:.6g}" if isinstance(row[c], float) else str(row[c]))
                        for c in METRICS_COLUMNS)
        atomic_write(self.path, old + line + "\n")
        if self.tb is not None:
            for k in _TB_SCALARS:
                if row.get(k) is not None:
                    self.tb.add_scalar(k, row[k], row["epoch"])
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None
