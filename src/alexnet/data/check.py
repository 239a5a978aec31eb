"""Dataset checks and list files: ``alexnet data check`` and ``alexnet data list``."""

from __future__ import annotations

import os
import statistics
import sys
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import UserError
from ..core.io import atomic_write, check_output_folder, make_output_folder, why_not_a_folder
from ..core.text import cells, ljust
from .datasets import (IMG_EXTENSIONS, FileDataset, ImageDataset, build_dataset, find_classes, folder_splits,
                       is_eval_name, parse_spec, scan_folder, sibling_val_list, split_indices)
from .decode import DEFAULT_MAX_PIXELS, BadImageError, decode_image_info, extension_format, reason_kind
from .shards import is_shards
from .same_files import same_file_notes, shared_with_training


@dataclass
class SplitReport:
    """What `check_dataset` found in one split."""

    split: str
    name: str
    images: int
    classes: list[str]
    class_counts: list[int]
    bad: list[tuple[str, str]] = field(default_factory=list)
    widths: list[int] = field(default_factory=list)
    heights: list[int] = field(default_factory=list)
    formats: Counter = field(default_factory=Counter)
    modes: Counter = field(default_factory=Counter)
    misnamed: list[tuple[str, str]] = field(default_factory=list)  # (path, real format)
    notes: list[str] = field(default_factory=list)  # one file under two names (`same_files`)

    def size_stats(self) -> dict[str, Any]:
        if not self.widths:
            return {}
        short = [min(w, h) for w, h in zip(self.widths, self.heights)]
        return {
            "width": {"min": min(self.widths), "median": statistics.median(self.widths), "max": max(self.widths)},
            "height": {"min": min(self.heights), "median": statistics.median(self.heights), "max": max(self.heights)},
            "short_side_below_256": sum(s < 256 for s in short),
        }

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split, "name": self.name, "images": self.images,
                "class_counts": dict(zip(self.classes, self.class_counts)),
                "bad": [{"path": p, "reason": r} for p, r in self.bad],
                "sizes": self.size_stats(), "formats": dict(self.formats), "modes": dict(self.modes),
                "misnamed": [{"path": p, "format": f} for p, f in self.misnamed], "notes": self.notes}


@dataclass
class CheckReport:
    splits: list[SplitReport]
    ignored: dict[str, int] = field(default_factory=dict)  # files not read for their name, by extension
    outside: dict[str, int] = field(default_factory=dict)  # images beside the class folders, by folder
    shared: str = ""  # validation images that are training files too (`same_files.shared_with_training`)

    @property
    def bad(self) -> list[tuple[str, str]]:
        return [b for s in self.splits for b in s.bad]

    def to_dict(self) -> dict[str, Any]:
        return {"splits": [s.to_dict() for s in self.splits], "bad": len(self.bad), "ignored": dict(self.ignored),
                "outside_classes": dict(self.outside), "shared_with_training": self.shared}


def eval_part_name(name: str) -> str:
    """``test`` or ``val``: what a folder or list named like a validation part holds."""
    return "test" if "test" in name.lower() else "val"


def split_label(spec: str, split: str) -> str:
    """What the images `build_dataset(spec, split)` gave `check_dataset` are, for its report:
    a folder or list that holds only a test or validation part (``photos/test/`` given itself, a
    ``test.txt`` list, a class folder named ``val``) is labelled ``test`` or ``val``, not by the
    ``train`` role the loader gave it; a two-part layout's second part by its folder's name."""
    kind, path = parse_spec(spec)
    if kind == "folder":
        root = os.path.abspath(path)
        train_dir, val_dir = folder_splits(root)
        if val_dir and split in ("val", "test"):
            return eval_part_name(os.path.basename(folder_splits(root, split)[1] or val_dir))
        if val_dir is None and is_eval_name(os.path.basename(root)):
            return eval_part_name(os.path.basename(root))
    if kind == "list":
        fname = os.path.basename(path)
        if not sibling_val_list(os.path.abspath(path)) and "train" not in fname.lower() and is_eval_name(fname):
            return eval_part_name(fname)
    return split


def _probe(path: str, max_pixels: int | None, ds: ImageDataset | None = None, i: int = 0
           ) -> tuple[str, str | None, Any]:
    """Decode file ``path`` (or, with ``ds``, the stored record ``i`` of shards named ``path``)."""
    try:
        src = ds.record_bytes(i) if ds is not None else path  # type: ignore[attr-defined]
        img, info = decode_image_info(src, max_pixels=max_pixels, name=path)
        return path, None, (info, img.shape[-1], img.shape[-2])
    except BadImageError as e:
        return path, e.reason, None


def bounded_map(pool: ThreadPoolExecutor, fn, items, window: int):
    """``pool.map`` in order, with at most ``window`` tasks in flight (``map`` submits them all
    at once: 1.3 million futures for ImageNet)."""
    pending: deque = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _check_split(ds: ImageDataset, split: str, workers: int, progress: bool,
                 max_pixels: int | None) -> SplitReport:
    from tqdm import tqdm

    rep = SplitReport(split, ds.name, len(ds), list(ds.classes), ds.class_counts())
    records = hasattr(ds, "record_bytes")  # shards: every stored record decoded
    if not isinstance(ds, FileDataset) and not records:  # in memory: every image has the same, known size
        if len(ds):
            c, h, w = ds.load(0).shape
            rep.widths, rep.heights = [w] * len(ds), [h] * len(ds)
            rep.formats["in memory"] = len(ds)
        return rep
    paths = [ds.samples_path(i) for i in range(len(ds))] if records else [p for p, _ in ds.samples]
    rep.notes = [] if records else same_file_notes(ds.samples, ds.classes)
    probe = (lambda i: _probe(paths[i], max_pixels, ds, i)) if records else (lambda i: _probe(paths[i], max_pixels))
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = bounded_map(pool, probe, range(len(paths)), window=64 * max(1, workers))
        for path, reason, got in tqdm(results, total=len(paths), desc=f"checking {split}", unit="img",
                                      disable=not progress or not sys.stderr.isatty()):
            if reason is not None:
                rep.bad.append((path, reason))
                continue
            info, w, h = got
            rep.widths.append(w)
            rep.heights.append(h)
            rep.formats[info.format] += 1
            rep.modes[info.mode] += 1
            claimed = extension_format(path)
            if claimed and claimed != info.format:
                rep.misnamed.append((path, info.format))
    return rep


def check_dataset(spec: str, *, workers: int | None = None, progress: bool = True,
                  max_pixels: int | None = DEFAULT_MAX_PIXELS) -> CheckReport:
    """Decode every image of every split of ``spec`` (in parallel threads), and report bad files
    with their reasons, class counts, sizes, formats and files whose extension lies."""
    workers = workers or min(8, os.cpu_count() or 1)
    parts, seen, errors = [], set(), []
    folder = parse_spec(spec)[0] == "folder"  # a folder's test/ beside its val/ is a part of its own (--split test)
    for split in ("train", "val", "test") if folder else ("train", "val"):  # all opened before anything is decoded
        try:
            ds = build_dataset(spec, split, val_split=0.0)
        except UserError as e:
            if not _part_missing(spec, split):
                raise  # the part is there and broken (training would refuse it): one line, not "no bad files"
            errors.append(e)
            continue  # no such part (no validation part; MNIST with only its t10k files)
        key = tuple(p for p, _ in ds.samples) if isinstance(ds, FileDataset) else (ds.name, split)
        if key not in seen:
            seen.add(key)
            parts.append((split, ds))
    if not parts:
        raise errors[0]
    splits = []
    for split, ds in parts:
        if isinstance(ds, FileDataset):
            ds.max_pixels = max_pixels
        splits.append(_check_split(ds, split_label(spec, split), workers, progress, max_pixels))
    files = {split: ds.samples for split, ds in parts if isinstance(ds, FileDataset)}
    shared = shared_with_training(files["train"], files["val"]) if {"train", "val"} <= set(files) else ""
    return CheckReport(splits, ignored_counts(spec), images_outside_classes(spec), shared)


def _part_folders(spec: str) -> list[str]:
    """The folders whose sub-folders are the classes, for a folder (or ImageNet) spec: its
    training part and each validation part (``val/``, and ``test/`` beside it), or the folder
    itself; [] for other kinds."""
    kind, path = parse_spec(spec)
    if kind not in ("folder", "imagenet") or not os.path.isdir(path):
        return []
    train_dir, val_dir = folder_splits(path)
    parts = [d for d in (train_dir, val_dir, folder_splits(path, "test")[1]) if d]
    return list(dict.fromkeys(os.path.abspath(d) for d in parts)) or [os.path.abspath(path)]


def ignored_counts(spec: str) -> dict[str, int]:
    """`folders.ignored_files` over the class folders of every part of a folder (or ImageNet)
    spec; {} for others."""
    from .folders import ignored_files

    counts: dict[str, int] = {}
    for root in _part_folders(spec):
        for cls in find_classes(root):
            for ext, n in ignored_files(os.path.join(root, cls)).items():
                counts[ext] = counts.get(ext, 0) + n
    return counts


def images_outside_classes(spec: str) -> dict[str, int]:
    """Images lying directly in a folder whose sub-folders are the classes (beside them, in no
    class): not read, for they have no label; counted by folder."""
    from .folders import own_images

    out = {}
    parts = _part_folders(spec)
    top = os.path.abspath(parse_spec(spec)[1]) if parts else None  # beside train/ and val/: no part reads them
    for root in dict.fromkeys(parts + ([top] if top else [])):
        if not find_classes(root):  # no class folders (ImageNet's test/: its images are unlabelled on purpose)
            continue
        n = sum(1 for _ in own_images(root))
        if n:
            out[root] = n
    return out


def _part_missing(spec: str, split: str) -> bool:
    """Whether ``spec`` simply has no ``split`` part (a folder or list without a validation part, a
    cache or shards built without one, digits; MNIST with only its t10k files), as opposed to one
    that is there and cannot be read. Told from what is there, without reading it."""
    kind, path = parse_spec(spec)
    if kind == "mnist":
        from .builtin import find_idx

        prefix = "t10k" if split == "val" else "train"
        return not (find_idx(path, f"{prefix}-images-idx3-ubyte") or find_idx(path, f"{prefix}-labels-idx1-ubyte"))
    if split == "train":
        return False  # e.g. a train/val layout without its train/ folder: an error
    if kind == "digits":
        return True
    if kind == "cifar10":
        from .builtin import find_cifar_batches

        if find_cifar_batches(path) or os.path.isfile(os.path.join(path, "cifar-10-python.tar.gz")):
            return False  # its test_batch is its validation part
    if kind in ("folder", "cifar10"):
        part = folder_splits(path, split if split == "test" else None)[1]
        # a test/ without class folders (ILSVRC's unlabelled test images) is no labelled part to check
        return part is None or (split == "test" and not find_classes(part))
    if kind == "list":
        return not sibling_val_list(path) and not is_eval_name(os.path.basename(path))
    if kind in ("cache", "shards"):
        from .cache import read_manifest
        from .shards import read_index

        try:
            parts = (read_manifest(path) if kind == "cache" else read_index(path)).get("splits", {})
        except UserError:
            return False
        return "val" not in parts
    return False  # CIFAR-10's batches, ImageNet: a validation part of their own


def format_report(report: CheckReport) -> str:
    """The human-readable report printed by ``alexnet data check``."""
    out = []
    for s in report.splits:
        out.append(f"{s.split}: {s.images} image{'s' * (s.images != 1)}, "
                   f"{len(s.classes)} class{'es' * (len(s.classes) != 1)}  ({s.name})")
        width = max((cells(c) for c in s.classes), default=5)
        for c, n in zip(s.classes, s.class_counts):
            out.append(f"  {ljust(c, width)}  {n:>8}")
        empty = [c for c, n in zip(s.classes, s.class_counts) if n == 0]
        if s.split == "train" and sum(n > 0 for n in s.class_counts) < 2:
            out.append(f"  note: {'only one class has images' if s.classes[1:] else 'one class'}: a classifier "
                       f"needs at least two, and training refuses this")
        elif empty:
            out.append(f"  note: no images in {len(empty)} class{'es' * (len(empty) != 1)}: "
                       + ", ".join(empty[:8]) + (", …" if len(empty) > 8 else ""))
        st = s.size_stats()
        if st:
            w, h = st["width"], st["height"]
            out.append(f"  size: width {w['min']}…{w['median']:g}…{w['max']} (min…median…max), "
                       f"height {h['min']}…{h['median']:g}…{h['max']}; "
                       f"{st['short_side_below_256']} with short side < 256")
        if s.formats:
            out.append("  formats: " + ", ".join(f"{k} {v}" for k, v in s.formats.most_common()))
        unusual = {m: c for m, c in s.modes.items() if m not in ("RGB",)}
        if unusual:
            out.append("  modes other than RGB (converted): " + ", ".join(f"{k} {v}" for k, v in unusual.items()))
        for path, fmt in s.misnamed:
            out.append(f"  note: {path} is a {fmt} file (read fine)")
        out += [f"  {note}" for note in s.notes]
        for path, reason in s.bad:
            out.append(f"  bad: {path}: {reason}")
    if report.ignored:
        n = sum(report.ignored.values())
        kinds = ", ".join(f"{ext or 'no extension'} {c}" for ext, c in sorted(report.ignored.items(), key=lambda kv: (-kv[1], kv[0])))
        out.append(f"not read: {n} file{'s' * (n != 1)} whose name is not an image's ({kinds}); the extensions read "
                   f"are {' '.join(IMG_EXTENSIONS)}")
    for folder, n in report.outside.items():
        out.append(f"not read: {n} image{'s' * (n != 1)} directly in {folder}, beside its class folders (in no "
                   f"class, so with no label): move {'them' if n != 1 else 'it'} into a class folder")
    out += [report.shared] if report.shared else []
    bad = report.bad
    if bad:
        kinds = Counter(reason_kind(r) for _, r in bad)
        out.append(f"{len(bad)} bad file{'s' if len(bad) != 1 else ''}: "
                   + ", ".join(f"{n} {k}" for k, n in kinds.most_common()))
    else:
        out.append("no bad files")
    return "\n".join(out)


def _rel(path: str, base: str) -> str:
    rel = os.path.relpath(path, base).replace(os.sep, "/")
    return "./" + rel if rel.startswith("#") else rel  # a line starting with # is a comment


def write_list_files(root: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
                     val_split: float = 0.1, seed: int = 0, overwrite: bool = False) -> dict[str, Any]:
    """Write ``train.txt``, ``test.txt`` and ``classes.txt`` for an image-folder tree.

    Lines are ``relative/path label``, relative to ``out_dir`` (default: ``root``), so
    ``list:OUT/train.txt`` reads them back. ``test.txt`` lists ``val/`` (or ``test/``) when the
    tree has one, else a stratified ``val_split`` hold-out (seeded) taken out of ``train.txt``.
    Lists already in ``out_dir`` are replaced only with ``overwrite``; then a ``test.txt`` this
    listing has no images for is removed, for ``list:OUT/train.txt`` would take it as its hold-out.
    """
    root = os.fspath(root)
    kind, _, rest = root.partition(":")
    if rest and kind in ("folder", "shards", "cache"):  # a data spec: its folder
        if kind != "folder":
            raise UserError(f"{root}: {kind} list themselves (their index); `data list` is for a tree of "
                            f"class folders")
        root = rest
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise UserError(f"{root}: no such folder")
    out = os.path.abspath(os.fspath(out_dir)) if out_dir else root
    if out_dir:
        check_output_folder(out_dir, "-o")
    elif why := why_not_a_folder(root):
        raise UserError(f"{root}: the lists go there without -o, and {why}: give -o DIR")
    if is_shards(root):
        raise UserError(f"{root} holds shards, not image folders: they list themselves (index.json, "
                        f"sources.tsv); `data list` is for a tree of class folders")
    ours = ("classes.txt", "train.txt", "test.txt")
    there = [n for n in ours if os.path.lexists(os.path.join(out, n))]
    if there and not overwrite:
        raise UserError(f"{out} already holds {', '.join(there)}: give --overwrite to replace "
                        f"{'them' if len(there) > 1 else 'it'}, or -o DIR to write the lists elsewhere")
    train_dir, val_dir = folder_splits(root)
    if train_dir is None:  # only test/ or val/: nothing to train on, so nothing to list as train.txt
        from .folders import no_training_part

        raise UserError(no_training_part(root, val_dir))
    classes = find_classes(train_dir)
    if not classes:
        raise UserError(f"{root}: no class folders (expected {root}/<class>/<image>)")
    broken = [c for c in classes if c.splitlines() != [c]]  # \n, \r, and the others str.splitlines splits at
    if broken:
        raise UserError(f"{train_dir}: class folder {broken[0]!r} has a line break in its name, and classes.txt "
                        "holds one name per line: rename the folder")
    idx = {c: i for i, c in enumerate(classes)}
    train = scan_folder(train_dir, idx)
    if val_dir:
        test = scan_folder(val_dir, {c: i for c, i in idx.items()})
    elif val_split > 0:
        tr, va = split_indices([t for _, t in train], val_split, seed)
        train, test = [train[i] for i in tr], [train[i] for i in va]
    else:
        test = []
    if not train:
        raise UserError(f"{train_dir}: no images in the class folders")
    skipped = {p for p, _ in train + test if p.splitlines() != [p]}
    train, test = [r for r in train if r[0] not in skipped], [r for r in test if r[0] not in skipped]
    if not train:
        raise UserError(f"{train_dir}: no images in the class folders but ones with a line break in their names")
    make_output_folder(out, "-o")
    atomic_write(os.path.join(out, "classes.txt"), "".join(f"{c}\n" for c in classes))
    atomic_write(os.path.join(out, "train.txt"), "".join(f"{_rel(p, out)} {t}\n" for p, t in train))
    removed = None
    if test:
        atomic_write(os.path.join(out, "test.txt"), "".join(f"{_rel(p, out)} {t}\n" for p, t in test))
    elif "test.txt" in there:  # an earlier listing's hold-out: left there it would be this one's
        os.remove(os.path.join(out, "test.txt"))
        removed = os.path.join(out, "test.txt")
    other = sibling_val_list(os.path.join(out, "train.txt"))  # val.txt comes before test.txt
    listed = {t for _, t in train + test}
    return {"train": len(train), "test": len(test), "classes": len(classes), "out": out, "skipped": sorted(skipped),
            "empty": [c for i, c in enumerate(classes) if i not in listed],
            "removed": removed, "other_val_list": other if other != os.path.join(out, "test.txt") else None}


index_folder = write_list_files  # its name before ``alexnet data index`` became ``alexnet data list``
