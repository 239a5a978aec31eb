"""The ``cache:DIR`` dataset kind: images decoded once by ``alexnet data cache`` (the FFCV idea).

A cache folder holds, for every split of the source dataset (``train``, ``val`` when it has one):

- ``<split>-<k>.npy`` (``raw``): uint8 ``[n, S, S, C]`` pixels (HWC), memory-mapped when read; every
  image's short side was resized to ``S`` and the image centre-cropped to ``S``×``S``, so one split
  is one block of equal-sized images. ``<split>-<k>.bin`` (``jpeg``): the images re-encoded as
  JPEG at short side ``S`` (aspect kept), concatenated; offsets in the shard's JSON.
- ``<split>-<k>.json``: the shard's labels, source paths and the source files that could not be
  decoded (skipped). Written after the shard's pixels: a shard without it is unfinished.
- ``build.json``: what the cache was built from (written first; a re-run must ask for the same).
- ``manifest.json``: classes, splits, shard list, bad files — written last and atomically, so a
  cache without it is incomplete and is refused here with one line.

Reading: ``CacheDataset.load(i)`` returns the stored image (uint8 ``[C, H, W]``), so every transform
works on it. With a ``raw`` cache whose ``S`` is the transform's resize (the model's short side,
256 for ``alexnet``, 32 for ``alexnet-cifar``), training does not run the per-image transform at all:
`CacheDataset.get_batch` cuts the random crops and flips of a whole batch straight out of the
memory map (uint8 slices, no decode, no resize); the loader calls it through
`SafeDataset.__getitems__`. PCA lighting (``--aug paper``) is drawn there too, but a training
loader leaves it to the training device, which adds each image's RGB shift while it normalises
the batch (``defer_lighting``; `LitBatch`, `Normalizer`): added to the uint8 batch here, it made
the loader ~15× slower (``benchmarks/data_aug.md``). Each image's crop, flip and lighting draw are
a pure function of ``(seed, epoch, index)``, as on the per-image path (but not the same draws).
Normalisation stays on the training device (`Normalizer`).
"""

from __future__ import annotations

import bisect
import json
import os
import random
import warnings
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..core.errors import UserError
from .augment import AugPlan
from .base import ImageDataset
from .decode import decode_image
from .samples import SampleList
from .transforms import PCALighting

MANIFEST = "manifest.json"
BUILD = "build.json"
VERSION = 1
FORMATS = ("raw", "jpeg")


def is_cache(path: str) -> bool:
    """Whether ``path`` is a cache folder (complete or not)."""
    return os.path.isfile(os.path.join(path, MANIFEST)) or os.path.isfile(os.path.join(path, BUILD))


def read_manifest(root: str) -> dict[str, Any]:
    """The manifest of a complete cache; `UserError` (one line) for a missing or unfinished one."""
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise UserError(f"{root}: no such cache folder (write one with `alexnet data cache SPEC -o {root}`)")
    path = os.path.join(root, MANIFEST)
    if not os.path.isfile(path):
        if os.path.isfile(os.path.join(root, BUILD)):
            raise UserError(f"{root}: the cache is incomplete (no {MANIFEST}; its build was interrupted); "
                            f"run the same `alexnet data cache` command again to finish it")
        raise UserError(f"{root}: not a cache (no {MANIFEST}); write one with `alexnet data cache SPEC -o {root}`")
    try:
        with open(path, encoding="utf-8") as f:
            m = json.load(f)
        assert isinstance(m, dict) and m.get("version") == VERSION and m.get("format") in FORMATS
    except (OSError, ValueError, AssertionError):
        raise UserError(f"{path}: not a manifest this version can read; rebuild the cache") from None
    return m


def cache_dataset(root: str, split: str, transform: Callable | None = None) -> "CacheDataset":
    return CacheDataset(root, split, transform)


class CacheDataset(ImageDataset):
    """Split ``split`` (``train``, ``val`` or ``all``) of the cache in ``root``."""

    def __init__(self, root: str, split: str = "train", transform: Callable | None = None):
        root = os.path.abspath(root)
        m = read_manifest(root)
        splits = m["splits"]
        names = list(splits) if split == "all" else [split]
        for s in names:
            if s not in splits:
                raise UserError(f"cache {root} has no {s} split (it has {', '.join(splits)}); "
                                f"the source had no validation part — rebuild with --val-split")
        super().__init__(m["classes"], m.get("class_ids"), transform, f"cache:{root}", split)
        self.root, self.format, self.short_side = root, m["format"], int(m["short_side"])
        self.channels = int(m["channels"])
        self.source = m.get("source", "")
        self.shards: list[dict[str, Any]] = []
        labels: list[int] = []
        sources: list[str] = []
        starts = []
        for s in names:
            for shard in splits[s]["shards"]:
                meta = _read_json(os.path.join(root, shard + ".json"))
                starts.append(len(labels))
                labels += [int(t) for t in meta["labels"]]
                sources += list(meta.get("sources") or [f"{shard}#{j}" for j in range(meta["count"])])
                self.shards.append({"name": shard, "count": int(meta["count"]),
                                    "offsets": meta.get("offsets")})
                self._check_shard(self.shards[-1])
        bad = next((t for t in labels if not 0 <= t < len(self.classes)), None)
        if bad is not None:  # a shard's .json edited or damaged: training would fail at that image
            raise UserError(f"cache {root}: label {bad} is not one of its {len(self.classes)} classes; the cache "
                            f"is damaged: build it again (remove {root} and run alexnet data cache)")
        # each image's source path and label, compact (`SampleList`: ~45 bytes an image, not ~200)
        self.index = SampleList(zip(sources, labels))
        del labels, sources
        self._starts = starts
        self._arrays: dict[int, Any] = {}  # opened lazily, per process (never pickled to workers)
        self._tensors: dict[int, torch.Tensor] = {}
        self.slice_note = ""

    def _check_shard(self, shard: dict[str, Any]) -> None:
        """A shard's file must be whole (a file cut short maps past its end: a bus error, or numpy's
        "mmap length is greater than file size", at the first image read from it). Cheap: one stat."""
        raw = self.format == "raw"
        path = os.path.join(self.root, shard["name"] + (".npy" if raw else ".bin"))
        need = (shard["count"] * self.channels * self.short_side ** 2 if raw  # + the .npy header
                else int((shard["offsets"] or [0])[-1]))
        have = os.path.getsize(path) if os.path.isfile(path) else None
        if have is None or have < need:
            what = "is missing" if have is None else f"is {have:,} bytes, cut short of its {need:,}"
            raise UserError(f"cache {self.root}: {os.path.basename(path)} {what}; the cache is damaged: build it "
                            f"again (remove {self.root} and run alexnet data cache)")

    # ------------------------------------------------------------------ plumbing

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_arrays"], state["_tensors"] = {}, {}
        return state

    @property
    def targets(self) -> list[int]:
        return self.index.labels.tolist()

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        img = self.load(i)
        return (self.transform(img) if self.transform is not None else img), int(self.index.labels[i])

    def samples_path(self, i: int) -> str:
        return self.index.path(i)

    def _locate(self, i: int) -> tuple[int, int]:
        if not 0 <= i < len(self.index):
            raise IndexError(i)
        s = bisect.bisect_right(self._starts, i) - 1
        return s, i - self._starts[s]

    def _array(self, s: int) -> Any:
        a = self._arrays.get(s)
        if a is None:
            name = self.shards[s]["name"]
            if self.format == "raw":
                path = os.path.join(self.root, name + ".npy")
                try:
                    a = np.load(path, mmap_mode="r")
                except Exception as e:  # noqa: BLE001 — a damaged header: numpy parses it as Python (TokenError, …)
                    raise UserError(f"cache {self.root}: {name}.npy cannot be read ({type(e).__name__}); the "
                                    f"cache is damaged: build it again (remove {self.root} and run alexnet "
                                    f"data cache)") from None
            else:
                a = np.memmap(os.path.join(self.root, name + ".bin"), dtype=np.uint8, mode="r")
            self._arrays[s] = a
        return a

    def _tensor(self, s: int) -> torch.Tensor:
        """Shard ``s`` of a raw cache as a (read-only) uint8 tensor over the memory map."""
        t = self._tensors.get(s)
        if t is None:
            with warnings.catch_warnings():  # the map is read-only; nothing here writes to it
                warnings.simplefilter("ignore", UserWarning)
                t = torch.from_numpy(self._array(s))
            self._tensors[s] = t
        return t

    def jpeg_bytes(self, i: int) -> np.ndarray:
        """The stored JPEG of image ``i`` (``jpeg`` caches), a uint8 array view."""
        s, j = self._locate(i)
        off = self.shards[s]["offsets"]
        return self._array(s)[off[j]:off[j + 1]]

    def load(self, i: int) -> torch.Tensor:
        """The stored image ``i``: uint8 ``[C, S, S]`` (raw) or ``[3, H, W]`` with short side S (jpeg)."""
        if self.format == "jpeg":
            return decode_image(self.jpeg_bytes(i).tobytes(), name=self.samples_path(i))
        s, j = self._locate(i)
        return torch.from_numpy(np.array(self._array(s)[j])).permute(2, 0, 1).contiguous()

    # ------------------------------------------------------------------ the batched fast path

    def fast_plan(self) -> AugPlan | None:
        """The transform's `AugPlan` when `get_batch` can apply it to this cache, else None."""
        plan: AugPlan | None = getattr(self.transform, "plan", None)
        if self.format != "raw" or plan is None or not plan.runs_on("cache") or plan.channels != self.channels:
            return None
        S = self.short_side
        h, w = plan.size
        if plan.resize != S or h > S or w > S:
            return None  # the stored images would need a resize or padding first: the per-image path
        if plan.name == "paper" and plan.center > S:
            return None
        return plan

    def get_batch(self, indices: Sequence[int], seeds: Sequence[int], *,
                  defer_lighting: bool = False) -> tuple[torch.Tensor, ...] | None:
        """Images ``indices`` through the transform's plan, as one uint8 ``[B, C, h, w]`` batch
        (channels_last memory) and their labels; None when the plan does not fit this cache (the
        caller then runs the per-image transform). ``seeds[b]`` alone decides image b's crop,
        flip and lighting.

        ``defer_lighting`` (a plan with PCA lighting): the images come back unlit, followed by
        their float32 ``[B, C]`` RGB shifts (for [0, 1] pixels; the same draws), for the training
        device to add while it normalises (`Normalizer`; §4.1's shift is one vector per image) —
        adding it here, to a uint8 batch, costs more than cutting the crops."""
        plan = self.fast_plan()
        if plan is None:
            return None
        S, C = self.short_side, self.channels
        h, w = plan.size
        kind, flip, pad = plan.name, plan.flip, plan.pad
        pca = PCALighting.of(plan)
        # torch's strided copy, not numpy's: a mirrored crop (negative stride over 3-byte pixels)
        # copies ~8× faster (measured: 29 vs 123 µs per 227² crop, one thread)
        out = torch.empty((len(indices), h, w, C), dtype=torch.uint8)
        normals: list[list[float]] | None = [] if pca is not None else None
        ct, cl = int(round((S - h) / 2.0)), int(round((S - w) / 2.0))
        for b, (i, seed) in enumerate(zip(indices, seeds)):
            s, j = self._locate(int(i))
            img = self._tensor(s)[j]
            rng = random.Random(seed)
            if kind == "none":
                t, l, mirror = ct, cl, False
            elif kind == "small":  # centre crop h×w, then a random h×w crop of it padded by `pad`
                t, l = ct + rng.randint(-pad, pad), cl + rng.randint(-pad, pad)
                mirror = flip and rng.random() < 0.5
            else:  # paper, light: a random h×w crop of the S×S image
                t, l = rng.randint(0, S - h), rng.randint(0, S - w)
                mirror = flip and rng.random() < 0.5
            r0, r1, c0, c1 = (ct, ct + h, cl, cl + w) if kind == "small" else (0, S, 0, S)  # where pixels are
            if r0 <= t and t + h <= r1 and c0 <= l and l + w <= c1:
                crop = img[t:t + h, l:l + w]
            else:  # part of the crop lies in the zero padding
                crop = torch.zeros((h, w, C), dtype=torch.uint8)
                t0, t1, l0, l1 = max(t, r0), min(t + h, r1), max(l, c0), min(l + w, c1)
                if t1 > t0 and l1 > l0:
                    crop[t0 - t:t1 - t, l0 - l:l1 - l] = img[t0:t1, l0:l1]
            out[b].copy_(crop.flip(1) if mirror else crop)
            if normals is not None:
                normals.append([rng.gauss(0.0, 1.0) for _ in range(3)])
        labels = torch.from_numpy(self.index.labels[np.asarray(indices, dtype=np.int64)].astype(np.int64))
        if normals is None:
            return out.permute(0, 3, 1, 2), labels
        shifts = pca.shift_from(normals)  # [B, 3]: one RGB shift per image
        if defer_lighting:
            return out.permute(0, 3, 1, 2), labels, shifts
        return PCALighting.add_shift(out, shifts, (-1, 1, 1, C)).permute(0, 3, 1, 2), labels


def _read_json(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: unreadable cache shard index ({str(e)[:80]}); rebuild the cache") from None
