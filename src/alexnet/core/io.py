"""Atomic file writes and safe loading.

Every file the project writes that a later run depends on (checkpoints, weights, metadata) goes
through `atomic_write`: the bytes land in a temporary file in the same folder, are flushed and
fsync'd, then renamed over the target, so a crash never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import UserError


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file next to ``path``; on success fsync and rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        with contextlib.suppress(OSError):  # make the rename itself durable
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename)."""
    with atomic_open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_save(obj: Any, path: str | os.PathLike, writer: Callable[[Any, Any], None] | None = None) -> None:
    """``torch.save`` through `atomic_open` (or any ``writer(obj, file)``)."""
    import torch

    with atomic_open(path, "wb") as f:
        (writer or torch.save)(obj, f)


def safe_torch_load(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """Load a ``.pt``/``.pth`` file with ``weights_only=True``.

    Files that hold pickled code (classes, functions) are refused with a `UserError` instead of
    being executed.
    """
    import re

    import torch

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder; give the checkpoint file itself (a .pt/.pth)")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))  # torch's message carries terminal bold codes
        found = re.search(r"GLOBAL ([\w.]+)", text)
        what = f"pickled code ({found.group(1)})" if found else "pickled code"
        raise UserError(
            f"{path}: refused to load — it holds {what}, not just tensors (loaded with weights_only=True, "
            f"so no code in it runs); if it is a whole model saved with torch.save(model) and you trust it, "
            f"save its state_dict() instead: "
            f"torch.save(torch.load('{path.name}', weights_only=False).state_dict(), 'weights.pth')"
        ) from None
    except Exception as e:  # noqa: BLE001 — the unpickler raises KeyError, IndexError, … on non-PyTorch bytes
        with path.open("rb") as f:
            head = f.read(4)
        if not (head.startswith(b"PK") or head[:1] == b"\x80"):  # a zip archive or a pickle
            raise UserError(f"{path}: not a PyTorch file (torch.save writes a zip archive; this is not one)") from None
        msg = str(e).strip().splitlines()[0].split(". ")[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: not a readable PyTorch file ({msg[:200]}; truncated or damaged?)") from None
