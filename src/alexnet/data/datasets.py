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

import gzip
import os
import pickle
import random
import re
import tarfile
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
                what: str) -> list:
    if val_split == 0:
        if split == "val":
            raise UserError(f"{what} has no validation folder or list; set a --val-split fraction "
                            f"to hold some training images out")
        return samples
    train, val = split_indices(targets, val_split, seed)
    return [samples[i] for i in (val if split == "val" else train)]


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


def folder_splits(root: str) -> tuple[str, str | None]:
    """(train folder, validation folder or None) of an image-folder root."""
    sub = {c.lower(): c for c in find_classes(root)}
    if "train" in sub and find_classes(os.path.join(root, sub["train"])):
        val = next((sub[v] for v in VAL_NAMES if v in sub), None)
        return os.path.join(root, sub["train"]), os.path.join(root, val) if val else None
    return root, None


def folder_dataset(root: str, split: str, transform: Callable | None, val_split: float, seed: int,
                   *, name: str | None = None) -> FileDataset:
    """Image folders: ``root/<class>/…``, or ``root/train/<class>/…`` + ``root/val/<class>/…``."""
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise UserError(f"{root}: no such folder")
    train_dir, val_dir = folder_splits(root)
    ids = find_classes(train_dir)
    if not ids:
        raise UserError(f"{root}: no class folders (expected {root}/<class>/<image>)")
    idx = {c: i for i, c in enumerate(ids)}
    if val_dir is not None:
        extra = sorted(set(find_classes(val_dir)) - set(ids))
        if extra:
            raise UserError(f"{val_dir}: classes not in {train_dir}: {', '.join(extra[:5])}")
        samples = scan_folder(val_dir if split == "val" else train_dir, idx)
    else:
        samples = scan_folder(train_dir, idx)
        samples = _take_split(samples, [t for _, t in samples], split, val_split, seed, root)
    if not samples:
        raise UserError(f"{val_dir if split == 'val' and val_dir else train_dir}: no images "
                        f"({', '.join(IMG_EXTENSIONS)}) in the class folders")
    return FileDataset(samples, ids, ids, transform, name or f"folder:{root}", split)


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
    if sibling:
        if split == "val":
            samples = read_list(sibling)
    elif "train" in fname or not _is_eval_name(fname):
        samples = _take_split(samples, [t for _, t in samples], split, val_split, seed, path)
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
    return FileDataset(samples, classes, None, transform, f"list:{path}", split)


# ----------------------------------------------------------------------------- digits, CIFAR-10, MNIST

def digits_dataset(split: str, transform: Callable | None, val_split: float, seed: int) -> TensorImageDataset:
    """scikit-learn's 1,797 real 8×8 handwritten digits (UCI), bundled: no download. Values
    0‥16 scaled to 0‥255; a stratified, seeded split (20 % validation by default)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.from_numpy(np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
    targets = d.target.tolist()
    train, val = split_indices(targets, val_split, seed)
    if split == "val" and not val:
        raise UserError("digits: --val-split 0 leaves no validation images")
    idx = val if split == "val" else train
    return TensorImageDataset(images[idx].contiguous(), [targets[i] for i in idx],
                              [str(i) for i in range(10)], transform, "digits", split)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only — never arbitrary code."""

    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("numpy._core.numeric", "_frombuffer"),
                ("numpy.core.numeric", "_frombuffer"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to unpickle {module}.{name}")


def _load_cifar_pickle(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            d = _NumpyOnlyUnpickler(f, encoding="latin1").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as e:
        raise UserError(f"{path}: not a CIFAR-10 python batch ({str(e)[:100]})") from None
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}


def _find_cifar_batches(root: str) -> str | None:
    for d in (os.path.join(root, "cifar-10-batches-py"), root):
        if os.path.isfile(os.path.join(d, "data_batch_1")) or os.path.isfile(os.path.join(d, "test_batch")):
            return d
    return None


def cifar10_dataset(root: str, split: str, transform: Callable | None, val_split: float, seed: int,
                    download: bool) -> ImageDataset:
    """CIFAR-10 from the official python batches (``data_batch_1‥5`` train, ``test_batch`` val).

    Read here rather than by ``torchvision.datasets.CIFAR10``, which checks every batch's md5 on
    each construction and unpickles arbitrary objects; we unpickle numpy arrays only. torchvision
    does the download (``download=True``).
    """
    root = os.path.abspath(root)
    batches = _find_cifar_batches(root)
    archive = os.path.join(root, "cifar-10-python.tar.gz")
    if batches is None and os.path.isfile(archive):
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")
        batches = _find_cifar_batches(root)
    if batches is None and os.path.isdir(root) and find_classes(root):
        return folder_dataset(root, split, transform, val_split, seed, name=f"cifar10:{root}")
    if batches is None and download:
        from torchvision.datasets import CIFAR10

        try:
            CIFAR10(root, train=True, download=True)
        except Exception as e:  # noqa: BLE001 — any network failure becomes one line
            raise UserError(f"cifar10: download to {root} failed ({str(e)[:120]}); put "
                            f"cifar-10-python.tar.gz (www.cs.toronto.edu/~kriz/cifar.html) there") from None
        batches = _find_cifar_batches(root)
    if batches is None:
        raise UserError(f"cifar10: no CIFAR-10 in {root}: put cifar-10-python.tar.gz "
                        f"(www.cs.toronto.edu/~kriz/cifar.html) or its cifar-10-batches-py/ folder there "
                        f"(or let torchvision download it: download=True)")
    files = ["test_batch"] if split == "val" else [f"data_batch_{i}" for i in range(1, 6)]
    files = [os.path.join(batches, f) for f in files]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise UserError(f"cifar10: {missing[0]} is missing")
    data, labels = [], []
    for f in files:
        d = _load_cifar_pickle(f)
        data.append(np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels += list(d["labels"])
    meta = os.path.join(batches, "batches.meta")
    classes = (_load_cifar_pickle(meta)["label_names"] if os.path.isfile(meta) else
               ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"])
    return TensorImageDataset(torch.from_numpy(np.concatenate(data)), labels, list(classes), transform,
                              f"cifar10:{root}", split)


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
    """An idx file (MNIST's format), gzipped or not. Our own 15 lines because torchvision's
    reader needs the files un-gzipped in ``<root>/MNIST/raw/``."""
    try:
        with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
            data = f.read()
        if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
            raise ValueError("bad magic number")
        nd = data[3]
        dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(nd)]
        arr = np.frombuffer(data, dtype=_IDX_TYPES[data[2]], offset=4 + 4 * nd)
        return arr.reshape(dims)
    except (OSError, ValueError, EOFError) as e:
        raise UserError(f"{path}: not an idx file ({str(e)[:80]})") from None


def _find_idx(root: str, stem: str) -> str | None:
    for d in (root, os.path.join(root, "raw"), os.path.join(root, "MNIST", "raw")):
        for name in (stem, stem.replace("-idx", ".idx")):
            for ext in ("", ".gz"):
                if os.path.isfile(os.path.join(d, name + ext)):
                    return os.path.join(d, name + ext)
    return None


def mnist_dataset(root: str, split: str, transform: Callable | None, download: bool) -> TensorImageDataset:
    """MNIST from its idx files: ``train-*`` (60,000) and ``t10k-*`` (10,000, the val split)."""
    root = os.path.abspath(root)
    prefix = "t10k" if split == "val" else "train"
    img, lab = _find_idx(root, f"{prefix}-images-idx3-ubyte"), _find_idx(root, f"{prefix}-labels-idx1-ubyte")
    if (img is None or lab is None) and download:
        from torchvision.datasets import MNIST

        try:
            MNIST(root, train=split != "val", download=True)
        except Exception as e:  # noqa: BLE001 — any network failure becomes one line
            raise UserError(f"mnist: download to {root} failed ({str(e)[:120]}); put the four "
                            f"*-idx*-ubyte.gz files there") from None
        img, lab = _find_idx(root, f"{prefix}-images-idx3-ubyte"), _find_idx(root, f"{prefix}-labels-idx1-ubyte")
    if img is None or lab is None:
        raise UserError(f"mnist: no {prefix}-images-idx3-ubyte / {prefix}-labels-idx1-ubyte (.gz) in {root} "
                        f"(nor in raw/ or MNIST/raw/): put the four MNIST idx files there "
                        f"(or let torchvision download them: download=True)")
    images, labels = read_idx(img), read_idx(lab)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(f"mnist: {img} and {lab} do not match ({images.shape} images, {labels.shape} labels)")
    return TensorImageDataset(torch.from_numpy(images.astype(np.uint8)).unsqueeze(1), labels.tolist(),
                              [str(i) for i in range(10)], transform, f"mnist:{root}", split)


# ----------------------------------------------------------------------------- the factory

def normalize_split(split: str) -> str:
    s = str(split).lower()
    if s == "train":
        return "train"
    if s in VAL_NAMES:
        return "val"
    raise UserError(f"unknown split {split!r}; use train or val (test is an alias of val)")


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
    kind, path = parse_spec(spec)
    split = normalize_split(split)
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
