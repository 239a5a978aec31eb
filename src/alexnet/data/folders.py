"""Image folders and list files: scanning ``root/<class>/…`` and reading ``path label`` lists.

Below the factory (`alexnet.data.datasets`), above the base classes (`alexnet.data.base`);
ImageNet's prepared layout and CIFAR-10 as image folders reuse the scanning here.
"""

from __future__ import annotations

import os
import re
from typing import Callable, Iterator, Sequence

from ..core.errors import UserError
from .base import IMG_EXTENSIONS, VAL_NAMES, FileDataset, take_split
from .samples import SampleList


def find_classes(directory: str) -> list[str]:
    """Sorted class sub-folders, hidden ones (``.ipynb_checkpoints``) left out."""
    try:
        return sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))
    except OSError as e:
        raise UserError(f"{directory}: cannot list ({e.strerror})") from None


def walk_folders(directory: str, within: Sequence[str] = ()) -> Iterator[tuple[str, list[str]]]:
    """``(folder, file names)`` under ``directory`` as ``os.walk`` gives them, links followed, less
    what is hidden (a folder whose name starts with ``.``: ``.thumbnails/``), a link back to a
    folder above (a loop, which would repeat every image below it), a link to a folder inside
    ``directory`` or inside one of the folders ``within`` (each read under its own path: a dataset's
    other class folders, so that a class folder linking to another class's does not list its images
    under both), and a folder reached a second time through links from outside: each real folder
    once, so folders that link to each other end."""
    seen, tops = set(), [os.path.realpath(d) for d in (directory, *within)]

    def cannot_list(e: OSError) -> None:  # os.walk would pass over it: a class with no images, in silence
        raise UserError(f"{e.filename}: cannot list the folder ({e.strerror}); its images would be left out")

    for root, dirs, fnames in os.walk(directory, followlinks=True, onerror=cannot_list):
        real = os.path.realpath(root)
        if real in seen:  # a folder reached again through another link: listed once
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not loops_back(os.path.join(root, d), real)
                         and not links_within(os.path.join(root, d), *tops))
        yield root, fnames


def image_files(directory: str, within: Sequence[str] = ()) -> Iterator[str]:
    """Every image file under ``directory`` (`walk_folders`, links to folders inside ``within`` left
    out), in the order of torchvision's ``make_dataset`` (folders sorted, an image extension in any
    case), less hidden files (macOS's ``._photo.jpg`` twins)."""
    for root, fnames in sorted(walk_folders(directory, within)):
        for fname in sorted(fnames):
            if not fname.startswith(".") and fname.lower().endswith(IMG_EXTENSIONS):
                yield os.path.join(root, fname)


NOT_PHOTOS = {"thumbs.db", "desktop.ini"}  # what file managers leave in photo folders


def ignored_files(directory: str) -> dict[str, int]:
    """The files under ``directory`` that `image_files` passes over for their name (an extension
    that is not an image's: ``.heic``, ``.avif``, none), counted by extension (``""``: none); hidden
    files and `NOT_PHOTOS` are not counted. What ``data check`` tells, so a folder of phone photos
    in a format not read does not vanish without a word."""
    counts: dict[str, int] = {}
    for _, fnames in walk_folders(directory):
        for f in fnames:
            if not f.startswith(".") and f.lower() not in NOT_PHOTOS and not f.lower().endswith(IMG_EXTENSIONS):
                ext = os.path.splitext(f)[1].lower()
                counts[ext] = counts.get(ext, 0) + 1
    return counts


def links_within(path: str, *tops: str) -> bool:
    """Whether ``path`` is a link to one of ``tops`` (real folders being read) or to a folder inside
    one: that folder is read under its own path, not again through the link."""
    if not os.path.islink(path):
        return False
    target = os.path.realpath(path)
    return any(target == top or target.startswith(os.path.join(top, "")) for top in tops)


def loops_back(path: str, real_parent: str) -> bool:
    """Whether ``path`` is a link to its own folder (``real_parent``, real) or to one above it."""
    if not os.path.islink(path):
        return False
    target = os.path.realpath(path)
    return real_parent == target or real_parent.startswith(os.path.join(target, ""))


def scan_folder(directory: str, class_to_idx: dict[str, int]) -> SampleList:
    """``(path, label)`` of every image file under ``directory/<class>/`` (`image_files`: classes
    sorted, then torchvision's order), as a compact `SampleList` built as the folders are read."""
    classes = [os.path.join(directory, c) for c in class_to_idx]

    def walk():
        for cls in sorted(class_to_idx):
            d = os.path.join(directory, cls)
            if os.path.isdir(d):  # a link inside d to another class's folder: that class's images, not d's
                yield from ((path, class_to_idx[cls]) for path in image_files(d, within=classes))

    return SampleList(walk(), prefix=os.path.join(directory, ""))


# Other names datasets give their parts (Kaggle's ``training_set/``, MNIST-as-PNG's ``training/`` and
# ``testing/``): taken as ``train/``, ``val/`` and ``test/`` where every sub-folder of the root is
# named like a part, the part's plain name is not there, and the folder holds class folders.
_PART_SUFFIX = r"(?:[ _.-]?(?:set|data|images?|imgs|split))?"
_PART_NAMES = {"train": re.compile(rf"(?:train|training){_PART_SUFFIX}"),
               "val": re.compile(rf"(?:val|valid|validation){_PART_SUFFIX}"),
               "test": re.compile(rf"(?:test|testing){_PART_SUFFIX}")}


def part_role(name: str) -> str | None:
    """``train``, ``val`` or ``test`` when folder ``name`` is named like a dataset's part
    (``train``, ``Training``, ``test_set``, ``validation-images``); None otherwise."""
    low = name.lower()
    return next((role for role, rx in _PART_NAMES.items() if rx.fullmatch(low)), None)


def folder_splits(root: str, val_name: str | None = None) -> tuple[str | None, str | None]:
    """(train folder, validation folder or None) of an image-folder root; (None, val folder) for a
    split layout without a training part (only ``test/`` or ``val/``). The validation folder is
    ``val_name``'s where the root has one (``test/`` for ``--split test`` beside ``val/``), else
    the first of `VAL_NAMES` there (``val/`` before ``test/``). A part named otherwise
    (`part_role`: ``training/``, ``test_set/``) counts where every sub-folder of the root is
    named like a part, it holds class folders and the root has no part of that role under its
    plain name (`_other_part_names`)."""
    sub = _other_part_names(root, {c.lower(): c for c in find_classes(root)})
    names = ([val_name.lower()] if val_name else []) + list(VAL_NAMES)
    val = next((sub[v] for v in names if v in sub), None)
    if "train" in sub and find_classes(os.path.join(root, sub["train"])):
        others = [sub[c] for c in sub if c != "train" and c not in VAL_NAMES]
        if val is None and any(_holds_images(os.path.join(root, c)) for c in others):
            return root, None  # class folders beside train/, which is a class too (Pascal VOC's, COCO's)
        return os.path.join(root, sub["train"]), os.path.join(root, val) if val else None
    if sub and set(sub) <= {"train", *VAL_NAMES}:  # only split names: not class folders
        return None, os.path.join(root, val) if val else None
    return root, None


_PLAIN = {"train": ("train",), "val": ("val", "validation", "valid"), "test": ("test",)}


def _other_part_names(root: str, sub: dict[str, str]) -> dict[str, str]:
    """``sub`` (lower-case name → folder) with a part named otherwise under its role's plain name,
    as a path relative to ``root``: only where every sub-folder is named like a part (a class
    called "Training Data" beside "cat" stays a class), the role's plain name is not there, and
    the folder holds class folders. A part holding nothing but one folder named like it (Kaggle's
    ``training_set/training_set/<class>/``) is that folder. Two folders for one role: an error."""
    roles = {c: part_role(c) for c in sub}
    if not sub or not all(roles.values()):
        return sub
    out = dict(sub)
    for role, plain in _PLAIN.items():
        if any(p in sub for p in plain):
            continue
        named = sorted(c for c in sub if roles[c] == role)
        if len(named) > 1:
            raise UserError(f"{root} holds {' and '.join(sub[c] + '/' for c in named)}, each named like the {role} "
                            f"part: rename all but one, or give the folder you mean")
        if named:
            rel = sub[named[0]]
            for _ in range(3):  # training_set/training_set/<class>/
                inner = find_classes(os.path.join(root, rel))
                if len(inner) != 1 or part_role(inner[0]) != role:
                    break
                rel = os.path.join(rel, inner[0])
            if find_classes(os.path.join(root, rel)):
                del out[named[0]]
                out[role] = rel
    return out


def no_training_part(root: str, val_dir: str | None) -> str:
    """The one-line error for a root that holds only validation parts (``test/``, ``val/``)."""
    names = "/, ".join(find_classes(root)) + "/"
    return (f"{root} holds only {names}: a train/val layout without its training split (expected "
            f"{root}/train/<class>/<image>); add train/, or point at {val_dir or root}/ if its sub-folders are "
            f"the classes")


def own_images(directory: str) -> Iterator[str]:
    """The image files lying in ``directory`` itself (not in its sub-folders), hidden ones left out;
    nothing where it cannot be listed."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    yield from (e.name for e in entries if e.is_file() and e.name.lower().endswith(IMG_EXTENSIONS)
                and not e.name.startswith("."))


def _holds_images(directory: str) -> bool:
    """Whether ``directory`` has an image file of its own (not only in sub-folders)."""
    return next(own_images(directory), None) is not None


def folder_dataset(root: str, split: str, transform: Callable | None, val_split: float, seed: int,
                   *, name: str | None = None, val_name: str | None = None) -> FileDataset:
    """Image folders: ``root/<class>/…``, or ``root/train/<class>/…`` + ``root/val/<class>/…``.

    ``split="all"``: every image (both parts of a split layout); ``val_name``: which of the
    validation folders (`folder_splits`) is the ``val`` split."""
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise UserError(f"{root}: no such folder")
    train_dir, val_dir = folder_splits(root, val_name)
    note = ""
    if train_dir is None:
        if split == "train" or val_dir is None or not find_classes(val_dir):
            raise UserError(no_training_part(root, val_dir))
        train_dir, val_dir, split = val_dir, None, "all"  # evaluation of the validation part alone
    ids = find_classes(train_dir)
    if not ids:
        raise UserError(f"{root}: no class folders (expected {root}/<class>/<image>)")
    idx = {c: i for i, c in enumerate(ids)}
    if val_dir is not None:
        extra = sorted(set(find_classes(val_dir)) - set(ids))
        if extra:
            raise UserError(f"{val_dir}: classes not in {train_dir}: {', '.join(extra[:5])}")
        if split == "all":
            samples = scan_folder(train_dir, idx) + scan_folder(val_dir, idx)
        else:
            samples = scan_folder(val_dir if split == "val" else train_dir, idx)
    else:
        samples = scan_folder(train_dir, idx)
        if not samples:
            raise UserError(f"{train_dir}: no images ({', '.join(IMG_EXTENSIONS)}) in the class folders")
        samples, note = take_split(samples, samples.labels.tolist(), split, val_split, seed, root)
    if not samples:
        raise UserError(f"{val_dir if split == 'val' and val_dir else train_dir}: no images "
                        f"({', '.join(IMG_EXTENSIONS)}) in the class folders")
    ds = FileDataset(samples, ids, ids, transform, name or f"folder:{root}", split)
    ds.slice_note = note
    return ds


def read_list(path: str) -> list[tuple[str, int]]:
    """Lines ``path label`` (the path may contain spaces and ``#``; a line starting with ``#`` is a
    comment); relative paths are resolved against the list's folder."""
    base = os.path.dirname(os.path.abspath(path))
    out = []
    try:
        with open(path, encoding="utf-8-sig") as f:  # -sig: a byte-order mark (Windows' Notepad) is not text
            lines = f.read().splitlines()
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text list file") from None
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit() or int(parts[1]) < 0:
            raise UserError(f"{path}:{n}: expected 'path label' with an integer label ≥ 0, got {line[:80]!r}")
        out.append((os.path.normpath(os.path.join(base, parts[0])), int(parts[1])))
    return out


# Files a person may hand over as data by mistake: what each is (for a one-line answer).
NOT_DATASETS = {".onnx": "an ONNX model", ".pt": "a PyTorch checkpoint or weights file",
                ".pth": "a PyTorch checkpoint or weights file", ".safetensors": "a weights file",
                ".ckpt": "a checkpoint", ".json": "a JSON file", ".csv": "a CSV file",
                ".tar": "an archive", ".gz": "an archive", ".tgz": "an archive", ".zip": "an archive"}


def not_a_list_file(path: str) -> str | None:
    """Why the file ``path``, handed over as a bare dataset path, is not a list file; None when it
    looks like one. A list file is text whose first entry reads ``path label`` (or at least starts
    with an image path); a model, weights, an archive, an image or other text is not a dataset."""
    name = os.path.basename(path)
    suffix = os.path.splitext(name)[1].lower()
    hint = "a dataset is digits, a folder of class sub-folders, a list file of 'path label' lines, or KIND:PATH"
    if suffix in IMG_EXTENSIONS:
        return f"{path}: an image, not a dataset ({hint}; `alexnet predict` takes single images)"
    if suffix in NOT_DATASETS:
        return f"{path}: {NOT_DATASETS[suffix]}, not a dataset ({hint})"
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16).decode("utf-8")
    except OSError as e:
        return f"{path}: cannot read ({e.strerror})"
    except UnicodeDecodeError:
        return f"{path}: a binary file, not a dataset ({hint})"
    lines = [ln.strip() for ln in head.splitlines()]
    n, first = next(((i, ln) for i, ln in enumerate(lines, 1) if ln and not ln.startswith("#")), (0, ""))
    if not first:
        return f"{path}: an empty text file, not a list file ({hint})"
    parts = first.rsplit(None, 1)
    if parts[0].lower().endswith(IMG_EXTENSIONS) or (len(parts) == 2 and parts[1].isdigit()):
        return None
    return f"{path}: a text file, not a list file (line {n}: {first[:60]!r} is not 'path label'; {hint})"


def read_classes_txt(path: str) -> list[str]:
    """The class names of a list's ``classes.txt``: line *i* names label *i - 1*, so a blank line
    inside it (it would shift every class after it) and a name given twice are one-line errors."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            names = [ln.strip() for ln in f.read().splitlines()]
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file of class names") from None
    while names and not names[-1]:
        names.pop()  # blank lines at the end name nothing
    first: dict[str, int] = {}
    for i, name in enumerate(names, 1):
        if not name:
            raise UserError(f"{path}:{i}: a blank line; line i names label i - 1, so it would shift every class "
                            f"after it: remove it, or name the class")
        if name in first:
            raise UserError(f"{path}:{i}: {name!r} again (line {first[name]} names it): name each class once")
        first[name] = i
    return names


def sibling_val_list(path: str) -> str | None:
    """``val.txt``/``test.txt``/… beside a list whose name contains ``train``."""
    d, fname = os.path.split(path)
    for v in VAL_NAMES:
        cand = os.path.join(d, fname.replace("train", v))
        if "train" in fname and os.path.isfile(cand):
            return cand
    return None


def is_eval_name(fname: str) -> bool:
    """Whether a list file's name says it holds validation images (``val.txt``, ``test_list.txt``)."""
    return re.search(r"(^|[^a-z])(val|valid|validation|test)([^a-z]|$)", fname.lower()) is not None


def list_dataset(path: str, split: str, transform: Callable | None, val_split: float, seed: int) -> FileDataset:
    """A list file. Beside a list named ``*train*``, ``val``/``test`` in its place names the
    validation list (``train.txt`` → ``test.txt``); a list named like a validation list is used
    whole for either split; otherwise validation is a seeded split of the list."""
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such list file")
    samples = read_list(path)
    fname = os.path.basename(path).lower()
    sibling = sibling_val_list(path)
    note = ""
    if sibling:
        if split == "val":
            samples = read_list(sibling)
        elif split == "all":
            samples = samples + read_list(sibling)
    elif "train" in fname or not is_eval_name(fname):
        samples, note = take_split(samples, [t for _, t in samples], split, val_split, seed, path)
    if not samples:
        raise UserError(f"{path}: no entries")
    n = max(t for _, t in samples) + 1
    classes_txt = os.path.join(os.path.dirname(path), "classes.txt")
    if os.path.isfile(classes_txt):
        classes = read_classes_txt(classes_txt)
        if len(classes) < n:
            top = {f: max([-1] + [t for _, t in read_list(f)]) for f in (path, sibling) if f}
            where = max(top, key=top.get)
            raise UserError(f"{where} uses label {top[where]}, but {classes_txt} names {len(classes)} "
                            + (f"classes (labels 0–{len(classes) - 1})" if classes else "classes"))
    else:  # the classes are the labels the training list uses; a validation list has no others
        n_train = max([0] + [t + 1 for _, t in read_list(path)])
        beyond = sorted({t for _, t in read_list(sibling) if t >= n_train}) if sibling else []
        if beyond:
            raise UserError(f"{sibling} uses label {beyond[0]}{' and others' if len(beyond) > 1 else ''}, which "
                            f"{os.path.basename(path)} never reaches (its labels are 0–{n_train - 1}); give the "
                            f"classes in {classes_txt}, or fix the label")
        n = max(n, n_train)
        used = {t for _, t in samples}
        if n > 1000 and n > 10 * len(used):  # one mistyped label would make a model of that many outputs
            raise UserError(f"{path}: labels go up to {n - 1} but only {len(used)} different ones are used "
                            f"(a mistyped label?); name the classes in {classes_txt} to mean that many")
        classes = [str(i) for i in range(n)]
    ds = FileDataset(samples, classes, None, transform, f"list:{path}", split)
    ds.slice_note = note
    return ds
