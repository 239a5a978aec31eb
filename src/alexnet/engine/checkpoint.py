"""Checkpoints: tensors and primitives only, written atomically, loaded with ``weights_only=True``.

``checkpoints/last.pt`` is rotated: before a new one is renamed into place, the previous one is
renamed to ``last.prev.pt``, so a ``last.pt`` that later turns out unreadable (a disk that lost
its last blocks, a copy cut short) still leaves the checkpoint before it. `newest_loadable` picks
the newest one that loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.errors import UserError
from ..core.io import UnreadableFileError, atomic_save, safe_torch_load

CHECKPOINT_VERSION = 1
# what every checkpoint of this tool holds (the rest may grow with versions)
REQUIRED_KEYS = ("version", "model", "model_name", "num_classes", "epoch", "step_in_epoch", "global_step")


def previous_path(path: str | Path) -> Path:
    """``checkpoints/last.pt`` → ``checkpoints/last.prev.pt``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def save_checkpoint(path: str | Path, state: dict[str, Any], keep_previous: bool = False) -> None:
    """Write ``state`` to ``path`` through a temp file + fsync + rename: never half a file.
    ``keep_previous``: the checkpoint ``path`` held before becomes ``<stem>.prev<suffix>``."""
    atomic_save({"version": CHECKPOINT_VERSION, **state}, path,
                keep_previous=previous_path(path) if keep_previous else None)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by `save_checkpoint`; a `UserError` (one line) for anything else:
    an unreadable file, a file with pickled code, or a file that is not a checkpoint of this tool
    (a bare ``state_dict``, another program's checkpoint)."""
    try:
        ck = safe_torch_load(path)
    except UnreadableFileError as e:
        raise UserError(f"{path}: not a checkpoint of this tool — the file is truncated, damaged or of "
                        f"another kind ({e.detail})") from None
    missing = [k for k in REQUIRED_KEYS if k not in ck] if isinstance(ck, dict) else list(REQUIRED_KEYS)
    if missing:
        what = _describe(ck)
        raise UserError(f"{path}: not a checkpoint of this tool ({what}; it lacks "
                        f"{', '.join(repr(k) for k in missing[:3])}{'…' if len(missing) > 3 else ''})")
    if not isinstance(ck["version"], int) or ck["version"] > CHECKPOINT_VERSION:
        raise UserError(f"{path}: checkpoint version {ck['version']!r} is newer than this alexnet reads "
                        f"({CHECKPOINT_VERSION}); upgrade alexnet")
    return ck


def _describe(obj: Any) -> str:
    import torch

    if isinstance(obj, dict):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return f"a bare state_dict of {len(obj)} tensors — use `alexnet import` for weights"
        return f"a dict with keys {', '.join(repr(k) for k in list(obj)[:4])}{'…' if len(obj) > 4 else ''}"
    return f"a {type(obj).__name__}"


def newest_loadable(path: str | Path) -> tuple[dict[str, Any], Path, list[str]]:
    """The checkpoint at ``path`` or, if that does not load, the previous one (``last.prev.pt``).

    Returns ``(checkpoint, the file it came from, [why each newer file was skipped])``; raises the
    newest file's `UserError` when none loads.
    """
    path = Path(path)
    skipped: list[str] = []
    first_error: UserError | None = None
    for p in (path, previous_path(path)):
        if not p.is_file():
            continue
        try:
            return load_checkpoint(p), p, skipped
        except UserError as e:
            first_error = first_error or e
            skipped.append(str(e))
    if first_error is not None:
        raise first_error
    raise UserError(f"{path}: no such file")


def data_changes(ck: dict[str, Any], classes: list[str], images: dict[str, int], path: str | Path) -> str:
    """What differs between the data a checkpoint was trained on and the data a resume reads. Other
    classes are a `UserError` naming them (the outputs would stand for other classes: a resumed run
    would train output 0 as 'cat', then as 'ant'); other numbers of images are a note to print ("":
    none, or a checkpoint from before its image counts were kept)."""
    was = [str(c) for c in ck.get("classes") or []]
    if was and was != [str(c) for c in classes]:
        gone, new = [c for c in was if c not in classes], [c for c in classes if c not in was]
        what = "; ".join(part for part in (
            f"not there now: {', '.join(map(repr, gone[:5]))}" if gone else "",
            f"new: {', '.join(map(repr, new[:5]))}" if new else "",
            "" if gone or new else "the same names in another order") if part)
        raise UserError(f"--resume {path}: the data's classes are not the run's ({what}); the run's outputs stand "
                        f"for its {len(was)} classes: resume on the same classes, or start a new run")
    counted = ck.get("images") or {}
    changed = [f"{counted[k]:,} → {images[k]:,} {k}" for k in ("train", "val")
               if k in counted and k in images and counted[k] != images[k]]
    return (f"note: the data changed since the run's last checkpoint ({', '.join(changed)} images): the resumed run "
            f"is not the one an uninterrupted run would have been, and a held-out split may have moved") if changed else ""
