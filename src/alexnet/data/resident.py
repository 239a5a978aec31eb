"""A dataset decoded once and kept in memory as uint8, augmented a whole batch at a time.

For small images (CIFAR-10: 50,000 × 3 × 32 × 32 bytes = 154 MB) decoding every JPEG again in
every epoch takes CPU time from the training step of a fast network on the same cores: on 2 CPU
cores an epoch of the ``cifar10-fast`` recipe took 53.4 s from the JPEGs (2 loader workers, PIL
pad-crop + flip) and 45.9 s resident (docs/cifar10.md). Here each image is decoded once
(`decode_all`, with the loader's workers, bad files skipped and reported), and each epoch's augmentation is a few tensor operations over the whole set:

- ``flip``: airbench's *alternating* flip — a random half of the images is mirrored in even
  epochs and the other half in odd epochs, so every image is seen both ways every two epochs
  (Jordan 2024, §3.6: more diverse than an independent coin per epoch);
- ``translate``: a shift of up to ``translate`` pixels in each direction, drawn per image, with
  the borders reflected (the usual pad-and-crop, done as 25 masked copies for 2 pixels);
- ``small``, ``paper``, ``light`` (the per-image paths' recipes, `AugPlan`): a crop of the
  network's input size at an offset drawn per image — out of the image zero-padded by ``pad``
  (``small``), or out of the larger stored centre square (``paper``, ``light``: 24×24 of 32×32,
  §4.1) — and an independent coin per image for the flip (none for one-channel models), all
  cut in one gather (`crop_at`). ``paper``'s PCA lighting (§4.1) is drawn here, one RGB shift per
  image, and added on the training device while normalising (`LitBatch`, `Normalizer`), as on the
  cache path. Evaluation of a stored set larger than the input takes its centre crop.

`ResidentLoader` then yields batches ``(images uint8 [B, C, H, W], labels, bad=[])`` in the order
of a `ResumableSampler` (the same seeds, sharding and mid-epoch resume as the streaming loader),
so the training loop cannot tell it from `build_loader`'s loader. Everything is a pure function
of ``(seed, epoch)``: a resumed run sees the same batches.

The loader works where its images are: given a set on a GPU (the pipeline's choice when the model
trains on one and the set fits, as airbench keeps CIFAR-10), the augmentation and the batch
indexing run there and no batch crosses PCIe. The random draws still come from CPU generators and
are copied over, so the batches are bit-for-bit those of the set in host memory.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator

import torch

from .augment import AugPlan
from .loader import Batch, BadSample, LitBatch, ResumableSampler, build_loader, mix_seed
from .transforms import PCALighting

AUGS = AugPlan.names("resident", auto=False)  # what ResidentLoader runs (``auto`` is resolved before it)
CROPS = ("small", "paper", "light")  # the per-image recipes, cut per image by `crop_at` (need an `AugPlan`)
FROM_CENTRE = ("paper", "light")  # crops out of the stored centre square, larger than the input (`stored_size`)


def decode_all(dataset, *, workers: int = 0, batch_size: int = 500,
               progress: Callable[[int, int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor, list[BadSample]]:
    """Every image of ``dataset`` (whose transform yields uint8 ``[C, H, W]`` tensors of one size)
    as one uint8 tensor ``[N, C, H, W]``, its labels int64 ``[N]``, and the files that could not be
    read (left out)."""
    loader = build_loader(dataset, batch_size=batch_size, train=False, workers=workers, substitute=False,
                          persistent_workers=False)
    images, labels, bad = [], [], []
    done = 0
    for batch in loader:
        bad.extend(batch.bad)
        if len(batch.labels):
            images.append(batch.images)
            labels.append(batch.labels)
        done += len(batch.labels) + len(batch.bad)
        if progress:
            progress(done, len(dataset))
    if not images:
        return torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.int64), bad
    return torch.cat(images), torch.cat(labels), bad


def translate(images: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Each image shifted by (dy, dx), each uniform in [-pad, pad], borders reflected (uint8 in,
    uint8 out, same size)."""
    if pad <= 0:
        return images
    n, _, h, w = images.shape
    rows, cols = _reflect_index(h, pad).to(images.device), _reflect_index(w, pad).to(images.device)
    padded = images[:, :, rows][:, :, :, cols]  # any dtype, no float copy
    shifts = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator).to(images.device)  # CPU draws, any device
    out = torch.empty_like(images)
    for sy in range(2 * pad + 1):
        for sx in range(2 * pad + 1):
            m = (shifts[:, 0] == sy) & (shifts[:, 1] == sx)
            if m.any():
                out[m] = padded[m, :, sy:sy + h, sx:sx + w]
    return out


def _reflect_index(n: int, pad: int) -> torch.Tensor:
    """Indices of a length-``n`` axis padded by ``pad`` on each side with reflection (as
    ``F.pad(mode="reflect")``: the edge pixel is not repeated)."""
    i = torch.arange(-pad, n + pad).abs()
    return torch.where(i >= n, 2 * (n - 1) - i, i)


def stored_size(plan: AugPlan) -> tuple[int, int]:
    """The (h, w) each image is held at for ``plan``: the centre square of side ``plan.center`` for
    the recipes that crop the input out of it (`FROM_CENTRE`; 32 for a 24-pixel input at 32), else
    the network's input size."""
    return (plan.center, plan.center) if plan.name in FROM_CENTRE else tuple(plan.size)


def crop_at(images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: tuple[int, int], *,
            flip: torch.Tensor | None = None, pad: int = 0, chunk: int = 4096) -> torch.Tensor:
    """Image i's ``size`` crop at row ``top[i]``, column ``left[i]`` of the image zero-padded by
    ``pad`` on every side, mirrored where ``flip[i]``: one gather per ``chunk`` images, any dtype,
    on the images' device (the offsets may be on the CPU)."""
    n, c = images.shape[:2]
    h, w = size
    dev = images.device
    out = torch.empty((n, c, h, w), dtype=images.dtype, device=dev)
    ch, rh, rw = (torch.arange(k, device=dev) for k in (c, h, w))
    for s in range(0, n, chunk):
        x = images[s:s + chunk]
        x = torch.nn.functional.pad(x, (pad,) * 4) if pad else x
        m = len(x)
        t, l = top[s:s + m].to(dev).view(m, 1), left[s:s + m].to(dev).view(m, 1)
        cols = l + rw
        if flip is not None:
            cols = torch.where(flip[s:s + m].to(dev).view(m, 1), cols.flip(1), cols)
        out[s:s + m] = x[torch.arange(m, device=dev).view(m, 1, 1, 1), ch.view(1, c, 1, 1),
                         (t + rh).view(m, 1, h, 1), cols.view(m, 1, 1, w)]
    return out


def center_crop(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The centre ``size`` crop of every image (torchvision's ``CenterCrop`` offsets)."""
    h, w = size
    H, W = images.shape[-2:]
    t, l = int(round((H - h) / 2.0)), int(round((W - w) / 2.0))
    return images[..., t:t + h, l:l + w]


def random_crops(images: torch.Tensor, plan: AugPlan, seed: int, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``plan``'s crops and flips (`CROPS`) of every image for ``epoch``, and the per-image RGB
    shifts of its PCA lighting (float32 ``[N, 3]``, None without lighting): a pure function of
    ``(seed, epoch)``. ``small``: offsets 0‥2·pad in the zero-padded image; ``paper``, ``light``:
    0‥(stored − input) in the stored image."""
    n, _, H, W = images.shape
    h, w = plan.size
    pad = plan.pad if plan.name == "small" else 0
    g = torch.Generator().manual_seed(mix_seed(seed, epoch, 0xC209))
    top = torch.randint(0, H + 2 * pad - h + 1, (n,), generator=g)
    left = torch.randint(0, W + 2 * pad - w + 1, (n,), generator=g)
    flip = torch.rand(n, generator=g) < 0.5 if plan.flip else None
    lighting = PCALighting.of(plan)
    shifts = lighting.shift_from(torch.randn(n, 3, generator=g)) if lighting is not None else None
    shifts = shifts.to(images.device) if shifts is not None else None  # drawn on the CPU, kept with the images
    return crop_at(images, top, left, (h, w), flip=flip, pad=pad), shifts


def flip_mask(n: int, epoch: int, seed: int) -> torch.Tensor:
    """Which images are mirrored in ``epoch``: a fixed random half (from ``seed``) in even epochs,
    the other half in odd ones."""
    g = torch.Generator().manual_seed(mix_seed(seed, 0xF11B))
    base = torch.rand(n, generator=g) < 0.5
    return base ^ bool(epoch % 2)


class ResidentLoader:
    """Batches from images held in memory; see the module docstring. ``aug``: none, flip or
    flip-translate (``translate`` pixels), or an `AugPlan` of any name in `AUGS` (resolved with
    ``path="resident"``; its ``translate`` then replaces the argument; `CROPS` need the plan, and
    the images held at `stored_size`). An evaluation loader given a plan yields the centre crop of
    images larger than the plan's input. ``mirror_views`` (evaluation): batches ``[B, 2, C, H, W]``
    of each image and its mirror, whose softmaxes `evaluate` averages (for images no larger than the
    network's input, ten-crop is these two views five times over). With PCA lighting the batches
    are `LitBatch` es."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int, train: bool,
                 aug: str | AugPlan = "none", translate: int = 2, seed: int = 0, rank: int = 0,
                 world_size: int = 1, mirror_views: bool = False):
        self.plan = aug if isinstance(aug, AugPlan) else None
        if isinstance(aug, AugPlan):
            aug, translate = aug.name, aug.translate
        if aug not in AUGS:
            raise ValueError(f"unknown resident augmentation {aug!r} (choose from {', '.join(AUGS)})")
        if train and aug in CROPS and self.plan is None:
            raise ValueError(f"resident augmentation {aug!r} needs its AugPlan (the crop size and padding)")
        self.images, self.labels = images, labels.to(images.device)  # batches are indexed where the images are
        self.batch_size, self.train, self.aug, self.pad, self.seed = batch_size, train, aug, translate, seed
        self.mirror_views = mirror_views  # evaluation: each item is [2, C, H, W], the image and its mirror
        self.sampler = ResumableSampler(len(labels), shuffle=train, seed=seed, rank=rank, world_size=world_size,
                                        pad=train)
        self.drop_last = train and len(self.sampler) >= batch_size
        self._cache: tuple[int, torch.Tensor, torch.Tensor | None] | None = None  # (epoch, images, lighting)
        self.aug_seconds = 0.0

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch_images(self, epoch: int) -> torch.Tensor:
        """The whole set as augmented for ``epoch`` (uint8, computed once per epoch)."""
        return self._epoch(epoch)[0]

    def _epoch(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``epoch``'s images and their PCA lighting shifts (None without), computed once per epoch."""
        if not self.train or self.aug == "none":
            size = tuple(self.plan.size) if self.plan is not None else None
            bigger = size is not None and tuple(self.images.shape[-2:]) != size
            return (center_crop(self.images, size) if bigger else self.images), None
        if self._cache is None or self._cache[0] != epoch:
            t = time.perf_counter()
            self._cache = None  # free the previous epoch's copy first
            x, light = self.images, None
            if self.aug in CROPS:
                x, light = random_crops(x, self.plan, self.seed, epoch)
            else:
                if self.aug == "flip-translate":
                    x = translate(x, self.pad, torch.Generator().manual_seed(mix_seed(self.seed, epoch, 0x7A)))
                m = flip_mask(len(x), epoch, self.seed).to(x.device)
                x = x.clone() if x is self.images else x
                x[m] = x[m].flip(-1)
            self._cache = (epoch, x, light)
            self.aug_seconds += time.perf_counter() - t
        return self._cache[1], self._cache[2]

    def __iter__(self) -> Iterator[Batch | LitBatch]:
        s = self.sampler
        order = torch.as_tensor(s.indices(s.epoch)[s.position:], dtype=torch.int64).to(self.images.device)
        images, lighting = self._epoch(s.epoch)
        first = s.position
        for i in range(0, len(order), self.batch_size):
            if self.drop_last and (first + i) // self.batch_size >= len(self):
                break
            idx = order[i:i + self.batch_size]
            if self.drop_last and len(idx) < self.batch_size:
                break
            x = images[idx]
            if self.mirror_views:
                x = torch.stack((x, x.flip(-1)), 1)
            if lighting is not None:
                yield LitBatch(x, self.labels[idx], [], lighting[idx])
            else:
                yield Batch(x, self.labels[idx], [])

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict()
