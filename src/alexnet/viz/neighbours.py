"""A strip of the query image and its nearest neighbours in feature space (the paper's Figure 4)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .plotting import figure, save_png, shorten, show_image

CELL_W, CELL_H = 180, 230


def strip_size(n_neighbours: int) -> tuple[int, int]:
    """The PNG size ``(width, height)`` that `plot_strip` writes."""
    return (n_neighbours + 1) * CELL_W, CELL_H


def plot_strip(query, neighbours: Sequence[tuple[object, str]], out: str | Path,
               query_caption: str = "query") -> Path:
    """Write ``query`` (uint8 CHW) then each ``(image or None, caption)`` side by side."""
    width, height = strip_size(len(neighbours))
    fig = figure(width, height)
    for i, (img, caption) in enumerate([(query, query_caption), *neighbours]):
        ax = fig.add_axes(((i * CELL_W + 8) / width, 60 / height, (CELL_W - 16) / width, (CELL_H - 70) / height))
        if img is None:
            ax.set_xticks([]), ax.set_yticks([])
            ax.text(0.5, 0.5, "(unavailable)", ha="center", va="center", color="grey", transform=ax.transAxes)
        else:
            show_image(ax, img)
        lines = [shorten(line, 26) for line in str(caption).splitlines()[:3]]
        ax.set_xlabel("\n".join(lines), fontsize=8, color="C3" if i == 0 else "black")
    return save_png(fig, out)
