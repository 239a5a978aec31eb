"""The feature index on disk: its format, building it from a dataset, writing and loading it.

An index is a folder:

    index.json          what it is: model, weights, source data, dimension, count, shards
    shard-00000.npy     float16 [n, D] feature rows (memory-mapped at query time)
    shard-00000.json    {"paths": [...], "labels": [...], "ids": [...]} for those rows

``index.json`` carries ``format`` (`FORMAT`; another value is refused on loading). Building
streams the dataset through the network batch by batch and writes a shard every ``shard_size``
rows, recording progress in ``index.json`` after each; an interrupted build resumes where the last
shard ended. Searching it is `alexnet.infer.search.knn` over the memory-mapped shards.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from ..core.errors import UserError
from ..core.io import atomic_open, atomic_write_json, make_output_folder
from .search import CHUNK, Neighbour, knn

FORMAT = 1


# ----------------------------------------------------------------------------- loading
class FeatureIndex:
    """A built index, memory-mapped: ``len(index)`` vectors of ``index.dim`` dimensions."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        meta_file = self.path / "index.json"
        if not meta_file.is_file():
            raise UserError(f"{self.path}: not an index (no index.json; build one with `alexnet index build`)")
        try:
            self.meta: dict[str, Any] = json.loads(meta_file.read_text())
        except ValueError as e:
            raise UserError(f"{meta_file}: not valid JSON ({e})") from None
        if self.meta.get("format") != FORMAT:
            raise UserError(f"{meta_file}: index format {self.meta.get('format')!r}, expected {FORMAT}")
        if not self.meta.get("count") or self.meta.get("dim") is None:
            raise UserError(f"{self.path}: an empty or unfinished index (no vectors yet); build it again with "
                            f"`alexnet index build … -o {self.path}` (it resumes or starts afresh)")
        self.dim = int(self.meta["dim"])
        self.classes: list[str] | None = self.meta.get("classes")
        self._shards: list[np.ndarray] = []
        self.paths: list[str] = []
        labels: list[int] = []
        ids: list[int] = []
        for sh in self.meta["shards"]:
            try:
                arr = np.load(self.path / sh["file"], mmap_mode="r")
                items = json.loads((self.path / sh["items"]).read_text())
            except (OSError, ValueError) as e:
                raise UserError(f"{self.path / sh['file']}: unreadable index shard ({e})") from None
            if arr.shape != (sh["count"], self.dim) or len(items["paths"]) != sh["count"]:
                raise UserError(f"{self.path / sh['file']}: shard does not match index.json (damaged index)")
            self._shards.append(arr)
            self.paths += items["paths"]
            labels += items["labels"]
            ids += items.get("ids", [-1] * sh["count"])
        self.labels = torch.tensor(labels, dtype=torch.long)
        self.ids = torch.tensor(ids, dtype=torch.long)
        self._sqnorms: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def complete(self) -> bool:
        return bool(self.meta.get("complete"))

    def unfinished(self) -> str | None:
        """What is missing from an index whose build stopped early, or None when it is complete."""
        if self.complete:
            return None
        total = self.meta.get("num_samples")
        of = f" of {total:,}" if isinstance(total, int) else ""
        return (f"{self.path}: an unfinished index ({len(self):,}{of} images; its build stopped early): run the "
                f"same `alexnet index build … -o {self.path}` again, which resumes it")

    def _rows(self, arr: np.ndarray, s: int, e: int) -> torch.Tensor:
        with warnings.catch_warnings():  # a read-only memmap: torch warns, we never write to it
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(arr[s:e])

    def sqnorms(self) -> torch.Tensor:
        """Squared norms of every vector (float32 ``[N]``), computed once and kept."""
        if self._sqnorms is None:
            parts = []
            for arr in self._shards:
                for s in range(0, arr.shape[0], CHUNK):
                    x = self._rows(arr, s, s + CHUNK).float()
                    parts.append((x * x).sum(1))
            self._sqnorms = torch.cat(parts) if parts else torch.empty(0)
        return self._sqnorms

    def chunks(self, chunk: int = CHUNK) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """``(offset, float16 rows, their squared norms)`` over the index, ``chunk`` rows at a time."""
        sq = self.sqnorms()
        offset = 0
        for arr in self._shards:
            for s in range(0, arr.shape[0], chunk):
                rows = self._rows(arr, s, s + chunk)
                yield offset + s, rows, sq[offset + s:offset + s + rows.shape[0]]
            offset += arr.shape[0]

    def vectors(self) -> torch.Tensor:
        """Every vector as one float16 ``[N, D]`` tensor (loads the whole index into memory)."""
        if not self._shards:
            return torch.empty(0, self.dim, dtype=torch.float16)
        return torch.from_numpy(np.concatenate([np.asarray(a) for a in self._shards]))

    def search(self, queries: torch.Tensor, k: int = 8, metric: str = "euclidean",
               device: str | torch.device | None = None, chunk: int = CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact `knn` of ``queries [Q, D]`` (or ``[D]``) over this index."""
        if queries.shape[-1] != self.dim:
            raise UserError(f"query vectors have {queries.shape[-1]} dimensions, the index {self.dim} "
                            f"(was it built with other weights?)")
        return knn(queries, self.chunks(chunk), k=k, metric=metric, device=device, chunk=chunk)

    def neighbours(self, query: torch.Tensor, k: int = 8, metric: str = "euclidean",
                   device: str | torch.device | None = None) -> list[Neighbour]:
        """The ``k`` nearest entries to one feature vector, with their paths and labels."""
        d, i = self.search(query.reshape(1, -1), k, metric, device)
        out = []
        for r, (dist, idx) in enumerate(zip(d[0].tolist(), i[0].tolist()), start=1):
            lab = int(self.labels[idx])
            name = self.classes[lab] if self.classes and 0 <= lab < len(self.classes) else None
            out.append(Neighbour(r, idx, float(dist), self.paths[idx], lab, name))
        return out


# ----------------------------------------------------------------------------- writing
class IndexWriter:
    """Writes shards and keeps ``index.json`` current, so a build can stop at any point and resume."""

    def __init__(self, path: str | os.PathLike, meta: dict[str, Any], shard_size: int = 8192):
        self.path = Path(path)
        self.meta = meta
        self.shard_size = int(shard_size)
        self._feats: list[torch.Tensor] = []
        self._paths: list[str] = []
        self._labels: list[int] = []
        self._ids: list[int] = []
        make_output_folder(self.path, "-o")

    @property
    def count(self) -> int:
        return int(self.meta["count"])

    def add(self, feats: torch.Tensor, paths: Sequence[str], labels: Sequence[int], ids: Sequence[int]) -> None:
        """Add rows (``ids``: their indices in the source, increasing); every ``shard_size`` rows
        are written out as a shard."""
        if self.meta.get("dim") is None:
            self.meta["dim"] = int(feats.shape[1])
        self._feats.append(feats.detach().to("cpu", torch.float16))
        self._paths += [str(p) for p in paths]
        self._labels += [int(v) for v in labels]
        self._ids += [int(v) for v in ids]
        while len(self._paths) >= self.shard_size:
            self.flush(self.shard_size)

    def flush(self, n: int | None = None) -> None:
        """Write the first ``n`` buffered rows (default all) as the next shard, then record it —
        and where the source is to be read from next — in ``index.json``."""
        n = len(self._paths) if n is None else min(n, len(self._paths))
        if n == 0:
            return
        stem = f"shard-{len(self.meta['shards']):05d}"
        feats = torch.cat(self._feats)
        with atomic_open(self.path / f"{stem}.npy", "wb") as f:
            np.save(f, feats[:n].numpy())
        atomic_write_json(self.path / f"{stem}.json",
                          {"paths": self._paths[:n], "labels": self._labels[:n], "ids": self._ids[:n]})
        self.meta["shards"].append({"file": f"{stem}.npy", "items": f"{stem}.json", "count": n})
        self.meta["count"] += n
        self.meta["position"] = self._ids[n - 1] + 1
        atomic_write_json(self.path / "index.json", self.meta)  # the commit point of this shard
        self._feats = [feats[n:]]
        self._paths, self._labels, self._ids = self._paths[n:], self._labels[n:], self._ids[n:]

    def discard(self) -> None:
        """Remove what this writer put in its folder (before any shard was committed)."""
        for f in self.path.glob("shard-*.*"):
            f.unlink(missing_ok=True)
        (self.path / "index.json").unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.path.rmdir()  # only if now empty

    def finish(self, **extra: Any) -> None:
        self.flush()
        self.meta.update(extra, complete=True)
        atomic_write_json(self.path / "index.json", self.meta)


def _source_key(meta: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, Any]:
    """What an interrupted build must share with the one that continues it; the weights' fingerprint
    only where ``old`` (the interrupted build's meta) has one: a build begun by an earlier version."""
    keys = ["model", "weights", "data", "split", "val_split", "ten_crop", "num_samples"]
    if old is None or "weights_fingerprint" in old:
        keys.append("weights_fingerprint")
    return {k: meta.get(k) for k in keys}


def open_writer(out: str | os.PathLike, meta: dict[str, Any], overwrite: bool = False,
                shard_size: int = 8192) -> IndexWriter:
    """An `IndexWriter` for ``out``: a fresh index, or the continuation of an interrupted build of
    the same weights and data. Refuses to replace a finished index unless ``overwrite``."""
    out = Path(out)
    old_file = out / "index.json"
    if old_file.is_file() and not overwrite:
        try:
            old = json.loads(old_file.read_text())
        except ValueError:
            old = {}
        if old.get("count"):  # an index without vectors (a build that failed at once) is simply replaced
            if old.get("complete"):
                raise UserError(f"{out}: an index is already there (use --overwrite to rebuild it)")
            if old.get("format") == FORMAT and _source_key(old, old) == _source_key(meta, old):
                return IndexWriter(out, old, shard_size)  # resume
            raise UserError(f"{out}: holds an unfinished index of other weights or data "
                            f"(use --overwrite to start again)")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    if old_file.is_file():
        for f in out.glob("shard-*.*"):
            f.unlink()
        old_file.unlink()
    fresh = {"format": FORMAT, **meta, "dim": None, "count": 0, "position": 0, "shards": [], "complete": False}
    w = IndexWriter(out, fresh, shard_size)
    atomic_write_json(out / "index.json", fresh)
    return w


# ----------------------------------------------------------------------------- building
def sample_paths(dataset: Any, spec: str, split: str) -> Callable[[int], str]:
    """How to name dataset item ``i``: ``dataset.samples_path(i)`` (a file path, or an identifier
    for in-memory data such as CIFAR), an ImageFolder-style ``samples`` entry, or ``<spec>:<split>#i``."""
    if callable(getattr(dataset, "samples_path", None)):
        return lambda i: str(dataset.samples_path(i))
    for attr in ("samples", "imgs"):
        s = getattr(dataset, attr, None)
        if isinstance(s, (list, tuple)) and s and isinstance(s[0], (list, tuple)):
            return lambda i, s=s: str(s[i][0])
    p = getattr(dataset, "paths", None)
    if isinstance(p, (list, tuple)) and p:
        return lambda i, p=p: str(p[i])
    return lambda i: f"{spec}:{split}#{i}"


class _AllSplits:
    """The train and val splits of one dataset as one: index ``i`` runs through train, then val."""

    def __init__(self, parts: list[Any]):
        self.parts = parts
        self.classes = list(getattr(parts[0], "classes", []) or [])
        self.class_ids = list(getattr(parts[0], "class_ids", self.classes))
        self._starts = list(np.cumsum([0] + [len(p) for p in parts]))
        t = [targets_of_part(p) for p in parts]
        self.targets = None if any(x is None for x in t) else [v for x in t for v in x]
        self.transform = getattr(parts[0], "transform", None)

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _locate(self, i: int) -> tuple[Any, int]:
        k = int(np.searchsorted(self._starts, i, side="right")) - 1
        return self.parts[k], i - int(self._starts[k])

    def __getitem__(self, i: int):
        part, j = self._locate(int(i))
        return part[j]

    def load(self, i: int):
        part, j = self._locate(int(i))
        return part.load(j) if hasattr(part, "load") else part[j][0]

    def samples_path(self, i: int) -> str:
        part, j = self._locate(int(i))
        return sample_paths(part, "", "")(j)


def targets_of_part(dataset: Any) -> list[int] | None:
    t = getattr(dataset, "targets", None)
    return [int(v) for v in t] if t is not None else None


def index_dataset(data: str, split: str, transform: Any = None, val_split: float | None = None) -> Any:
    """The images an index covers: split ``train`` or ``val`` of ``data``, or ``all`` (both, every
    image; a split the data does not have is left out)."""
    from ..data import build_dataset

    if split != "all":
        return build_dataset(data, split, transform=transform, val_split=val_split)
    parts, first_error = [], None
    for part in ("train", "val"):
        try:
            ds = build_dataset(data, part, transform=transform, val_split=val_split)
        except UserError as e:  # e.g. --val-split 0 leaves no val images, MNIST without train files
            first_error = first_error or e
            continue
        if len(ds):
            parts.append(ds)
    if not parts:
        if first_error is not None:
            raise first_error
        raise UserError(f"{data}: no images")
    return parts[0] if len(parts) == 1 else _AllSplits(parts)


def build_index(weights: str | os.PathLike, data: str, out: str | os.PathLike, split: str = "all",
                batch_size: int = 64, workers: int = 2, device: str | None = None, ten_crop: bool = False,
                shard_size: int = 8192, overwrite: bool = False, limit: int | None = None,
                val_split: float | None = None, progress: bool = True,
                log: Callable[[str], None] | None = None) -> FeatureIndex:
    """Compute the features of every image of ``data`` (a dataset spec or a folder; ``split``
    ``all`` — the default, train and val —, ``train`` or ``val``) and write an index to ``out``;
    resume an interrupted build of the same inputs. A build that fails before its first shard
    leaves nothing behind, so running it again starts cleanly."""
    from .stream import stream, targets_of
    from .predictor import Predictor

    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1, not {limit} (leave it out to index every image)")
    for name, v in (("shard_size", shard_size), ("batch_size", batch_size)):  # 0 would never fill a shard
        if not isinstance(v, int) or v < 1:
            raise UserError(f"{name} must be a whole number of at least 1, not {v!r}")
    split = str(split).lower()
    if split not in ("all", "train", "val", "test"):
        raise UserError(f"unknown split {split!r}; use all (every image, the default), train or val")
    pred = Predictor(weights, device=device, ten_crop=ten_crop, batch_size=batch_size)
    dataset = index_dataset(data, split, transform=pred.transform, val_split=val_split)
    total = len(dataset) if limit is None else min(limit, len(dataset))
    targets = targets_of(dataset)
    meta = {"model": pred.name, "weights": str(Path(weights).resolve()), "weights_fingerprint": pred.fingerprint,
            "data": str(data), "split": split,
            "val_split": val_split, "ten_crop": ten_crop, "num_samples": total, "dtype": "float16",
            "classes": list(getattr(dataset, "classes", []) or []) or None,
            "feature": "forward_features (fc7 for AlexNets)"}
    writer = open_writer(out, meta, overwrite=overwrite, shard_size=shard_size)
    start = int(writer.meta.get("position", 0))
    if start and log:
        log(f"resuming: {writer.count} vectors already in {out}, continuing at sample {start} of {total}")
    name_of = sample_paths(dataset, str(data), split)
    bad: dict[str, str] = dict(writer.meta.get("bad") or {})
    writer.meta["bad"] = bad  # saved with every shard
    t0 = time.perf_counter()
    bar = _progress(total - start, enabled=progress)
    try:
        for images, ids, bad_items in stream(dataset, batch_size, workers, start, total):
            bad.update((str(p), str(r)) for p, r in bad_items)
            if len(ids):
                feats = pred.batch_features(images)
                idl = ids.tolist()
                labels = [targets[i] if targets is not None else -1 for i in idl]
                writer.add(feats, [name_of(i) for i in idl], labels, idl)
            bar.update(len(ids) + len(bad_items))
        bar.close()
        if writer.count + len(writer._paths) == 0:
            raise UserError(f"{data}: none of the {total} images could be read ({len(bad)} bad); nothing indexed")
    except BaseException:
        if writer.count == 0:  # nothing committed: leave no index.json behind to block the next build
            writer.discard()
        raise
    writer.finish(seconds=round(time.perf_counter() - t0, 2))
    return FeatureIndex(out)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool):
    import sys

    if not enabled or not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="index", leave=False)
