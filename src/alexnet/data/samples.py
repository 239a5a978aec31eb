"""A compact list of ``(path, label)`` samples: what a folder, list file or ImageNet dataset holds.

A Python list of ``(str, int)`` tuples costs about 200 bytes per image plus the path (a tuple, a
string object, an int object, a list slot): 1.28 million ImageNet images would hold ~330 MB in
every process that has the dataset, loader workers included, before one image is read. Here the
paths are one UTF-8 byte buffer (a common folder prefix stored once), located by an int64
offset array, and the labels one int32 array: about 12 bytes per image plus the path's bytes
below the prefix (``n01440764/n01440764_10026.JPEG``: 30), measured by ``benchmarks/scale.py``.

It reads like the list it replaces: ``samples[i]`` is ``(path, label)``, iteration yields the
tuples, ``len``, ``+``, slices, ``==`` against a list of tuples. Paths that are not valid UTF-8
(odd file names on Linux) round-trip through ``surrogateescape``.
"""

from __future__ import annotations

import os
from typing import Iterable, Iterator, Sequence

import numpy as np

ENCODING, ERRORS = "utf-8", "surrogateescape"
CHUNK = 1 << 16  # paths joined into one bytes object at a time while a list is built


class SampleList(Sequence):
    """``(path, label)`` pairs held as one byte buffer + offsets + labels (see the module docstring)."""

    __slots__ = ("prefix", "data", "offsets", "labels")

    def __init__(self, samples: Iterable[tuple[str | os.PathLike, int]] = (), prefix: str | None = None):
        """``samples``: ``(path, label)`` pairs, or another `SampleList`. ``prefix``: a folder
        every path starts with (stored once; the pairs are then encoded as they come, so a scan of
        a million files never holds them all as Python objects); by default the longest common
        folder of all the paths, found after collecting them."""
        if isinstance(samples, SampleList):
            self.prefix, self.data, self.offsets, self.labels = (samples.prefix, samples.data, samples.offsets,
                                                                 samples.labels)
            return
        if prefix is None:
            pairs = [(os.fspath(p), int(t)) for p, t in samples]
            prefix, samples = _common_folder([p for p, _ in pairs]), pairs
        self.prefix = prefix
        blobs, lengths, labels = [], [], []
        chunk: list[bytes] = []
        for p, t in samples:
            p = os.fspath(p)
            if not p.startswith(prefix):
                raise ValueError(f"{p!r} is not under {prefix!r}")
            b = p[len(prefix):].encode(ENCODING, ERRORS)
            chunk.append(b)
            lengths.append(len(b))
            labels.append(int(t))
            if len(chunk) == CHUNK:
                blobs.append(b"".join(chunk))
                chunk = []
        blobs.append(b"".join(chunk))
        self.offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(np.asarray(lengths, dtype=np.int64), out=self.offsets[1:])
        self.data = np.frombuffer(b"".join(blobs), dtype=np.uint8)
        self.labels = np.asarray(labels, dtype=np.int32).reshape(-1)

    @classmethod
    def from_arrays(cls, prefix: str, data: np.ndarray, offsets: np.ndarray, labels: np.ndarray) -> "SampleList":
        out = cls.__new__(cls)
        out.prefix, out.data, out.offsets, out.labels = prefix, data, offsets, labels
        return out

    def __len__(self) -> int:
        return len(self.labels)

    def path(self, i: int) -> str:
        """Sample ``i``'s path."""
        i = range(len(self))[i]  # negative indices; IndexError past the end
        raw = self.data[self.offsets[i]:self.offsets[i + 1]].tobytes()
        return self.prefix + raw.decode(ENCODING, ERRORS)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return self.take(range(len(self))[i])
        i = range(len(self))[i]
        return self.path(i), int(self.labels[i])

    def __iter__(self) -> Iterator[tuple[str, int]]:
        data, off, prefix = self.data.tobytes(), self.offsets.tolist(), self.prefix
        for k, t in enumerate(self.labels.tolist()):
            yield prefix + data[off[k]:off[k + 1]].decode(ENCODING, ERRORS), t

    def paths(self) -> Iterator[str]:
        """Every path, in order."""
        return (p for p, _ in self)

    def take(self, indices: Sequence[int]) -> "SampleList":
        """The samples at ``indices``, as a new list."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if not len(idx):
            return SampleList()
        starts, ends = self.offsets[idx], self.offsets[idx + 1]
        lengths = ends - starts
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # each byte of the result comes from position start[k] + (j - offsets[k]) of the source
        pos = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1], dtype=np.int64)
        return SampleList.from_arrays(self.prefix, self.data[pos], offsets, self.labels[idx])

    def __add__(self, other: Iterable[tuple[str, int]]) -> "SampleList":
        if isinstance(other, SampleList) and other.prefix == self.prefix:
            return SampleList.from_arrays(self.prefix, np.concatenate([self.data, other.data]),
                                          np.concatenate([self.offsets, other.offsets[1:] + self.offsets[-1]]),
                                          np.concatenate([self.labels, other.labels]))
        return SampleList([*self, *other])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SampleList):
            return (len(self) == len(other) and bool(np.array_equal(self.labels, other.labels))
                    and list(self.paths()) == list(other.paths()))
        if isinstance(other, (list, tuple)):
            return len(self) == len(other) and all(a == tuple(b) for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable-looking, like the list it replaces

    def nbytes(self) -> int:
        """Bytes held by the arrays (the prefix string aside)."""
        return int(self.data.nbytes + self.offsets.nbytes + self.labels.nbytes)

    def __repr__(self) -> str:
        return f"SampleList({len(self)} samples under {self.prefix!r}, {self.nbytes():,} bytes)"


def _common_folder(paths: list[str]) -> str:
    """The longest folder prefix (ending in a separator) shared by every path; '' when none."""
    if not paths:
        return ""
    lo, hi = min(paths), max(paths)  # the common prefix of all is that of the two extremes
    n = 0
    for a, b in zip(lo, hi):
        if a != b:
            break
        n += 1
    cut = lo.rfind(os.sep, 0, n) if n < len(lo) else lo.rfind(os.sep)
    return lo[:cut + 1] if cut >= 0 else ""


__all__ = ["SampleList"]
