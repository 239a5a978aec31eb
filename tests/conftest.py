"""Tiny datasets made on the fly, in every on-disk format the data layer reads.

Fixtures (all tiny, all generated; nothing is downloaded):

- ``write_image(path, mode="RGB", size=(w, h), fmt=None, seed=0)``: one image file;
- ``image_folder``: ``root/<class>/*.{jpg,png}`` (3 classes × 4 images, 20×16 px, mixed modes);
- ``split_folder``: ``root/train/<class>/`` + ``root/val/<class>/`` (2 classes);
- ``cifar10_root``: CIFAR-10 python batches in the official pickle format (tiny counts);
- ``mnist_root``: MNIST idx files, gzipped as distributed (tiny counts);
- ``fake_imagenet``: an ILSVRC-2012 devkit (meta.mat + ground truth) and flat val images.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest
from PIL import Image

def pytest_configure(config):
    # `--amp auto` on a CPU measures bf16 against fp32 and picks the faster; on a busy machine the
    # probe can come out either way, and tests that compare numbers to 1e-5 must not depend on it.
    # Tests of the choice itself set the variable (or pass --amp) explicitly.
    os.environ.setdefault("ALEXNET_CPU_BF16", "0")
    # torchvision 0.29 deprecates its image decoders (warning on every call); alexnet.data
    # silences it at import, but pytest resets warning filters for each test.
    config.addinivalue_line("filterwarnings",
                            "ignore:The image decoding and encoding capabilities of TorchVision:DeprecationWarning")
    # decode_image enforces its own pixel limit with a clear reason; Pillow's warning is noise
    config.addinivalue_line("filterwarnings", "ignore::PIL.Image.DecompressionBombWarning")


CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_colour_classes(root, ext: str = "png", seed: int = 1, noise: float = 25.0, per_class: int = 10):
    """10 class folders ``k0``‥``k9`` of ``per_class`` 32×32 images each, every class its own mean colour
    (an easy task a few steps learn); ``ext`` picks the format (``png``, ``jpg``)."""
    rng = np.random.default_rng(seed)
    for c in range(10):
        (root / f"k{c}").mkdir()
        for i in range(per_class):
            mean = np.array([25 * c, 250 - 20 * c, (70 * c) % 256], np.float32)
            Image.fromarray(np.clip(mean + rng.normal(0, noise, (32, 32, 3)), 0, 255).astype(np.uint8)).save(
                root / f"k{c}" / f"{i}.{ext}")
    return root


def make_pil(mode: str = "RGB", size=(20, 16), seed: int = 0) -> Image.Image:
    """A random image of ``mode`` (any Pillow mode used by the tests)."""
    rng = np.random.default_rng(seed)
    w, h = size
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if mode == "RGB":
        return Image.fromarray(rgb, "RGB")
    if mode == "L":
        return Image.fromarray(rgb[..., 0], "L")
    if mode == "1":
        return Image.fromarray(rgb[..., 0] > 127).convert("1")
    if mode in ("RGBA", "LA"):
        img = Image.fromarray(rgb, "RGB").convert("RGB" if mode == "RGBA" else "L")
        img.putalpha(Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L"))
        return img
    if mode == "CMYK":
        return Image.fromarray(rgb, "RGB").convert("CMYK")
    if mode == "P":
        return Image.fromarray(rgb, "RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16), "I;16")
    if mode == "I":
        return Image.fromarray(rng.integers(0, 65536, (h, w)).astype(np.int32), "I")
    if mode == "F":
        return Image.fromarray(rng.random((h, w)).astype(np.float32), "F")
    raise ValueError(mode)


def write_image(path, mode: str = "RGB", size=(20, 16), fmt: str | None = None, seed: int = 0, **save) -> str:
    """Write a random image to ``path`` (format from ``fmt`` or the extension)."""
    path = str(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    make_pil(mode, size, seed).save(path, format=fmt, **save)
    return path


@pytest.fixture(name="write_image")
def write_image_fixture():
    return write_image


@pytest.fixture
def image_folder(tmp_path):
    """``root/{cat,dog,fox}/`` with 4 images each (JPEG and PNG; RGB, L, RGBA, P)."""
    root = tmp_path / "pets"
    modes = [("RGB", "jpg"), ("L", "jpg"), ("RGBA", "png"), ("P", "png")]
    for c, cls in enumerate(["cat", "dog", "fox"]):
        for i, (mode, ext) in enumerate(modes):
            write_image(root / cls / f"{cls}{i}.{ext}", mode, seed=10 * c + i)
    return root


@pytest.fixture
def split_folder(tmp_path):
    """``root/train/{a,b}/`` (5 each) + ``root/val/{a,b}/`` (2 each)."""
    root = tmp_path / "ab"
    for split, n in (("train", 5), ("val", 2)):
        for c, cls in enumerate("ab"):
            for i in range(n):
                write_image(root / split / cls / f"{i}.jpg", seed=100 * c + i + (50 if split == "val" else 0))
    return root


def write_cifar_batch(path, data: np.ndarray, labels: list[int], label: str) -> None:
    """One batch in the official format: a pickled dict, ``data`` uint8 [N, 3072] (R, G, B planes)."""
    d = {"batch_label": label, "labels": list(labels), "data": data,
         "filenames": [f"img_{i}.png" for i in range(len(labels))]}
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=2)


@pytest.fixture
def cifar10_root(tmp_path):
    """``root/cifar-10-batches-py/``: data_batch_1‥5 (4 images each), test_batch (6), batches.meta."""
    root = tmp_path / "cifar"
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for b in range(1, 6):
        write_cifar_batch(d / f"data_batch_{b}", rng.integers(0, 256, (4, 3072), dtype=np.uint8),
                          [(b + i) % 10 for i in range(4)], f"training batch {b} of 5")
    test = rng.integers(0, 256, (6, 3072), dtype=np.uint8)
    write_cifar_batch(d / "test_batch", test, [0, 1, 2, 3, 4, 5], "testing batch 1 of 1")
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({"label_names": CIFAR_CLASSES, "num_cases_per_batch": 10000, "num_vis": 3072}, f, protocol=2)
    return root


def idx_bytes(arr: np.ndarray) -> bytes:
    """``arr`` (uint8) in the idx format: magic 0x0000 08 <ndim>, big-endian dims, data."""
    return struct.pack(">BBBB", 0, 0, 8, arr.ndim) + b"".join(struct.pack(">I", s) for s in arr.shape) \
        + arr.astype(np.uint8).tobytes()


@pytest.fixture
def mnist_root(tmp_path):
    """``root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``: 12 train, 5 test."""
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for prefix, n in (("train", 12), ("t10k", 5)):
        imgs = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        (raw / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(imgs)))
        (raw / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    return tmp_path / "mnist"


IMAGENET_WNIDS = ["n01440764", "n01443537", "n01484850"]  # tench, goldfish, great white shark
IMAGENET_WORDS = ["tench, Tinca tinca", "goldfish, Carassius auratus",
                  "great white shark, white shark, man-eater"]


def meta_mat_bytes(wnids=IMAGENET_WNIDS, words=IMAGENET_WORDS) -> bytes:
    """The devkit's data/meta.mat: a ``synsets`` struct array with the leaves (num_children 0)
    given ILSVRC2012_IDs in an order that is *not* the sorted-wnid order, plus one inner node."""
    import scipy.io

    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "wordnet_height", "num_train_images"]
    rows = [(len(wnids) - k, w, ws, "a fish", 0, 0, 1300) for k, (w, ws) in enumerate(zip(wnids, words))]
    rows.append((len(wnids) + 1, "n00000001", "fish", "an inner node", 3, 1, 0))
    arr = np.zeros((len(rows),), dtype=[(f, object) for f in fields])
    for i, r in enumerate(rows):
        arr[i] = r
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"synsets": arr})
    return buf.getvalue()


def id_of(wnid: str, wnids=IMAGENET_WNIDS) -> int:
    return len(wnids) - wnids.index(wnid)


@pytest.fixture
def fake_imagenet(tmp_path):
    """An ILSVRC-2012 look-alike: ``root/ILSVRC2012_devkit_t12.tar.gz`` (meta.mat + validation
    ground truth for 6 images), ``root/val/ILSVRC2012_val_0000000N.JPEG`` flat, and
    ``root/train/<wnid>/`` with 2 images per class. Returns a dict with the paths and truth."""
    root = tmp_path / "imagenet"
    root.mkdir()
    truth = [IMAGENET_WNIDS[i % 3] for i in range(6)]  # wnid of val image n at n - 1
    gt = "".join(f"{id_of(w)}\n" for w in truth).encode()
    devkit = root / "ILSVRC2012_devkit_t12.tar.gz"
    with tarfile.open(devkit, "w:gz") as tar:
        for name, data in (("ILSVRC2012_devkit_t12/data/meta.mat", meta_mat_bytes()),
                           ("ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt", gt)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    for n in range(1, 7):
        write_image(root / "val" / f"ILSVRC2012_val_{n:08d}.JPEG", fmt="JPEG", seed=n)
    for k, w in enumerate(IMAGENET_WNIDS):
        for i in range(2):
            write_image(root / "train" / w / f"{w}_{i}.JPEG", fmt="JPEG", seed=100 + 10 * k + i)
    return {"root": root, "devkit": devkit, "val": root / "val", "truth": truth}
