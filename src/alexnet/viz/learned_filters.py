"""The first layer's kernels as a colour grid, like the paper's Figure 3.

§6.1, Figure 3: "96 convolutional kernels of size 11×11×3 learned by the first convolutional layer
… The top 48 kernels were learned on GPU 1 while the bottom 48 kernels were learned on GPU 2 …
The kernels on GPU 1 are largely color-agnostic, while the kernels on on GPU 2 are largely
color-specific." For the paper's network the two towers are drawn as separate panels, each with
a colourfulness score so the observation can be checked on one's own weights.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn

from .plotting import figure, save_png

COLS = 16  # kernels per row (the paper's figure is 16 wide)
CELL = 50  # pixels per kernel
TITLE = 30  # pixels for a panel title
HEADER = 40  # pixels for the figure title


def first_layer_kernels(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """``[(panel title, weights [n, C, kh, kw])]`` of the first convolution.

    The paper's network (`AlexNet` with its towers as groups, or `AlexNetTowers`) gives two
    panels, one per tower (GPU); every other model gives one panel with its first ``Conv2d``.
    """
    model = getattr(model, "module", model)
    if hasattr(model, "tower1") and hasattr(model, "tower2"):  # AlexNetTowers
        return [("tower 1 (GPU 1)", model.tower1.conv1.weight.detach().cpu()),
                ("tower 2 (GPU 2)", model.tower2.conv1.weight.detach().cpu())]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(model).__name__} has no Conv2d layer")
    w = convs[0].weight.detach().cpu()
    # The grouped paper net: conv1 feeds both towers (conv2 has groups=2), first half is GPU 1's.
    features = getattr(model, "features", None)
    conv2 = getattr(features, "conv2", None) if features is not None else None
    if isinstance(conv2, nn.Conv2d) and conv2.groups == 2 and w.shape[0] % 2 == 0:
        n = w.shape[0] // 2
        return [("tower 1 (GPU 1)", w[:n]), ("tower 2 (GPU 2)", w[n:])]
    return [("first convolution", w)]


def colourfulness(w: torch.Tensor) -> float:
    """How colour-specific RGB kernels are, from 0 (grey: the same in R, G and B) up.

    Per kernel: the spread across the three colour channels (std over C at each pixel, averaged)
    divided by the kernel's overall spread; averaged over kernels. NaN for non-RGB kernels.
    """
    if w.ndim != 4 or w.shape[1] != 3:
        return float("nan")
    w = w.float()
    w = w - w.mean(dim=(1, 2, 3), keepdim=True)
    across = w.std(dim=1, unbiased=False).mean(dim=(1, 2))
    overall = w.flatten(1).std(dim=1, unbiased=False).clamp_min(1e-12)
    return float((across / overall).mean())


def kernel_image(k: torch.Tensor) -> torch.Tensor:
    """One kernel ``[C, kh, kw]`` → an ``[kh, kw, 3]`` (RGB) or ``[kh, kw]`` (grey) array in [0, 1].

    Each kernel is scaled to [0, 1] on its own, as in the paper's figure.
    """
    k = k.float()
    if k.shape[0] != 3:
        k = k.mean(0, keepdim=True)
    lo, hi = k.min(), k.max()
    k = (k - lo) / (hi - lo) if hi > lo else torch.full_like(k, 0.5)
    return k.permute(1, 2, 0).squeeze(-1)


def filters_size(panels: list[tuple[str, torch.Tensor]]) -> tuple[int, int]:
    """The PNG size ``(width, height)`` that `plot_filters` writes for ``panels``."""
    rows = sum(math.ceil(w.shape[0] / COLS) for _, w in panels)
    return COLS * CELL, HEADER + len(panels) * TITLE + rows * CELL


def plot_filters(model: nn.Module, out: str | Path, title: str | None = None) -> Path:
    """Write the first layer's kernels as a grid PNG (one panel per tower); return its path."""
    panels = first_layer_kernels(model)
    width, height = filters_size(panels)
    fig = figure(width, height)
    if title:
        fig.suptitle(title, fontsize=11, y=1 - 12 / height)
    y = height - HEADER  # pixel coordinate of the current panel's top, from the bottom
    for name, w in panels:
        c = colourfulness(w)
        label = f"{name}: {w.shape[0]} kernels {w.shape[2]}×{w.shape[3]}×{w.shape[1]}"
        if c == c:  # not NaN
            label += f", colourfulness {c:.2f}"
        fig.text(0.5, (y - TITLE / 2) / height, label, ha="center", va="center", fontsize=9)
        y -= TITLE
        for i in range(w.shape[0]):
            r, col = divmod(i, COLS)
            pad = 2
            ax = fig.add_axes(((col * CELL + pad) / width, (y - (r + 1) * CELL + pad) / height,
                               (CELL - 2 * pad) / width, (CELL - 2 * pad) / height))
            img = kernel_image(w[i]).numpy()
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.set_axis_off()
        y -= math.ceil(w.shape[0] / COLS) * CELL
    return save_png(fig, out)
