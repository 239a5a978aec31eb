"""alexnet: the AlexNet image-classification system (Krizhevsky, Sutskever & Hinton, 2012) and the
ILSVRC winners that followed it, on PyTorch.

    from alexnet import build_model, build_dataset, fit, Predictor
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from .core.errors import UserError

# Everything else is imported on first use, so `import alexnet` (and `alexnet --version`/`--help`)
# does not pay for torch: `alexnet.build_model` imports `alexnet.models` when it is first read.
_LAZY = {
    **{name: "alexnet.models" for name in ("build_model", "list_models", "load_weights", "model_cfg",
                                           "register_model", "save_weights", "summarize")},
    "build_dataset": "alexnet.data", "build_loader": "alexnet.data", "build_transforms": "alexnet.data",
    "fit": "alexnet.engine", "evaluate": "alexnet.engine", "TrainConfig": "alexnet.engine",
    "Predictor": "alexnet.infer", "evaluate_weights": "alexnet.infer",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'alexnet' has no attribute {name!r}")


__all__ = ["UserError", *_LAZY]
