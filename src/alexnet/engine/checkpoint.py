"""Checkpoints: tensors and primitives only, written atomically, loaded with ``weights_only=True``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.io import atomic_save, safe_torch_load

CHECKPOINT_VERSION = 1


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` through a temp file + fsync + rename: never half a file."""
    atomic_save({"version": CHECKPOINT_VERSION, **state}, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    return safe_torch_load(path)
