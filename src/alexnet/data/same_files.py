"""Images that are one file under two names (a symbolic or hard link, or a linked folder): the same
picture in two classes, twice in one class, or in both the training and the validation part.
``alexnet data check`` says so; the file's identity (device and inode, one ``stat`` each) tells, no
image is read. Plain Python."""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Sequence

from ..core.text import counted


def _are(n: int, noun: str) -> str:
    """``1 file is``, ``2 files are``."""
    return f"{counted(n, noun)} {'is' if n == 1 else 'are'}"


def identity(path: str) -> tuple[int, int] | str:
    """What makes two names one file: (device, inode); the path itself where it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return path
    return st.st_dev, st.st_ino


def same_file_groups(samples: Sequence[tuple[str, int]]) -> list[list[tuple[str, int]]]:
    """The samples (path, label) that name one file, in groups of two or more."""
    groups: dict[tuple[int, int] | str, list[tuple[str, int]]] = defaultdict(list)
    for path, label in samples:
        groups[identity(path)].append((path, label))
    return [g for g in groups.values() if len(g) > 1]


def same_file_notes(samples: Sequence[tuple[str, int]], classes: Sequence[str]) -> list[str]:
    """One line each for the files that are in two classes at once (one picture, two labels: the
    network is taught both) and for those counted twice in one class (more weight than the others)."""
    two_classes, twice = [], []
    for group in same_file_groups(samples):
        (two_classes if len({label for _, label in group}) > 1 else twice).append(group)
    notes = []
    if two_classes:
        path, other = two_classes[0][0][0], two_classes[0][1][0]
        notes.append(f"note: {_are(len(two_classes), 'file')} in two classes at once (links to one file: one "
                     f"picture, two labels), e.g. {path} and {other}")
    if twice:
        notes.append(f"note: {_are(len(twice), 'file')} counted twice within a class (links to one "
                     f"file: more weight than the others), e.g. {twice[0][0][0]} and {twice[0][1][0]} in "
                     f"{classes[twice[0][0][1]]!r}")
    return notes


def shared_with_training(train: Sequence[tuple[str, int]], val: Sequence[tuple[str, int]]) -> str:
    """A line when validation images are files the training part holds too (through links): they
    are scored as unseen, and the validation score is better than the network is."""
    seen = {identity(p) for p, _ in train}
    both = [p for p, _ in val if identity(p) in seen]
    if not both:
        return ""
    many = len(both) != 1
    return (f"note: {_are(len(both), 'validation image')} also in the training part (links to "
            f"one file), e.g. {both[0]}: scored as unseen, {'they make' if many else 'it makes'} the validation "
            f"score too good")
