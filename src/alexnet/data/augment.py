"""The training augmentations (``alexnet train --aug NAME``): every name, where it can run, and the
typed plan a name resolves to under a model cfg. Plain Python (no torch), so the CLI can list the
names in its help without importing torch.

Four data paths carry out a plan (`PATHS`; docs/architecture.md has the data flow of a run):

- ``cpu``: the per-image uint8 transform of `build_transforms` (torchvision's ``RandomCrop``,
  ``RandomHorizontalFlip``, then `PCALighting`), in the loader's workers;
- ``gpu``: `DeviceBatchLoader` / `augment_batch`, the same draws from the same per-sample seeds,
  on whole batches on the device;
- ``cache``: `CacheDataset.get_batch`, crops and flips cut straight out of a raw cache's memory
  map (its own draws, a pure function of the same seeds);
- ``resident``: `ResidentLoader`, whole epochs of images held in memory (airbench's alternating
  flip and reflected translation, Jordan 2024; and the per-image recipes' crops, flips and
  lighting, drawn per image for a whole epoch at once).

``cfg`` is duck-typed as in `build_transforms`: ``input_size`` (C, H, W) and ``resize`` (the short
side before cropping; H when missing). One-channel models (MNIST, digits) are never flipped on the
per-image paths: a mirrored digit is another symbol.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any, ClassVar

from ..core.errors import UserError

PATHS = ("cpu", "gpu", "cache", "resident")
PCA_SCALES = ("sqrt", "eigval")  # what PCA lighting multiplies its N(0, α) draws by: √λ or λ (`PCALighting`)

# ImageNet's RGB eigenvalues and eigenvectors (columns), for pixel values in [0, 1]: the values
# used for AlexNet-style lighting noise since fb.resnet.torch (datasets/imagenet.lua).
IMAGENET_PCA = {
    "eigval": [0.2175, 0.0188, 0.0045],
    "eigvec": [[-0.5675, 0.7192, 0.4009],
               [-0.5808, -0.0045, -0.8140],
               [-0.5836, -0.6948, 0.4203]],
}


@dataclass(frozen=True)
class Augmentation:
    """One entry of the registry: a ``--aug`` name, what it does (one line), the paths that run it."""

    name: str
    description: str
    paths: tuple[str, ...]


_STREAMING = ("cpu", "gpu", "cache")
_PER_IMAGE = _STREAMING + ("resident",)  # the per-image recipes; the resident path cuts them for a whole epoch


@dataclass(frozen=True)
class AugPlan:
    """What one training augmentation does to an image, as data every path reads.

    Built by `AugPlan.resolve`; the class also holds the registry of names (`REGISTRY`, `names`).

    - ``name``: the concrete recipe (``auto`` resolved): paper, light, small, none, flip, flip-translate;
    - ``channels``, ``size`` (h, w): the network's input; ``resize``: the short side before cropping;
    - ``center``: the side of the centre square ``paper``'s random crop is cut from (§4.1: 224 of 256);
    - ``pad``: ``small``'s zero padding around the centre crop before its random crop;
    - ``flip``: whether images are mirrored at random (§4.1);
    - ``translate``: ``flip-translate``'s largest shift in pixels;
    - ``lighting``: the standard deviation α of PCA lighting (§4.1), 0 for none; ``eigval``,
      ``eigvec`` (columns) and ``lighting_scale`` (`PCA_SCALES`) are its eigen data.
    """

    name: str
    channels: int
    size: tuple[int, int]
    resize: int
    center: int
    pad: int = 0
    flip: bool = False
    translate: int = 0
    lighting: float = 0.0
    eigval: tuple[float, ...] = ()
    eigvec: tuple[tuple[float, ...], ...] = ()
    lighting_scale: str = "sqrt"

    REGISTRY: ClassVar[tuple[Augmentation, ...]] = (
        Augmentation("auto", "small for inputs of at most 64 px a side, else paper; flip-translate with "
                             "--resident", PATHS),
        Augmentation("paper", "the paper's (§4.1): short side to resize, centre square, random crop, flip, "
                              "PCA lighting", _PER_IMAGE),
        Augmentation("light", "short side to resize, random crop and flip; no PCA lighting", _PER_IMAGE),
        Augmentation("small", "centre crop, zero-pad H/8 px (4 at 32 px) and random crop, flip: the usual "
                              "CIFAR recipe", _PER_IMAGE),
        Augmentation("flip", "airbench's alternating flip of a whole epoch held in memory", ("resident",)),
        Augmentation("flip-translate", "alternating flip and a shift of up to --translate px, borders "
                                       "reflected", ("resident",)),
        Augmentation("none", "no augmentation: the evaluation transform (short side to resize, centre crop)",
                     PATHS),
    )
    SMALL_MAX: ClassVar[int] = 64  # `auto` treats inputs up to this many pixels a side as small images

    # ------------------------------------------------------------------ the registry

    @classmethod
    def names(cls, path: str | None = None, *, auto: bool = True) -> tuple[str, ...]:
        """The names ``--aug`` accepts (in the registry's order), or those ``path`` can run;
        ``auto=False`` leaves out ``auto``."""
        return tuple(a.name for a in cls.REGISTRY
                     if (path is None or path in a.paths) and (auto or a.name != "auto"))

    @classmethod
    def describe(cls, name: str) -> Augmentation:
        """The registry entry of ``name``; a one-line `UserError` for an unknown one."""
        for a in cls.REGISTRY:
            if a.name == name:
                return a
        raise UserError(f"unknown augmentation {name!r}; choose one of {', '.join(cls.names())}")

    def runs_on(self, path: str) -> bool:
        """Whether data path ``path`` (`PATHS`) can carry out this plan."""
        return path in self.describe(self.name).paths

    # ------------------------------------------------------------------ resolving a name

    @classmethod
    def concrete(cls, name: str, cfg: Any, path: str = "cpu") -> str:
        """The recipe ``name`` stands for under ``cfg`` on ``path``: ``auto`` is ``flip-translate``
        on the resident path, else ``small`` for inputs of at most `SMALL_MAX` px a side and
        ``paper`` above. A name ``path`` cannot run is a one-line `UserError`."""
        if name not in cls.names(path):
            raise UserError(f"unknown augmentation {name!r}; choose one of {', '.join(cls.names(path))}")
        if name != "auto":
            return name
        if path == "resident":
            return "flip-translate"
        _, h, w = input_size(cfg)
        return "small" if max(h, w) <= cls.SMALL_MAX else "paper"

    @classmethod
    def resolve(cls, name: str, cfg: Any, *, path: str = "cpu", pca: Any = None, alphastd: float = 0.1,
                pca_scale: str = "sqrt", translate: int = 2) -> "AugPlan":
        """The plan of augmentation ``name`` (``auto`` resolved by `concrete`) for a model ``cfg``.

        ``pca``, ``alphastd``, ``pca_scale``: PCA lighting for ``paper`` on 3-channel inputs (see
        `load_pca` and `PCALighting`; ``alphastd`` 0 turns it off); ``translate``: the largest
        shift of ``flip-translate``.
        """
        kind = cls.concrete(name, cfg, path)
        c, h, w = input_size(cfg)
        resize = int(getattr(cfg, "resize", None) or h)
        plan = cls(kind, c, (h, w), resize, center=max(resize, h, w))
        if kind in ("flip", "flip-translate"):  # whole batches: flipped whatever the channels
            return plan.replace(flip=True, translate=int(translate) if kind == "flip-translate" else 0)
        if kind == "none":
            return plan
        plan = plan.replace(flip=c != 1)
        if kind == "small":  # 4 px for 28-32 px images (the CIFAR recipe), 1 for 8 px digits
            return plan.replace(pad=max(1, round(min(h, w) / 8)))
        if kind == "paper" and c == 3 and alphastd > 0:
            stats = load_pca(pca)
            if pca_scale not in PCA_SCALES:
                raise UserError(f"PCA lighting scale must be one of {', '.join(PCA_SCALES)}, not {pca_scale!r}")
            return plan.replace(lighting=float(alphastd), eigval=tuple(stats["eigval"]),
                                eigvec=tuple(tuple(r) for r in stats["eigvec"]), lighting_scale=pca_scale)
        return plan

    def replace(self, **changes: Any) -> "AugPlan":
        """A copy with ``changes`` (`dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)


def input_size(cfg: Any) -> tuple[int, int, int]:
    """``cfg.input_size`` as three ints (C, H, W)."""
    c, h, w = (int(v) for v in cfg.input_size)
    return c, h, w


def load_pca(pca: Any) -> dict[str, list]:
    """``None`` → ImageNet's values; a dict ``{"eigval", "eigvec"}``; or a path to a JSON file
    written by ``alexnet data pca-stats``. Its ``"mean"`` (the data's mean pixel) is passed on
    when present."""
    if pca is None:
        return IMAGENET_PCA
    if isinstance(pca, (str, os.PathLike)):
        try:
            with open(pca) as f:
                pca = json.load(f)
        except OSError as e:
            raise UserError(f"{pca}: cannot read PCA stats ({e.strerror})") from None
        except json.JSONDecodeError as e:
            raise UserError(f"{pca}: not a JSON file of PCA stats ({e.msg})") from None
    try:
        eigval = [float(v) for v in pca["eigval"]]
        eigvec = [[float(v) for v in row] for row in pca["eigvec"]]
        assert len(eigval) == 3 and len(eigvec) == 3 and all(len(r) == 3 for r in eigvec)
    except (KeyError, TypeError, ValueError, AssertionError):
        raise UserError("PCA stats must be {\"eigval\": [3 numbers], \"eigvec\": [[3×3 numbers]]}, "
                        "as written by `alexnet data pca-stats`") from None
    out: dict[str, list] = {"eigval": eigval, "eigvec": eigvec}
    try:
        mean = [float(v) for v in pca.get("mean") or []]
    except (TypeError, ValueError):
        raise UserError("PCA stats: \"mean\" must be a list of numbers") from None
    if mean:
        out["mean"] = mean
    return out


__all__ = ["AugPlan", "Augmentation", "PATHS", "PCA_SCALES", "IMAGENET_PCA", "input_size", "load_pca"]
