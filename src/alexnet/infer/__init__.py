"""Use a trained model: predict, evaluation reports, feature retrieval, export and import.

- `Predictor`: weights in, top-k classes / probabilities / fc7 features out (CPU or CUDA,
  thread-safe) — what ``alexnet predict`` and the web server use;
- `write_report`, `collect_predictions`, `ReportCollector`: the evaluation report (metrics,
  per-class table, confusion matrix, most confident mistakes);
- `build_index`, `FeatureIndex`, `query_index`, `knn`: exact nearest-neighbour search over
  last-hidden-layer features (the paper's Figure 4);
- `export_model`: ONNX / TorchScript / safetensors, checked against PyTorch;
- `import_torchvision`: torchvision's AlexNet checkpoint → our weights with ImageNet's classes.
"""

from .export import ExportCheckError, ExportResult, export_model
from .interop import imagenet_classes, import_torchvision
from .predictor import FileResult, Predictor, expand_inputs
from .report import ReportCollector, collect_predictions, write_report
from .retrieval import FeatureIndex, build_index, knn, query_index

__all__ = ["ExportCheckError", "ExportResult", "export_model", "imagenet_classes", "import_torchvision",
           "FileResult", "Predictor", "expand_inputs", "ReportCollector", "collect_predictions",
           "write_report", "FeatureIndex", "build_index", "knn", "query_index"]
