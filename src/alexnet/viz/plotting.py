"""Shared plotting plumbing: matplotlib's non-interactive Agg backend, figures sized in pixels,
atomic PNG writes, and turning tensors into displayable arrays.

Every figure is made with `figure(width_px, height_px)` and written with `save_png`, which saves
without ``bbox_inches="tight"`` so the PNG is exactly the size asked for (tests rely on it).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

DPI = 100


# Fonts that cover the scripts DejaVu Sans lacks (class names in Chinese, Japanese, Korean, …),
# tried after it where installed: matplotlib draws each character from the first font that has it.
FALLBACK_FONTS = ("Noto Sans CJK JP", "Noto Sans CJK SC", "Noto Sans CJK KR", "Noto Sans CJK TC",
                  "WenQuanYi Zen Hei", "Droid Sans Fallback", "Noto Sans", "Arial Unicode MS")
_fonts_set = False


def _set_fonts() -> None:
    """DejaVu Sans, then `FALLBACK_FONTS` that are installed; matplotlib's warning for a glyph no
    font has (a box is drawn) is not printed: it names a matplotlib source line, not the user's file."""
    global _fonts_set
    if _fonts_set:
        return
    import warnings

    import matplotlib
    from matplotlib import font_manager

    have = {f.name for f in font_manager.fontManager.ttflist}
    matplotlib.rcParams["font.family"] = ["DejaVu Sans", *(f for f in FALLBACK_FONTS if f in have)]
    warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font", category=UserWarning)
    _fonts_set = True


def plt():
    """``matplotlib.pyplot`` on the Agg backend (works with no display, in threads and in CI)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as pyplot

    _set_fonts()
    return pyplot


def figure(width_px: int, height_px: int):
    """A figure of exactly ``width_px`` × ``height_px`` pixels when saved by `save_png`."""
    from matplotlib.figure import Figure

    # A Figure not registered with pyplot: never leaks, safe to make from several threads.
    plt()  # make sure the Agg backend is selected
    return Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)


def save_png(fig, path: str | Path) -> Path:
    """Write ``fig`` as a PNG atomically (temp file + rename) and return the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from ..core.io import atomic_write

    path = Path(path)
    if path.suffix.lower() != ".png":
        path = path.with_suffix(".png") if path.suffix else path.with_name(path.name + ".png")
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    atomic_write(path, buf.getvalue())
    return path


def to_hwc(img: torch.Tensor | np.ndarray) -> np.ndarray:
    """A CHW tensor (the project's image layout) or an HWC/HW array → an HWC or HW uint8 array."""
    if isinstance(img, torch.Tensor):
        t = img.detach().cpu()
        a = (t.permute(1, 2, 0) if t.ndim == 3 else t).numpy()
    else:
        a = np.asarray(img)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    return a


def show_image(ax, img, title: str | None = None, fontsize: float = 8, color: str = "black") -> None:
    """Draw a uint8 image (CHW or HWC) on ``ax`` without axes; grey images in grey."""
    a = to_hwc(img)
    ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=fontsize, color=color)


def integer_ticks(axis) -> None:
    """Ticks on whole numbers only on a matplotlib ``axis`` (``ax.xaxis``): epochs and steps are
    integers, and a short run's axis would otherwise read 0.5, 1.0, 1.5."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def minmax(x: torch.Tensor) -> torch.Tensor:
    """Scale ``x`` to [0, 1] (a constant tensor becomes 0.5)."""
    x = x.float()
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo) if hi > lo else torch.full_like(x, 0.5)


def shorten(text: str, n: int) -> str:
    """``text`` cut to ``n`` characters with an ellipsis."""
    return text if len(text) <= n else text[: max(1, n - 1)] + "…"
