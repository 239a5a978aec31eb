"""Use a trained model: predict, evaluation reports, feature retrieval, export and import.

- `Predictor`: weights in, top-k classes / probabilities / fc7 features out (CPU or CUDA,
  thread-safe) — what ``alexnet predict`` and the web server use;
- `evaluate_weights`: top-1/top-5 accuracy and error of trained weights on a dataset, centre crop
  and ten-crop — what ``alexnet evaluate`` runs;
- `write_report`, `collect_predictions`, `ReportCollector`: the evaluation report (metrics,
  per-class table, confusion matrix, most confident mistakes);
- `build_index`, `FeatureIndex`, `query_index`, `knn`: exact nearest-neighbour search over
  last-hidden-layer features (the paper's Figure 4);
- `export_model`: ONNX / TorchScript / safetensors, checked against PyTorch;
- `import_torchvision`: torchvision's AlexNet checkpoint → our weights with ImageNet's classes;
- `run_figures`: a run's training curves and first-layer filters as PNGs.
"""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use: `alexnet export --help` reads `alexnet.infer.formats` without torch.
_LAZY = {
    **dict.fromkeys(("ExportCheckError", "ExportResult", "export_model"), "export"),
    "evaluate_weights": "evaluation",
    "run_figures": "figures",
    **dict.fromkeys(("imagenet_classes", "import_torchvision"), "interop"),
    **dict.fromkeys(("FileResult", "Predictor"), "predictor"), "expand_inputs": "inputs",
    **dict.fromkeys(("ReportCollector", "collect_predictions", "write_report"), "report"),
    **dict.fromkeys(("FeatureIndex", "build_index", "knn", "query_index"), "retrieval"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ExportCheckError", "ExportResult", "export_model", "evaluate_weights", "imagenet_classes",
           "import_torchvision", "FileResult", "Predictor", "expand_inputs", "ReportCollector", "collect_predictions",
           "write_report", "FeatureIndex", "build_index", "knn", "query_index", "run_figures"]
