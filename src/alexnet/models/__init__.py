"""Models: the registry, the paper's AlexNet and its variants, the later ILSVRC winners, summaries."""

from . import alexnet as _alexnet  # noqa: F401  (registers the AlexNet family)
from . import zfnet as _zfnet  # noqa: F401  (registers ZFNet, the ILSVRC-2013 network)
from . import zoo as _zoo  # noqa: F401  (registers the torchvision successors)
from . import senet as _senet  # noqa: F401  (registers SENet, the ILSVRC-2017 winner)
from . import ablation as _ablation  # noqa: F401  (registers the experiment networks)
from . import cifar_fast as _cifar_fast  # noqa: F401  (registers alexnet-cifar-fast)
from .alexnet import LRN, AlexNet, AlexNetOWT, AlexNetSmall, AlexNetTowers
from .registry import ModelCfg, build_model, list_models, model_cfg, register_model
from .summary import Summary, summarize
from .weights import load_meta, load_weights, make_meta, meta_cfg, resolve_run_dir, resolve_weights, save_weights

__all__ = ["LRN", "AlexNet", "AlexNetOWT", "AlexNetSmall", "AlexNetTowers", "ModelCfg", "build_model",
           "list_models", "model_cfg", "register_model", "Summary", "summarize", "load_meta",
           "load_weights", "make_meta", "meta_cfg", "resolve_run_dir", "resolve_weights", "save_weights"]
