"""``alexnet data shards SPEC -o DIR``: write a dataset as webdataset tar shards (`alexnet.data.shards`).

Above the factory (it reads its source through `build_dataset`); the reader, `shards.py`, is below it.

Our own small writer (plain `tarfile`, no webdataset needed to write or to train), because the
format is that simple and the index — labels per shard, splits, what was skipped — is ours; a test
reads the shards back with webdataset itself.

- Splits: ``train``, and ``val`` where the source has one — its own (a ``val/`` folder, ImageNet's
  validation set, CIFAR-10's test batch) or the stratified hold-out ``build_dataset`` carves with
  ``val_split`` and ``seed``, the very images training on the source would hold out.
- Each split's samples are shuffled once (seeded by ``seed``) before they are cut into shards, so
  every shard is a random sample of its split and a shard-wise training order mixes classes.
- Files are stored as they are (after a full decode checks them: an unreadable one is skipped and
  listed in the index, as ``data check`` would report it); in-memory images (CIFAR-10, MNIST,
  digits, a cache) as lossless PNG, so the pixels survive exactly.
- A shard is cut when it would pass ``shard_mb`` megabytes; each is written atomically, and
  ``index.json`` last: a build killed half-way leaves no index, and readers refuse it.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..core.errors import UserError
from ..core.io import TEMP_SUFFIX, atomic_write
from .base import FileDataset, ImageDataset, TensorImageDataset
from .check import bounded_map
from .datasets import build_dataset, parse_spec
from .decode import BadImageError, decode_image_info
from .loader import mix_seed
from .shards import FORMAT, INDEX, SOURCES, VERSION, shard_key

DEFAULT_SHARD_MB = 64.0  # webdataset suggests 100 MB–1 GB, litdata and MDS default to 64 MB chunks
EXT = {"JPEG": "jpg", "PNG": "png", "PPM": "ppm", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff", "WEBP": "webp"}
OURS = re.compile(r"^(?:[a-z]+-\d{5}\.tar|" + re.escape(INDEX) + "|" + re.escape(SOURCES) + r")$")
MTIME = 0  # every member's time: the same source gives the same bytes


def _png(img: Any) -> bytes:
    from PIL import Image

    arr = img.permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _record(ds: ImageDataset, i: int) -> tuple[int, str | None, bytes | str]:
    """``(i, extension, bytes)`` of sample ``i`` as stored, or ``(i, None, reason)`` when unreadable."""
    try:
        if isinstance(ds, FileDataset) and os.path.isfile(ds.samples[i][0]):
            with open(ds.samples[i][0], "rb") as f:
                data = f.read()
            _, info = decode_image_info(data, name=ds.samples[i][0], max_pixels=ds.max_pixels)  # the full check
            if info.format in EXT:
                return i, EXT[info.format], data
        return i, "png", _png(ds.load(i))
    except BadImageError as e:
        return i, None, e.reason
    except OSError as e:
        return i, None, f"unreadable: {e.strerror or type(e).__name__}"
    except Exception as e:  # noqa: BLE001 — a bad sample is skipped and reported, never fatal
        return i, None, f"{type(e).__name__}: {str(e).strip()[:100]}"


def _channels(ds: ImageDataset) -> int:
    if isinstance(ds, TensorImageDataset):
        return int(ds.images.shape[1])
    return int(getattr(ds, "channels", 3))


class _ShardWriter:
    """Cuts one split's records into ``<split>-<k>.tar`` files of about ``limit`` bytes."""

    def __init__(self, root: str, split: str, limit: int):
        self.root, self.split, self.limit = root, split, limit
        self.shards: list[dict[str, Any]] = []
        self.n = 0  # samples written in this split (the next key)
        self._start()

    def _start(self) -> None:
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.USTAR_FORMAT)
        self.labels: list[int] = []

    def _member(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), MTIME, 0o444
        self.tar.addfile(info, io.BytesIO(data))

    def add(self, ext: str, data: bytes, label: int) -> str:
        size = 1024 + 512 * math.ceil(len(data) / 512) + 512  # two headers, the data, the label block
        if self.labels and self.buf.tell() + size + 1024 > self.limit:
            self.close()
        key = shard_key(self.split, self.n)
        self._member(f"{key}.{ext}", data)
        self._member(f"{key}.cls", str(int(label)).encode())
        self.labels.append(int(label))
        self.n += 1
        return key

    def close(self) -> None:
        """Finish the current shard (if it holds anything): written atomically, entered in the list."""
        if not self.labels and self.shards:
            return
        self.tar.close()
        name = f"{self.split}-{len(self.shards):05d}.tar"
        data = self.buf.getvalue()
        atomic_write(os.path.join(self.root, name), data)
        self.shards.append({"name": name, "count": len(self.labels), "bytes": len(data), "labels": self.labels})
        self._start()


def _prepare_out(out: str, overwrite: bool) -> str:
    root = os.path.abspath(os.fspath(out))
    if os.path.exists(root) and not os.path.isdir(root):
        raise UserError(f"-o {out}: an existing file; shards go into a folder (give a new or empty one)")
    names = os.listdir(root) if os.path.isdir(root) else []
    if names and not overwrite:
        raise UserError(f"-o {out} is not empty; give a new or empty folder, or --overwrite to replace "
                        f"the shards in it")
    foreign = [n for n in names if not OURS.match(n) and not (n.startswith(".") and n.endswith(TEMP_SUFFIX))]
    if foreign:
        raise UserError(f"-o {out} holds files that are not shards ({', '.join(sorted(foreign)[:3])}); "
                        f"--overwrite replaces only shards: give another folder")
    if INDEX in names:
        os.unlink(os.path.join(root, INDEX))  # first: the folder is never a finished-looking mix
    for n in names:
        if n != INDEX:
            os.unlink(os.path.join(root, n))
    try:
        os.makedirs(root, exist_ok=True)
    except OSError as e:
        raise UserError(f"-o {out}: cannot create the shards folder ({e.strerror})") from None
    return root


def build_shards(spec: str, out: str | os.PathLike, *, shard_mb: float = DEFAULT_SHARD_MB,
                 val_split: float | None = None, seed: int = 0, workers: int | None = None,
                 overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Write every split of ``spec`` as webdataset shards in ``out`` (see the module docstring);
    returns the index. ``overwrite``: replace the shards a folder holds (nothing else)."""
    from tqdm import tqdm

    if not shard_mb > 0:
        raise UserError(f"--shard-size must be a positive number of megabytes, not {shard_mb}")
    if parse_spec(spec)[0] == "shards":
        raise UserError(f"{spec}: already shards")
    splits: dict[str, ImageDataset] = {"train": build_dataset(spec, "train", val_split=val_split, seed=seed)}
    try:
        splits["val"] = build_dataset(spec, "val", val_split=val_split, seed=seed)
    except UserError:
        pass  # no validation part (e.g. --val-split 0): the shards hold a train split only
    root = _prepare_out(os.fspath(out), overwrite)
    workers = max(1, workers if workers else min(8, os.cpu_count() or 1))
    train = splits["train"]
    index: dict[str, Any] = {"format": FORMAT, "version": VERSION, "source": spec, "val_split": val_split,
                             "seed": seed, "classes": list(train.classes), "class_ids": list(train.class_ids),
                             "channels": _channels(train), "splits": {}, "bad": []}
    sources: list[str] = []
    total = sum(len(ds) for ds in splits.values())
    with ThreadPoolExecutor(workers) as pool, \
            tqdm(total=total, desc="sharding", unit="img", dynamic_ncols=True,
                 disable=not progress or not sys.stderr.isatty()) as bar:
        for split, ds in splits.items():
            order = np.random.default_rng(mix_seed(seed, 0x5A4D, len(index["splits"]))).permutation(len(ds))
            writer = _ShardWriter(root, split, int(shard_mb * 1e6))
            targets = ds.targets
            for i, ext, got in bounded_map(pool, lambda i: _record(ds, i), order.tolist(), window=8 * workers):
                if ext is None:
                    index["bad"].append([ds.samples_path(i), got])
                else:
                    key = writer.add(ext, got, targets[i])
                    sources.append(f"{key}\t{ds.samples_path(i)}\n")
                bar.update(1)
            writer.close()
            counts = np.bincount(np.asarray([t for s in writer.shards for t in s["labels"]], dtype=np.int64),
                                 minlength=len(train.classes)).tolist()
            index["splits"][split] = {"count": writer.n, "class_counts": counts, "note": ds.slice_note,
                                      "shards": writer.shards}
    atomic_write(os.path.join(root, SOURCES), "".join(sources))
    # compact (one line per shard's labels: ImageNet's index stays a few MB), and last of all
    atomic_write(os.path.join(root, INDEX), json.dumps(index, separators=(",", ":")) + "\n")
    return index
