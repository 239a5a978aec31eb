"""Feature maps of each convolutional layer for one image.

One row per conv layer (after its ReLU, which is what the next layer sees), showing the most active
maps first; the input crop the network saw is drawn on the top row. Early layers respond to edges
and colour blobs at full resolution, later layers to larger, more specific patterns on coarser
grids (§6.1 and Zeiler & Fergus 2014).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .plotting import figure, minmax, save_png, show_image

CELL = 64  # pixels per map
LABEL_W = 150  # pixels for the row labels
MAX_LAYERS = 10  # deep nets (ResNet-50 has 53 convs) are sampled evenly down to this many; the paper's two
# towers (5 convolutions each) are all shown


def conv_layers(model: nn.Module, max_layers: int = MAX_LAYERS) -> list[tuple[str, nn.Conv2d]]:
    """``[(name, conv)]`` in forward order; at most ``max_layers``, evenly spaced, first and last kept.
    Left out: the convolutions of a squeeze-and-excitation gate (SENet's ``se_module.fc1/fc2``, any
    module that pools its input to 1×1 first), whose "maps" are one number a channel."""
    gates = {n for n, m in model.named_modules()
             if any(isinstance(c, nn.AdaptiveAvgPool2d) for c in m.children()) and m is not model}
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)
             and n.rpartition(".")[0] not in gates]
    if hasattr(model, "leaf_order"):  # registered tower by tower, run layer by layer (`AlexNetTowers`)
        rank = {n: i for i, n in enumerate(model.leaf_order())}
        convs.sort(key=lambda c: rank.get(c[0], len(rank)))
    if len(convs) > max_layers > 1:
        step = (len(convs) - 1) / (max_layers - 1)
        convs = [convs[round(i * step)] for i in range(max_layers)]
    return convs


@torch.inference_mode()
def conv_activations(model: nn.Module, x: torch.Tensor,
                     max_layers: int = MAX_LAYERS) -> list[tuple[str, torch.Tensor]]:
    """Run ``model`` on one normalised input ``x [1, C, H, W]`` and return ``[(layer, maps [C, h, w])]``
    for its conv layers, after ReLU, on the CPU."""
    if x.ndim == 3:
        x = x[None]
    layers = conv_layers(model, max_layers)
    got: dict[str, torch.Tensor] = {}
    hooks = []
    for name, conv in layers:
        def hook(_m, _inp, out, name=name):
            # Clone: the ReLU that follows is in-place and would change the tensor under us.
            got[name] = F.relu(out[0].detach().float()).cpu().clone()
        hooks.append(conv.register_forward_hook(hook))
    try:
        was_training = model.training
        model.eval()
        model(x[:1])
        model.train(was_training)
    finally:
        for h in hooks:
            h.remove()
    return [(n, got[n]) for n, _ in layers if n in got]


def activations_size(n_layers: int, maps: int) -> tuple[int, int]:
    """The PNG size ``(width, height)`` that `plot_activations` writes."""
    return LABEL_W + maps * CELL, (n_layers + 1) * CELL + 30


def plot_activations(acts: list[tuple[str, torch.Tensor]], image: torch.Tensor | None, out: str | Path,
                     maps: int = 16, title: str | None = None) -> Path:
    """Write one row per layer of its ``maps`` most active feature maps (each scaled on its own),
    with the input ``image`` (uint8 CHW, what the network saw) on the top row."""
    width, height = activations_size(len(acts), maps)
    fig = figure(width, height)
    fig.text(0.5, 1 - 15 / height, title or "feature maps (after ReLU), most active first",
             ha="center", va="center", fontsize=10)

    def cell(row: int, col: int):
        return fig.add_axes(((LABEL_W + col * CELL + 1) / width, (height - 30 - (row + 1) * CELL + 1) / height,
                             (CELL - 2) / width, (CELL - 2) / height))

    fig.text(4 / width, (height - 30 - CELL / 2) / height, "input", va="center", fontsize=8)
    if image is not None:
        show_image(cell(0, 0), image)
    for r, (name, a) in enumerate(acts, start=1):
        c, h, w = a.shape
        fig.text(4 / width, (height - 30 - (r + 0.5) * CELL) / height, f"{name}\n{c}×{h}×{w}",
                 va="center", fontsize=7)
        order = a.flatten(1).mean(1).argsort(descending=True)[:maps]
        for j, ch in enumerate(order.tolist()):
            ax = cell(r, j)
            ax.imshow(minmax(a[ch]).numpy(), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
            ax.set_axis_off()
    return save_png(fig, out)
