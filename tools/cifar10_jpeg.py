"""CIFAR-10's official python batches → ``OUT/train/<class>/<nnnn>.jpg``: the JPEG folder layout
every CIFAR-10 figure in docs/cifar10.md was measured on.

    python tools/cifar10_jpeg.py ~/data/cifar10 ~/data/cifar10-jpeg            # the 50,000 training images
    python tools/cifar10_jpeg.py ~/data/cifar10 ~/data/cifar10-jpeg --with-test  # and test/ (then it validates)

``SRC`` holds ``cifar-10-batches-py/`` (or is that folder; ``alexnet train --data-path SRC --download``
or the archive from https://www.cs.toronto.edu/~kriz/cifar.html unpacked puts it there). The
images are encoded as the measured ones are, as far as their files tell: Pillow's JPEG at quality
75 with 4:2:0 chroma subsampling (its defaults; about 900 bytes a file, 16 MB as a .tar.gz), named
per class ``0000.jpg``…``4999.jpg`` in the batches' order (``data_batch_1`` first). The classes'
folder names sort into CIFAR-10's own label order. An existing file is left as it is, so an
interrupted conversion continues where it stopped. Needs numpy and Pillow only.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys

import numpy as np
from PIL import Image


def batches_dir(src: str) -> str:
    for d in (os.path.join(src, "cifar-10-batches-py"), src):
        if os.path.isfile(os.path.join(d, "data_batch_1")):
            return d
    raise SystemExit(f"error: no cifar-10-batches-py/data_batch_1 in {src} (unpack cifar-10-python.tar.gz there, "
                     f"or run: alexnet data check cifar10:{src} --download)")


def convert(src: str, out: str, splits: tuple[str, ...] = ("train",), quality: int = 75) -> dict[str, int]:
    """Write every image of ``splits`` (train: data_batch_1‥5, test: test_batch) under ``out``;
    return the number of images per split."""
    d = batches_dir(src)
    with open(os.path.join(d, "batches.meta"), "rb") as f:
        names = pickle.load(f, encoding="latin1")["label_names"]
    counts = {}
    for split in splits:
        files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        per_class = [0] * len(names)
        for fname in files:
            with open(os.path.join(d, fname), "rb") as f:
                batch = pickle.load(f, encoding="latin1")
            images = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            for img, label in zip(images, batch["labels"]):
                folder = os.path.join(out, split, names[label])
                os.makedirs(folder, exist_ok=True)
                path = os.path.join(folder, f"{per_class[label]:04d}.jpg")
                per_class[label] += 1
                if not os.path.exists(path):
                    tmp = path + ".tmp"
                    Image.fromarray(img).save(tmp, format="JPEG", quality=quality, subsampling="4:2:0")
                    os.replace(tmp, path)
        counts[split] = sum(per_class)
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src", help="folder holding cifar-10-batches-py/ (or that folder)")
    p.add_argument("out", help="where train/<class>/ (and test/<class>/) go")
    p.add_argument("--with-test", action="store_true", help="also test/<class>/ from test_batch (it then validates)")
    p.add_argument("--quality", type=int, default=75, help="JPEG quality (default 75, as the measured images)")
    a = p.parse_args(argv)
    if not 1 <= a.quality <= 95:
        raise SystemExit(f"error: --quality must be between 1 and 95, not {a.quality}")
    counts = convert(os.path.expanduser(a.src), os.path.expanduser(a.out),
                     ("train", "test") if a.with_test else ("train",), a.quality)
    print(", ".join(f"{n} {s} images" for s, n in counts.items()) + f" in {a.out}; then: alexnet train "
          f"--recipe cifar10 --data-path {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
