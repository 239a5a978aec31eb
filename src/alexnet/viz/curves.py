"""Training curves from ``metrics.csv``: loss, top-1/top-5 accuracy and learning rate, several runs
overlaid.

``metrics.csv`` columns (written by training): ``epoch,step,train_loss,train_top1,val_loss,
val_top1,val_top5,lr,time,…``, accuracies in percent; a cell may be empty or ``nan`` (e.g. no
validation on that row). Unknown columns are ignored and missing ones are simply not drawn.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from ..core.errors import UserError
from .plotting import figure, integer_ticks, save_png

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


def short_labels(names: list[str]) -> tuple[list[str], str]:
    """Run names without the part they share: ``(labels, shared)``.

    ``alexnet-mnist-digits-20261123-101010`` and ``…-111111`` → ``["101010", "111111"]`` and
    ``"alexnet-mnist-digits-20261123-…"``; cuts only at ``-``, ``_``, ``/`` or spaces so
    that words stay whole. One run: no labels needed, the shared part is its whole name.
    """
    if len(names) == 1:
        return [names[0]], names[0]
    seps = "-_/ "  # not ".": lr0.01 and lr0.1 stay whole

    def cut_prefix(items: list[str]) -> int:
        n = len(os.path.commonprefix(items))
        while n > 0 and items[0][n - 1] not in seps:
            n -= 1
        return n if all(len(x) > n for x in items) else 0

    pre = cut_prefix(names)
    rev = [x[pre:][::-1] for x in names]
    suf = cut_prefix(rev)
    labels = [x[pre:len(x) - suf] if suf else x[pre:] for x in names]
    shared = names[0][:pre] + "…" + names[0][len(names[0]) - suf:] if pre or suf else ""
    return labels, shared


SERIES = {  # panel → (column, line style, legend name, marker: what tells a run's few points apart)
    "loss": (("train_loss", "-", "train", "o"), ("val_loss", "--", "val", "s")),
    "acc": (("val_top1", "-", "val top-1", "s"), ("val_top5", "--", "val top-5", "^"),
            ("train_top1", ":", "train top-1", "o")),
}


def plot_curves(runs: list[str | Path], out: str | Path, labels: list[str] | None = None) -> Path:
    """Write a PNG (``WIDTH``×``HEIGHT``) with three panels — loss (log scale, so that one diverging
    run does not flatten the others), accuracy, learning rate — for every run in ``runs`` (run
    directories or ``metrics.csv`` files), overlaid in one colour each. Legends are short: one for
    the line styles (train/val, top-1/top-5), one for the runs, named by what tells them apart."""
    from matplotlib.lines import Line2D

    if not runs:
        raise UserError("give at least one run directory or metrics.csv")
    data = [read_metrics(r) for r in runs]
    shared = ""
    if labels is None:
        names = [metrics_path(r).parent.name or str(r) for r in runs]
        if len(set(names)) < len(names):
            names = [str(metrics_path(r)) for r in runs]
        labels, shared = short_labels(names)
    fig = figure(WIDTH, HEIGHT)
    ax_loss, ax_acc, ax_lr = fig.subplots(1, 3)
    colours = [f"C{i % 10}" for i in range(len(data))]
    xlabel = "epoch"
    lr_drawn = False
    used: dict[str, set[tuple[str, str, str]]] = {"loss": set(), "acc": set()}
    marked = False  # a run of 30 points or fewer is drawn with markers, and the legend shows them
    loss_values: list[float] = []
    for cols, c in zip(data, colours):
        x, xlabel = _x(cols)
        for panel, ax in (("loss", ax_loss), ("acc", ax_acc)):
            for key, style, name, mark in SERIES[panel]:
                if key not in cols:
                    continue
                xs, ys = _series(x, cols[key])
                if not xs or (key == "val_top5" and min(ys) >= 100):  # five classes or fewer: always 100 %, no line
                    continue
                few = len(xs) <= 30  # markers: a one-epoch run is a visible point, not nothing
                marked = marked or few
                ax.plot(xs, ys, style, color=c, marker=mark if few else None,
                        markersize=6 if len(xs) == 1 else 3.5)
                used[panel].add((style, name, mark))
                if panel == "loss":
                    loss_values += ys
        if "lr" in cols:
            xs, ys = _series(x, cols["lr"])
            if xs:
                ax_lr.plot(xs, ys, "-", color=c, marker="o" if len(xs) <= 30 else None,
                           markersize=6 if len(xs) == 1 else 3.5)
                lr_drawn = lr_drawn or any(v > 0 for v in ys)
    for ax, title, ylabel in ((ax_loss, "loss", "cross-entropy (log scale)"), (ax_acc, "accuracy", "%"),
                              (ax_lr, "learning rate", "lr")):
        ax.set_title(title, fontsize=11)
        ax.set_xlabel(xlabel)
        integer_ticks(ax.xaxis)  # epochs (or steps): whole numbers
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if not ax.lines:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
    if loss_values and min(loss_values) > 0 and max(loss_values) >= 10 * min(loss_values):
        ax_loss.set_yscale("log")  # a run that diverged does not flatten the others
    else:  # within a factor of ten: a linear axis reads better (a log one labels 2.55×10⁰)
        ax_loss.set_ylabel("cross-entropy")
    xs_all = [v for cols in data for v in _x(cols)[0] if v == v]  # every run's epochs (or steps), nan left out
    if xs_all and max(xs_all) - min(xs_all) < 1:  # one epoch: whole numbers either side of it, not 0.945…1.055
        for ax in (ax_loss, ax_acc, ax_lr):
            ax.set_xlim(min(xs_all) - 1, max(xs_all) + 1)
    for panel, ax in (("loss", ax_loss), ("acc", ax_acc)):  # line styles, drawn long enough to show dashes
        order = [(st, nm, mk) for _, st, nm, mk in SERIES[panel] if (st, nm, mk) in used[panel]]
        if order:
            ax.legend([Line2D([], [], color="0.2", linestyle=st, linewidth=1.5, marker=mk if marked else None,
                              markersize=5) for st, _, mk in order],
                      [nm for _, nm, _ in order], fontsize=9, handlelength=3.2, loc="best")
    if lr_drawn:
        ax_lr.set_yscale("log")  # step schedules (÷10) are straight steps on a log axis
    if len(data) > 1:  # which colour is which run
        ax_lr.legend([Line2D([], [], color=c, linewidth=2.5) for c in colours], labels, fontsize=9,
                     title="run", title_fontsize=9, loc="best")
    top = 0.9
    if shared:
        fig.suptitle(shared if len(data) == 1 else f"runs {shared}", fontsize=11)
        top = 0.86
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.12, top=top, wspace=0.25)
    return save_png(fig, out)
