"""Training and evaluation: `fit`, `evaluate`, checkpoints, recipes, torchrun/DDP."""

from .config import RECIPES, TrainConfig, make_config
from .evaluate import EvalResult, evaluate, predict_batch
from .train import DivergedError, TrainResult, fit

__all__ = ["RECIPES", "TrainConfig", "make_config", "EvalResult", "evaluate", "predict_batch",
           "DivergedError", "TrainResult", "fit"]
