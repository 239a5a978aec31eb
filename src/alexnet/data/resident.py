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
  the borders reflected (the usual pad-and-crop, done as 25 masked copies for 2 pixels).

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
from .loader import Batch, BadSample, ResumableSampler, build_loader, mix_seed

AUGS = AugPlan.names("resident", auto=False)  # what ResidentLoader runs (``auto`` is resolved before it)


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


def flip_mask(n: int, epoch: int, seed: int) -> torch.Tensor:
    """Which images are mirrored in ``epoch``: a fixed random half (from ``seed``) in even epochs,
    the other half in odd ones."""
    g = torch.Generator().manual_seed(mix_seed(seed, 0xF11B))
    base = torch.rand(n, generator=g) < 0.5
    return base ^ bool(epoch % 2)


class ResidentLoader:
    """Batches from images held in memory; see the module docstring. ``aug``: none, flip or
    flip-translate (``translate`` pixels), or an `AugPlan` of one of them (resolved with
    ``path="resident"``; its ``translate`` then replaces the argument). ``mirror_views`` (evaluation): batches ``[B, 2, C, H, W]``
    of each image and its mirror, whose softmaxes `evaluate` averages (for images no larger than the
    network's input, ten-crop is these two views five times over)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int, train: bool,
                 aug: str | AugPlan = "none", translate: int = 2, seed: int = 0, rank: int = 0,
                 world_size: int = 1, mirror_views: bool = False):
        if isinstance(aug, AugPlan):
            aug, translate = aug.name, aug.translate
        if aug not in AUGS:
            raise ValueError(f"unknown resident augmentation {aug!r} (choose from {', '.join(AUGS)})")
        self.images, self.labels = images, labels.to(images.device)  # batches are indexed where the images are
        self.batch_size, self.train, self.aug, self.pad, self.seed = batch_size, train, aug, translate, seed
        self.mirror_views = mirror_views  # evaluation: each item is [2, C, H, W], the image and its mirror
        self.sampler = ResumableSampler(len(labels), shuffle=train, seed=seed, rank=rank, world_size=world_size,
                                        pad=train)
        self.drop_last = train and len(self.sampler) >= batch_size
        self._cache: tuple[int, torch.Tensor] | None = None  # (epoch, augmented images)
        self.aug_seconds = 0.0

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch_images(self, epoch: int) -> torch.Tensor:
        """The whole set as augmented for ``epoch`` (uint8, computed once per epoch)."""
        if not self.train or self.aug == "none":
            return self.images
        if self._cache is None or self._cache[0] != epoch:
            t = time.perf_counter()
            self._cache = None  # free the previous epoch's copy first
            x = self.images
            if self.aug == "flip-translate":
                x = translate(x, self.pad, torch.Generator().manual_seed(mix_seed(self.seed, epoch, 0x7A)))
            m = flip_mask(len(x), epoch, self.seed).to(x.device)
            x = x.clone() if x is self.images else x
            x[m] = x[m].flip(-1)
            self._cache = (epoch, x)
            self.aug_seconds += time.perf_counter() - t
        return self._cache[1]

    def __iter__(self) -> Iterator[Batch]:
        s = self.sampler
        order = torch.as_tensor(s.indices(s.epoch)[s.position:], dtype=torch.int64).to(self.images.device)
        images = self.epoch_images(s.epoch)
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
            yield Batch(x, self.labels[idx], [])

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict()
