"""What a convolution does: the classic hand-made 3×3 kernels applied to one image, side by side.

The tutorial's demonstration before any learning: a convolution slides a small matrix over the
image and takes a weighted sum at each position. Kernels whose weights sum to 1 (blur, sharpen,
emboss) keep brightness and are shown in colour; kernels whose weights sum to 0 (edge detectors,
Sobel) respond only to change and are shown as the magnitude of the response on the grey image,
white at the 99th percentile of that magnitude (`edge_white`, written under the panel's name):
scaled by the largest response instead, one strong edge would leave the rest of the panel black.
The learned first-layer kernels (`alexnet visualize filters`) turn out to look like these.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .plotting import figure, save_png, show_image

# name → 3×3 kernel (https://en.wikipedia.org/wiki/Kernel_(image_processing)).
KERNELS: dict[str, list[list[float]]] = {
    "edge detection (4-neighbour)": [[0, -1, 0], [-1, 4, -1], [0, -1, 0]],
    "edge detection (8-neighbour)": [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]],
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "box blur": [[1 / 9] * 3] * 3,
    "Gaussian blur 3×3": [[1 / 16, 2 / 16, 1 / 16], [2 / 16, 4 / 16, 2 / 16], [1 / 16, 2 / 16, 1 / 16]],
    "Sobel x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "Sobel y": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "emboss": [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]],
}

COLS = 3
CELL_W, CELL_H = 320, 380
MAX_SIDE = 512  # larger images are scaled down first: the point is the effect, not the pixels


def _fit(img: torch.Tensor) -> torch.Tensor:
    """uint8 CHW → float CHW in [0, 255], longer side at most ``MAX_SIDE``, 1 or 3 channels."""
    x = img.float()
    if x.shape[0] == 4:
        x = x[:3]
    elif x.shape[0] == 2:
        x = x[:1]
    h, w = x.shape[-2:]
    s = MAX_SIDE / max(h, w)
    if s < 1:
        x = F.interpolate(x[None], size=(max(1, round(h * s)), max(1, round(w * s))),
                          mode="bilinear", antialias=True, align_corners=False)[0]
    return x


def convolve(img: torch.Tensor, kernel: list[list[float]] | torch.Tensor) -> torch.Tensor:
    """Convolve each channel of a float CHW image with a 2-D kernel (a true convolution: the
    kernel is flipped, which matters for the asymmetric ones), reflect-padded to keep the size (an
    image a pixel wide or tall, which has nothing to reflect, repeats its edge)."""
    k = torch.as_tensor(kernel, dtype=torch.float32).flip(0, 1)
    kh, kw = k.shape
    mode = "reflect" if min(img.shape[-2:]) > max(kh, kw) // 2 else "replicate"
    x = F.pad(img[:, None], (kw // 2, kw // 2, kh // 2, kh // 2), mode=mode)
    return F.conv2d(x, k[None, None])[:, 0]


EDGE_QUANTILE = 0.99  # the share of an edge panel's magnitudes drawn below white


@dataclass
class KernelPanel:
    """One kernel applied to the image: ``image`` is uint8 CHW; ``white`` is, for a change
    detector, the response magnitude drawn as white (None for the others, drawn as they come)."""

    name: str
    kernel: torch.Tensor
    image: torch.Tensor
    white: float | None = None

    @property
    def label(self) -> str:
        """The panel's title: the kernel's name, and for an edge panel the scale it is drawn at."""
        return self.name if self.white is None else f"{self.name}\n|response|, white ≥ {self.white:.0f}"


def edge_white(magnitude: torch.Tensor) -> float:
    """The magnitude drawn as white: its `EDGE_QUANTILE` quantile, or its largest value when
    fewer than 1 % of the pixels respond at all (a clean synthetic edge)."""
    flat = magnitude.flatten()
    if flat.numel() > 1_000_000:  # quantile's limit on input size; a strided sample is as good
        flat = flat[:: flat.numel() // 1_000_000 + 1]
    q = float(flat.quantile(EDGE_QUANTILE))
    return q if q > 1e-6 else max(float(flat.max()), 1e-6)


def kernel_panels(img: torch.Tensor) -> list[KernelPanel]:
    """Every kernel in `KERNELS` applied to ``img`` (uint8 CHW), as drawn by `plot_kernels`."""
    x = _fit(img)
    grey = x.mean(0, keepdim=True) if x.shape[0] == 3 else x
    out = []
    for name, kl in KERNELS.items():
        k = torch.tensor(kl, dtype=torch.float32)
        white = None
        if abs(float(k.sum())) < 1e-6:  # a change detector: show |response| on the grey image
            r = convolve(grey, k).abs()
            white = edge_white(r)
            r = r / white * 255
        else:
            r = convolve(x, k)
        out.append(KernelPanel(name, k, r.clamp(0, 255).round().to(torch.uint8), white))
    return out


def apply_kernels(img: torch.Tensor) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """``[(name, kernel, uint8 result CHW)]`` for every kernel in `KERNELS` (`kernel_panels`)."""
    return [(p.name, p.kernel, p.image) for p in kernel_panels(img)]


def _kernel_text(k: torch.Tensor) -> str:
    """The kernel as three monospace rows, with a common fraction pulled out (1/9, 1/16)."""
    scale = ""
    for d in (9, 16):
        if not torch.allclose(k, k.round()) and torch.allclose(k * d, (k * d).round()):
            scale, k = f"1/{d} · ", k * d
            break
    rows = ["[" + " ".join(f"{int(round(float(v))):>2d}" for v in row) + "]" for row in k]
    pad = " " * len(scale)
    return "\n".join((scale if i == 1 else pad) + r for i, r in enumerate(rows))


def kernels_size(n_panels: int | None = None) -> tuple[int, int]:
    """The PNG size ``(width, height)`` that `plot_kernels` writes."""
    n = (len(KERNELS) + 1) if n_panels is None else n_panels
    rows = -(-n // COLS)
    return COLS * CELL_W, rows * CELL_H


def plot_kernels(img: torch.Tensor, out: str | Path, title: str | None = None) -> Path:
    """Write the original image and its convolution with each classic kernel as one PNG."""
    results = kernel_panels(img)
    width, height = kernels_size(len(results) + 1)
    fig = figure(width, height)
    axes = fig.subplots(height // CELL_H, COLS).ravel()
    show_image(axes[0], _fit(img).round().to(torch.uint8), title or "original", fontsize=10)
    for ax, p in zip(axes[1:], results):
        show_image(ax, p.image, p.label, fontsize=10)
        ax.set_xlabel(_kernel_text(p.kernel), fontsize=9, family="monospace")
    for ax in axes[len(results) + 1:]:
        ax.set_axis_off()
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.08, top=0.96, hspace=0.45, wspace=0.1)
    return save_png(fig, out)
