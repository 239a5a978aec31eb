"""Confusion matrix heat map and a gallery of the most confident mistakes.

Up to ``FULL_MAX`` classes the whole matrix is drawn with class names, cells coloured by the share
of the true class (row-normalised, so rare classes are as visible as common ones) and annotated
with counts. Beyond that (ImageNet's 1000) a 1000×1000 picture says nothing, so it is summarised:
the sub-matrix of the ``FULL_MAX`` classes most involved in confusions, next to the most frequent
(true → predicted) pairs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from .plotting import figure, save_png, shorten, show_image

FULL_MAX = 30
PAIRS = 25
CELL = 28


def confused_pairs(cm: torch.Tensor, n: int = PAIRS) -> list[tuple[int, int, int]]:
    """The ``n`` largest off-diagonal cells as ``(true, predicted, count)``, largest first."""
    off = cm.clone().long()
    off.fill_diagonal_(0)
    k = min(n, off.numel())
    vals, idx = off.flatten().topk(k)
    K = cm.shape[1]
    return [(int(i) // K, int(i) % K, int(v)) for v, i in zip(vals, idx) if int(v) > 0]


def most_confused_classes(cm: torch.Tensor, n: int = FULL_MAX) -> list[int]:
    """The ``n`` classes with the most confusions (as true or as predicted class), in index order."""
    off = cm.clone().long()
    off.fill_diagonal_(0)
    score = off.sum(0) + off.sum(1)
    return sorted(score.topk(min(n, len(score))).indices.tolist())


def _cell(num_classes: int) -> int:
    """Pixels per matrix cell: large enough for a readable count at every size up to `FULL_MAX`."""
    return 56 if num_classes <= 10 else 40 if num_classes <= 20 else CELL


def _count_font(cell: int) -> float:
    return 10 if cell >= 56 else 8.5 if cell >= 40 else 7


def text_px(text: str, fontsize: float, rotation: float = 0) -> tuple[float, float]:
    """Width and height in pixels that ``text`` takes at ``fontsize`` points (measured by matplotlib's
    Agg renderer, at the DPI figures are saved with)."""
    if not text:
        return 0.0, 0.0
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = figure(100, 100)
    renderer = FigureCanvasAgg(fig).get_renderer()
    t = fig.text(0, 0, text, fontsize=fontsize, rotation=rotation)
    bb = t.get_window_extent(renderer)
    return float(bb.width), float(bb.height)


PAD = 14  # pixels around everything
TITLE_FONT, SUBTITLE_FONT = 11, 8.5
PAIRS_BAR_W = 200


def confusion_layout(num_classes: int, classes: Sequence[str] | None = None, title: str = "",
                     subtitle: str = "", pairs_labels: Sequence[str] = (), pairs_title: str = "") -> dict:
    """Pixel layout of `plot_confusion`'s figure, sized from its content: the matrix (cells sized
    for readable counts), the class names' widths, and the titles, which always fit."""
    names = [shorten(str(c), 18) for c in (classes if classes is not None else range(num_classes))]
    shown = names if num_classes <= FULL_MAX else names[:FULL_MAX]
    cell = _cell(num_classes)
    k = min(num_classes, FULL_MAX)
    side = k * cell
    tick = 9 if k <= 20 else 7
    label_w = max((text_px(n, tick)[0] for n in shown), default=0)
    title_w, title_h = text_px(title, TITLE_FONT)
    sub_w, sub_h = text_px(subtitle, SUBTITLE_FONT)
    axis_label = text_px("predicted", 10)[1] + 8
    left = PAD + axis_label + label_w + 8
    bottom = PAD + axis_label + label_w + 8  # x tick labels are the same names, turned 90°
    top = PAD + title_h + 10 + sub_h + 12
    cbar = 15 + 14 + text_px("1.0", 10)[0] + 8 + axis_label  # gap, bar, its ticks, its label
    width = left + side + cbar + PAD
    pairs = None
    if num_classes > FULL_MAX:
        plabel_w = max((text_px(t, 7)[0] for t in pairs_labels), default=0)
        pt_w = text_px(pairs_title, SUBTITLE_FONT)[0]
        block = max(plabel_w + 8 + PAIRS_BAR_W, pt_w)
        pairs = (width + 10 + block - PAIRS_BAR_W, PAIRS_BAR_W)  # x of the bars, their width
        width = width + 10 + block + PAD
    need = max(title_w, sub_w) + 2 * PAD
    shift = max(0.0, (need - width) / 2)  # a wide title: widen the figure, keep the content centred
    width = max(width, need)
    height = top + side + bottom
    return {"size": (int(round(width)), int(round(height))), "left": left + shift, "bottom": bottom,
            "side": side, "cell": cell, "tick": tick, "top": top, "title_h": title_h,
            "pairs": (pairs[0] + shift, pairs[1]) if pairs else None}


FULL_SUBTITLE = "rows: true class · colour: share of the row · numbers: counts"


def confusion_size(num_classes: int, classes: Sequence[str] | None = None, title: str = "") -> tuple[int, int]:
    """The PNG size ``(width, height)`` that `plot_confusion` writes for up to `FULL_MAX` classes
    with heading ``title`` (the whole line, counts included)."""
    return confusion_layout(num_classes, classes, title, FULL_SUBTITLE)["size"]


def _heatmap(ax, cm: torch.Tensor, names: Sequence[str], annotate: bool, tick: float = 7,
             count_font: float = 7) -> object:
    cm = cm.double()
    rows = cm.sum(1, keepdim=True).clamp_min(1)
    share = (cm / rows).numpy()
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    n = len(names)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels([shorten(c, 18) for c in names], rotation=90, fontsize=tick)
    ax.set_yticklabels([shorten(c, 18) for c in names], fontsize=tick)
    ax.set_xlabel("predicted", fontsize=10)
    ax.set_ylabel("true", fontsize=10)
    if annotate:
        for i in range(n):
            for j in range(n):
                v = int(cm[i, j])
                if v:
                    ax.text(j, i, str(v), ha="center", va="center", fontsize=count_font,
                            color="white" if share[i, j] > 0.5 else "black")
    return im


def plot_confusion(cm: torch.Tensor, classes: Sequence[str], out: str | Path, title: str = "confusion matrix") -> Path:
    """Write the confusion matrix ``cm[true, predicted]`` as a PNG heat map (summarised past
    ``FULL_MAX`` classes), sized from its content; return its path."""
    from matplotlib.ticker import MaxNLocator

    cm = torch.as_tensor(cm).cpu()
    K = cm.shape[0]
    total, correct = int(cm.sum()), int(cm.diagonal().sum())
    acc = f"{100 * correct / total:.2f}%" if total else "n/a"
    head = f"{title}: {total:,} samples, {K:,} classes, top-1 {acc}"
    if K <= FULL_MAX:
        idx, sub = list(range(K)), FULL_SUBTITLE
        pairs, pair_labels, pair_title = [], [], ""
    else:  # summarised: the most confused classes' sub-matrix, and the top confused pairs
        idx = most_confused_classes(cm)
        sub = f"the {len(idx)} classes most involved in mistakes · colour: share of the true class · numbers: counts"
        pairs = confused_pairs(cm)
        pair_labels = [f"{shorten(classes[t], 20)} → {shorten(classes[p], 20)}" for t, p, _ in pairs]
        pair_title = f"the {len(pairs)} most frequent mistakes (true → predicted)"
    lay = confusion_layout(K, [classes[i] for i in idx], head, sub, pair_labels, pair_title)
    width, height = lay["size"]
    side, left, bottom = lay["side"], lay["left"], lay["bottom"]
    fig = figure(width, height)
    fig.text(0.5, 1 - (PAD + lay["title_h"] / 2) / height, head, ha="center", va="center", fontsize=TITLE_FONT)
    half = text_px(sub, SUBTITLE_FONT)[0] / 2  # over the matrix, moved in as far as it must be to fit
    cx = min(max(left + side / 2, PAD + half), width - PAD - half)
    fig.text(cx / width, (bottom + side + 8) / height, sub, ha="center", va="bottom", fontsize=SUBTITLE_FONT)
    ax = fig.add_axes((left / width, bottom / height, side / width, side / height))
    cax = fig.add_axes(((left + side + 15) / width, bottom / height, 14 / width, side / height))
    im = _heatmap(ax, cm[idx][:, idx], [classes[i] for i in idx], annotate=True, tick=lay["tick"],
                  count_font=_count_font(lay["cell"]))
    cb = fig.colorbar(im, cax=cax)
    label = "share of the true class"
    if text_px(label, 9)[0] + 10 < side:  # on a small matrix the subtitle says it
        cb.set_label(label, fontsize=9)
    if K <= FULL_MAX:
        return save_png(fig, out)
    x0, bar_w = lay["pairs"]
    ax2 = fig.add_axes((x0 / width, bottom / height, bar_w / width, side / height))
    counts = [c for _, _, c in pairs]
    ax2.barh(range(len(pairs)), counts, color="C3")
    ax2.set_yticks(range(len(pairs)))
    ax2.set_yticklabels(pair_labels, fontsize=7)
    ax2.set_ylim(len(pairs) - 0.5, -0.5)
    ax2.xaxis.set_major_locator(MaxNLocator(integer=True))  # counts, not 0.0 … 1.0
    ax2.set_xlim(0, max(counts, default=0) + 1)
    ax2.set_xlabel("count", fontsize=10)
    ax2.set_title(pair_title, fontsize=SUBTITLE_FONT, pad=8, loc="right")  # the labels' block is to its left
    return save_png(fig, out)


GALLERY_COLS = 6
GALLERY_W, GALLERY_H = 200, 240


def mistakes_size(n: int) -> tuple[int, int]:
    """The PNG size ``(width, height)`` that `plot_mistakes` writes for ``n`` items."""
    rows = max(1, -(-n // GALLERY_COLS))
    return GALLERY_COLS * GALLERY_W, rows * GALLERY_H + 40


def plot_mistakes(items: Sequence[tuple], out: str | Path, title: str = "most confident mistakes") -> Path:
    """Write a gallery of ``(image uint8 CHW or None, true name, predicted name, probability)``
    items, each optionally with a fifth field, the sample's name (e.g. its file name)."""
    width, height = mistakes_size(len(items))
    fig = figure(width, height)
    fig.text(0.5, 1 - 20 / height, title if items else f"{title}: none", ha="center", va="center", fontsize=11)
    for i, (img, true, pred, prob, *name) in enumerate(items):
        r, c = divmod(i, GALLERY_COLS)
        ax = fig.add_axes(((c * GALLERY_W + 10) / width, (height - 40 - (r + 1) * GALLERY_H + 50) / height,
                           (GALLERY_W - 20) / width, (GALLERY_H - 60) / height))
        label = f"true: {shorten(true, 26)}\npred: {shorten(pred, 20)} ({prob:.2f})"
        if name and name[0]:
            label = f"{shorten(str(name[0]), 30)}\n{label}"
        if img is None:
            ax.set_xticks([]), ax.set_yticks([])
            ax.text(0.5, 0.5, "(no image)", ha="center", va="center", color="grey", transform=ax.transAxes)
        else:
            show_image(ax, img)
        ax.set_xlabel(label, fontsize=8, color="C3")
    return save_png(fig, out)
