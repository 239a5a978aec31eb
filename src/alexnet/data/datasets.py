"""Datasets: one factory, `build_dataset(spec, split)`, for every source the system trains on.

Specs (see docs/data.md):

=====================  ==========================================================================
``digits``             scikit-learn's bundled 1,797 8×8 handwritten digits; no download
``cifar10:/path``      CIFAR-10 python batches (or ``cifar-10-python.tar.gz``, or image folders)
``mnist:/path``        MNIST idx files (``.gz`` or not; ``/path``, ``/path/raw`` or ``/path/MNIST/raw``)
``imagenet:/path``     ILSVRC-2012: ``train/<wnid>/`` + ``val/<wnid>/``, or torchvision's root
                       (devkit + ``ILSVRC2012_img_{train,val}.tar``), see `alexnet.data.imagenet`
``folder:/path``       one sub-folder per class; ``train/`` + ``val/`` (or ``test/``) if present
``list:/path/x.txt``   lines ``relative/path label``; ``classes.txt`` beside it names the labels
``/path``              a folder or list file, recognised from what is there
=====================  ==========================================================================

Every dataset has ``classes`` (human-readable names, index = label), ``class_ids`` (ImageNet's
WordNet ids; the same as ``classes`` elsewhere), ``__getitem__(i) -> (image, label)`` where the
image is whatever ``transform`` returns (without one: uint8 ``[C, H, W]``; 1 channel for digits and
MNIST, 3 otherwise) and ``samples_path(i)``, a path or identifier for reports.
"""

from __future__ import annotations

import os
import random
import re
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..core.errors import UserError
from .decode import DEFAULT_MAX_PIXELS, decode_image

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
KINDS = ("digits", "cifar10", "mnist", "imagenet", "folder", "list")
VAL_NAMES = ("val", "validation", "valid", "test")
DEFAULT_VAL_SPLIT = 0.1
DIGITS_VAL_SPLIT = 0.2


class ImageDataset(Dataset):
    """Base of every dataset here: ``classes``, ``class_ids``, ``targets``, ``transform``."""

    def __init__(self, classes: Sequence[str], class_ids: Sequence[str] | None = None,
                 transform: Callable | None = None, name: str = "", split: str = "train"):
        self.classes = list(classes)
        self.class_ids = list(class_ids) if class_ids is not None else list(self.classes)
        self.transform = transform
        self.name = name
        self.split = split
        self.slice_note = ""  # which seeded slice of the data this is, when it is one (see _take_split)

    @property
    def targets(self) -> list[int]:
        raise NotImplementedError

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
    """Images in files, ``samples = [(path, label), …]``, decoded by `decode_image`.

    Large JPEGs are decoded at reduced size when the transform says which short side it wants
    (``transform.decode_short_side``, set by `build_transforms`).
    """

    def __init__(self, samples: Sequence[tuple[str, int]], classes: Sequence[str],
                 class_ids: Sequence[str] | None = None, transform: Callable | None = None,
                 name: str = "", split: str = "train", max_pixels: int | None = DEFAULT_MAX_PIXELS):
        super().__init__(classes, class_ids, transform, name, split)
        self.samples = [(str(p), int(t)) for p, t in samples]
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def targets(self) -> list[int]:
        return [t for _, t in self.samples]

    def samples_path(self, i: int) -> str:
        return self.samples[i][0]

    def load(self, i: int) -> torch.Tensor:
        return decode_image(self.samples[i][0], max_pixels=self.max_pixels,
                            target_short_side=getattr(self.transform, "decode_short_side", None))

    def __getitem__(self, i: int) -> tuple[Any, int]:
        img = self.load(i)
        return (self.transform(img) if self.transform is not None else img), self.samples[i][1]


def _concat(a: ImageDataset, b: ImageDataset) -> ImageDataset:
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

    def __len__(self) -> int:
        return len(self._targets)

    @property
    def targets(self) -> list[int]:
        return self._targets

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

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def targets(self) -> list[int]:
        return self._targets

    def samples_path(self, i: int) -> str:
        return self.base.samples_path(self.indices[i])

    def load(self, i: int) -> torch.Tensor:
        self.base.transform = self.transform  # decode hints (short side) follow this dataset's transform
        return self.base.load(self.indices[i])


def take_subset(dataset: ImageDataset, n: int, seed: int = 0) -> ImageDataset:
    """A stratified, seeded sample of ``n`` images of ``dataset`` (every class in proportion, as
    `split_indices` draws a hold-out); the dataset itself when ``n`` is 0 or not smaller."""
    if n < 0:
        raise UserError(f"--train-subset must be non-negative, not {n}")
    if n == 0 or n >= len(dataset):
        return dataset
    _, keep = split_indices(dataset.targets, n / len(dataset), seed)
    return SubsetDataset(dataset, keep)


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


def _check_fraction(val_split: float) -> float:
    if not 0.0 <= val_split < 1.0:
        raise UserError(f"--val-split must be in [0, 1), not {val_split}")
    return float(val_split)


def _take_split(samples: list, targets: list[int], split: str, val_split: float, seed: int,
                what: str) -> tuple[list, str]:
    """The ``split`` part of ``samples`` and a note saying which slice it is ('' when whole)."""
    if split == "all":
        return samples, ""
    if val_split == 0:
        if split == "val":
            raise UserError(f"{what} has no validation folder or list; set a --val-split fraction "
                            f"to hold some training images out")
        return samples, ""
    train, val = split_indices(targets, val_split, seed)
    if split == "val" and not val:
        raise UserError(f"{what}: the validation split is empty — every class has a single image, and a class "
                        f"gives validation one image only when it has two or more (--val-split {val_split:g}); "
                        f"add images, or give a val/ folder beside train/")
    taken = val if split == "val" else train
    note = (f"the {val_split:.0%} {'validation' if split == 'val' else 'training'} slice held out with seed "
            f"{seed}: {len(taken)} of {len(samples)} images")
    return [samples[i] for i in taken], note


# ----------------------------------------------------------------------------- folders and lists

def find_classes(directory: str) -> list[str]:
    """Sorted class sub-folders, hidden ones (``.ipynb_checkpoints``) left out."""
    try:
        return sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))
    except OSError as e:
        raise UserError(f"{directory}: cannot list ({e.strerror})") from None


def scan_folder(directory: str, class_to_idx: dict[str, int]) -> list[tuple[str, int]]:
    """``(path, label)`` of every image file under ``directory/<class>/`` (torchvision's scan)."""
    from torchvision.datasets.folder import make_dataset

    return make_dataset(directory, {c: i for c, i in class_to_idx.items()
                                    if os.path.isdir(os.path.join(directory, c))},
                        extensions=IMG_EXTENSIONS, allow_empty=True)


def folder_splits(root: str) -> tuple[str | None, str | None]:
    """(train folder, validation folder or None) of an image-folder root; (None, val folder) for a
    split layout without a training part (only ``test/`` or ``val/``)."""
    sub = {c.lower(): c for c in find_classes(root)}
    val = next((sub[v] for v in VAL_NAMES if v in sub), None)
    if "train" in sub and find_classes(os.path.join(root, sub["train"])):
        return os.path.join(root, sub["train"]), os.path.join(root, val) if val else None
    if sub and set(sub) <= {"train", *VAL_NAMES}:  # only split names: not class folders
        return None, os.path.join(root, val) if val else None
    return root, None


def folder_dataset(root: str, split: str, transform: Callable | None, val_split: float, seed: int,
                   *, name: str | None = None) -> FileDataset:
    """Image folders: ``root/<class>/…``, or ``root/train/<class>/…`` + ``root/val/<class>/…``.

    ``split="all"``: every image (both parts of a split layout)."""
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise UserError(f"{root}: no such folder")
    train_dir, val_dir = folder_splits(root)
    note = ""
    if train_dir is None:
        names = "/, ".join(find_classes(root)) + "/"
        if split == "train" or val_dir is None or not find_classes(val_dir):
            raise UserError(f"{root} holds only {names}: a train/val layout without its training split "
                            f"(expected {root}/train/<class>/<image>); add train/, or point at "
                            f"{val_dir or root}/ if its sub-folders are the classes")
        train_dir, val_dir, split = val_dir, None, "all"  # evaluation of the validation part alone
    ids = find_classes(train_dir)
    if not ids:
        raise UserError(f"{root}: no class folders (expected {root}/<class>/<image>)")
    idx = {c: i for i, c in enumerate(ids)}
    if val_dir is not None:
        extra = sorted(set(find_classes(val_dir)) - set(ids))
        if extra:
            raise UserError(f"{val_dir}: classes not in {train_dir}: {', '.join(extra[:5])}")
        if split == "all":
            samples = scan_folder(train_dir, idx) + scan_folder(val_dir, idx)
        else:
            samples = scan_folder(val_dir if split == "val" else train_dir, idx)
    else:
        samples = scan_folder(train_dir, idx)
        if not samples:
            raise UserError(f"{train_dir}: no images ({', '.join(IMG_EXTENSIONS)}) in the class folders")
        samples, note = _take_split(samples, [t for _, t in samples], split, val_split, seed, root)
    if not samples:
        raise UserError(f"{val_dir if split == 'val' and val_dir else train_dir}: no images "
                        f"({', '.join(IMG_EXTENSIONS)}) in the class folders")
    ds = FileDataset(samples, ids, ids, transform, name or f"folder:{root}", split)
    ds.slice_note = note
    return ds


def read_list(path: str) -> list[tuple[str, int]]:
    """Lines ``path label`` (the path may contain spaces; ``#`` starts a comment); relative paths
    are resolved against the list's folder."""
    base = os.path.dirname(os.path.abspath(path))
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text list file") from None
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit() or int(parts[1]) < 0:
            raise UserError(f"{path}:{n}: expected 'path label' with an integer label ≥ 0, got {line[:80]!r}")
        out.append((os.path.normpath(os.path.join(base, parts[0])), int(parts[1])))
    return out


def read_classes_txt(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [ln.strip() for ln in f.read().splitlines() if ln.strip()]


def _list_sibling(path: str) -> str | None:
    """``val.txt``/``test.txt``/… beside a list whose name contains ``train``."""
    d, fname = os.path.split(path)
    for v in VAL_NAMES:
        cand = os.path.join(d, fname.replace("train", v))
        if "train" in fname and os.path.isfile(cand):
            return cand
    return None


def _is_eval_name(fname: str) -> bool:
    return re.search(r"(^|[^a-z])(val|valid|validation|test)([^a-z]|$)", fname.lower()) is not None


def list_dataset(path: str, split: str, transform: Callable | None, val_split: float, seed: int) -> FileDataset:
    """A list file. Beside a list named ``*train*``, ``val``/``test`` in its place names the
    validation list (``train.txt`` → ``test.txt``); a list named like a validation list is used
    whole for either split; otherwise validation is a seeded split of the list."""
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such list file")
    samples = read_list(path)
    fname = os.path.basename(path).lower()
    sibling = _list_sibling(path)
    note = ""
    if sibling:
        if split == "val":
            samples = read_list(sibling)
        elif split == "all":
            samples = samples + read_list(sibling)
    elif "train" in fname or not _is_eval_name(fname):
        samples, note = _take_split(samples, [t for _, t in samples], split, val_split, seed, path)
    if not samples:
        raise UserError(f"{path}: no entries")
    n = max(t for _, t in samples) + 1
    classes_txt = os.path.join(os.path.dirname(path), "classes.txt")
    if os.path.isfile(classes_txt):
        classes = read_classes_txt(classes_txt)
        if len(classes) < n:
            raise UserError(f"{classes_txt} names {len(classes)} classes, but the list uses label {n - 1}")
    else:
        n = max([n] + [t + 1 for _, t in read_list(path)])
        classes = [str(i) for i in range(n)]
    ds = FileDataset(samples, classes, None, transform, f"list:{path}", split)
    ds.slice_note = note
    return ds


# ----------------------------------------------------------------------------- the factory

def normalize_split(split: str) -> str:
    s = str(split).lower()
    if s in ("train", "all"):
        return s
    if s in VAL_NAMES:
        return "val"
    raise UserError(f"unknown split {split!r}; use train, val or all (test is an alias of val)")


def parse_spec(spec: str) -> tuple[str, str]:
    """``"kind:path"`` → (kind, path); a bare path → its kind, recognised from what is there."""
    spec = str(spec)
    if spec == "digits":
        return "digits", ""
    kind, sep, rest = spec.partition(":")
    if sep and kind in KINDS:
        return kind, os.path.expanduser(rest)
    path = os.path.expanduser(spec)
    if spec in KINDS and not os.path.exists(path):
        raise UserError(f"{spec}: a location is needed ({spec}:/path/to/data)")
    if os.path.isfile(path):
        return "list", path
    if os.path.isdir(path):
        return detect_kind(path), path
    if sep and len(kind) > 1 and not os.path.exists(path):
        raise UserError(f"unknown dataset kind {kind!r} in {spec!r}; use one of {', '.join(KINDS)} "
                        f"(e.g. folder:/path)")
    raise UserError(f"{spec}: no such file or folder (a dataset is digits, a folder, a list file, "
                    f"or kind:path with kind in {', '.join(KINDS)})")


def detect_kind(path: str) -> str:
    """What a bare folder holds: CIFAR-10 batches, MNIST idx files, ImageNet, or image folders."""
    from .small import _find_cifar_batches, _find_idx

    names = set(os.listdir(path))
    if _find_cifar_batches(path) or "cifar-10-python.tar.gz" in names:
        return "cifar10"
    if _find_idx(path, "train-images-idx3-ubyte") or _find_idx(path, "t10k-images-idx3-ubyte"):
        return "mnist"
    if names & {"ILSVRC2012_devkit_t12.tar.gz", "ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar",
                "meta.bin", "ILSVRC2012_devkit_t12", "LOC_synset_mapping.txt"}:
        return "imagenet"
    return "folder"


def build_dataset(spec: str, split: str = "train", transform: Callable | None = None, *,
                  val_split: float | None = None, seed: int = 0, download: bool = False) -> ImageDataset:
    """The dataset ``spec`` names (see the module docstring), split ``train`` or ``val``.

    ``val_split``: fraction held out for validation where the data has no validation part
    (folders without ``val/``, lists without ``val.txt``, digits); default 0.1 (digits 0.2); 0
    means no hold-out. ``seed``: seed of that hold-out — keep it fixed across runs so that they
    are compared on the same images. ``download``: let torchvision fetch CIFAR-10/MNIST.
    """
    from .small import cifar10_dataset, digits_dataset, mnist_dataset

    kind, path = parse_spec(spec)
    split = normalize_split(split)
    if split == "all" and kind not in ("folder", "list"):
        return _concat(build_dataset(spec, "train", transform, val_split=val_split, seed=seed, download=download),
                       build_dataset(spec, "val", transform, val_split=val_split, seed=seed, download=download))
    frac = _check_fraction(val_split) if val_split is not None else None
    if kind == "digits":
        return digits_dataset(split, transform, DIGITS_VAL_SPLIT if frac is None else frac, seed)
    frac = DEFAULT_VAL_SPLIT if frac is None else frac
    if not path:
        raise UserError(f"{kind}: a path is needed ({kind}:/path/to/data)")
    if kind == "cifar10":
        return cifar10_dataset(path, split, transform, frac, seed, download)
    if kind == "mnist":
        return mnist_dataset(path, split, transform, download)
    if kind == "imagenet":
        from .imagenet import imagenet_dataset

        return imagenet_dataset(path, split, transform)
    if kind == "list":
        return list_dataset(path, split, transform, frac, seed)
    return folder_dataset(path, split, transform, frac, seed)
