"""The model registry: ``@register_model(name, cfg)`` as in timm and torchvision.

Each entry carries a default cfg — input size, crop size, normalisation, default classes, year,
published result and reference — from which the data layer derives transforms, so that train,
evaluate and predict can never disagree on preprocessing.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch.nn as nn

from ..core.errors import UserError, did_you_mean

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelCfg:
    """Default configuration of a registered model."""

    input_size: tuple[int, int, int]  # (C, H, W) the network is fed
    resize: int  # short side before cropping (paper §2: 256); equal to H for small images
    num_classes: int = 1000
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    min_input_size: tuple[int, int] = (32, 32)  # smallest (H, W) the network accepts
    family: str = "alexnet"
    year: int = 2012
    result: str = ""  # published ImageNet result
    reference: str = ""
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["min_input_size"] = list(self.min_input_size)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelCfg":
        d = dict(d)
        for k in ("input_size", "min_input_size", "mean", "std"):
            if k in d:
                d[k] = tuple(d[k])
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class _Entry:
    name: str
    fn: Callable[..., nn.Module]
    cfg: ModelCfg


_REGISTRY: dict[str, _Entry] = {}


def register_model(name: str, cfg: ModelCfg) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``fn(num_classes=…, **kwargs) -> nn.Module`` under ``name``."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = _Entry(name, fn, cfg)
        return fn

    return deco


def list_models() -> list[str]:
    """Names of every registered model, in registration order."""
    return list(_REGISTRY)


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown model {name!r}{did_you_mean(name, _REGISTRY)}; "
                        f"`alexnet models` lists them") from None


def model_cfg(name: str) -> ModelCfg:
    """The default cfg of model ``name`` (a copy; changing it changes nothing registered)."""
    return copy.deepcopy(_entry(name).cfg)


def build_model(name: str, num_classes: int | None = None, **kwargs: Any) -> nn.Module:
    """Build model ``name`` with ``num_classes`` outputs (default: its cfg's)."""
    entry = _entry(name)
    n = entry.cfg.num_classes if num_classes is None else int(num_classes)
    if n < 1:
        raise UserError(f"num_classes must be at least 1, not {n}")
    try:
        model = entry.fn(num_classes=n, **kwargs)
    except TypeError as e:
        if "unexpected keyword" in str(e):
            raise UserError(f"model {name!r}: {e}") from None
        raise
    model.model_name = name  # type: ignore[attr-defined]
    return model
