"""``alexnet data cache SPEC -o DIR``: decode a dataset once into a cache (`alexnet.data.cache`).

Above the factory (it reads its source through `build_dataset`); the reader, `cache.py`, is below it.

Every split the source has (``train``; ``val`` when it has one or ``--val-split`` holds one out)
is decoded into shards of ``shard_size`` images. A finished shard is two files: its pixels (``.npy``
or ``.bin``) and then its index (``.json``), each written atomically; a re-run after an interrupt
skips the shards whose index exists. ``manifest.json`` is written last.

Short side (``short_side=None``): 256, the paper's, unless the source's images are smaller — in-memory
sets (CIFAR-10, MNIST, digits) and folders of small images keep their size (the largest short side
among up to 64 sampled images), because nobody expects a 32×32 CIFAR image to come back 256×256.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
import torchvision.transforms.v2.functional as F

from ..core.errors import UserError
from ..core.io import atomic_open, atomic_write_json
from .base import FileDataset, ImageDataset, TensorImageDataset
from .cache import BUILD, FORMATS, MANIFEST, VERSION
from .check import bounded_map
from .datasets import build_dataset, parse_spec
from .decode import BadImageError, decode_image_info

DEFAULT_SHORT_SIDE = 256
DEFAULT_SHARD_SIZE = 1024


def auto_short_side(ds: ImageDataset, default: int = DEFAULT_SHORT_SIDE, probes: int = 64) -> int:
    """``default``, or the images' own short side when they are smaller (never upscale small data)."""
    if isinstance(ds, TensorImageDataset):
        return min(default, min(ds.images.shape[-2:]))
    if isinstance(ds, FileDataset) and len(ds):
        step = max(1, len(ds) // probes)
        sides = []
        for i in range(0, len(ds), step):
            try:
                _, info = decode_image_info(ds.samples[i][0])
                sides.append(min(info.width, info.height))
            except BadImageError:
                continue
            if len(sides) >= probes:
                break
        if sides:
            return min(default, max(sides))
    return default


def _prepare(img: torch.Tensor, short_side: int, fmt: str) -> torch.Tensor:
    """Short side → ``short_side`` (antialiased), and for ``raw`` the centre ``S``×``S`` square."""
    h, w = img.shape[-2:]
    if min(h, w) != short_side:
        img = F.resize(img, short_side, antialias=True)
    if fmt == "raw":
        img = F.center_crop(img, [short_side, short_side])
    return img


def _encode_jpeg(img: torch.Tensor, quality: int) -> bytes:
    from PIL import Image

    arr = img.permute(1, 2, 0).numpy()
    pil = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    buf = io.BytesIO()
    # 4:4:4 chroma: with the usual 4:2:0, colour detail at cache sizes (a CIFAR image, a 224 crop's
    # edges) came back 5× further from the source (mean error 11 vs 2 levels at quality 95)
    pil.save(buf, format="JPEG", quality=quality, subsampling=0)
    return buf.getvalue()


def _load_one(ds: ImageDataset, i: int, short_side: int, fmt: str, quality: int) -> tuple[int, Any, str | None]:
    try:
        img = _prepare(ds.load(i), short_side, fmt)
        return i, (img if fmt == "raw" else _encode_jpeg(img, quality)), None
    except BadImageError as e:
        return i, None, e.reason
    except Exception as e:  # noqa: BLE001 — a bad sample is skipped and reported, never fatal
        return i, None, f"{type(e).__name__}: {str(e).strip()[:100]}"


def _write_shard(root: str, name: str, ds: ImageDataset, idx: range, *, short_side: int, fmt: str, quality: int,
                 pool: ThreadPoolExecutor, workers: int, bar: Any, targets: list[int]) -> dict[str, Any]:
    """One shard; ``targets``: ``ds.targets``, read once per build (a list of every label: read per
    shard, it made building ImageNet's 1,250 shards quadratic)."""
    items, labels, sources, bad = [], [], [], []
    for i, got, reason in bounded_map(pool, lambda i: _load_one(ds, i, short_side, fmt, quality), idx,
                                      window=8 * workers):
        if got is None:
            bad.append([ds.samples_path(i), reason])
        else:
            items.append(got)
            labels.append(int(targets[i]))
            sources.append(ds.samples_path(i))
        bar.update(1)
    meta: dict[str, Any] = {"count": len(items), "labels": labels, "sources": sources, "bad": bad}
    if fmt == "raw":
        c = items[0].shape[0] if items else 3
        arr = (torch.stack(items).permute(0, 2, 3, 1).numpy() if items
               else np.zeros((0, short_side, short_side, c), np.uint8))
        with atomic_open(os.path.join(root, name + ".npy"), "wb") as f:
            np.save(f, np.ascontiguousarray(arr))
    else:
        offsets = np.cumsum([0] + [len(b) for b in items]).tolist()
        with atomic_open(os.path.join(root, name + ".bin"), "wb") as f:
            for b in items:
                f.write(b)
        meta["offsets"] = offsets
    atomic_write_json(os.path.join(root, name + ".json"), meta)  # last: marks the shard finished
    return meta


def _check_build_args(fmt: str, short_side: int | None, quality: int, shard_size: int) -> None:
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if short_side is not None and short_side < 1:
        raise UserError(f"--short-side must be at least 1 pixel, not {short_side}")
    if not 1 <= quality <= 100:
        raise UserError(f"--quality must be in 1‥100, not {quality}")
    if shard_size < 1:
        raise UserError(f"shard size must be at least 1, not {shard_size}")


def _start_or_resume(root: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """Record ``params`` in a new, empty ``root``; or check that ``root`` holds a build of the same
    ``params``. Returns the manifest when that build is finished, else None."""
    build_path = os.path.join(root, BUILD)
    if os.path.isfile(build_path):
        with open(build_path, encoding="utf-8") as f:
            old = json.load(f)
        # only what both recorded: a build begun (or finished) by a version that kept fewer keys goes on
        changed = [k for k, v in params.items() if k in old and old.get(k) != v]
        if changed:
            diff = ", ".join(_change(k, old.get(k), params[k]) for k in changed)
            raise UserError(f"{root} holds a cache built differently ({diff}); use another -o folder, "
                            f"or delete it to rebuild")
        if os.path.isfile(os.path.join(root, MANIFEST)):
            with open(os.path.join(root, MANIFEST), encoding="utf-8") as f:
                return json.load(f)
    elif os.listdir(root):
        raise UserError(f"{root} is not empty and holds no cache; choose an empty or new -o folder")
    else:
        atomic_write_json(build_path, params)
    return None


def _change(key: str, old: Any, new: Any) -> str:
    """One changed build parameter, short: a class list by its first difference."""
    if key == "classes" and isinstance(old, list) and isinstance(new, list):
        i = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
        at = lambda xs: repr(xs[i]) if i < len(xs) else "none"  # noqa: E731
        return f"classes: {len(old)} → {len(new)}, class {i} {at(old)} → {at(new)}"
    return f"{key} {old!r} → {new!r}"


def _write_manifest(root: str, spec: str, fmt: str, short_side: int, splits: dict[str, ImageDataset],
                    plan: list[tuple[str, int, range]]) -> dict[str, Any]:
    """``manifest.json`` from the finished shards' indexes; written last: the cache is complete."""
    manifest: dict[str, Any] = {"version": VERSION, "format": fmt, "short_side": short_side, "source": spec,
                                "classes": list(splits["train"].classes),
                                "class_ids": list(splits["train"].class_ids), "splits": {}, "bad": []}
    channels = None
    for split in splits:
        shards = [f"{split}-{k:05d}" for s, k, _ in plan if s == split]
        count = 0
        for name in shards:
            with open(os.path.join(root, name + ".json"), encoding="utf-8") as f:
                meta = json.load(f)
            count += meta["count"]
            manifest["bad"] += meta["bad"]
            if channels is None and meta["count"] and fmt == "raw":
                channels = int(np.load(os.path.join(root, name + ".npy"), mmap_mode="r").shape[-1])
        manifest["splits"][split] = {"count": count, "shards": shards}
    if channels is None:  # jpeg caches decode to RGB
        channels = 3
    manifest["channels"] = channels
    atomic_write_json(os.path.join(root, MANIFEST), manifest)
    return manifest


def build_cache(spec: str, out: str | os.PathLike, *, short_side: int | None = None, fmt: str = "raw",
                quality: int = 90, shard_size: int = DEFAULT_SHARD_SIZE, workers: int | None = None,
                val_split: float | None = None, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Decode every split of ``spec`` into a cache in ``out`` (see the module docstring); returns
    the manifest. Resumes an interrupted build of the same parameters; a finished cache is left
    as it is."""
    from tqdm import tqdm

    _check_build_args(fmt, short_side, quality, shard_size)
    root = os.path.abspath(os.fspath(out))
    if os.path.exists(root) and not os.path.isdir(root):
        raise UserError(f"-o {out}: an existing file; the cache is a folder (give a new or empty folder)")
    kind, _ = parse_spec(spec)
    if kind == "cache":
        raise UserError(f"{spec}: already a cache")
    try:
        os.makedirs(root, exist_ok=True)
    except OSError as e:  # a parent that is a file, no permission, a read-only disk
        raise UserError(f"-o {out}: cannot create the cache folder ({e.strerror})") from None

    splits: dict[str, ImageDataset] = {"train": build_dataset(spec, "train", val_split=val_split, seed=seed)}
    try:
        splits["val"] = build_dataset(spec, "val", val_split=val_split, seed=seed)
    except UserError:
        pass  # no validation part (e.g. --val-split 0): the cache has a train split only
    S = int(short_side) if short_side else auto_short_side(splits["train"])
    params = {"version": VERSION, "source": spec, "short_side": S, "format": fmt,
              "quality": quality if fmt == "jpeg" else None, "shard_size": shard_size,
              "val_split": val_split, "seed": seed, "splits": {k: len(v) for k, v in splits.items()},
              "classes": list(splits["train"].classes)}  # a class renamed between two attempts moves every label
    finished = _start_or_resume(root, params)
    if finished is not None:
        return finished

    workers = max(1, workers if workers else min(8, os.cpu_count() or 1))
    plan = [(split, k, range(k * shard_size, min(len(ds), (k + 1) * shard_size)))
            for split, ds in splits.items() for k in range(max(1, math.ceil(len(ds) / shard_size)))]
    done = {f"{split}-{k:05d}" for split, k, _ in plan if os.path.isfile(os.path.join(root, f"{split}-{k:05d}.json"))}
    total = sum(len(ds) for ds in splits.values())
    initial = sum(len(r) for split, k, r in plan if f"{split}-{k:05d}" in done)
    # Full-size decodes (no DCT-scaled reduced decode, as training's loader does): the cache is made
    # once, so it holds the best pixels an antialiased resize gives.
    with ThreadPoolExecutor(workers) as pool, \
            tqdm(total=total, initial=initial, desc="caching", unit="img", dynamic_ncols=True,
                 disable=not progress or not sys.stderr.isatty()) as bar:
        targets = {split: ds.targets for split, ds in splits.items()}
        for split, k, idx in plan:
            name = f"{split}-{k:05d}"
            if name not in done:
                _write_shard(root, name, splits[split], idx, short_side=S, fmt=fmt, quality=quality,
                             pool=pool, workers=workers, bar=bar, targets=targets[split])
    return _write_manifest(root, spec, fmt, S, splits, plan)
