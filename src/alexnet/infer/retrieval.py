"""Search images by their learned features: the paper's Figure 4.

§6.1: "If two images produce feature activation vectors with a small Euclidean separation, we can
say that the higher levels of the neural network consider them to be similar." The vectors are
the last hidden layer (fc7, 4096-d for AlexNet), `Predictor.features`.

Three parts: `alexnet.infer.search` ranks vectors (exact `knn`, `Neighbour`);
`alexnet.infer.feature_index` is the index on disk (`FeatureIndex`, `build_index`, its format);
this module answers a query image (`query_index`, with a strip of the neighbours) and keeps the
names of both others importable from here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from ..core.errors import UserError
from .feature_index import (FORMAT, FeatureIndex, IndexWriter, build_index, index_dataset,
                            open_writer, sample_paths, targets_of_part)
from .search import CHUNK, METRICS, Neighbour, knn


@dataclass
class QueryResult:
    """What `query_index` found: the neighbours, nearest first, and the strip's path if one was drawn."""

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
        except Exception:  # noqa: BLE001 — the data may have moved; the table still stands
            return out
        for j in need_dataset:
            out[j] = indexed_image(ds, index, hits[j].index)
    return out


def indexed_image(ds: Any, index: FeatureIndex, i: int) -> torch.Tensor | None:
    """Entry ``i``'s image from ``ds``, the dataset the index was built from (`index_dataset`, built
    again): its item ``ids[i]``, where that item still is the entry — the same name (an in-memory
    image's ``digits[train]#12``, a file's path). A folder whose file was moved or deleted since
    gives every later item another position, so a file that is gone is no picture, never another's.
    None where it is not there."""
    j = int(index.ids[i])
    if not 0 <= j < len(ds) or sample_paths(ds, index.meta["data"], index.meta["split"])(j) != index.paths[i]:
        return None
    try:
        return ds.load(j) if hasattr(ds, "load") else ds[j][0]
    except Exception:  # noqa: BLE001 — a file gone bad since: no picture
        return None


def check_same_weights(meta: dict[str, Any], predictor: Any, own: str = "leave --weights out") -> None:
    """An index is searched with the features of the weights that built it: another model, or other
    weights of the same model (another run, a fine-tune), give vectors that cannot be compared.
    ``own``: how the caller's command takes the index's own weights."""
    if meta.get("model") not in (None, predictor.name):
        raise UserError(f"the index holds {meta.get('model')} features; these weights are {predictor.name} "
                        f"(build the index with the same weights)")
    if meta.get("weights_fingerprint") is not None and meta["weights_fingerprint"] != predictor.fingerprint:
        raise UserError(f"the index was built with other {predictor.name} weights ({meta.get('weights')}) than "
                        f"these: their features cannot be compared; use the index's own weights ({own}) or build an "
                        f"index with these")


STRIP_MAX = 32  # the most neighbours a strip shows (the query's results hold every one asked for)


def query_index(index: str | os.PathLike | FeatureIndex, image: Any, k: int = 8, metric: str = "euclidean",
                weights: str | os.PathLike | None = None, device: str | None = None,
                strip: str | os.PathLike | None = None, predictor: Any = None) -> QueryResult:
    """The ``k`` nearest neighbours of ``image`` (path, bytes or uint8 tensor) in ``index``, and
    optionally a PNG strip (query + neighbours) written to ``strip``. The query's features come
    from ``predictor``, or from ``weights`` (default: the weights the index was built with)."""
    from .predictor import Predictor

    idx = index if isinstance(index, FeatureIndex) else FeatureIndex(index)
    if idx.unfinished():  # its neighbours would silently leave out the images not yet indexed
        raise UserError(idx.unfinished())
    if predictor is None:
        w = weights or idx.meta.get("weights")
        if not w or not (Path(w).exists()):
            raise UserError(f"the weights the index was built with ({w}) are gone; give --weights")
        predictor = Predictor(w, device=device, ten_crop=bool(idx.meta.get("ten_crop")))
    check_same_weights(idx.meta, predictor)
    feats = predictor.features([image])
    hits = idx.neighbours(feats[0], k=k, metric=metric, device=predictor.device)
    path = None
    if strip is not None:
        from ..viz import plot_strip

        q, shown = predictor.load_image(image), hits[:STRIP_MAX]  # a strip of 100,000 would be 18 M pixels wide
        imgs = _neighbour_images(idx, shown)
        unit = "cos dist" if metric == "cosine" else "dist"
        caps = [f"#{h.rank} {unit} {h.distance:.3g}\n{h.label_name or h.label}\n{Path(h.path).name}" for h in shown]
        name = Path(image).name if isinstance(image, (str, os.PathLike)) else "query"
        path = plot_strip(q, list(zip(imgs, caps)), strip, query_caption=f"query\n{name}")
    return QueryResult(hits, path)


__all__ = ["CHUNK", "FORMAT", "METRICS", "STRIP_MAX", "FeatureIndex", "IndexWriter", "Neighbour", "QueryResult", "build_index",
           "index_dataset", "knn", "open_writer", "query_index", "sample_paths", "targets_of_part"]
