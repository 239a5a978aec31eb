"""Exact nearest-neighbour search over feature vectors: the ranking behind the paper's Figure 4.

§6.1: "If two images produce feature activation vectors with a small Euclidean separation, we can
say that the higher levels of the neural network consider them to be similar." Search is exact:
chunks of the database are multiplied with the queries (``‖q−x‖² = ‖q‖² − 2q·x + ‖x‖²``, one
matrix product per chunk) and a running top-k is merged, so memory stays bounded and 100k+
vectors take a fraction of a second. Knows nothing of files: the index on disk is
`alexnet.infer.feature_index`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import torch

from ..core.errors import UserError

METRICS = ("euclidean", "cosine")
CHUNK = 16384  # index rows per matrix product (4096-d float32: 256 MiB at a time on the device)


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



@dataclass
class Neighbour:
    """One hit of a search: its rank (1 = nearest), its entry in the index, and what it shows."""

    rank: int
    index: int
    distance: float
    path: str
    label: int
    label_name: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "index": self.index, "distance": round(self.distance, 6),
                "path": self.path, "label": self.label, "class": self.label_name}
