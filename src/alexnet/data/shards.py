"""The ``shards:LOCATION`` dataset kind: webdataset tar shards written by ``alexnet data shards``.

Below the factory (`alexnet.data.datasets`); the writer, `shards_build.py`, is above it.

A shards folder (a local path, ``file://…``, or any URL fsspec opens: ``s3://``, ``gs://``,
``https://`` with s3fs, gcsfs or aiohttp installed) holds:

- ``<split>-<k>.tar``: standard webdataset shards (plain POSIX tar). Sample ``<split>-<n>`` (``n`` its
  place in the split, 8 digits) is the members ``<split>-<n>.<ext>`` — the source file's own bytes
  (``jpg``, ``png``, …, named by what the bytes are) or, for in-memory sets, a lossless PNG — and
  ``<split>-<n>.cls``, the label as decimal text. Any webdataset reader reads them
  (``wds.WebDataset(urls).decode("pil").to_tuple("jpg;png", "cls")``).
- ``sources.tsv``: ``key<TAB>source path`` of every sample (for people; training never reads it).
- ``index.json``: class names, splits, per shard its file, sample count, size and the labels in
  order, and the source files that could not be read (skipped). Written last and atomically: a
  folder without it is an unfinished build and is refused with one line.

Reading is random access: the first read of a shard in a process scans its tar headers (no data)
for each member's offset; a sample is then one read of its bytes. The training order
(`ShardDataset.epoch_order`, used by the loader's `ResumableSampler`) is a seeded permutation of
the shards, and within each shard a seeded permutation of its samples — so the loader's workers
and the ranks read a few shards at a time (what a remote store needs) while every sample still
comes exactly once per epoch, and a resumed run continues at its exact position. The writer
shuffles the samples across shards once, so each shard is a random sample of its split.
"""

from __future__ import annotations

import bisect
import json
import os
import tarfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from ..core.errors import UserError
from .base import ImageDataset
from .decode import BadImageError, decode_image
from .loader import mix_seed

INDEX = "index.json"
SOURCES = "sources.tsv"
FORMAT = "webdataset"
VERSION = 1
OPEN_SHARDS = 8  # open shard files kept per process (the epoch order touches one or two at a time)
IMAGE_EXTS = frozenset({"jpg", "jpeg", "png", "ppm", "pgm", "pbm", "bmp", "gif", "tif", "tiff", "webp"})


def shard_key(split: str, n: int) -> str:
    """The webdataset key of sample ``n`` of ``split`` (no dots: webdataset splits names at the first)."""
    return f"{split}-{n:08d}"


def location(spec_path: str) -> str:
    """A shards location as given after ``shards:``: a URL kept as it is (``file://`` made a local
    path), a local path made absolute."""
    loc = str(spec_path).rstrip("/")
    if loc.startswith("file://"):
        loc = loc[len("file://"):]
    if "://" in loc:
        return loc
    return os.path.abspath(os.path.expanduser(loc))


def is_remote(loc: str) -> bool:
    return "://" in loc


def is_shards(path: str) -> bool:
    """Whether the local folder ``path`` holds finished shards (the index and a first train shard)."""
    return os.path.isfile(os.path.join(path, INDEX)) and os.path.isfile(os.path.join(path, "train-00000.tar"))


def open_file(loc: str, name: str) -> Any:
    """File ``name`` in the shards at ``loc``, opened for binary reading; a remote one through
    fsspec (random access by range requests). A missing backend or file → one line."""
    if not is_remote(loc):
        return open(os.path.join(loc, name), "rb")
    url = f"{loc}/{name}"
    proto = loc.split("://", 1)[0]
    try:
        import fsspec

        return fsspec.open(url, "rb").open()
    except ImportError as e:  # fsspec names the package its protocol needs ("Install s3fs to access S3")
        raise UserError(f"{url}: reading {proto}:// shards needs an fsspec backend: {e} "
                        f"(or copy the shards to a local folder)") from None
    except ValueError as e:  # "Protocol not known"
        raise UserError(f"{url}: {e}; shards are read from a local folder, file://, or a URL fsspec "
                        f"knows (s3://, gs://, https://)") from None


def read_index(loc: str) -> dict[str, Any]:
    """The index of finished shards at ``loc``; `UserError` (one line) for a missing or unfinished one."""
    where = f"{loc}/{INDEX}"
    if not is_remote(loc):
        if not os.path.isdir(loc):
            raise UserError(f"{loc}: no such shards folder (write one with `alexnet data shards SPEC -o {loc}`)")
        if not os.path.isfile(os.path.join(loc, INDEX)):
            if any(n.endswith(".tar") for n in os.listdir(loc)):
                raise UserError(f"{loc}: unfinished shards (no {INDEX}: the build was interrupted); run "
                                f"`alexnet data shards` again with --overwrite")
            raise UserError(f"{loc}: not a shards folder (no {INDEX}); write one with "
                            f"`alexnet data shards SPEC -o {loc}`")
    try:
        with open_file(loc, INDEX) as f:
            m = json.loads(f.read())
        assert isinstance(m, dict) and m.get("format") == FORMAT and m.get("version") == VERSION
    except (OSError, FileNotFoundError) as e:
        raise UserError(f"{where}: cannot read the shards' index ({e}); build them with `alexnet data shards`"
                        ) from None
    except (ValueError, AssertionError):
        raise UserError(f"{where}: not a shards index this version can read; rebuild the shards") from None
    return m


@dataclass(frozen=True)
class Shard:
    """One tar of a split: its file, its samples ``first …first + count - 1`` of ``split``."""

    name: str
    split: str
    first: int
    count: int


def scan_members(f: Any, shard: Shard) -> list[tuple[int, int] | None]:
    """``(offset, size)`` of each sample's image in the open tar ``f`` (None where the tar lacks it:
    truncated, or edited). Reads the headers only."""
    out: list[tuple[int, int] | None] = [None] * shard.count
    try:
        with tarfile.open(fileobj=f, mode="r:") as tar:
            for m in tar:
                key, _, ext = m.name.rpartition("/")[2].partition(".")
                split, _, n = key.rpartition("-")
                if m.isfile() and ext.lower() in IMAGE_EXTS and split == shard.split and n.isdigit():
                    j = int(n) - shard.first
                    if 0 <= j < shard.count:
                        out[j] = (m.offset_data, m.size)
    except (tarfile.TarError, EOFError, OSError):
        pass  # a truncated or damaged tar: what was read stands, the rest is reported per sample
    return out


class ShardDataset(ImageDataset):
    """Split ``split`` (``train``, ``val`` or ``all``) of the shards at ``loc`` (see the module docstring)."""

    def __init__(self, loc: str, split: str = "train", transform: Callable | None = None):
        loc = location(loc)
        m = read_index(loc)
        splits = m["splits"]
        names = list(splits) if split == "all" else [split]
        missing = sorted(set(names) - set(splits))
        if missing:
            raise UserError(f"shards {loc} have no {missing[0]} split (they have {', '.join(splits)}): the source "
                            f"had no validation part; rebuild with --val-split, or train with --val-split 0")
        super().__init__(m["classes"], m.get("class_ids"), transform, f"shards:{loc}", split)
        self.loc, self.channels, self.source = loc, int(m.get("channels", 3)), m.get("source", "")
        self.shards: list[Shard] = []
        self._targets: list[int] = []
        self._starts: list[int] = []
        for s in names:
            first = 0
            for e in splits[s]["shards"]:
                labels = [int(t) for t in e["labels"]]
                if len(labels) != int(e["count"]):
                    raise UserError(f"{loc}/{INDEX}: shard {e['name']} lists {len(labels)} labels for "
                                    f"{e['count']} samples; rebuild the shards")
                bad = next((t for t in labels if not 0 <= t < len(self.classes)), None)
                if bad is not None:  # an index edited or damaged: a target the model has no output for
                    raise UserError(f"{loc}/{INDEX}: shard {e['name']} lists label {bad}, which is not one of its "
                                    f"{len(self.classes)} classes; the index is damaged: rebuild the shards")
                self._starts.append(len(self._targets))
                self.shards.append(Shard(e["name"], s, first, len(labels)))
                self._targets += labels
                first += len(labels)
        self._members: dict[int, list[tuple[int, int] | None]] = {}
        self._files: OrderedDict[int, Any] = OrderedDict()  # per process, never pickled to workers
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_files"], state["_lock"] = OrderedDict(), None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def locate(self, i: int) -> tuple[int, int]:
        """(shard, place in it) of sample ``i``."""
        if not 0 <= i < len(self._targets):
            raise IndexError(i)
        s = bisect.bisect_right(self._starts, i) - 1
        return s, i - self._starts[s]

    def key(self, i: int) -> str:
        """Sample ``i``'s webdataset key (``train-00000042``)."""
        s, j = self.locate(i)
        return shard_key(self.shards[s].split, self.shards[s].first + j)

    def samples_path(self, i: int) -> str:
        s, j = self.locate(i)
        sh = self.shards[s]
        return f"{self.loc}/{sh.name}#{shard_key(sh.split, sh.first + j)}"

    # ------------------------------------------------------------------ reading

    def _file(self, s: int) -> Any:
        """Shard ``s`` open for reading (an LRU of a few per process); call with the lock held."""
        f = self._files.pop(s, None)
        if f is None:
            f = open_file(self.loc, self.shards[s].name)
            while len(self._files) >= OPEN_SHARDS:
                self._files.popitem(last=False)[1].close()
        self._files[s] = f
        return f

    def _read(self, s: int, offset: int, size: int) -> bytes:
        with self._lock:  # threads (data check) share the open files
            f = self._file(s)
            if s not in self._members:
                f.seek(0)
                self._members[s] = scan_members(f, self.shards[s])
            if size < 0:
                return b""
            f.seek(offset)
            return f.read(size)

    def record_bytes(self, i: int) -> bytes:
        """The stored bytes of sample ``i``'s image; `BadImageError` when they cannot be read."""
        s, j = self.locate(i)
        path = self.samples_path(i)
        try:
            if s not in self._members:
                self._read(s, 0, -1)
            where = self._members[s][j]
            if where is None:
                raise BadImageError(path, "missing from its shard (truncated or damaged tar)")
            data = self._read(s, *where)
        except OSError as e:
            raise BadImageError(path, f"unreadable shard: {e.strerror or type(e).__name__}") from None
        if len(data) != where[1]:
            raise BadImageError(path, "truncated shard")
        return data

    def load(self, i: int) -> torch.Tensor:
        """Sample ``i``'s image, uint8 ``[C, H, W]`` (1 channel for shards of grey digits/MNIST)."""
        img = decode_image(self.record_bytes(i), name=self.samples_path(i),
                           target_short_side=getattr(self.transform, "decode_short_side", None))
        return img[:1].contiguous() if self.channels == 1 else img

    # ------------------------------------------------------------------ the order

    def epoch_order(self, seed: int, epoch: int) -> list[int]:
        """Epoch ``epoch``'s order of every sample: the shards in a seeded order, each shard's
        samples in a seeded order. A pure function of ``(seed, epoch)`` and the index; the
        `ResumableSampler` deals it out to the ranks (``rank::world_size``) and the loader to its
        workers (whole batches), so every part is disjoint."""
        rng = np.random.default_rng(mix_seed(seed, epoch, 0x5A4D))
        out: list[np.ndarray] = []
        for s in rng.permutation(len(self.shards)).tolist():
            n = self.shards[s].count
            inner = np.random.default_rng(mix_seed(seed, epoch, s)).permutation(n)
            out.append(inner + self._starts[s])
        return np.concatenate(out).tolist() if out else []


def shards_dataset(path: str, split: str, transform: Callable | None = None) -> ShardDataset:
    if not path:
        raise UserError("shards: a location is needed (shards:/path/to/shards, written by `alexnet data shards`)")
    return ShardDataset(path, split, transform)
