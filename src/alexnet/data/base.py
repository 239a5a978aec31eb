"""The dataset base classes every kind builds on, and the seeded train/validation split.

Below every dataset kind (folders, lists, ImageNet, the built-in in-memory sets, the cache) and below
the factory `alexnet.data.datasets.build_dataset`, which sits above them all (docs/architecture.md:
arrows point down; no module here imports a dataset kind or the factory).
"""

from __future__ import annotations

import random
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..core.errors import UserError
from .decode import DEFAULT_MAX_PIXELS, decode_image
from .samples import SampleList


class NoValidationPart(UserError):
    """The validation split was asked of data that has none: no val/ folder or list, and a
    ``--val-split`` of 0 (a caller that knows why, such as `evaluate` on such a run, says more)."""

IMG_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".ppm", ".bmp", ".pgm", ".pbm", ".tif", ".tiff", ".webp",
                  ".gif")
VAL_NAMES = ("val", "validation", "valid", "test")


class ImageDataset(Dataset):
    """Base of every dataset here: ``classes``, ``class_ids``, ``targets``, ``transform``."""

    def __init__(self, classes: Sequence[str], class_ids: Sequence[str] | None = None,
                 transform: Callable | None = None, name: str = "", split: str = "train"):
        self.classes = list(classes)
        self.class_ids = list(class_ids) if class_ids is not None else list(self.classes)
        self.transform = transform
        self.name = name
        self.split = split
        self.slice_note = ""  # which seeded slice of the data this is, when it is one (see take_split)

    _targets: list[int]  # set by subclasses that hold their labels as a list

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def targets(self) -> list[int]:
        return self._targets

    def load(self, i: int) -> torch.Tensor:
        """Sample ``i``'s image before the transform (uint8 ``[C, H, W]``)."""
        raise NotImplementedError

    def samples_path(self, i: int) -> str:
        raise NotImplementedError

    def __getitem__(self, i: int) -> tuple[Any, int]:
        img = self.load(i)
        return (self.transform(img) if self.transform is not None else img), self.targets[i]

    def class_counts(self) -> list[int]:
        return np.bincount(np.asarray(self.targets, dtype=np.int64), minlength=len(self.classes)).tolist()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.name!r}, split={self.split!r}, {len(self)} images, "
                f"{len(self.classes)} classes)")


class FileDataset(ImageDataset):
    """Images in files, ``samples = [(path, label), …]`` (held as a compact `SampleList`: ImageNet's
    1.28 million paths in tens of MB, not hundreds), decoded by `decode_image`.

    Large JPEGs are decoded at reduced size when the transform says which short side it wants
    (``transform.decode_short_side``, set by `build_transforms`).
    """

    def __init__(self, samples: Sequence[tuple[str, int]], classes: Sequence[str],
                 class_ids: Sequence[str] | None = None, transform: Callable | None = None,
                 name: str = "", split: str = "train", max_pixels: int | None = DEFAULT_MAX_PIXELS):
        super().__init__(classes, class_ids, transform, name, split)
        self.samples = SampleList(samples)
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def targets(self) -> list[int]:
        return self.samples.labels.tolist()

    def class_counts(self) -> list[int]:
        return np.bincount(self.samples.labels, minlength=len(self.classes)).tolist()

    def samples_path(self, i: int) -> str:
        return self.samples.path(i)

    def load(self, i: int) -> torch.Tensor:
        return decode_image(self.samples.path(i), max_pixels=self.max_pixels,
                            target_short_side=getattr(self.transform, "decode_short_side", None))

    def __getitem__(self, i: int) -> tuple[Any, int]:
        img = self.load(i)
        return (self.transform(img) if self.transform is not None else img), int(self.samples.labels[i])


def concat_splits(a: ImageDataset, b: ImageDataset) -> ImageDataset:
    """Both splits of a dataset as one (``split="all"``)."""
    if isinstance(a, FileDataset) and isinstance(b, FileDataset):
        ds: ImageDataset = FileDataset(a.samples + b.samples, a.classes, a.class_ids, a.transform, a.name, "all",
                                       a.max_pixels)
    elif isinstance(a, TensorImageDataset) and isinstance(b, TensorImageDataset):
        ds = TensorImageDataset(torch.cat([a.images, b.images]), a.targets + b.targets, a.classes, a.transform,
                                a.name, "all")
    else:
        raise UserError(f"{a.name}: --split all is not available for this dataset; use train or val")
    ds.slice_note = ""
    return ds


class TensorImageDataset(ImageDataset):
    """Images held in memory as one uint8 ``[N, C, H, W]`` tensor (CIFAR-10, MNIST, digits)."""

    def __init__(self, images: torch.Tensor, targets: Sequence[int], classes: Sequence[str],
                 transform: Callable | None = None, name: str = "", split: str = "train"):
        super().__init__(classes, None, transform, name, split)
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError("images must be a uint8 [N, C, H, W] tensor")
        self.images = images
        self._targets = [int(t) for t in targets]

    def samples_path(self, i: int) -> str:
        return f"{self.name}[{self.split}]#{i}"

    def load(self, i: int) -> torch.Tensor:
        return self.images[i].clone()  # not a view: workers would send the whole storage


# ----------------------------------------------------------------------------- splits

class SubsetDataset(ImageDataset):
    """Images ``indices`` of ``base`` (its classes, transform and file paths), e.g. a stratified
    sample of a training split (`take_subset`)."""

    def __init__(self, base: ImageDataset, indices: Sequence[int]):
        super().__init__(base.classes, base.class_ids, base.transform, base.name, base.split)
        self.base, self.indices = base, [int(i) for i in indices]
        all_targets = base.targets
        self._targets = [all_targets[i] for i in self.indices]

    def samples_path(self, i: int) -> str:
        return self.base.samples_path(self.indices[i])

    def load(self, i: int) -> torch.Tensor:
        self.base.transform = self.transform  # decode hints (short side) follow this dataset's transform
        return self.base.load(self.indices[i])

    def get_batch(self, indices: Sequence[int], seeds: Sequence[int], **kwargs: Any) -> Any:
        """The base's batched path (a cache's), when it has one; None otherwise."""
        fn = getattr(self.base, "get_batch", None)
        if fn is None:
            return None
        self.base.transform = self.transform
        return fn([self.indices[int(i)] for i in indices], seeds, **kwargs)


class RelabelledDataset(ImageDataset):
    """``base`` with its labels put in another list of classes, ``classes``: label ``t`` becomes
    ``remap[t]`` (a test folder holding some of a model's classes, or its classes in another order,
    scored against the model's outputs). Images, paths and transform are the base's."""

    def __init__(self, base: ImageDataset, remap: Sequence[int], classes: Sequence[str]):
        super().__init__(classes, None, base.transform, base.name, base.split)
        self.base, self.remap = base, [int(r) for r in remap]
        self._targets = [self.remap[t] for t in base.targets]
        self.slice_note = base.slice_note

    def samples_path(self, i: int) -> str:
        return self.base.samples_path(i)

    def load(self, i: int) -> torch.Tensor:
        self.base.transform = self.transform  # decode hints (short side) follow this dataset's transform
        return self.base.load(i)


def take_subset(dataset: ImageDataset, n: int, seed: int = 0) -> ImageDataset:
    """A stratified, seeded sample of ``n`` images of ``dataset`` (every class in proportion, as
    `split_indices` draws a hold-out); the dataset itself when ``n`` is 0 or not smaller."""
    if n < 0:
        raise UserError(f"--train-subset must be non-negative, not {n}")
    if n == 0 or n >= len(dataset):
        return dataset
    return SubsetDataset(dataset, stratified_sample(dataset.targets, n, seed))


def stratified_sample(targets: Sequence[int], n: int, seed: int) -> list[int]:
    """Exactly ``n`` indices, each class's share in proportion to its size (largest remainders get
    the rounding's leftovers, ties to the lower label), drawn in the same seeded order as
    `split_indices` (so a class whose share rounds the same gets the same images); sorted."""
    by_class: dict[int, list[int]] = {}
    for i, t in enumerate(targets):
        by_class.setdefault(int(t), []).append(i)
    total = sum(len(v) for v in by_class.values())
    quotas = {label: n * len(idx) / total for label, idx in by_class.items()}
    counts = {label: int(q) for label, q in quotas.items()}
    for label in sorted(quotas, key=lambda c: (counts[c] - quotas[c], c))[:n - sum(counts.values())]:
        counts[label] += 1
    keep: list[int] = []
    for label, idx in sorted(by_class.items()):
        order = list(idx)
        random.Random(f"alexnet-split:{seed}:{label}").shuffle(order)
        keep += order[:counts[label]]
    return sorted(keep)


def split_indices(targets: Sequence[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """A stratified, seeded split: ``round(fraction · n)`` of each class (at least one, never all)
    go to validation. A pure function of (targets, fraction, seed); sorted index lists."""
    by_class: dict[int, list[int]] = {}
    for i, t in enumerate(targets):
        by_class.setdefault(int(t), []).append(i)
    train, val = [], []
    for label, idx in sorted(by_class.items()):
        n = len(idx)
        k = int(round(fraction * n))
        if fraction > 0 and n >= 2:
            k = min(max(k, 1), n - 1)
        else:
            k = 0
        order = list(idx)
        random.Random(f"alexnet-split:{seed}:{label}").shuffle(order)
        val += order[:k]
        train += order[k:]
    return sorted(train), sorted(val)


def check_fraction(val_split: float) -> float:
    """``val_split`` as a float, or a one-line error when it is not in [0, 1)."""
    if not 0.0 <= val_split < 1.0:
        raise UserError(f"--val-split must be in [0, 1), not {val_split}")
    return float(val_split)


def take_split(samples: list, targets: list[int], split: str, val_split: float, seed: int,
                what: str) -> tuple[list, str]:
    """The ``split`` part of ``samples`` and a note saying which slice it is ('' when whole)."""
    if split == "all":
        return samples, ""
    if val_split == 0:
        if split == "val":
            raise NoValidationPart(f"{what} has no validation folder or list; set a --val-split fraction "
                            f"to hold some training images out")
        return samples, ""
    train, val = split_indices(targets, val_split, seed)
    if split == "val" and not val:
        raise UserError(f"{what}: the validation split is empty — every class has a single image, and a class "
                        f"gives validation one image only when it has two or more (--val-split {val_split:g}); "
                        f"add images, or give a val/ folder beside train/")
    taken = val if split == "val" else train
    note = (f"the {val_split:.0%} validation slice held out with seed {seed}: {len(taken)} of {len(samples)} images"
            if split == "val" else f"the training part, all but the {val_split:.0%} held out for validation with "
            f"seed {seed}: {len(taken)} of {len(samples)} images")
    return (samples.take(taken) if isinstance(samples, SampleList) else [samples[i] for i in taken]), note
