"""The built-in datasets, small enough to hold in memory as one uint8 tensor: digits, CIFAR-10, MNIST."""

from __future__ import annotations

import gzip
import os
import pickle
import tarfile
import zlib
from typing import Any, Callable

import numpy as np
import torch

from ..core.errors import UserError
from ..core.io import one_at_a_time
from .base import ImageDataset, NoValidationPart, TensorImageDataset, split_indices
from .folders import find_classes, folder_dataset, folder_splits


def digits_dataset(split: str, transform: Callable | None, val_split: float, seed: int) -> TensorImageDataset:
    """scikit-learn's 1,797 real 8×8 handwritten digits (UCI), bundled: no download. Values
    0‥16 scaled to 0‥255; a stratified, seeded split (20 % validation by default)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.from_numpy(np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
    targets = d.target.tolist()
    train, val = split_indices(targets, val_split, seed)
    if split == "val" and not val:
        raise NoValidationPart("digits: --val-split 0 leaves no validation images")
    idx = list(range(len(targets))) if split == "all" else val if split == "val" else train
    ds = TensorImageDataset(images[idx].contiguous(), [targets[i] for i in idx],
                            [str(i) for i in range(10)], transform, "digits", split)
    if split != "all" and val:
        ds.slice_note = (f"the {val_split:.0%} {'validation' if split == 'val' else 'training'} slice held out "
                         f"with seed {seed}: {len(idx)} of {len(targets)} images")
    return ds


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


def find_cifar_batches(root: str) -> str | None:
    """The folder holding CIFAR-10's python batches under ``root`` (itself or ``cifar-10-batches-py/``), or None."""
    for d in (os.path.join(root, "cifar-10-batches-py"), root):
        if os.path.isfile(os.path.join(d, "data_batch_1")) or os.path.isfile(os.path.join(d, "test_batch")):
            return d
    return None


def cifar10_missing(root: str, *, download_flag: bool = True) -> str | None:
    """Why ``root`` holds no CIFAR-10 (neither its python batches, their archive, nor class folders),
    as a one-line error; None where it does. Cheap: it looks, it reads nothing."""
    root = os.path.abspath(root)
    if find_cifar_batches(root) or os.path.isfile(os.path.join(root, "cifar-10-python.tar.gz")):
        return None
    if os.path.isdir(root) and find_classes(root):
        return cifar10_folders_problem(root)
    fetch = " (or add --download to fetch it; needs internet)" if download_flag else ""
    return (f"cifar10: no CIFAR-10 in {root}: put cifar-10-python.tar.gz (www.cs.toronto.edu/~kriz/cifar.html) "
            f"or its cifar-10-batches-py/ folder there, or the training images as class folders{fetch}")


def cifar10_folders_problem(root: str) -> str | None:
    """Why the class folders under ``root`` (or its ``train/``) are not CIFAR-10's ten, as a
    one-line error (a folder of anything, say the home folder, is not taken for the data); None
    where there are ten."""
    for name, what in (("cifar-10-batches-bin", "CIFAR-10's binary version"), ("cifar-100-python", "CIFAR-100")):
        if os.path.isdir(os.path.join(root, name)):
            return (f"cifar10: {root} holds {name}/, {what}, which is not read here: use the python version "
                    f"of CIFAR-10 (cifar-10-python.tar.gz or its cifar-10-batches-py/ folder)")
    train_dir, val_dir = folder_splits(root)
    classes = find_classes(train_dir or val_dir or root)
    if len(classes) == 10:
        return None
    shown = ", ".join(classes[:5]) + (", …" if len(classes) > 5 else "")
    return (f"cifar10: {root} has {len(classes)} class folder{'s' * (len(classes) != 1)} ({shown}), CIFAR-10 has 10: "
            f"point at the folder whose sub-folders are its classes (or train/ and test/ holding them), "
            f"or use folder:{root} for other data")


def cifar10_dataset(root: str, split: str, transform: Callable | None, val_split: float, seed: int,
                    download: bool) -> ImageDataset:
    """CIFAR-10 from the official python batches (``data_batch_1‥5`` train, ``test_batch`` val).

    Read here rather than by ``torchvision.datasets.CIFAR10``, which checks every batch's md5 on
    each construction and unpickles arbitrary objects; we unpickle numpy arrays only. torchvision
    does the download (``download=True``).
    """
    root = os.path.abspath(root)
    batches = find_cifar_batches(root)
    archive = os.path.join(root, "cifar-10-python.tar.gz")
    if batches is None and os.path.isfile(archive):
        with one_at_a_time(root, "unpack-cifar10", _stderr):  # every rank of a torchrun job gets here
            batches = find_cifar_batches(root)
            if batches is None:
                _extract_cifar(archive, root)
                batches = find_cifar_batches(root)
    if batches is None and os.path.isdir(root) and find_classes(root):
        problem = cifar10_folders_problem(root)
        if problem:
            raise UserError(problem)
        return folder_dataset(root, split, transform, val_split, seed, name=f"cifar10:{root}")
    if batches is None and download:
        from torchvision.datasets import CIFAR10

        made = _folders_made_by_download(root)
        try:
            os.makedirs(root, exist_ok=True)
            with one_at_a_time(root, "download-cifar10", _stderr):  # one rank downloads, the others wait
                CIFAR10(root, train=True, download=True)
        except Exception as e:  # noqa: BLE001 — any network failure becomes one line
            _remove_empty_folders(made)
            raise UserError(f"cifar10: download to {root} failed ({_one_line(e)}); put "
                            f"cifar-10-python.tar.gz (www.cs.toronto.edu/~kriz/cifar.html) there") from None
        batches = find_cifar_batches(root)
    if batches is None:
        raise UserError(cifar10_missing(root))
    files = ["test_batch"] if split == "val" else [f"data_batch_{i}" for i in range(1, 6)]
    files = [os.path.join(batches, f) for f in files]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise UserError(f"cifar10: {missing[0]} is missing")
    meta = os.path.join(batches, "batches.meta")
    classes = (_cifar_names(meta) if os.path.isfile(meta) else
               ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"])
    data, labels = [], []
    for f in files:
        images, lab = _cifar_batch(f, len(classes))
        data.append(images)
        labels += lab
    return TensorImageDataset(torch.from_numpy(np.concatenate(data)), labels, list(classes), transform,
                              f"cifar10:{root}", split)


def _extract_cifar(archive: str, root: str) -> None:
    """Unpack ``cifar-10-python.tar.gz`` into ``root`` whole or not at all: into a temporary folder,
    then renamed, so that an archive cut short leaves no half folder that would hide a good one."""
    import shutil
    import tempfile

    dest = os.path.join(root, "cifar-10-batches-py")
    try:
        tmp = tempfile.mkdtemp(prefix=".cifar-10-partial-", dir=root)
    except OSError as e:
        raise UserError(f"cifar10: cannot unpack {archive} in {root} ({e.strerror})") from None
    try:
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise UserError(f"cifar10: {archive} cannot be unpacked ({str(e)[:100]}): download it again") from None
        got = find_cifar_batches(tmp)
        if got is None:
            raise UserError(f"cifar10: {archive} holds no cifar-10-batches-py/ folder")
        if os.path.isdir(dest):  # what an unpacking cut short left (no data_batch_1, no test_batch): replaced
            shutil.rmtree(dest)
        os.replace(got, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _cifar_names(meta: str) -> list[str]:
    d = _load_cifar_pickle(meta)
    names = d.get("label_names")
    if not isinstance(names, (list, tuple)) or not names:
        raise UserError(f"{meta}: not CIFAR-10's batches.meta (no label_names)")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def _cifar_batch(path: str, n_classes: int) -> tuple[np.ndarray, list[int]]:
    """One python batch: its images ``[N, 3, 32, 32]`` uint8 and as many labels, each a class index;
    anything else is one line naming the file."""
    d = _load_cifar_pickle(path)
    if "data" not in d or "labels" not in d:
        raise UserError(f"{path}: not a CIFAR-10 python batch (it has no {'data' if 'data' not in d else 'labels'})")
    data = np.asarray(d["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise UserError(f"{path}: its data is {data.dtype} {data.shape}, not uint8 rows of 3,072 values (32×32 RGB)")
    labels = [int(x) for x in d["labels"]]
    if len(labels) != len(data):
        raise UserError(f"{path}: {len(data)} images but {len(labels)} labels")
    bad = next((x for x in labels if not 0 <= x < n_classes), None)
    if bad is not None:
        raise UserError(f"{path}: label {bad} is not one of the {n_classes} classes (0–{n_classes - 1})")
    return data.reshape(-1, 3, 32, 32), labels


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


def find_idx(root: str, stem: str) -> str | None:
    """The MNIST idx file ``stem`` (``.gz`` or not) in ``root``, ``root/raw`` or ``root/MNIST/raw``, or None."""
    for d in (root, os.path.join(root, "raw"), os.path.join(root, "MNIST", "raw")):
        for name in (stem, stem.replace("-idx", ".idx")):
            for ext in ("", ".gz"):
                if os.path.isfile(os.path.join(d, name + ext)):
                    return os.path.join(d, name + ext)
    return None


def _stderr(message: str) -> None:
    import sys

    print(message, file=sys.stderr)


def _folders_made_by_download(root: str) -> list[str]:
    """The folders a download into ``root`` may make that are not there now, deepest first: the
    root and its missing parents, and torchvision's own (``MNIST/raw``, ``cifar-10-batches-py``).
    Only these are looked at (not the whole tree under ``root``, which may be large)."""
    chain, d = [], os.path.abspath(root)
    while not os.path.exists(d) and os.path.dirname(d) != d:
        chain.append(d)
        d = os.path.dirname(d)
    own = [os.path.join(root, "MNIST", "raw"), os.path.join(root, "MNIST"), os.path.join(root, "cifar-10-batches-py")]
    return [f for f in own if not os.path.exists(f)] + chain


def _remove_empty_folders(folders: list[str]) -> None:
    """After a failed download: those of ``folders`` (`_folders_made_by_download`) it left empty go,
    so that a retry or another ``--data-path`` finds nothing half-made; folders that were there stay."""
    for d in folders:
        try:
            os.rmdir(d)  # only an empty one
        except OSError:
            pass


def _one_line(e: Exception, limit: int = 160) -> str:
    """An exception's text on one line (torchvision's failed MNIST download lists every mirror it tried)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    text = " ".join((lines[-1] if lines else type(e).__name__).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def mnist_dataset(root: str, split: str, transform: Callable | None, download: bool) -> TensorImageDataset:
    """MNIST from its idx files: ``train-*`` (60,000) and ``t10k-*`` (10,000, the val split)."""
    root = os.path.abspath(root)
    prefix = "t10k" if split == "val" else "train"
    img, lab = find_idx(root, f"{prefix}-images-idx3-ubyte"), find_idx(root, f"{prefix}-labels-idx1-ubyte")
    if (img is None or lab is None) and download:
        from torchvision.datasets import MNIST

        made = _folders_made_by_download(root)
        try:
            os.makedirs(root, exist_ok=True)
            with one_at_a_time(root, "download-mnist", _stderr):  # one rank downloads, the others wait
                MNIST(root, train=split != "val", download=True)
        except Exception as e:  # noqa: BLE001 — any network failure becomes one line
            _remove_empty_folders(made)
            raise UserError(f"mnist: download to {root} failed ({_one_line(e)}); put the four "
                            f"*-idx*-ubyte.gz files there (ossci-datasets.s3.amazonaws.com/mnist/, the "
                            f"mirror torchvision reads)") from None
        img, lab = find_idx(root, f"{prefix}-images-idx3-ubyte"), find_idx(root, f"{prefix}-labels-idx1-ubyte")
    if img is None or lab is None:
        raise UserError(f"mnist: no {prefix}-images-idx3-ubyte / {prefix}-labels-idx1-ubyte (.gz) in {root} "
                        f"(nor in raw/ or MNIST/raw/): put the four MNIST idx files there "
                        f"(or add --download to fetch them; needs internet)")
    images, labels = read_idx(img), read_idx(lab)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(f"mnist: {img} and {lab} do not match ({images.shape} images, {labels.shape} labels)")
    if images.dtype != np.uint8:  # casting would wrap 1000 round to 232
        raise UserError(f"mnist: {img} holds {images.dtype} values; MNIST's images are unsigned bytes")
    if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) <= 9:
        raise UserError(f"mnist: {lab} has label {int(labels.max()) if labels.max() > 9 else int(labels.min())}; "
                        f"MNIST's labels are 0–9")
    return TensorImageDataset(torch.from_numpy(images.astype(np.uint8)).unsqueeze(1), labels.tolist(),
                              [str(i) for i in range(10)], transform, f"mnist:{root}", split)
