"""Loading batches: a resumable sampler, a seeded and fault-tolerant dataset wrapper, the loader.

The contract that makes training bit-identical across worker counts and resumes:

- `ResumableSampler` yields ``(index, epoch)``; its order is a pure function of
  ``(seed, epoch, rank, world_size)``, and ``start_at(position)`` skips what a resumed run
  already saw this epoch.
- `SafeDataset` runs each sample's transform under an RNG seeded from ``(seed, epoch, index)``
  only — never from worker ids or the process's global RNG, which it leaves untouched — so the
  augmentation of a sample does not depend on which worker loads it, or when.
- A sample that fails to load is reported as ``(path, reason)`` in the batch; in training it is
  replaced by the next good one (deterministically, so every batch stays full and every process
  takes the same steps); in evaluation (``substitute=False``) it is left out, so a score counts
  only images that were really scored. `BadSampleLog` counts, summarises and writes them.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
from collections import Counter
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from ..core.errors import UserError
from ..core.io import atomic_write
from .decode import BadImageError, reason_kind

MAX_CONSECUTIVE_BAD = 64  # this many non-image errors in a row is a bug, not bad files: raise


def mix_seed(*parts: int) -> int:
    """A 63-bit seed that is a pure function of ``parts`` (stable across processes and runs)."""
    h = hashlib.blake2b(repr(tuple(int(p) for p in parts)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


class ResumableSampler(Sampler):
    """Yields ``(index, epoch)`` for this rank; the order is a pure function of
    ``(seed, epoch, rank, world_size)``.

    With ``world_size > 1``: ``pad=True`` repeats indices so every rank yields the same count
    (training, as ``DistributedSampler``); ``pad=False`` gives disjoint shards ``rank::world_size``
    of possibly unequal length (evaluation: nothing counted twice). ``drop_last`` drops the tail
    instead of padding. ``start_at(position)`` skips the first ``position`` samples of the current
    epoch (a mid-epoch resume); the next `set_epoch` resets it to 0. ``order``: the dataset's own
    epoch permutation, ``order(seed, epoch)``, in place of a uniform one (shards: shard by shard).
    """

    def __init__(self, n: int, *, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1,
                 drop_last: bool = False, pad: bool = True, order: Callable[[int, int], list[int]] | None = None):
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        self.n, self.shuffle, self.seed = int(n), bool(shuffle), int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.drop_last, self.pad = bool(drop_last), bool(pad)
        self.order = order  # (seed, epoch) → a permutation of range(n), instead of randperm (shards: shard-wise)
        self.epoch = 0
        self.position = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.position = 0

    def start_at(self, position: int) -> None:
        if not 0 <= position <= len(self):
            raise ValueError(f"start position {position} is outside this epoch's {len(self)} samples")
        self.position = int(position)

    def _total(self) -> int:
        if self.world_size == 1:
            return self.n
        if self.drop_last:
            return self.n // self.world_size * self.world_size
        if self.pad:
            return math.ceil(self.n / self.world_size) * self.world_size
        return self.n

    def __len__(self) -> int:
        total = self._total()
        if self.world_size == 1 or self.pad or self.drop_last:
            return total // self.world_size
        return len(range(self.rank, total, self.world_size))

    def indices(self, epoch: int | None = None) -> list[int]:
        """This rank's full order for ``epoch`` (default: the current one)."""
        epoch = self.epoch if epoch is None else int(epoch)
        if self.shuffle and self.order is not None:
            order = list(self.order(self.seed, epoch))
        elif self.shuffle:
            g = torch.Generator().manual_seed(mix_seed(self.seed, epoch))
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        total = self._total()
        if total > len(order) and order:  # pad by repeating from the start (as DistributedSampler)
            order = (order * math.ceil(total / len(order)))[:total]
        order = order[:total]
        return order[self.rank::self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        for i in self.indices(epoch)[self.position:]:
            yield i, epoch

    def remaining(self) -> int:
        """Samples left in this epoch after `start_at`."""
        return len(self) - self.position

    def state_dict(self) -> dict[str, Any]:
        return {"n": self.n, "shuffle": self.shuffle, "seed": self.seed, "rank": self.rank,
                "world_size": self.world_size, "drop_last": self.drop_last, "pad": self.pad,
                "epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k in ("n", "shuffle", "seed", "world_size", "drop_last", "pad"):
            if k in state and state[k] != getattr(self, k):
                raise ValueError(f"sampler state is for {k}={state[k]!r}, this sampler has "
                                 f"{k}={getattr(self, k)!r}: the data or the setup changed since it was saved")
        self.epoch = int(state.get("epoch", 0))
        self.position = int(state.get("position", 0))


class SafeDataset(Dataset):
    """Wraps a dataset: ``ds[(index, epoch)]`` (or ``ds[index]``, epoch 0) returns
    ``(image, label, bad)``.

    The sample is loaded and transformed under torch's, Python's and NumPy's RNGs seeded from
    ``(seed, epoch, index)``; the caller's RNG states are restored afterwards. If it fails
    (a bad file: `BadImageError`, or any exception from loading or the transform), the next index
    (mod ``len``) is tried, and so on; ``bad`` lists the ``(path, reason)`` of each failure met on
    the way (usually empty). The substitute is augmented with the requested sample's seed, so
    the result does not depend on what failed before in this process.

    ``substitute=False`` (evaluation): a sample that fails is not replaced; the item is
    ``(None, -1, [(path, reason)])`` and `collate` leaves it out of the batch.
    """

    def __init__(self, dataset: Dataset, seed: int = 0, substitute: bool = True, defer_lighting: bool = False):
        self.dataset = dataset
        self.seed = int(seed)
        self.substitute = bool(substitute)
        self.defer_lighting = bool(defer_lighting)  # batched path: lighting left to the device (`LitBatch`)
        self._known_bad: dict[int, str] = {}  # per process; only saves decoding a bad file twice

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:  # classes, class_ids, targets, transform, …
        if name.startswith("__") or name in ("dataset", "seed", "substitute", "defer_lighting", "_known_bad"):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def samples_path(self, i: int) -> str:
        fn = getattr(self.dataset, "samples_path", None)
        return fn(i) if fn else f"#{i}"

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Any, int, list[tuple[str, str]]]:
        index, epoch = (int(key[0]), int(key[1])) if isinstance(key, (tuple, list)) else (int(key), 0)
        n = len(self)
        bad: list[tuple[str, str]] = []
        s = mix_seed(self.seed, epoch, index)
        errors = 0  # consecutive failures that are not bad files: past a few, it is a bug
        for attempt in range(n):
            j = (index + attempt) % n
            if j in self._known_bad:
                bad.append((self.samples_path(j), self._known_bad[j]))
                if not self.substitute:
                    return None, -1, bad
                continue
            try:
                img, label = _seeded_call(self.dataset.__getitem__, j, s)
                return img, int(label), bad
            except BadImageError as e:
                reason = e.reason
            except Exception as e:  # noqa: BLE001 — a bad sample never stops a run
                errors += 1
                if errors >= MAX_CONSECUTIVE_BAD:
                    raise RuntimeError(f"{errors} samples in a row failed to load from #{index} on "
                                       f"(last: {self.samples_path(j)}); that is a bug, not bad files") from e
                msg = str(e).strip().splitlines()[0][:100] if str(e).strip() else ""
                reason = f"{type(e).__name__}: {msg}" if msg else type(e).__name__
            self._known_bad[j] = reason
            bad.append((self.samples_path(j), reason))
            if not self.substitute:
                return None, -1, bad
        if errors:  # not bad files: a bug keeps its traceback
            raise RuntimeError(f"every sample of the dataset failed to load (first: {bad[0][0]}: {bad[0][1]})")
        ds = self.dataset  # a subset or a transform's wrapper names nothing: the dataset under it does
        while not getattr(ds, "name", "") and getattr(ds, "dataset", None) is not None:
            ds = ds.dataset
        where, split = getattr(ds, "name", "") or "the dataset", getattr(ds, "split", "")
        raise UserError(f"{where}: none of the {n} files{f' of its {split} split' if split else ''} is a "
                        f"readable image (first: {bad[0][0]}: {bad[0][1]})")


    def __getitems__(self, keys: Sequence[Any]) -> list:
        """A whole batch (the DataLoader calls this when it exists): the dataset's batched path
        (`CacheDataset.get_batch`: crops and flips of a uint8 batch, no per-image transform) when it
        has one that fits its transform, each image seeded from ``(seed, epoch, index)``; else one
        `__getitem__` per key. With ``defer_lighting`` a batch whose PCA lighting the dataset left
        undone is a `LitBatch`."""
        fast = getattr(self.dataset, "get_batch", None)
        if fast is not None and keys:
            pairs = [(int(k[0]), int(k[1])) if isinstance(k, (tuple, list)) else (int(k), 0) for k in keys]
            seeds = [mix_seed(self.seed, e, i) for i, e in pairs]
            indices = [i for i, _ in pairs]
            got = fast(indices, seeds, defer_lighting=True) if self.defer_lighting else fast(indices, seeds)
            if got is not None:
                return _Collated(LitBatch(got[0], got[1], [], got[2]) if len(got) > 2 else Batch(got[0], got[1], []))
        return [self[k] for k in keys]


class _Collated(list):
    """A batch `SafeDataset.__getitems__` has already stacked; `collate` passes it through."""

    def __init__(self, batch: "Batch"):
        super().__init__()
        self.batch = batch


def _seed_all(seed: int) -> None:
    # torch.default_generator, not torch.manual_seed: the latter also seeds every accelerator
    # backend, ~0.5 ms per call, which was the largest cost of loading a small image.
    torch.default_generator.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))


def _seeded_call(fn, arg, seed: int):
    if get_worker_info() is not None:
        # In a worker process the global RNGs belong to the dataset alone: nothing to restore.
        _seed_all(seed)
        return fn(arg)
    py_state = random.getstate()
    np_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            _seed_all(seed)
            return fn(arg)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


class BadSample(NamedTuple):
    """A sample that failed to load: a ``(path, reason)`` tuple."""

    path: str
    reason: str


class Batch(NamedTuple):
    """What the loader yields; unpacks as ``images, labels, bad = batch``.

    Named tuples, because ``pin_memory`` rebuilds them as they were (plain tuples come back
    as lists).
    """

    images: Any  # uint8 [B, C, H, W], or [B, 10, C, H, W] with ten-crop
    labels: torch.Tensor  # int64 [B]
    bad: list[BadSample]


class LitBatch(NamedTuple):
    """A training batch whose PCA lighting (§4.1) is still to be added: ``images`` (uint8, as
    drawn, unlit), ``labels``, ``bad`` as in `Batch`, and ``lighting``, float32 ``[B, C]``: each
    image's RGB shift for [0, 1] pixels. The training step hands it to `Normalizer`, which adds
    ``255 · lighting`` while it turns the batch into floats on the device. Unlike the uint8 path
    (`PCALighting.add_shift`) the shifted pixels are neither rounded to whole levels nor clipped
    to 0‥255. ``images, labels, bad = batch[:3]`` reads either kind of batch."""

    images: Any
    labels: torch.Tensor
    bad: list[BadSample]
    lighting: torch.Tensor


def collate(batch: Sequence[tuple[Any, int, list]]) -> Batch:
    """``[(image, label, bad), …]`` → ``Batch(images stacked, labels int64 [B], bad)``; items
    without an image (bad samples not substituted) are left out, but their ``bad`` entries kept."""
    if isinstance(batch, _Collated):
        return batch.batch
    bad = [BadSample(*x) for b in batch for x in b[2]]
    batch = [b for b in batch if b[0] is not None]
    images = [b[0] for b in batch]
    if not images:
        return Batch(torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.int64), bad)
    if all(isinstance(x, torch.Tensor) for x in images):
        stacked = torch.stack(images)
    else:
        from torch.utils.data import default_collate

        stacked = default_collate(images)
    labels = torch.tensor([b[1] for b in batch], dtype=torch.int64)
    return Batch(stacked, labels, bad)


def build_loader(dataset: Dataset, *, batch_size: int, train: bool, workers: int = 0, seed: int = 0,
                 rank: int = 0, world_size: int = 1, pin_memory: bool | None = None,
                 persistent_workers: bool | None = None, prefetch_factor: int | None = None,
                 drop_last: bool | None = None, substitute: bool = True, defer_lighting: bool = False) -> DataLoader:
    """A DataLoader over ``SafeDataset(dataset, seed)`` with a `ResumableSampler`
    (``shuffle=train``, ``pad=train``) as ``loader.sampler``; batches are
    ``(images uint8 [B, C, H, W] or [B, 10, C, H, W], labels int64 [B], bad [(path, reason)])``.

    Defaults: ``pin_memory`` when CUDA is available; ``persistent_workers`` when ``workers > 0``;
    ``drop_last`` (of the last incomplete batch) for training when there is a full batch.
    The loader's own generator is seeded, so iterating never touches the global RNG.
    ``substitute=False`` (evaluation): a bad sample is reported in ``bad`` and left out of its
    batch instead of being replaced by the next good one (a batch may then be short, even empty).
    ``defer_lighting``: batches of the dataset's batched path (a raw cache's) come without their
    PCA lighting, as `LitBatch` es, for the training step to add on the device.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    safe = dataset if isinstance(dataset, SafeDataset) else SafeDataset(dataset, seed, substitute=substitute,
                                                                         defer_lighting=defer_lighting)
    sampler = ResumableSampler(len(safe), shuffle=train, seed=seed, rank=rank, world_size=world_size,
                               pad=train, order=getattr(safe, "epoch_order", None))
    if drop_last is None:
        drop_last = train and len(sampler) >= batch_size
    workers = max(0, int(workers))
    kwargs: dict[str, Any] = {}
    if workers > 0:
        kwargs["persistent_workers"] = True if persistent_workers is None else bool(persistent_workers)
        if prefetch_factor is not None:
            kwargs["prefetch_factor"] = int(prefetch_factor)
    return DataLoader(safe, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=collate, drop_last=drop_last,
                      pin_memory=torch.cuda.is_available() if pin_memory is None else bool(pin_memory),
                      generator=torch.Generator().manual_seed(mix_seed(seed, 0x10AD)), **kwargs)


def summarize_bad(entries: Sequence[tuple[str, str]]) -> str:
    """"3 bad samples skipped: 2 truncated JPEG, 1 not an image" (distinct paths), or ""."""
    unique = dict(entries)
    if not unique:
        return ""
    kinds = Counter(reason_kind(r) for r in unique.values())
    parts = ", ".join(f"{c} {k}" for k, c in sorted(kinds.items(), key=lambda kc: (-kc[1], kc[0])))
    return f"{len(unique)} bad sample{'s' if len(unique) != 1 else ''} skipped: {parts}"


class BadSampleLog:
    """Accumulates the ``bad`` entries of batches: per-epoch summary, whole-run file.

    ``log.add(bad)`` after every batch; ``log.end_epoch()`` returns the epoch's summary line ("" if
    none) and starts the next epoch; ``log.write(folder)`` writes ``bad_samples.txt``
    (``path<TAB>reason``, every distinct path of the run) atomically. ``state_dict()`` holds
    primitives only, for checkpoints.
    """

    FILENAME = "bad_samples.txt"

    def __init__(self) -> None:
        self.epoch, self.total = {}, {}  # path → reason: this epoch's, the run's

    def add(self, bad: Sequence[tuple[str, str]]) -> None:
        for path, reason in bad:
            self.epoch.setdefault(str(path), str(reason))
            self.total.setdefault(str(path), str(reason))

    extend = add  # list-like spelling

    def __len__(self) -> int:
        return len(self.total)

    def epoch_summary(self) -> str:
        return summarize_bad(list(self.epoch.items()))

    def summary(self) -> str:
        return summarize_bad(list(self.total.items()))

    def end_epoch(self) -> str:
        s = self.epoch_summary()
        self.epoch = {}
        return s

    def write(self, folder: str | os.PathLike) -> str | None:
        """Write ``folder/bad_samples.txt``; returns its path, or None when nothing was bad."""
        if not self.total:
            return None
        path = os.path.join(os.fspath(folder), self.FILENAME)
        lines = "".join(f"{p}\t{r}\n" for p, r in sorted(self.total.items()))
        atomic_write(path, lines)
        return path

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": [[p, r] for p, r in self.epoch.items()], "total": [[p, r] for p, r in self.total.items()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """A checkpoint's bad files, beside any found since (a resumed run decoding into memory)."""
        self.epoch = {**{p: r for p, r in state.get("epoch", [])}, **self.epoch}
        self.total = {**{p: r for p, r in state.get("total", [])}, **self.total}
