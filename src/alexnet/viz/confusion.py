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

from ._plot import figure, save_png, shorten, show_image

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
    return 44 if num_classes <= 12 else CELL


def confusion_size(num_classes: int) -> tuple[int, int]:
    """The PNG size ``(width, height)`` that `plot_confusion` writes for ``num_classes`` classes."""
    side = min(num_classes, FULL_MAX) * _cell(num_classes)
    if num_classes <= FULL_MAX:
        return LEFT + side + 110, BOTTOM + side + TOP
    return LEFT + side + 330 + PAIRS_W, BOTTOM + side + TOP


LEFT, BOTTOM, TOP, PAIRS_W = 170, 150, 70, 260


def _heatmap(ax, cm: torch.Tensor, names: Sequence[str], annotate: bool) -> object:
    cm = cm.double()
    rows = cm.sum(1, keepdim=True).clamp_min(1)
    share = (cm / rows).numpy()
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    n = len(names)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels([shorten(c, 18) for c in names], rotation=90, fontsize=7)
    ax.set_yticklabels([shorten(c, 18) for c in names], fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if annotate:
        for i in range(n):
            for j in range(n):
                v = int(cm[i, j])
                if v:
                    ax.text(j, i, str(v), ha="center", va="center", fontsize=6,
                            color="white" if share[i, j] > 0.5 else "black")
    return im


def plot_confusion(cm: torch.Tensor, classes: Sequence[str], out: str | Path, title: str = "confusion matrix") -> Path:
    """Write the confusion matrix ``cm[true, predicted]`` as a PNG heat map (summarised past
    ``FULL_MAX`` classes); return its path."""
    cm = torch.as_tensor(cm).cpu()
    K = cm.shape[0]
    width, height = confusion_size(K)
    side = min(K, FULL_MAX) * _cell(K)
    fig = figure(width, height)
    total, correct = int(cm.sum()), int(cm.diagonal().sum())
    acc = f"{100 * correct / total:.2f}%" if total else "n/a"
    fig.text(0.5, 1 - 22 / height, f"{title}: {total} samples, {K} classes, top-1 {acc}",
             ha="center", va="center", fontsize=11)
    ax = fig.add_axes((LEFT / width, BOTTOM / height, side / width, side / height))
    cax = fig.add_axes(((LEFT + side + 15) / width, BOTTOM / height, 15 / width, side / height))
    if K <= FULL_MAX:
        im = _heatmap(ax, cm, list(classes), annotate=True)
        ax.set_title("rows: true class; colour: share of the row; numbers: counts", fontsize=8)
        fig.colorbar(im, cax=cax)
        return save_png(fig, out)
    # Summarised: the most confused classes' sub-matrix, and the top confused pairs.
    idx = most_confused_classes(cm)
    im = _heatmap(ax, cm[idx][:, idx], [classes[i] for i in idx], annotate=True)
    ax.set_title(f"the {len(idx)} classes most involved in mistakes (colour: share of the true class)", fontsize=8)
    fig.colorbar(im, cax=cax)
    pairs = confused_pairs(cm)
    ax2 = fig.add_axes(((width - PAIRS_W - 20) / width, BOTTOM / height, PAIRS_W / width, side / height))
    labels = [f"{shorten(classes[t], 20)} → {shorten(classes[p], 20)}" for t, p, _ in pairs]
    ax2.barh(range(len(pairs)), [c for _, _, c in pairs], color="C3")
    ax2.set_yticks(range(len(pairs)))
    ax2.set_yticklabels(labels, fontsize=7)
    ax2.set_ylim(len(pairs) - 0.5, -0.5)
    ax2.set_xlabel("count")
    ax2.set_title(f"the {len(pairs)} most frequent mistakes (true → predicted)", fontsize=8)
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
