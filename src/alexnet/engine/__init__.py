"""Training and evaluation: `fit`, `evaluate`, checkpoints, recipes, torchrun/DDP.

The names below are imported on first use: the CLI reads `alexnet.engine.config` (plain Python)
to build its help without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {"RECIPES": "config", "TrainConfig": "config", "make_config": "config",
         "EvalResult": "evaluate", "evaluate": "evaluate", "predict_batch": "evaluate",
         "DivergedError": "train", "TrainResult": "train", "fit": "train"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_LAZY)
