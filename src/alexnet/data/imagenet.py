"""ImageNet ILSVRC-2012: the devkit, the validation re-layout, and the dataset.

Layouts understood under ``imagenet:ROOT``:

- prepared: ``ROOT/train/<wnid>/*.JPEG`` and ``ROOT/val/<wnid>/*.JPEG``;
- torchvision's root: ``ILSVRC2012_devkit_t12.tar.gz`` + ``ILSVRC2012_img_train.tar`` and/or
  ``ILSVRC2012_img_val.tar``; the archives are unpacked into the prepared layout on first use.

Class order is the sorted WordNet ids (torchvision's and every published model's). Human-readable
names come from, in order: torchvision's ``meta.bin``, the devkit (archive or folder), a
``LOC_synset_mapping.txt``/``synset_words.txt`` (``n01440764 tench, Tinca tinca`` lines; Kaggle's up
to three folders above its ``ILSVRC/Data/CLS-LOC/``), or —
for exactly the 1,000 ILSVRC classes — torchvision's bundled category names.

The devkit is read here, not by ``torchvision.datasets.imagenet.parse_devkit_archive``: that one
insists on the official archive's md5 (so it cannot run on a test devkit) and its val re-layout
fails on a second run; ours is idempotent and never overwrites or deletes an image.
"""

from __future__ import annotations

import io
import os
import re
import sys
import shutil
import tarfile
import zlib
from dataclasses import dataclass, field
from typing import Callable

from ..core.errors import UserError
from ..core.io import one_at_a_time
from .base import FileDataset
from .folders import find_classes, scan_folder

DEVKIT = "ILSVRC2012_devkit_t12"
TRAIN_TAR, VAL_TAR = "ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"
_VAL_NAME = re.compile(r"^ILSVRC2012_val_(\d{8})\.[A-Za-z]+$")
_WNID = re.compile(r"^n\d{8}$")


@dataclass
class Devkit:
    """``words``: wnid → its names (leaf synsets, i.e. the 1,000 classes); ``val_wnids``: the
    wnid of validation image ``n`` at position ``n - 1``."""

    words: dict[str, tuple[str, ...]]
    val_wnids: list[str]


def _parse_meta_mat(data: bytes, where: str) -> tuple[dict[int, str], dict[str, tuple[str, ...]]]:
    import scipy.io

    try:
        syn = scipy.io.loadmat(io.BytesIO(data), squeeze_me=True)["synsets"]
        rows = zip(syn["ILSVRC2012_ID"], syn["WNID"], syn["words"], syn["num_children"])
        leaves = [(int(i), str(w), str(words)) for i, w, words, nc in rows if int(nc) == 0]
    except (ValueError, KeyError, TypeError, OSError) as e:
        raise UserError(f"{where}: not an ILSVRC-2012 devkit meta.mat ({str(e)[:80]})") from None
    return {i: w for i, w, _ in leaves}, {w: tuple(words.split(", ")) for _, w, words in leaves}


def _devkit_files(devkit: str) -> tuple[bytes, bytes | None]:
    """(meta.mat, ground-truth txt or None) from a devkit archive or folder."""
    if os.path.isfile(devkit):
        try:
            with tarfile.open(devkit) as tar:
                members = {m.name: m for m in tar.getmembers() if m.isfile()}
                meta = next((n for n in members if n.endswith("data/meta.mat")), None)
                gt = next((n for n in members if n.endswith("data/ILSVRC2012_validation_ground_truth.txt")), None)
                if meta is None:
                    raise UserError(f"{devkit}: no data/meta.mat inside; is it {DEVKIT}.tar.gz?")
                return tar.extractfile(members[meta]).read(), (tar.extractfile(members[gt]).read() if gt else None)
        except (tarfile.TarError, OSError) as e:
            raise UserError(f"{devkit}: not a readable devkit archive ({str(e)[:80]})") from None
    for d in (os.path.join(devkit, "data"), os.path.join(devkit, DEVKIT, "data"), devkit):
        if os.path.isfile(os.path.join(d, "meta.mat")):
            with open(os.path.join(d, "meta.mat"), "rb") as f:
                meta = f.read()
            gt_path = os.path.join(d, "ILSVRC2012_validation_ground_truth.txt")
            gt = open(gt_path, "rb").read() if os.path.isfile(gt_path) else None
            return meta, gt
    raise UserError(f"{devkit}: no {DEVKIT} devkit (an archive, or a folder with data/meta.mat)")


def read_devkit(devkit: str | os.PathLike) -> Devkit:
    """Read the ILSVRC-2012 devkit (``ILSVRC2012_devkit_t12.tar.gz``, or its unpacked folder)."""
    devkit = os.fspath(devkit)
    if not os.path.exists(devkit):
        raise UserError(f"{devkit}: no such devkit archive or folder")
    meta, gt = _devkit_files(devkit)
    idx_to_wnid, words = _parse_meta_mat(meta, devkit)
    val = []
    if gt is not None:
        try:
            val = [idx_to_wnid[int(x)] for x in gt.decode().split()]
        except (KeyError, ValueError) as e:
            raise UserError(f"{devkit}: bad validation ground truth ({e})") from None
    return Devkit(words, val)


def _read_val_solution_csv(path: str) -> dict[int, str]:
    """Kaggle's ``LOC_val_solution.csv`` (``ImageId,PredictionString``) → image number → wnid."""
    out = {}
    with open(path, encoding="utf-8-sig") as f:
        for line in f:
            name, _, pred = line.strip().partition(",")
            m = re.match(r"ILSVRC2012_val_(\d{8})$", name)
            if m and pred.split():
                out[int(m.group(1))] = pred.split()[0]
    if not out:
        raise UserError(f"{path}: no 'ILSVRC2012_val_NNNNNNNN,wnid …' lines")
    return out


def _val_truth(devkit: str) -> dict[int, str]:
    if devkit.endswith(".csv") and os.path.isfile(devkit):
        return _read_val_solution_csv(devkit)
    kit = read_devkit(devkit)
    if not kit.val_wnids:
        raise UserError(f"{devkit}: has no data/ILSVRC2012_validation_ground_truth.txt")
    return {n: w for n, w in enumerate(kit.val_wnids, 1)}


@dataclass
class RelayoutReport:
    moved: int = 0
    in_place: int = 0
    conflicts: list[str] = field(default_factory=list)  # target already exists: left where it was
    unknown: list[str] = field(default_factory=list)  # not a numbered val image / no ground truth

    def summary(self) -> str:
        s = f"{self.moved} moved, {self.in_place} already in place"
        if self.conflicts:
            s += f", {len(self.conflicts)} left where they were (a different file has the target name)"
        if self.unknown:
            s += f", {len(self.unknown)} not validation images (left alone)"
        return s


def imagenet_val_relayout(folder: str | os.PathLike, devkit: str | os.PathLike, *,
                          dry_run: bool = False) -> RelayoutReport:
    """Move ``ILSVRC2012_val_NNNNNNNN.JPEG`` files into ``folder/<wnid>/`` from the devkit's
    ground truth (or a Kaggle ``LOC_val_solution.csv``).

    Idempotent: images already in their class folder stay; images in a wrong class folder are
    moved to the right one. Never deletes or overwrites a file: when the target exists, the
    source stays where it was and is reported as a conflict.
    """
    folder, devkit = os.fspath(folder), os.fspath(devkit)
    if not os.path.isdir(folder):
        raise UserError(f"{folder}: no such folder")
    truth = _val_truth(devkit)
    rep = RelayoutReport()
    found = [(folder, e.name) for e in os.scandir(folder) if e.is_file()]
    for sub in find_classes(folder):
        d = os.path.join(folder, sub)
        found += [(d, e.name) for e in os.scandir(d) if e.is_file()]
    for d, name in sorted(found):
        src = os.path.join(d, name)
        m = _VAL_NAME.match(name)
        wnid = truth.get(int(m.group(1))) if m else None
        if wnid is None:
            rep.unknown.append(src)
            continue
        dst = os.path.join(folder, wnid, name)
        if os.path.abspath(src) == os.path.abspath(dst):
            rep.in_place += 1
        elif os.path.lexists(dst):
            rep.conflicts.append(src)
        else:
            if not dry_run:
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                os.rename(src, dst)
            rep.moved += 1
    return rep


def load_class_names(root: str) -> dict[str, tuple[str, ...]] | None:
    """wnid → names from whatever ``root`` holds (see the module docstring), or None."""
    meta_bin = os.path.join(root, "meta.bin")
    if os.path.isfile(meta_bin):
        import torch

        try:
            return dict(torch.load(meta_bin, weights_only=True)[0])
        except Exception:  # noqa: BLE001 — an unreadable cache: fall through to the devkit
            pass
    for kit in (os.path.join(root, f"{DEVKIT}.tar.gz"), os.path.join(root, DEVKIT)):
        if os.path.exists(kit):
            return read_devkit(kit).words
    # Kaggle's download keeps LOC_synset_mapping.txt three levels above ILSVRC/Data/CLS-LOC/ (only
    # there: a mapping above some other folder, an ImageNet subset's, would add classes it lacks)
    parts = os.path.normpath(root).split(os.sep)
    kaggle = [os.path.join(_up(root, 3), "LOC_synset_mapping.txt")] if parts[-3:] == ["ILSVRC", "Data", "CLS-LOC"] else []
    for p in [os.path.join(root, "LOC_synset_mapping.txt"), os.path.join(root, "synset_words.txt"), *kaggle]:
        if os.path.isfile(p):
            out = {}
            with open(p, encoding="utf-8-sig") as f:
                for line in f:
                    wnid, _, words = line.strip().partition(" ")
                    if _WNID.match(wnid):
                        out[wnid] = tuple(w.strip() for w in words.split(",")) if words else (wnid,)
            return out or None
    return None


def _up(path: str, levels: int) -> str:
    for _ in range(levels):
        path = os.path.dirname(path)
    return path


def _kaggle_solution(root: str) -> str | None:
    """Kaggle's ``LOC_val_solution.csv`` in ``root`` or up to three folders above it, or None."""
    for n in range(4):
        p = os.path.join(_up(root, n), "LOC_val_solution.csv")
        if os.path.isfile(p):
            return p
    return None


def _extract_train(root: str) -> None:
    """``ILSVRC2012_img_train.tar`` (one ``<wnid>.tar`` per class) → ``train/<wnid>/``, streamed
    (the inner archives are never written out), into ``train.partial/`` then renamed."""
    from tqdm import tqdm

    part = os.path.join(root, "train.partial")
    with tarfile.open(os.path.join(root, TRAIN_TAR)) as outer:
        for m in tqdm(outer, desc="unpacking ImageNet train", unit="class", disable=not sys.stderr.isatty()):
            if not (m.isfile() and m.name.endswith(".tar")):
                continue
            wnid = os.path.basename(m.name)[:-4]
            os.makedirs(os.path.join(part, wnid), exist_ok=True)
            with tarfile.open(fileobj=outer.extractfile(m), mode="r|") as inner:
                for im in inner:
                    if im.isfile():
                        with open(os.path.join(part, wnid, os.path.basename(im.name)), "wb") as f:
                            f.write(inner.extractfile(im).read())
    os.rename(part, os.path.join(root, "train"))


def _extract_val(root: str, devkit: str) -> None:
    part = os.path.join(root, "val.partial")
    os.makedirs(part, exist_ok=True)
    with tarfile.open(os.path.join(root, VAL_TAR)) as tar:
        for m in tar:
            if m.isfile():
                with open(os.path.join(part, os.path.basename(m.name)), "wb") as f:
                    f.write(tar.extractfile(m).read())
    imagenet_val_relayout(part, devkit)
    os.rename(part, os.path.join(root, "val"))


def _devkit_in(root: str) -> str | None:
    for kit in (os.path.join(root, f"{DEVKIT}.tar.gz"), os.path.join(root, DEVKIT)):
        if os.path.exists(kit):
            return kit
    return None


def _where_to_put(root: str) -> str:
    return (f"put {DEVKIT}.tar.gz with {TRAIN_TAR} and/or {VAL_TAR} in {root} (from image-net.org, "
            f"which needs an account), or prepared train/<wnid>/ and val/<wnid>/ folders")


def imagenet_dataset(root: str, split: str, transform: Callable | None = None) -> FileDataset:
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise UserError(f"imagenet: {root}: no such folder; {_where_to_put(root)}")
    d = os.path.join(root, split)
    if not os.path.isdir(d):
        tar = os.path.join(root, TRAIN_TAR if split == "train" else VAL_TAR)
        if not os.path.isfile(tar):
            raise UserError(f"imagenet: no {split}/ folder nor {os.path.basename(tar)} in {root}; "
                            f"{_where_to_put(root)}")
        kit = _devkit_in(root)
        if split != "train" and kit is None:
            raise UserError(f"imagenet: {VAL_TAR} needs {DEVKIT}.tar.gz beside it for the labels")
        # every rank of a torchrun job gets here: one unpacks, the others wait for it and find it done
        with one_at_a_time(root, f"unpack-{split}", lambda m: print(m, file=sys.stderr)):
            if not os.path.isdir(d):
                print(f"unpacking {tar} into {d}/ (once)", file=sys.stderr)
                try:
                    if split == "train":
                        _extract_train(root)
                    else:
                        _extract_val(root, kit)
                except (tarfile.TarError, EOFError, zlib.error) as e:  # a download cut short, most often
                    shutil.rmtree(f"{d}.partial", ignore_errors=True)  # nothing half unpacked is left to read
                    raise UserError(f"imagenet: {tar} is damaged or cut short ({e}): download it "
                                    f"again (check its size and checksum)") from None
    words = load_class_names(root)
    flat = sum(1 for n in os.listdir(d) if _VAL_NAME.match(n))
    if flat:
        truth = _kaggle_solution(root) or f"{DEVKIT}.tar.gz"
        raise UserError(f"imagenet: {d} holds {flat} validation images outside class folders; sort them "
                        f"with `alexnet data imagenet-val {d} --devkit {truth}` (the devkit, or Kaggle's "
                        f"LOC_val_solution.csv)")
    if words:
        wnids = sorted(words)
    else:
        train = os.path.join(root, "train")
        wnids = find_classes(train if os.path.isdir(train) else d)
    if not wnids:
        raise UserError(f"imagenet: no <wnid> class folders in {d}")
    if words:
        names = [words[w][0] for w in wnids]
    elif len(wnids) == 1000 and all(_WNID.match(w) for w in wnids):
        from torchvision.models._meta import _IMAGENET_CATEGORIES  # sorted-wnid order

        names = list(_IMAGENET_CATEGORIES)
    else:
        names = list(wnids)
    extra = sorted(set(find_classes(d)) - set(wnids))
    if extra:
        raise UserError(f"imagenet: {d} has class folders that are not ImageNet classes here: {', '.join(extra[:5])}")
    samples = scan_folder(d, {w: i for i, w in enumerate(wnids)})
    if not samples:
        raise UserError(f"imagenet: no images in {d}/<wnid>/")
    return FileDataset(samples, names, wnids, transform, f"imagenet:{root}", split)
