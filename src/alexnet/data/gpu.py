"""The device data path (``alexnet train --data-device cuda``): the CPU only reads bytes.

`DeviceBatchLoader` iterates like `build_loader`'s loader (``images, labels, bad``; ``.sampler`` is a
`ResumableSampler`, so resume and DDP sharding work the same), but its worker processes only read
each file's bytes into (pinned) memory. The main process then

1. copies the bytes to the device (``non_blocking``) and decodes the batch's JPEGs there with one
   ``torchvision.io.decode_jpeg(list, device=...)`` call (nvJPEG on CUDA); other formats, and JPEGs
   the batched call refuses, are decoded one by one on the CPU (`decode_image`) and copied over;
   files that cannot be decoded are left out of the batch and reported in ``bad``;
2. runs the transform's `AugPlan` (`ImageTransform.plan`) with `augment_batch`: per image the resize of
   the short side (images differ in size, so this step is one kernel per image), then the crop and
   flip, stacked into one batch, then PCA lighting on the whole uint8 batch at once.

Normalisation is left to the training step (`Normalizer`), as on the CPU path. Nothing here waits
for the device (no ``.item()``, no ``.cpu()``): the random draws are made on the host, from the
same per-sample seeds ``(seed, epoch, index)`` and in the same order as the CPU path's
``RandomCrop`` → ``RandomHorizontalFlip`` → `PCALighting`, so the two paths cut the same crops.

Everything is device-agnostic: with ``device="cpu"`` it runs (and is tested) on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
import torchvision.transforms.v2.functional as F
from torch.utils.data import DataLoader, Dataset

from ..core.errors import UserError
from .augment import AugPlan
from .decode import BadImageError, decode_image
from .loader import Batch, BadSample, ResumableSampler, mix_seed
from .transforms import PCALighting, ToChannels

_JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass(frozen=True)
class Draws:
    """One image's random draws: crop ``top``/``left``, ``flip``, lighting ``alpha`` (3 N(0, 1) values or None)."""

    top: int = 0
    left: int = 0
    flip: bool = False
    alpha: torch.Tensor | None = None


def sample_params(plan: AugPlan, height: int, width: int, seed: int) -> Draws:
    """The random draws of the CPU path's training transform for one image, from ``seed``: crop
    ``top``/``left`` (in the ``height``×``width`` image the random crop sees, after its padding),
    ``flip`` and the lighting draw ``alpha``. Same generator, same order, same conditions as
    torchvision's ``RandomCrop``/``RandomHorizontalFlip`` and `PCALighting` under the seed
    `SafeDataset` gives the sample."""
    if plan.name == "none":
        return Draws()
    g = torch.Generator().manual_seed(int(seed))
    h, w = plan.size
    if plan.name == "small":  # RandomCrop(padding=pad)
        ph, pw = height + 2 * plan.pad, width + 2 * plan.pad
    else:  # RandomCrop(pad_if_needed=True): a short side is padded by the shortfall on both sides
        ph, pw = height + 2 * max(0, h - height), width + 2 * max(0, w - width)
    top = int(torch.randint(0, ph - h + 1, size=(), generator=g)) if ph > h else 0
    left = int(torch.randint(0, pw - w + 1, size=(), generator=g)) if pw > w else 0
    flip = bool(torch.rand(1, generator=g) < 0.5) if plan.flip else False
    alpha = torch.randn(3, generator=g) if plan.lighting else None
    return Draws(top, left, flip, alpha)


def augment_one(img: torch.Tensor, plan: AugPlan, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One image (uint8 ``[C, H, W]`` on any device) through the plan's resize, crops and flip;
    returns it and its lighting draw (applied to the batch by `augment_batch`)."""
    img = ToChannels(plan.channels)(img)
    h, w = plan.size
    img = F.resize(img, plan.resize, antialias=True)
    kind = plan.name
    if kind in ("none", "small"):
        img = F.center_crop(img, [h, w])
    elif kind == "paper":
        img = F.center_crop(img, [plan.center, plan.center])
    p = sample_params(plan, *img.shape[-2:], seed)
    if kind == "small":
        pad = plan.pad
        img = F.pad(img, [pad, pad, pad, pad])
    elif kind in ("paper", "light"):
        dh, dw = max(0, h - img.shape[-2]), max(0, w - img.shape[-1])
        if dh or dw:  # RandomCrop(pad_if_needed=True)
            img = F.pad(img, [dw, dh, dw, dh])
    img = img[..., p.top:p.top + h, p.left:p.left + w]
    if p.flip:
        img = img.flip(-1)
    return img, p.alpha


def augment_batch(images: Sequence[torch.Tensor], plan: AugPlan, seeds: Sequence[int]) -> torch.Tensor:
    """Images (uint8 ``[C, H, W]``, any sizes, one device) → the plan's uint8 ``[B, C, h, w]`` batch.

    Per image: resize, crop, flip (`augment_one`); then one stack and PCA lighting on the whole
    batch (``x + 255 · shift``, rounded and clamped, as `PCALighting` does per image)."""
    outs, alphas = zip(*(augment_one(im, plan, s) for im, s in zip(images, seeds)))
    x = torch.stack(list(outs))
    pca = PCALighting.of(plan)
    if pca is not None and alphas[0] is not None:
        shift = pca.shift_from(torch.stack(list(alphas))).to(x.device, non_blocking=True)  # [B, 3]
        x = PCALighting.add_shift(x, shift, (-1, 3, 1, 1))
    return x


# ----------------------------------------------------------------------------- the loader

class _Bytes(Dataset):
    """``(index, epoch)`` → ``(encoded bytes or decoded uint8 image, label, index, epoch, path)``."""

    def __init__(self, dataset: Any):
        self.dataset = dataset
        base, idx = dataset, None
        if hasattr(dataset, "base") and hasattr(dataset, "indices"):  # SubsetDataset
            base, idx = dataset.base, dataset.indices
        self.base, self.idx = base, idx
        self.targets = list(dataset.targets)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Any, int, int, int, str]:
        i, epoch = int(key[0]), int(key[1])
        j = self.idx[i] if self.idx is not None else i
        path = self.base.samples_path(j)
        try:
            if hasattr(self.base, "samples"):  # files: read, do not decode
                with open(self.base.samples[j][0], "rb") as f:
                    data: Any = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)
            elif getattr(self.base, "format", None) == "jpeg":  # a jpeg cache
                data = torch.from_numpy(self.base.jpeg_bytes(j).copy())
            else:  # in memory or a raw cache: already pixels
                data = self.base.load(j)
        except OSError as e:
            data = f"unreadable ({e.strerror})"
        return data, self.targets[i], i, epoch, path


def _collate(items: list) -> list:
    return items


class DeviceBatchLoader:
    """Training batches decoded and augmented on ``device`` (see the module docstring).

    ``dataset``: files (folders, lists, ImageNet), a cache, or an in-memory set, with the transform
    from `build_transforms` (its `AugPlan`, ``transform.plan``, is what runs on the device). ``pin_memory`` defaults to
    True on CUDA.
    """

    def __init__(self, dataset: Any, *, batch_size: int, device: torch.device | str, train: bool = True,
                 workers: int = 0, seed: int = 0, rank: int = 0, world_size: int = 1,
                 drop_last: bool | None = None, pin_memory: bool | None = None):
        self.device = torch.device(device)
        self.plan: AugPlan | None = getattr(dataset.transform, "plan", None)
        if self.plan is None or not self.plan.runs_on("gpu"):
            raise UserError("the device data path needs a transform from build_transforms (ten-crop is not supported)")
        self.dataset, self.batch_size, self.seed = dataset, int(batch_size), int(seed)
        self.sampler = ResumableSampler(len(dataset), shuffle=train, seed=seed, rank=rank, world_size=world_size,
                                        pad=train)
        if drop_last is None:
            drop_last = train and len(self.sampler) >= batch_size
        pin = self.device.type == "cuda" if pin_memory is None else bool(pin_memory)
        kw: dict[str, Any] = {"persistent_workers": True} if workers > 0 else {}
        self._loader = DataLoader(_Bytes(dataset), batch_size=batch_size, sampler=self.sampler,
                                  num_workers=max(0, int(workers)), collate_fn=_collate, drop_last=drop_last,
                                  pin_memory=pin, generator=torch.Generator().manual_seed(mix_seed(seed, 0x10AD)),
                                  **kw)

    def __len__(self) -> int:
        return len(self._loader)

    def __iter__(self) -> Iterator[Batch]:
        for items in self._loader:
            yield self._device_batch(items)

    def _device_batch(self, items: list) -> Batch:
        dev = self.device
        bad: list[BadSample] = []
        decoded: dict[int, torch.Tensor] = {}
        jpegs = []
        for k, (data, _, _, _, path) in enumerate(items):
            if isinstance(data, str):
                bad.append(BadSample(path, data))
            elif data.dim() == 1 and bytes(data[:3].tolist()) == _JPEG_MAGIC:
                jpegs.append(k)
            elif data.dim() == 1:  # PNG, BMP, …: the CPU decoder
                try:
                    decoded[k] = decode_image(data.numpy().tobytes(), name=path).to(dev, non_blocking=True)
                except BadImageError as e:
                    bad.append(BadSample(path, e.reason))
            else:
                decoded[k] = data.to(dev, non_blocking=True)
        if jpegs:
            decoded.update(self._decode_jpegs(items, jpegs, bad))
        keep = [k for k in range(len(items)) if k in decoded]
        if not keep:
            return Batch(torch.empty(0, dtype=torch.uint8, device=dev), torch.empty(0, dtype=torch.int64, device=dev),
                         bad)
        seeds = [mix_seed(self.seed, items[k][3], items[k][2]) for k in keep]
        x = augment_batch([decoded[k] for k in keep], self.plan, seeds)
        labels = torch.tensor([items[k][1] for k in keep], dtype=torch.int64)
        if dev.type == "cuda":
            labels = labels.pin_memory()
        return Batch(x, labels.to(dev, non_blocking=True), bad)

    def _decode_jpegs(self, items: list, ks: list[int], bad: list[BadSample]) -> dict[int, torch.Tensor]:
        from torchvision.io import ImageReadMode, decode_jpeg

        data = [items[k][0] for k in ks]
        try:
            out = decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device)
            return dict(zip(ks, out))
        except RuntimeError:
            pass  # one bad (or CMYK, progressive on some nvJPEG versions) file fails the whole call
        got = {}
        for k, d in zip(ks, data):
            try:
                got[k] = decode_jpeg(d, mode=ImageReadMode.RGB, device=self.device)
            except RuntimeError:
                try:
                    got[k] = decode_image(d.numpy().tobytes(), name=items[k][4]).to(self.device, non_blocking=True)
                except BadImageError as e:
                    bad.append(BadSample(items[k][4], e.reason))
        return got


def check_data_device(name: str) -> torch.device | None:
    """``--data-device``: None for ``cpu`` (the default path); the device otherwise, or a one-line
    `UserError` when it is not there."""
    if name in (None, "", "cpu"):
        return None
    dev = torch.device(name)
    if dev.type != "cuda":
        raise UserError(f"--data-device must be cpu or cuda[:N], not {name!r}")
    if not torch.cuda.is_available():
        raise UserError("--data-device cuda needs a CUDA GPU, and torch sees none here; leave it out to load data "
                        "on the CPU")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UserError(f"--data-device {name}: there are only {torch.cuda.device_count()} CUDA devices")
    return dev


__all__ = ["DeviceBatchLoader", "Draws", "augment_batch", "augment_one", "sample_params", "check_data_device"]
