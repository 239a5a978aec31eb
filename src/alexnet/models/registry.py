"""The model registry: ``@register_model(name, cfg)`` as in timm and torchvision.

Each entry carries a default cfg — input size, crop size, normalisation, default classes, year,
published result and reference — from which the data layer derives transforms, so that train,
evaluate and predict can never disagree on preprocessing.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import sys
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Sequence

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
    # where the accepted keyword arguments are declared: callables whose signatures list them (the
    # builder itself is always one), or a function returning those callables (imported lazily)
    accepts: Sequence[Callable[..., Any]] | Callable[[], Sequence[Callable[..., Any]]] = ()
    fixed: tuple[str, ...] = ()  # parameters of those callables that the name itself sets: not --model-args


_REGISTRY: dict[str, _Entry] = {}


def register_model(name: str, cfg: ModelCfg, accepts: Any = (), fixed: tuple[str, ...] = ()
                   ) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``fn(num_classes=…, **kwargs) -> nn.Module`` under ``name``.

    ``accepts``: a tuple of the classes or functions that ``fn`` passes its ``**kwargs`` on to, or a
    function of no arguments returning that tuple (to import them late); with ``fn``'s own
    signature they tell which ``--model-arg`` keys are valid (`model_args`), less ``fixed``: the
    parameters the name sets itself (``alexnet-224``'s ``overhang``).
    """

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = _Entry(name, fn, cfg, accepts, tuple(fixed))
        return fn

    return deco


# Keys no user passes (objects, not values) and the ones build_model sets itself.
_NOT_ARGS = {"self", "num_classes", "weights", "progress", "features", "block", "layers", "norm_layer",
             "blocks", "inverted_residual_setting"}
# Ranges and choices of the keys the registered models share; anything else is checked by type only.
_CHOICES = {"init": ("paper", "caffe", "kaiming", "lecun"), "norm": ("none", "batch"), "towers": (1, 2),
            "lrn_alpha": ("per-n", "paper"), "dropout_at": ("paper", "torchvision")}


def _choices(name: str, key: str) -> tuple[Any, ...] | None:
    """The values ``key`` may take for model ``name``: the shared ones (`_CHOICES`), except that the
    initialisations are each builder module's own (its ``INITS``)."""
    if key == "init":
        import sys

        return getattr(sys.modules[_entry(name).fn.__module__], "INITS", _CHOICES["init"])
    return _CHOICES.get(key)


def _accepted(entry: _Entry) -> Sequence[Callable[..., Any]]:
    """The callables ``entry``'s builder passes its keyword arguments on to (imported late if a function gives them)."""
    return entry.accepts() if callable(entry.accepts) else entry.accepts


def model_args(name: str) -> dict[str, Any]:
    """The keyword arguments model ``name`` accepts (``--model-arg KEY=VALUE``) with their defaults:
    the values its builder gives the network (`_builder_values`: ``alexnet-mnist``'s fc_width 512,
    ``senet154``'s 64 groups), else the network's signature's."""
    entry = _entry(name)
    targets = _accepted(entry)
    given = _builder_values(name)
    out: dict[str, Any] = {}
    for target in (entry.fn, *targets):
        for p in inspect.signature(target).parameters.values():
            if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.name in _NOT_ARGS or p.name in entry.fixed:
                continue
            out.setdefault(p.name, given[p.name] if p.name in given else None if p.default is p.empty else p.default)
    return out


_SWAP_LOCK = threading.RLock()  # held by `_builder_values` while it swaps classes, and by `build_model`


class _Built(Exception):
    """Raised by `_builder_values`'s stand-in for a network's class, with the arguments it was given."""

    def __init__(self, arguments: dict[str, Any]):
        super().__init__()
        self.arguments = arguments


@functools.cache
def _builder_values(name: str) -> dict[str, Any]:
    """The arguments model ``name``'s builder passes to its network when given none (the values it sets
    beyond the class's defaults), found without building anything: the network classes it accepts are
    replaced, for the call, by a stand-in that records its arguments and stops the builder. {} when
    the builder does not reach one."""
    entry = _entry(name)
    targets = _accepted(entry)
    swapped = []

    def stand_in(target: Any) -> Callable[..., Any]:
        def record(*args: Any, **kwargs: Any) -> None:
            try:
                raise _Built(dict(inspect.signature(target).bind_partial(*args, **kwargs).arguments))
            except TypeError:
                raise _Built(kwargs) from None
        return record

    with _SWAP_LOCK:  # no other thread builds a model while its class is the stand-in
        try:
            for target in targets:
                for module in {sys.modules.get(target.__module__), sys.modules.get(entry.fn.__module__)}:
                    if module is not None and getattr(module, target.__name__, None) is target:
                        swapped.append((module, target.__name__, target))
                        setattr(module, target.__name__, stand_in(target))
            entry.fn(num_classes=entry.cfg.num_classes)
        except _Built as built:
            return built.arguments
        except Exception:  # noqa: BLE001 — a builder that does more first: the signatures' defaults stand
            return {}
        finally:
            for module, attr, target in swapped:
                setattr(module, attr, target)
    return {}


def _fits_type(value: Any, default: Any) -> bool:
    """Whether ``value`` (parsed from JSON) has the type of the parameter's ``default``."""
    def integer(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return integer(value)
    if isinstance(default, float):
        return integer(value) or isinstance(value, float)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple)) and all(integer(v) for v in value)
    return True


def _type_name(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, str):
        return "a string"
    return "a list of integers"


def check_model_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    """Raise `UserError` (one line) for a keyword argument model ``name`` does not accept or cannot use.

    Checks the key against the builder's signature (listing the valid keys), the value's type
    against the default's, the ranges of the shared keys (width > 0, 0 ≤ dropout < 1, …), and that
    the input the data pipeline feeds (the model cfg's channels and size) still fits the network.
    """
    if not kwargs:
        return
    valid = model_args(name)
    cfg = _entry(name).cfg
    for key, value in kwargs.items():
        where = f"--model-arg {key}={_show(value)} for {name}"
        if key not in valid:
            keys = ", ".join(sorted(valid)) or "none"
            raise UserError(f"{name} has no model argument {key!r}{did_you_mean(key, valid)}; "
                            f"it accepts: {keys}")
        default = valid[key]
        if default is None:
            continue
        ok = _fits_type(value, default)
        if not ok:
            raise UserError(f"{where}: expected {_type_name(default)} (default {_show(default)})")
        if key == "groups" and cfg.family == "alexnet" and value not in (1, 2):
            raise UserError(f"{where}: groups is 2 (the paper's two towers as grouped convolutions) or 1")
        choices = _choices(name, key)
        if choices and value not in choices:
            raise UserError(f"{where}: choose from {', '.join(map(str, choices))}")
        if key == "width" and not value > 0:
            raise UserError(f"{where}: the width multiplier must be positive (1 = the published size)")
        if key in ("dropout", "dropout_aux") and not 0 <= value < 1:
            raise UserError(f"{where}: a dropout probability is at least 0 and below 1 (the paper: 0.5)")
        if key == "fc_width" and value < 1:
            raise UserError(f"{where}: fc_width must be at least 1")
        if key == "widths":
            if len(value) != len(default) or min(value) < 1:
                raise UserError(f"{where}: give {len(default)} positive channel counts, like "
                                f"{','.join(map(str, default))}")
        if key == "in_chans" and value != cfg.input_size[0]:
            raise UserError(f"{where}: the data pipeline feeds this model {cfg.input_size[0]}-channel images "
                            f"(input {'×'.join(map(str, cfg.input_size))}); in_chans must be {cfg.input_size[0]}")
        if key == "input_hw" and value != cfg.input_size[1]:
            raise UserError(f"{where}: the data pipeline feeds this model {cfg.input_size[1]}×{cfg.input_size[2]} "
                            f"images; input_hw must be {cfg.input_size[1]}")


def _show(value: Any) -> str:
    """A value as it is typed after ``--model-arg KEY=``."""
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value).lower() if isinstance(value, bool) else str(value)


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
    check_model_kwargs(name, kwargs)
    with _SWAP_LOCK:
        if not kwargs:
            model = entry.fn(num_classes=n)
        else:  # a value of the right type may still not make a network (groups=3, reduction=0): one line
            with _refused_as(name, kwargs):
                model = entry.fn(num_classes=n, **kwargs)
    if kwargs:
        _dry_run(entry, name, n, kwargs)
    model.model_name = name  # type: ignore[attr-defined]
    return model


_BUILD_ERRORS = (ValueError, TypeError, ZeroDivisionError, NotImplementedError, RuntimeError, AssertionError,
                 AttributeError, IndexError)


@contextlib.contextmanager
def _refused_as(name: str, kwargs: dict[str, Any]) -> Iterator[None]:
    """Turn what a builder (or its network's forward pass) raises for ``kwargs`` into a one-line `UserError`."""
    try:
        yield
    except UserError:
        raise
    except _BUILD_ERRORS as e:
        what = f"model {name} with " + ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        text = " ".join(str(e).split()) or type(e).__name__
        raise UserError(f"{what}: not a network this builds ({text[:200]})") from None


def _dry_run(entry: _Entry, name: str, n: int, kwargs: dict[str, Any]) -> None:
    """One training-mode forward pass of the network on PyTorch's meta device (shapes only, no
    arithmetic) at the model's input size: arguments that build a network that cannot run
    (``down_kernel=2``: shapes that do not add up) or whose output is not ``[batch, classes]``
    logits (GoogLeNet's ``aux_logits=true``) are refused before a run starts, not at its first step."""
    import torch

    c, h, w = entry.cfg.input_size
    c = int(kwargs.get("in_chans", kwargs.get("in_channels", c)))
    with _refused_as(name, kwargs):
        with torch.device("meta"):
            net = entry.fn(num_classes=n, **kwargs).train()
            out = net(torch.empty(2, c, h, w))
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, n):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"its training output is {got}, not [batch, {n}] logits")
