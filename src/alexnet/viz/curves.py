"""Training curves from ``metrics.csv``: loss, top-1/top-5 accuracy and learning rate, several runs
overlaid.

``metrics.csv`` columns (written by training): ``epoch,step,train_loss,train_top1,val_loss,
val_top1,val_top5,lr,time,…``, accuracies in percent; a cell may be empty or ``nan`` (e.g. no
validation on that row). Unknown columns are ignored and missing ones are simply not drawn.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from ..core.errors import UserError
from ._plot import figure, save_png

WIDTH, HEIGHT = 1500, 500


def metrics_path(path: str | Path) -> Path:
    """A run directory or a CSV file → the ``metrics.csv`` to read."""
    p = Path(path)
    if p.is_dir():
        p = p / "metrics.csv"
    if not p.is_file():
        raise UserError(f"{p}: no such file (give a run directory or its metrics.csv)")
    return p


def read_metrics(path: str | Path) -> dict[str, list[float]]:
    """Columns of ``metrics.csv`` as lists of floats, NaN for empty or unreadable cells."""
    p = metrics_path(path)
    try:
        with open(p, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{p}: not a readable CSV file ({e})") from None
    if not rows:
        raise UserError(f"{p}: no rows yet")
    cols: dict[str, list[float]] = {}
    for name in rows[0]:
        if name is None:
            continue
        vals = []
        for r in rows:
            try:
                vals.append(float(r.get(name) or "nan"))
            except ValueError:
                vals.append(math.nan)
        cols[name.strip()] = vals
    if "epoch" not in cols and "step" not in cols:
        raise UserError(f"{p}: no 'epoch' or 'step' column; not a metrics.csv of this project")
    return cols


def _x(cols: dict[str, list[float]]) -> tuple[list[float], str]:
    """One x value per row: the epoch when each row is one epoch, else the step."""
    ep = [e for e in cols.get("epoch", []) if e == e]
    if ep and len(set(ep)) == len(ep):
        return cols["epoch"], "epoch"
    if "step" in cols:
        return cols["step"], "step"
    return cols["epoch"], "epoch"


def _series(x: list[float], y: list[float]) -> tuple[list[float], list[float]]:
    pts = [(a, b) for a, b in zip(x, y) if a == a and b == b]
    return [a for a, _ in pts], [b for _, b in pts]


def plot_curves(runs: list[str | Path], out: str | Path, labels: list[str] | None = None) -> Path:
    """Write a PNG (``WIDTH``×``HEIGHT``) with three panels — loss, accuracy, learning rate — for
    every run in ``runs`` (run directories or ``metrics.csv`` files), overlaid in one colour each."""
    if not runs:
        raise UserError("give at least one run directory or metrics.csv")
    data = [read_metrics(r) for r in runs]
    if labels is None:
        labels = [metrics_path(r).parent.name or str(r) for r in runs]
        if len(set(labels)) < len(labels):
            labels = [str(metrics_path(r)) for r in runs]
    fig = figure(WIDTH, HEIGHT)
    ax_loss, ax_acc, ax_lr = fig.subplots(1, 3)
    colours = [f"C{i % 10}" for i in range(len(data))]
    xlabel = "epoch"
    lr_drawn = False
    for cols, label, c in zip(data, labels, colours):
        x, xlabel = _x(cols)
        for key, style, name in (("train_loss", "-", "train"), ("val_loss", "--", "val")):
            if key in cols:
                xs, ys = _series(x, cols[key])
                if xs:
                    ax_loss.plot(xs, ys, style, color=c, marker="." if len(xs) < 30 else None,
                                 label=f"{label} {name}")
        for key, style, name in (("val_top1", "-", "top-1"), ("val_top5", "--", "top-5"),
                                 ("train_top1", ":", "train top-1")):
            if key in cols:
                xs, ys = _series(x, cols[key])
                if xs:
                    ax_acc.plot(xs, ys, style, color=c, marker="." if len(xs) < 30 else None,
                                label=f"{label} {name}")
        if "lr" in cols:
            xs, ys = _series(x, cols["lr"])
            if xs:
                ax_lr.plot(xs, ys, "-", color=c, label=label)
                lr_drawn = lr_drawn or any(v > 0 for v in ys)
    for ax, title, ylabel in ((ax_loss, "loss", "cross-entropy"), (ax_acc, "accuracy", "%"),
                              (ax_lr, "learning rate", "lr")):
        ax.set_title(title, fontsize=11)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
    if lr_drawn:
        ax_lr.set_yscale("log")  # step schedules (÷10) are straight steps on a log axis
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.12, top=0.9, wspace=0.25)
    return save_png(fig, out)
