"""The dataset kinds a spec may name (``KIND:PATH``), and the mistakes in a spec that plain Python
can tell: it imports nothing heavy, so that ``alexnet train --data ~/photoz`` is answered before
torch loads. `alexnet.data.datasets.parse_spec` recognises what a spec names in full."""

from __future__ import annotations

import os

KINDS = ("digits", "cifar10", "mnist", "imagenet", "folder", "list", "cache", "shards")  # the one list of dataset kinds
KINDS_NEEDING_PATH = tuple(k for k in KINDS if k != "digits")  # every kind but the bundled digits


def nothing_there(spec: str) -> str | None:
    """The one-line error for a spec that is neither a kind, nor ``KIND:PATH`` with a known kind, nor
    an existing path (a mistyped folder, an unknown kind), or that is ``folder:`` or ``list:`` with a
    path that is not there; None for every other spec (another kind's path may be a download's
    destination or a URL: its reader says)."""
    spec = str(spec)
    kind, sep, rest = spec.partition(":")
    if sep and kind in ("folder", "list") and rest:
        where = os.path.abspath(os.path.expanduser(rest))  # as the folder and list readers say it
        if not os.path.exists(where):
            return f"{where}: no such folder" if kind == "folder" else f"{where}: no such list file"
        if kind == "folder" and not os.path.isdir(where):
            return f"{where} is a file, not a folder: folder: takes a folder of class folders (list:{rest} for a list file)"
        if kind == "list" and os.path.isdir(where):
            return f"{where} is a folder, not a list file: folder:{rest} reads its class folders"
    if spec in KINDS or (sep and kind in KINDS) or os.path.exists(os.path.expanduser(spec)):
        return None
    if sep and len(kind) > 1:  # one letter: a Windows drive, a path
        return f"unknown dataset kind {kind!r} in {spec!r}; use one of {', '.join(KINDS)} (e.g. folder:/path)"
    return (f"{spec}: no such file or folder (a dataset is digits, a folder, a list file, "
            f"or kind:path with kind in {', '.join(KINDS)})")
