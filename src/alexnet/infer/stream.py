"""Stream a dataset through the data layer's loader, keeping track of which sample each row is.

`build_loader` replaces a sample that fails to load with the next good one (and reports the
failure), so a batch's rows are not always the samples asked for. Here each item carries its
own dataset index in place of the label; a replacement therefore says which sample it really is,
and rows are kept only the first time an index is seen (indices only grow, since the loader
reads in order when ``train=False``). The true labels come from ``dataset.targets``.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch.utils.data import Dataset


class _Indexed(Dataset):
    """Items ``(image, index)`` for samples ``start … stop-1`` of ``dataset``."""

    def __init__(self, dataset: Any, start: int, stop: int):
        self.dataset, self.start, self.stop = dataset, int(start), int(stop)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __getitem__(self, j: int):
        i = self.start + int(j)
        img, _ = self.dataset[i]
        return img, i

    def samples_path(self, j: int) -> str:
        fn = getattr(self.dataset, "samples_path", None)
        i = self.start + int(j)
        return str(fn(i)) if fn else f"#{i}"


def targets_of(dataset: Any) -> list[int] | None:
    t = getattr(dataset, "targets", None)
    return [int(v) for v in t] if t is not None else None


def stream(dataset: Any, batch_size: int, workers: int = 0, start: int = 0,
           stop: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[tuple[str, str]]]]:
    """Yield ``(images, indices int64 [B], bad [(path, reason)])`` over samples ``start … stop-1``
    in order, each good sample exactly once; bad ones appear only in ``bad``."""
    from ..data import build_loader

    stop = len(dataset) if stop is None else min(int(stop), len(dataset))
    if start >= stop:
        return
    loader = build_loader(_Indexed(dataset, start, stop), batch_size=batch_size, train=False, workers=workers)
    last = start - 1
    for images, ids, bad in loader:
        keep = torch.zeros(len(ids), dtype=torch.bool)
        for r, i in enumerate(ids.tolist()):
            if i > last:
                keep[r] = True
                last = i
        if keep.all():
            yield images, ids, bad
        elif keep.any():
            yield images[keep], ids[keep], bad
        elif bad:
            yield images[:0], ids[:0], bad
