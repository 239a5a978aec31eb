"""Datasets: one factory, `build_dataset(spec, split)`, for every source the system trains on.

The factory sits above the kinds it builds (`builtin`, `imagenet`, `folders`, `cache`, `shards`), which sit
above their shared base classes (`base`); nothing below imports this module.

Specs (see docs/data.md):

=====================  ==========================================================================
``digits``             scikit-learn's bundled 1,797 8×8 handwritten digits; no download
``cifar10:/path``      CIFAR-10 python batches (or ``cifar-10-python.tar.gz``, or image folders)
``mnist:/path``        MNIST idx files (``.gz`` or not; ``/path``, ``/path/raw`` or ``/path/MNIST/raw``)
``imagenet:/path``     ILSVRC-2012: ``train/<wnid>/`` + ``val/<wnid>/``, or torchvision's root
                       (devkit + ``ILSVRC2012_img_{train,val}.tar``), see `alexnet.data.imagenet`
``folder:/path``       one sub-folder per class; ``train/`` + ``val/`` (or ``test/``) if present
``list:/path/x.txt``   lines ``relative/path label``; ``classes.txt`` beside it names the labels
``cache:/dir``         a pre-decoded cache written by ``alexnet data cache`` (see `alexnet.data.cache`)
``shards:/dir``        webdataset tar shards written by ``alexnet data shards`` (also ``file://``, ``s3://``…;
                       see `alexnet.data.shards`); their splits are the ones written, ``val_split`` is ignored
``/path``              a folder or list file, recognised from what is there
=====================  ==========================================================================

Every dataset has ``classes`` (human-readable names, index = label), ``class_ids`` (ImageNet's
WordNet ids; the same as ``classes`` elsewhere), ``__getitem__(i) -> (image, label)`` where the
image is whatever ``transform`` returns (without one: uint8 ``[C, H, W]``; 1 channel for digits and
MNIST, 3 otherwise) and ``samples_path(i)``, a path or identifier for reports.
"""

from __future__ import annotations

import os
from typing import Callable

from ..core.errors import UserError
from .base import (IMG_EXTENSIONS, VAL_NAMES, FileDataset, ImageDataset, SubsetDataset, TensorImageDataset,
                   check_fraction, concat_splits, split_indices, take_split, take_subset)
from .builtin import cifar10_dataset, digits_dataset, find_cifar_batches, find_idx, mnist_dataset
from .cache import CacheDataset, cache_dataset, is_cache, read_manifest
from .decode import is_regular_file
from .kinds import KINDS, KINDS_NEEDING_PATH, nothing_there
from .folders import (find_classes, folder_dataset, folder_splits, image_files, is_eval_name, list_dataset,
                      not_a_list_file, read_classes_txt, read_list, scan_folder, sibling_val_list)
from .imagenet import imagenet_dataset
from .shards import is_remote, is_shards, read_index, shards_dataset

__all__ = [  # the base classes and folder helpers are re-exported: `from .datasets import X` keeps working
    "build_dataset", "parse_spec", "detect_kind", "first_image", "normalize_split", "default_eval_split", "KINDS",
    "KINDS_NEEDING_PATH", "IMG_EXTENSIONS", "VAL_NAMES",
    "ImageDataset", "FileDataset", "TensorImageDataset", "SubsetDataset", "CacheDataset", "take_subset",
    "split_indices", "find_classes", "scan_folder", "folder_splits", "folder_dataset", "list_dataset",
    "read_list", "read_classes_txt", "is_eval_name", "sibling_val_list", "check_fraction", "concat_splits",
    "take_split",
]

DEFAULT_VAL_SPLIT = 0.1
DIGITS_VAL_SPLIT = 0.2


# ----------------------------------------------------------------------------- the factory

def normalize_split(split: str) -> str:
    s = str(split).lower()
    if s in ("train", "all"):
        return s
    if s in VAL_NAMES:
        return "val"
    raise UserError(f"unknown split {split!r}; use train, val or all (test: the same as val, or a folder's "
                    f"test/ where it has one beside val/)")


def default_eval_split(spec: str) -> str:
    """The split to score when a person hands ``spec`` over for evaluation: ``all`` (every image) for
    a folder without a validation part (no ``val/`` or ``test/`` beside ``train/``) and for a list file
    with neither a validation list beside it nor a validation name of its own; ``val`` otherwise."""
    kind, path = parse_spec(spec)
    if kind == "folder" and folder_splits(path)[1] is None:
        return "all"
    if kind == "list" and not sibling_val_list(path) and not is_eval_name(os.path.basename(path)):
        return "all"
    return "val"


def parse_spec(spec: str) -> tuple[str, str]:
    """``"kind:path"`` → (kind, path); a bare path → its kind, recognised from what is there."""
    spec = str(spec)
    if spec == "digits":
        return "digits", ""
    kind, sep, rest = spec.partition(":")
    if sep and kind in KINDS:
        if not rest.strip() and kind != "digits":
            raise UserError(f"{kind}: a path is needed ({kind}:/path/to/data)")
        return kind, os.path.expanduser(rest)
    path = os.path.expanduser(spec)
    if spec in KINDS and not os.path.exists(path):
        raise UserError(f"{spec}: a location is needed ({spec}:/path/to/data)")
    if os.path.isfile(path):
        problem = not_a_list_file(path)
        if problem:
            raise UserError(problem)
        return "list", path
    if os.path.isdir(path):
        return detect_kind(path), path
    raise UserError(nothing_there(spec) or f"{spec}: neither a file nor a folder")


def detect_kind(path: str) -> str:
    """What a bare folder holds: a cache, CIFAR-10 batches, MNIST idx files, ImageNet, or image folders."""
    if is_cache(path):
        return "cache"
    if is_shards(path):
        return "shards"
    names = set(os.listdir(path))
    if find_cifar_batches(path) or "cifar-10-python.tar.gz" in names:
        return "cifar10"
    if find_idx(path, "train-images-idx3-ubyte") or find_idx(path, "t10k-images-idx3-ubyte"):
        return "mnist"
    if names & {"ILSVRC2012_devkit_t12.tar.gz", "ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar",
                "meta.bin", "ILSVRC2012_devkit_t12", "LOC_synset_mapping.txt"}:
        return "imagenet"
    return "folder"


GREY_MODES = ("1", "L", "LA", "I", "F")  # Pillow's modes without colour (and "I;16" and kin)


def first_image(spec: str, tries: int = 8) -> tuple[str, str, tuple[int, int, int] | None]:
    """(kind, path, shape) of dataset ``spec``: its kind and location (`parse_spec`) and, for a
    folder or list of image files, (channels, height, width) that stand for its first images (the
    first image of each class folder in turn, or the list's first lines; ``tries`` files at most):
    colour if any of those that open is, and the size of the one with the median short side, so
    that one grey thumbnail sorted first does not make colour photos grey digits. For a cache the
    size it holds, for local shards their first image; None for other kinds or where none opens.
    Reads headers only: cheap even for ImageNet."""
    from PIL import Image

    kind, path = parse_spec(spec)
    if kind in ("folder", "list") and not os.path.exists(path):
        return kind, path, None  # the dataset says what is missing, as without this look
    if kind == "cache":
        m = read_manifest(path)
        side = m.get("short_side")
        return kind, path, (int(m.get("channels", 3)), int(side), int(side)) if side else None
    if kind == "shards":
        return kind, path, None if is_remote(path) else _first_shard_image(path)
    if kind == "folder":
        train_dir, val_dir = folder_splits(path)
        root = train_dir or val_dir or path
        if os.path.isdir(root) and not find_classes(root):  # said now, before a recipe is chosen for nothing
            raise UserError(f"{path}: no class folders (expected {path}/<class>/<image>)")
        files = (f for cls in find_classes(root) for f in _first_file(os.path.join(root, cls)))
    elif kind == "list":
        files = (f for f, _ in read_list(path))
    else:
        return kind, path, None
    seen = []
    for _, f in zip(range(tries), files):
        if not is_regular_file(f):  # a FIFO named x.png would block here
            continue
        try:
            with Image.open(f) as im:
                w, h = im.size
                seen.append((1 if im.mode in GREY_MODES or im.mode.startswith("I;") else 3, h, w))
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
    if not seen:
        return kind, path, None
    _, h, w = sorted(seen, key=lambda s: min(s[1:]))[(len(seen) - 1) // 2]
    return kind, path, (max(c for c, _, _ in seen), h, w)


def _first_shard_image(loc: str) -> tuple[int, int, int] | None:
    """(channels, height, width) of the first image in the first training shard at ``loc``."""
    import tarfile

    from PIL import Image

    try:
        with tarfile.open(os.path.join(loc, "train-00000.tar")) as tar:
            member = next(m for m in tar if m.name.lower().endswith(IMG_EXTENSIONS))
            with Image.open(tar.extractfile(member)) as im:
                w, h = im.size
    except (OSError, StopIteration, ValueError, tarfile.TarError, Image.DecompressionBombError):
        return None
    return int(read_index(loc).get("channels", 3)), h, w


def _first_file(directory: str) -> list[str]:
    """The first image file under ``directory`` in `scan_folder`'s order, as a list of one (or none)."""
    return next(([path] for path in image_files(directory)), [])


def build_dataset(spec: str, split: str = "train", transform: Callable | None = None, *,
                  val_split: float | None = None, seed: int = 0, download: bool = False) -> ImageDataset:
    """The dataset ``spec`` names (see the module docstring), split ``train`` or ``val``.

    ``val_split``: fraction held out for validation where the data has no validation part
    (folders without ``val/``, lists without ``val.txt``, digits); default 0.1 (digits 0.2); 0
    means no hold-out. ``seed``: seed of that hold-out — keep it fixed across runs so that they
    are compared on the same images. ``download``: let torchvision fetch CIFAR-10/MNIST.
    """
    kind, path = parse_spec(spec)
    asked, split = str(split).lower(), normalize_split(split)
    if kind == "cache":
        if not path:
            raise UserError("cache: a folder is needed (cache:/path/to/cache, written by `alexnet data cache`)")
        return cache_dataset(path, split, transform)
    if kind == "shards":
        return shards_dataset(path, split, transform)
    if split == "all" and kind not in ("folder", "list", "digits"):
        return concat_splits(build_dataset(spec, "train", transform, val_split=val_split, seed=seed, download=download),
                       build_dataset(spec, "val", transform, val_split=val_split, seed=seed, download=download))
    frac = check_fraction(val_split) if val_split is not None else None
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
        return imagenet_dataset(path, split, transform)
    if kind == "list":
        return list_dataset(path, split, transform, frac, seed)
    return folder_dataset(path, split, transform, frac, seed, val_name=asked if split == "val" else None)
