"""Search images by their learned features: the paper's Figure 4.

§6.1: "If two images produce feature activation vectors with a small Euclidean separation, we can
say that the higher levels of the neural network consider them to be similar." The vectors are
the last hidden layer (fc7, 4096-d for AlexNet), `Predictor.features`.

An index is a folder:

    index.json          what it is: model, weights, source data, dimension, count, shards
    shard-00000.npy     float16 [n, D] feature rows (memory-mapped at query time)
    shard-00000.json    {"paths": [...], "labels": [...], "ids": [...]} for those rows

Building streams the dataset through the network batch by batch and writes a shard every
``shard_size`` rows, recording progress in ``index.json`` after each; an interrupted build
resumes where the last shard ended. Search is exact: chunks of the index are multiplied with the
queries (``‖q−x‖² = ‖q‖² − 2q·x + ‖x‖²``, one matrix product per chunk) and a running top-k is
merged, so memory stays bounded and 100k+ vectors take a fraction of a second.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from ..core.errors import UserError
from ..core.io import atomic_open, atomic_write_json

FORMAT = 1
METRICS = ("euclidean", "cosine")
CHUNK = 16384  # index rows per matrix product (4096-d float32: 256 MiB at a time on the device)


# ----------------------------------------------------------------------------- exact search
def _topk_merge(best_d: torch.Tensor | None, best_i: torch.Tensor | None, d: torch.Tensor,
                i: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge a chunk's candidates into the running ``k`` smallest (distances ascending)."""
    if best_d is not None:
        d, i = torch.cat([best_d, d], 1), torch.cat([best_i, i], 1)
    kk = min(k, d.shape[1])
    d, pos = d.topk(kk, dim=1, largest=False, sorted=True)
    return d, i.gather(1, pos)


def knn(queries: torch.Tensor, chunks: Iterator[tuple] | torch.Tensor, k: int = 8,
        metric: str = "euclidean", device: str | torch.device | None = None,
        chunk: int = CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest neighbours of ``queries [Q, D]`` among database vectors.

    ``chunks``: a ``[N, D]`` tensor, or an iterator of ``(offset, rows [n, D])`` or
    ``(offset, rows, squared norms [n])`` (rows in any float dtype; computed in float32).
    Returns ``(distances [Q, k'], indices [Q, k'])``, nearest first, ``k' = min(k, N)``:
    Euclidean distance, or cosine distance ``1 − cos``.
    """
    if metric not in METRICS:
        raise UserError(f"unknown metric {metric!r} (use {' or '.join(METRICS)})")
    dev = torch.device(device) if device is not None else queries.device
    q = queries.to(dev, torch.float32)
    if q.ndim == 1:
        q = q[None]
    if metric == "cosine":
        q = q / q.norm(dim=1, keepdim=True).clamp_min(1e-12)
    qq = (q * q).sum(1, keepdim=True)
    if isinstance(chunks, torch.Tensor):
        db = chunks
        chunks = ((s, db[s:s + chunk]) for s in range(0, db.shape[0], chunk))
    best_d = best_i = None
    for offset, rows, *sq in chunks:
        if rows.shape[0] == 0:
            continue
        x = rows.to(dev, torch.float32, non_blocking=True)
        xx = sq[0].to(dev, torch.float32) if sq else (x * x).sum(1)
        dots = q @ x.T
        if metric == "cosine":
            d = 1.0 - dots / xx.sqrt().clamp_min(1e-12)[None]
        else:
            d = (qq - 2.0 * dots + xx[None]).clamp_min_(0.0)
        kk = min(k, d.shape[1])
        cd, ci = d.topk(kk, dim=1, largest=False, sorted=False)
        best_d, best_i = _topk_merge(best_d, best_i, cd, ci + offset, k)
    if best_d is None:
        return torch.empty(q.shape[0], 0), torch.empty(q.shape[0], 0, dtype=torch.long)
    if metric == "euclidean":
        best_d = best_d.sqrt()
    return best_d.cpu(), best_i.cpu()


# ----------------------------------------------------------------------------- the index on disk
@dataclass
class Neighbour:
    rank: int
    index: int
    distance: float
    path: str
    label: int
    label_name: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "index": self.index, "distance": round(self.distance, 6),
                "path": self.path, "label": self.label, "class": self.label_name}


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


# ----------------------------------------------------------------------------- building
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
        self.path.mkdir(parents=True, exist_ok=True)

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


def _source_key(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: meta.get(k) for k in ("model", "weights", "data", "split", "val_split", "ten_crop", "num_samples")}


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
            if old.get("format") == FORMAT and _source_key(old) == _source_key(meta):
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
    from ._stream import stream, targets_of
    from .predictor import Predictor

    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1, not {limit} (leave it out to index every image)")
    split = str(split).lower()
    if split not in ("all", "train", "val", "test"):
        raise UserError(f"unknown split {split!r}; use all (every image, the default), train or val")
    pred = Predictor(weights, device=device, ten_crop=ten_crop, batch_size=batch_size)
    dataset = index_dataset(data, split, transform=pred.transform, val_split=val_split)
    total = len(dataset) if limit is None else min(limit, len(dataset))
    targets = targets_of(dataset)
    meta = {"model": pred.name, "weights": str(Path(weights).resolve()), "data": str(data), "split": split,
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


# ----------------------------------------------------------------------------- querying
@dataclass
class QueryResult:
    neighbours: list[Neighbour]
    strip: Path | None


def _neighbour_images(index: FeatureIndex, hits: Sequence[Neighbour]) -> list[torch.Tensor | None]:
    """The neighbours' images for the strip: decoded from their files, or, for in-memory datasets
    (CIFAR, MNIST), taken from the dataset the index was built from; None where neither works."""
    from ..data import BadImageError, decode_image

    out: list[torch.Tensor | None] = [None] * len(hits)
    need_dataset = []
    for j, h in enumerate(hits):
        if os.path.isfile(h.path):
            try:
                out[j] = decode_image(h.path, target_short_side=256)
            except BadImageError:
                pass
        elif int(index.ids[h.index]) >= 0:
            need_dataset.append(j)
    if need_dataset:
        try:
            ds = index_dataset(index.meta["data"], index.meta["split"], val_split=index.meta.get("val_split"))
            for j in need_dataset:
                i = int(index.ids[hits[j].index])
                item = ds.load(i) if hasattr(ds, "load") else ds[i][0]
                out[j] = item
        except Exception:  # noqa: BLE001 — the data may have moved; the table still stands
            pass
    return out


def query_index(index: str | os.PathLike | FeatureIndex, image: Any, k: int = 8, metric: str = "euclidean",
                weights: str | os.PathLike | None = None, device: str | None = None,
                strip: str | os.PathLike | None = None, predictor: Any = None) -> QueryResult:
    """The ``k`` nearest neighbours of ``image`` (path, bytes or uint8 tensor) in ``index``, and
    optionally a PNG strip (query + neighbours) written to ``strip``. The query's features come
    from ``predictor``, or from ``weights`` (default: the weights the index was built with)."""
    from .predictor import Predictor

    idx = index if isinstance(index, FeatureIndex) else FeatureIndex(index)
    if predictor is None:
        w = weights or idx.meta.get("weights")
        if not w or not (Path(w).exists()):
            raise UserError(f"the weights the index was built with ({w}) are gone; give --weights")
        predictor = Predictor(w, device=device, ten_crop=bool(idx.meta.get("ten_crop")))
    if predictor.name != idx.meta.get("model"):
        raise UserError(f"the index holds {idx.meta.get('model')} features; these weights are {predictor.name}")
    feats = predictor.features([image])
    hits = idx.neighbours(feats[0], k=k, metric=metric, device=predictor.device)
    path = None
    if strip is not None:
        from ..viz import plot_strip

        q = predictor.load_image(image)
        imgs = _neighbour_images(idx, hits)
        unit = "cos dist" if metric == "cosine" else "dist"
        caps = [f"#{h.rank} {unit} {h.distance:.3g}\n{h.label_name or h.label}\n{Path(h.path).name}" for h in hits]
        name = Path(image).name if isinstance(image, (str, os.PathLike)) else "query"
        path = plot_strip(q, list(zip(imgs, caps)), strip, query_caption=f"query\n{name}")
    return QueryResult(hits, path)
