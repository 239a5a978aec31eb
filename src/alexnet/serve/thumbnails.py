"""Thumbnails of the entries of a feature index, for the page's neighbour grid."""

from __future__ import annotations

import io
import logging
import os
import threading
from collections import OrderedDict
from typing import Any

from ..data import BadImageError

log = logging.getLogger("alexnet.serve")

THUMBNAIL_SIZE = 160  # longest side, px
THUMBNAIL_CACHE = 512  # entries (a few KiB each)


def encode_thumbnail(img: Any) -> tuple[bytes, str]:
    """A uint8 ``[C, H, W]`` tensor or PIL image → (bytes, media type), longest side ≤ THUMBNAIL_SIZE.
    Small images (CIFAR's 32×32) stay PNG, so the browser can enlarge them without JPEG blocks."""
    from PIL import Image

    if not isinstance(img, Image.Image):
        a = img.detach().cpu()
        if a.ndim == 3 and a.shape[0] == 1:
            a = a[0]
        elif a.ndim == 3:
            a = a.permute(1, 2, 0)
        img = Image.fromarray(a.contiguous().numpy())
    img = img.convert("RGB")
    img.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    buf = io.BytesIO()
    if img.width * img.height <= 64 * 64:
        img.save(buf, "PNG")
        return buf.getvalue(), "image/png"
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue(), "image/jpeg"


class Thumbnails:
    """Thumbnails of index entries: from the entry's file, or — for in-memory datasets (CIFAR,
    MNIST, digits) — from the dataset the index was built from. Only entries of the index can be
    asked for (by row number), so no request names a path. Kept in a small LRU cache."""

    def __init__(self, index: Any, max_pixels: int):
        self.index = index
        self.max_pixels = max_pixels
        self._cache: OrderedDict[int, tuple[bytes, str]] = OrderedDict()
        self._lock = threading.Lock()
        self._dataset: Any = None
        self._dataset_failed = False

    def _load_dataset(self) -> Any:
        with self._lock:
            if self._dataset is None and not self._dataset_failed:
                try:
                    from ..infer.retrieval import index_dataset

                    m = self.index.meta  # the images the index covers, in its order (split "all": train, then val)
                    self._dataset = index_dataset(m["data"], m.get("split", "val"), val_split=m.get("val_split"))
                except Exception as e:  # noqa: BLE001 — the data may have moved; thumbnails are optional
                    log.warning("thumbnails: cannot open the indexed dataset %r: %s", self.index.meta.get("data"), e)
                    self._dataset_failed = True
            return self._dataset

    def get(self, i: int) -> tuple[bytes, str] | None:
        with self._lock:
            hit = self._cache.get(i)
            if hit is not None:
                self._cache.move_to_end(i)
                return hit
        from ..data import decode_image

        path = self.index.paths[i]
        img = None
        if os.path.isfile(path):
            try:
                img = decode_image(path, target_short_side=THUMBNAIL_SIZE, max_pixels=self.max_pixels)
            except BadImageError:
                return None
        elif int(self.index.ids[i]) >= 0:
            from ..infer.retrieval import indexed_image

            ds = self._load_dataset()
            img = None if ds is None else indexed_image(ds, self.index, i)  # never another entry's picture
        if img is None:
            return None
        out = encode_thumbnail(img)
        with self._lock:
            self._cache[i] = out
            while len(self._cache) > THUMBNAIL_CACHE:
                self._cache.popitem(last=False)
        return out
