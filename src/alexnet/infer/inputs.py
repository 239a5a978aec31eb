"""What ``alexnet predict`` reads: its arguments (files, folders, globs) → the image files, in order.

A folder contributes what training would read from it (`alexnet.data.folders.image_files`: links
followed, except one back to a folder above; hidden files left out), so ``predict FOLDER`` and
``train --data FOLDER`` see the same images. A glob is expanded here rather than by
``glob.glob(recursive=True)``, which follows a link back up the tree (``photos/loop -> ..``) until
the system's limit of nested links and returns every image once per path around the loop.
"""

from __future__ import annotations

import fnmatch
import os
import re
from typing import Iterator, Sequence

from ..data.base import IMG_EXTENSIONS
from ..data.folders import image_files, links_within, loops_back

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _is_glob(s: str) -> bool:
    return any(ch in s for ch in "*?[")


def _loops_back(path: str) -> bool:
    return loops_back(path, os.path.realpath(os.path.dirname(path) or "."))


def _subfolders(base: str, seen: set[str], top: str | None = None) -> Iterator[str]:
    """``base`` (``""``: the current folder) and every folder below it, hidden ones left out, links
    followed but each real folder once (``seen``) and never a link into the tree itself (its
    folder comes under its own path): a loop, or folders linking to each other, ends."""
    real = os.path.realpath(base or ".")
    top = real if top is None else top
    if real in seen:
        return
    seen.add(real)
    yield base
    try:
        names = sorted(os.listdir(base or "."))
    except OSError:
        return
    for name in names:
        p = os.path.join(base, name)
        if not name.startswith(".") and os.path.isdir(p) and not links_within(p, top):
            yield from _subfolders(p, seen, top)


def _match(base: str, parts: Sequence[str]) -> Iterator[str]:
    """The paths below ``base`` (``""``: the current folder, named as glob names it: ``x.jpg``) that
    match the pattern components ``parts`` (``**``: any depth; a last ``""``: folders only)."""
    if not parts:
        if base:
            yield base
        return
    part, rest = parts[0], parts[1:]
    if part == "":
        if rest:
            yield from _match(base, rest)  # a doubled slash
        elif os.path.isdir(base or "."):
            yield os.path.join(base, "")  # a trailing slash: the folder itself, as glob gives it
    elif part == "**":
        for d in _subfolders(base, set()):
            if rest:
                yield from _match(d, rest)
                continue
            if d:
                yield d
            for name in sorted(os.listdir(d or ".")) if os.path.isdir(d or ".") else ():
                if not name.startswith(".") and not os.path.isdir(os.path.join(d, name)):
                    yield os.path.join(d, name)  # `**` last: the files too, as glob's
    elif _is_glob(part):
        try:
            names = sorted(os.listdir(base or "."))
        except OSError:
            return
        for name in names:
            if name.startswith(".") and not part.startswith("."):
                continue  # as the shell and glob: a hidden name only when the pattern says so
            p = os.path.join(base, name)
            if fnmatch.fnmatchcase(name, part) and (not rest or (os.path.isdir(p) and not _loops_back(p))):
                yield from _match(p, rest)
    else:
        p = os.path.join(base, part)
        if os.path.lexists(p):
            yield from _match(p, rest)


def glob_paths(pattern: str) -> list[str]:
    """The paths ``pattern`` matches, sorted, named as ``glob.glob(pattern, recursive=True)`` names
    them (``./x/a.png`` for ``./x/*.png``), but each real folder visited once by ``**``: never round a
    loop of links, nor back and forth between folders that link to each other."""
    if pattern.startswith("/"):
        return sorted(set(_match("/", pattern[1:].split("/"))))
    return sorted(set(_match("", pattern.split("/"))))


def expand_inputs(args: Sequence[str], extensions: Sequence[str] = IMG_EXTENSIONS) -> list[tuple[str, str | None]]:
    """Command-line arguments → ``[(path, None)]`` for each image to predict, or ``[(arg, reason)]``
    for an argument that names nothing: a file is taken as is (whatever its extension — the
    decoder sniffs the content), a folder contributes its image files as training reads them
    (`image_files`, then those with one of ``extensions``), a glob its matches (``**`` allowed),
    sorted. A file reached twice is listed once."""
    out: list[tuple[str, str | None]] = []
    exts = tuple(e.lower() for e in extensions)

    def in_folder(d: str) -> list[str]:
        return [f for f in image_files(d) if f.lower().endswith(exts)]

    for a in args:
        if os.path.isdir(a):
            files = in_folder(a)
            if not files:
                out.append((a, "no image files in folder"))
            out.extend((f, None) for f in files)
        elif os.path.lexists(a):
            out.append((a, None))
        elif _URL.match(a):
            out.append((a, "a URL: predict reads files on this machine; download it first (curl -O URL)"))
        elif _is_glob(a):
            files = []
            for m in glob_paths(a):
                files.extend(in_folder(m) if os.path.isdir(m) else [m])
            if not files:
                out.append((a, "no files match"))
            out.extend((f, None) for f in files)
        else:
            out.append((a, "no such file"))
    once, seen = [], set()  # a file named twice (by itself and by a glob or its folder) is predicted once
    for path, err in out:
        if os.path.realpath(path) not in seen:
            seen.add(os.path.realpath(path))
            once.append((path, err))
    return once
