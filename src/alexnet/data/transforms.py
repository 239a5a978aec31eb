"""Transforms derived from a model cfg: the paper's train and eval preprocessing, ten-crop, PCA
lighting, and normalisation on the device.

Images stay uint8 from decode through every transform here; `Normalizer` turns a uint8 batch
into float32 once it is on the model's device.

``cfg`` is duck-typed: any object with ``input_size`` (C, H, W), ``resize`` (short side before
cropping: 256 for ImageNet models, equal to H for small images), ``mean`` and ``std``.

Recipes (``aug``; the names and what each does are `AugPlan.REGISTRY` in `alexnet.data.augment`,
and `build_transforms` turns the `AugPlan` a name resolves to into steps):

- ``paper`` (Krizhevsky et al. 2012): short side → ``resize`` and centre crop ``resize``×``resize``
  (§2), random H×W crop + horizontal flip (§4.1), PCA lighting (§4.1).
- ``light``: short side → ``resize``, random H×W crop + flip; no PCA lighting.
- ``small``: pad and random H×W crop + flip, the usual CIFAR recipe (pad 4 at 32 px; H/8 in
  general, so 1 px for 8×8 digits).
- ``none``: the eval transform.
- ``auto``: ``small`` for images of at most 64 px, else ``paper``.
- One-channel models (MNIST, digits) are never flipped: a mirrored digit is another symbol.

Eval: short side → ``resize``, centre crop H×W; with ``ten_crop`` the image is centre-cropped to
``resize``×``resize`` and `TenCrop` returns a ``[10, C, H, W]`` stack (§4.1); when that square is
the crop itself the five crops coincide and `ten_crop_note` says so.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as F

from ..core.errors import UserError
from .augment import IMAGENET_PCA, PCA_SCALES, AugPlan, input_size, load_pca

AUGS = AugPlan.names("cpu")  # what the per-image transform runs
SMALL_MAX = AugPlan.SMALL_MAX


class ToChannels:
    """Convert a ``[C, H, W]`` image to ``channels`` channels (RGB → gray by ITU-R 601-2 luma,
    gray → RGB by repetition)."""

    def __init__(self, channels: int):
        self.channels = int(channels)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        c = img.shape[-3]
        if c == self.channels:
            return img
        if self.channels == 1:
            return F.rgb_to_grayscale(img[..., :3, :, :], num_output_channels=1)
        if c == 1 and self.channels == 3:
            return img.expand(*img.shape[:-3], 3, *img.shape[-2:]).contiguous()
        raise ValueError(f"cannot convert a {c}-channel image to {self.channels} channels")

    def __repr__(self) -> str:
        return f"ToChannels({self.channels})"


class PCALighting:
    """AlexNet's colour augmentation (§4.1): add ``eigvec @ (alpha * s)`` to every pixel,
    ``alpha ~ N(0, alphastd)`` drawn once per call (once per image per epoch).

    ``scale`` says what ``s`` is:

    - ``"sqrt"`` (default): ``s = sqrt(eigval)``, the standard deviation along each principal
      component — what the authors' code does. cuda-convnet2's ``convdata.py`` multiplies the
      N(0, 1) draws by ``batch_meta['color_pca'][0]``, which its ``make-data/input_meta`` holds as
      standard deviations (19.7, 37.1, 121.8 in 0‥255 units = √λ of ImageNet's RGB covariance), and
      its training example passes ``--color-noise 0.1``. The shift does not depend on the pixel scale.
    - ``"eigval"``: ``s = eigval``, the formula as the paper prints it, ``[p1 p2 p3][α1λ1 α2λ2 α3λ3]ᵀ``,
      with λ for pixel values in [0, 1] (as fb.resnet.torch and most PyTorch ports do). It depends on
      the pixel scale: on the paper's 0‥255 pixels λ1 ≈ 15,000 and a shift of ~1,500 levels,
      so the printed formula cannot be what ran. In [0, 1] units it is weaker than ``sqrt`` on
      ImageNet, and the more so the smaller the component: about half as strong along the first
      (0.2175 vs 0.466), 7× weaker along the second and 15× along the third. On uint8 images
      the shift is rounded to whole levels, which keeps little of the third component's.

    ``eigvec`` holds the eigenvectors as columns; ``eigval`` is for pixel values in [0, 1], so
    the shift is scaled by 255 for uint8 images (rounded, clamped) and by 1 for float images,
    which are taken to be in [0, 1]. Input and output are ``[3, H, W]`` of the same dtype.
    """

    def __init__(self, eigval: Sequence[float] = IMAGENET_PCA["eigval"],
                 eigvec: Sequence[Sequence[float]] = IMAGENET_PCA["eigvec"], alphastd: float = 0.1,
                 scale: str = "sqrt"):
        if scale not in PCA_SCALES:
            raise UserError(f"PCA lighting scale must be one of {', '.join(PCA_SCALES)}, not {scale!r}")
        self.eigval = torch.as_tensor(eigval, dtype=torch.float32).reshape(3)
        self.eigvec = torch.as_tensor(eigvec, dtype=torch.float32).reshape(3, 3)
        self.alphastd = float(alphastd)
        self.scale = scale
        self.coeff = self.eigval.clamp_min(0).sqrt() if scale == "sqrt" else self.eigval

    @classmethod
    def of(cls, plan: AugPlan | None) -> "PCALighting | None":
        """The lighting of ``plan`` (None when it has none)."""
        if plan is None or not plan.lighting:
            return None
        return cls(plan.eigval, plan.eigvec, plan.lighting, scale=plan.lighting_scale)

    @staticmethod
    def add_shift(x: torch.Tensor, shift: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
        """uint8 ``x`` plus ``255 · shift`` (RGB shifts for [0, 1] pixels, viewed as ``shape`` to
        broadcast over ``x``), rounded and clamped back to uint8: one image or a whole batch."""
        return x.float().add_(shift.mul(255.0).view(*shape)).round_().clamp_(0, 255).to(torch.uint8)

    def shift(self) -> torch.Tensor:
        """One random RGB shift (for [0, 1] pixel values), drawn from torch's global RNG."""
        alpha = torch.randn(3) * self.alphastd
        return self.eigvec @ (alpha * self.coeff)

    def shift_from(self, normal: Any) -> torch.Tensor:
        """The RGB shift for given N(0, 1) draws (``[3]``, or ``[B, 3]`` → ``[B, 3]``): the batched
        paths (cache, GPU) draw them from their own per-sample seeds."""
        z = torch.as_tensor(normal, dtype=torch.float32)
        return (z * self.alphastd * self.coeff) @ self.eigvec.T

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if self.alphastd == 0:
            return img
        if img.shape[-3] != 3:
            raise ValueError(f"PCA lighting needs a 3-channel image, not {img.shape[-3]}")
        rgb = self.shift()
        if img.dtype == torch.uint8:
            return self.add_shift(img, rgb, (3, 1, 1))
        return img + rgb.view(3, 1, 1).to(img.dtype)

    def __repr__(self) -> str:
        return (f"PCALighting(eigval={[round(v, 4) for v in self.eigval.tolist()]}, alphastd={self.alphastd}, "
                f"scale={self.scale})")


class TenCrop:
    """The four corner crops and the centre crop, then the horizontal mirror of each, stacked as
    ``[10, C, H, W]``: order top-left, top-right, bottom-left, bottom-right, centre, then the
    mirrors in the same order (index ``k + 5`` is the mirror of crop ``k``).

    Our own, because ``torchvision``'s ``ten_crop`` takes the five crops of the mirrored *image*,
    so there the sixth crop is the mirror of the top-right crop, not of the top-left one.

    ``mirror=False`` gives the five unmirrored crops only (``[5, C, H, W]``): for a model that
    never saw a mirrored image in training (digits), mirrored crops are images of other symbols.

    A crop as large as the image (a 28×28 image on a 28×28 model, `ten_crop_coincides`): the five
    crops are one and the same, so ten-crop is the centre crop and its mirror, five times each.
    The stack keeps its ten views: the averaged softmax is then exactly that of the centre crop
    and its mirror, so the numbers are honest and every caller sees one shape; what would not be
    honest is calling them ten-crop, so `train` and `evaluate` print `ten_crop_note` once.
    """

    def __init__(self, size: Sequence[int], mirror: bool = True):
        self.h, self.w = int(size[0]), int(size[1])
        self.mirror = bool(mirror)

    def boxes(self, height: int, width: int) -> list[tuple[int, int]]:
        """``(top, left)`` of the five crops in an image of ``height``×``width``."""
        h, w = self.h, self.w
        if h > height or w > width:
            raise ValueError(f"crop {h}×{w} is larger than the image {height}×{width}")
        ct, cl = int(round((height - h) / 2.0)), int(round((width - w) / 2.0))
        return [(0, 0), (0, width - w), (height - h, 0), (height - h, width - w), (ct, cl)]

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        crops = [img[..., t:t + self.h, l:l + self.w] for t, l in self.boxes(*img.shape[-2:])]
        if self.mirror:
            crops += [c.flip(-1) for c in crops]
        return torch.stack(crops)

    def __repr__(self) -> str:
        return f"TenCrop(({self.h}, {self.w}){'' if self.mirror else ', mirror=False'})"


def ten_crop_coincides(cfg: Any) -> bool:
    """Whether ten-crop under ``cfg`` degenerates: the square the crops are cut from (short side →
    ``resize``, centre ``max(resize, H, W)`` square) is the crop itself, so the four corners and the
    centre are the same H×W view (§4.1 cuts 224×224 crops from a 256×256 square)."""
    _, h, w = input_size(cfg)
    resize = int(getattr(cfg, "resize", None) or h)
    return max(resize, h, w) == h == w


def ten_crop_note(cfg: Any, mirror: bool = True) -> str | None:
    """The one line that says what ten-crop really is under ``cfg`` when its crops coincide
    (`ten_crop_coincides`), else None. ``mirror``: whether the mirrored crops are taken."""
    if not ten_crop_coincides(cfg):
        return None
    _, h, w = input_size(cfg)
    if mirror:
        return (f"note: ten-crop on a {h}×{w} network that sees the whole {h}×{w} image is only the centre crop "
                f"and its mirror (the five crops coincide): its scores are those two views averaged")
    return (f"note: five-crop on a {h}×{w} network that sees the whole {h}×{w} image is only the centre crop "
            f"(the five crops coincide): its scores are the centre crop's")


def crops_note(cfg: Any, mirror: bool = True) -> str | None:
    """What ``--ten-crop`` averages when it is not ten distinct views, for evaluate and predict: the
    crops coincide (`ten_crop_note`), or the mirrored ones are left out (a model trained without flips)."""
    return ten_crop_note(cfg, mirror) or (None if mirror else (
        "note: ten-crop without its 5 mirrored crops — the model was trained without flips, so mirrored "
        "crops would be images it never saw (five crops are averaged)"))


class ImageTransform:
    """A picklable pipeline of uint8 → uint8 steps, with what a dataset needs to know about it.

    ``decode_short_side``: the short side the first resize goes to; datasets pass it to
    `decode_image` so large JPEGs are decoded at reduced size.
    """

    def __init__(self, steps: list[Callable], *, name: str, decode_short_side: int | None = None,
                 plan: AugPlan | None = None):
        self.steps = list(steps)
        self.name = name
        self.decode_short_side = decode_short_side
        # What the steps do, as data, for the batched paths (cache `get_batch`, GPU batches);
        # None for ten-crop, which only the per-image path runs
        self.plan = plan

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        for step in self.steps:
            img = step(img)
        return img

    def __repr__(self) -> str:
        inner = "".join(f"\n    {s!r}," for s in self.steps)
        return f"ImageTransform[{self.name}]({inner}\n)"


def resolve_aug(cfg: Any, aug: str) -> str:
    """The concrete recipe ``auto`` stands for under ``cfg`` on the per-image path
    (`AugPlan.concrete`)."""
    return AugPlan.concrete(aug, cfg, "cpu")


def trains_with_flips(cfg: Any, aug: str | AugPlan) -> bool:
    """Whether training with recipe ``aug`` (a name or an `AugPlan`) under ``cfg`` mirrors images:
    the plan's ``flip`` (never for 1-channel models, except with the whole-batch augmentations of
    ``--resident``, which flip what they are given). A name only ``--resident`` runs is resolved
    for that path, any other for the per-image path (where ``auto`` is small or paper)."""
    if isinstance(aug, AugPlan):
        return aug.flip
    AugPlan.describe(aug)  # an unknown name: one line listing them all
    path = "cpu" if aug in AugPlan.names("cpu") else "resident"
    return AugPlan.resolve(aug, cfg, path=path, alphastd=0).flip


def build_transforms(cfg: Any, train: bool, *, aug: str | AugPlan = "auto", ten_crop: bool = False,
                     pca: Any = None, alphastd: float = 0.1, mirror: bool | None = None,
                     pca_scale: str = "sqrt") -> ImageTransform:
    """The uint8 → uint8 transform for training (``train=True``, recipe ``aug``: a name, or an
    `AugPlan` already resolved for ``cfg``, whose lighting then replaces ``pca``, ``alphastd`` and
    ``pca_scale``) or evaluation.

    ``pca``: eigen-decomposition for PCA lighting (``paper`` recipe only): None for ImageNet's
    published values, a dict, or the path of a ``pca-stats`` JSON file; ``pca_scale``: ``sqrt`` or
    ``eigval`` (see `PCALighting`). ``ten_crop``: eval only; the transform then returns
    ``[10, C, H, W]``, or ``[5, C, H, W]`` without the mirrored crops when ``mirror`` is False
    (default: mirror unless the model has one channel, as training does).
    """
    c, h, w = input_size(cfg)
    resize = int(getattr(cfg, "resize", None) or h)
    given = aug if isinstance(aug, AugPlan) else None
    kind = (given.name if given else resolve_aug(cfg, aug)) if train else "none"
    if kind == "none" and ten_crop:
        mirror = (c != 1) if mirror is None else bool(mirror)
        steps = [ToChannels(c), T.Resize(resize, antialias=True), T.CenterCrop(max(resize, h, w)),
                 TenCrop((h, w), mirror)]
        return ImageTransform(steps, name="eval-ten-crop" if mirror else "eval-five-crop", decode_short_side=resize)
    if ten_crop:
        raise UserError("ten-crop is an evaluation transform; it cannot be combined with training")
    plan = given if given and train else AugPlan.resolve(kind, cfg, pca=pca, alphastd=alphastd, pca_scale=pca_scale)
    return ImageTransform([ToChannels(c), *plan_steps(plan)], name=f"train-{kind}" if train else "eval",
                          decode_short_side=resize, plan=plan)


def plan_steps(plan: AugPlan) -> list[Callable]:
    """The per-image steps that carry out ``plan`` after `ToChannels`: torchvision's ``Resize``,
    ``CenterCrop``, ``RandomCrop`` and ``RandomHorizontalFlip``, then `PCALighting`. The batched
    paths (`augment_batch`, `CacheDataset.get_batch`) read the same plan."""
    h, w = plan.size
    resize = T.Resize(plan.resize, antialias=True)
    flip = [T.RandomHorizontalFlip()] if plan.flip else []
    if plan.name == "none":
        return [resize, T.CenterCrop((h, w))]
    if plan.name == "paper":
        lighting = PCALighting.of(plan)
        return [resize, T.CenterCrop(plan.center), T.RandomCrop((h, w), pad_if_needed=True), *flip,
                *([lighting] if lighting is not None else [])]
    if plan.name == "light":
        return [resize, T.RandomCrop((h, w), pad_if_needed=True), *flip]
    if plan.name == "small":
        return [resize, T.CenterCrop((h, w)), T.RandomCrop((h, w), padding=plan.pad), *flip]
    raise UserError(f"--aug {plan.name} augments whole batches held in memory (--resident), not one image at a time")


class Normalizer(nn.Module):
    """uint8 (or float) images, values 0‥255, channel dim at -3 (``[C,H,W]``, ``[B,C,H,W]``,
    ``[B,10,C,H,W]``), on any device → float32.

    - ``meanstd`` (torchvision convention): ``(x / 255 - mean) / std``;
    - ``pixelmean`` (paper §2: "subtracting the mean activity over the training set from each
      pixel"): ``x - 255 * mean``, in raw 0‥255 pixel units as in the paper, whose weight
      initialisation and LRN constants assume that scale.
    """

    MODES = ("meanstd", "pixelmean")

    def __init__(self, mean: Sequence[float], std: Sequence[float] | None = None, mode: str = "meanstd"):
        super().__init__()
        if mode not in self.MODES:
            raise UserError(f"unknown normalisation {mode!r}; choose one of {', '.join(self.MODES)}")
        self.mode = mode
        mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(-1, 1, 1)
        std_t = torch.as_tensor(std if std is not None else [1.0] * mean_t.numel(),
                                dtype=torch.float32).reshape(-1, 1, 1)
        if mode == "pixelmean":
            scale, shift = torch.ones_like(std_t), -255.0 * mean_t
        else:
            scale, shift = 1.0 / (255.0 * std_t), -mean_t / std_t
        # x * scale + shift; not persistent, so a model wrapped with it keeps its state_dict
        self.register_buffer("scale", scale, persistent=False)
        self.register_buffer("shift", shift, persistent=False)

    def forward(self, x: torch.Tensor, lighting: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` normalised; with ``lighting`` (float ``[B, C]``: each image's RGB shift for [0, 1]
        pixels, `LitBatch`) ``x + 255 · lighting`` normalised: PCA lighting (§4.1) folded into
        the same multiply-add, one offset per image and channel, at no extra pass over the
        pixels. Not rounded or clipped, unlike `PCALighting.add_shift` on uint8 images."""
        c = self.scale.shape[0]
        if x.shape[-3] != c:
            raise ValueError(f"Normalizer for {c} channels got a {x.shape[-3]}-channel input")
        shift = self.shift
        if lighting is not None:  # (x + 255·s)·scale + shift = x·scale + (shift + 255·s·scale)
            shift = shift + lighting.to(self.scale).mul(255.0).view(x.shape[0], c, 1, 1) * self.scale
        return x.float().mul(self.scale).add_(shift)  # keeps x's memory format (channels_last)

    def extra_repr(self) -> str:
        return f"mode={self.mode}, channels={self.scale.shape[0]}"


def normalizer_for(cfg: Any, mode: str = "meanstd") -> Normalizer:
    """The `Normalizer` for a model cfg (mean/std averaged to one value for 1-channel inputs
    whose cfg lists three)."""
    c = input_size(cfg)[0]
    mean, std = list(cfg.mean), list(cfg.std)
    if len(mean) != c:
        if c == 1:
            mean, std = [sum(mean) / len(mean)], [math.sqrt(sum(s * s for s in std) / len(std))]
        elif len(mean) == 1:
            mean, std = mean * c, std * c
        else:
            raise UserError(f"cfg has {len(mean)} mean values for a {c}-channel input")
    return Normalizer(mean, std, mode)


__all__ = ["AUGS", "SMALL_MAX", "IMAGENET_PCA", "PCA_SCALES", "AugPlan", "ImageTransform", "Normalizer",
           "PCALighting", "TenCrop", "ToChannels", "build_transforms", "load_pca", "normalizer_for", "plan_steps",
           "resolve_aug", "ten_crop_coincides", "ten_crop_note", "trains_with_flips"]
