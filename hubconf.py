"""torch.hub entry points: every model of the ``alexnet`` registry, by name.

    import torch
    net = torch.hub.load("OWNER/alexnet", "alexnet")                     # the paper's network (§3)
    net = torch.hub.load("OWNER/alexnet", "alexnet_owt", weights="DEFAULT")  # torchvision's weights
    net = torch.hub.load("path/to/clone", "alexnet_cifar", source="local", num_classes=10, width=0.5)
    torch.hub.list("OWNER/alexnet")                                        # every entry point (GitHub)

``torch.hub.list`` reads GitHub only; in a clone, ``alexnet models`` names the same entry points
(with ``_`` for ``-``).

One entry point per registered model (``alexnet.models.list_models()``), named like the model with
``-`` as ``_`` (``alexnet-owt`` → ``alexnet_owt``), so a model registered later appears here
without an edit. Each takes ``weights=`` (what ``alexnet train --weights`` takes: a torchvision
weights name for the models that have them — ``DEFAULT``, ``IMAGENET1K_V1``,
``AlexNet_Weights.IMAGENET1K_V1`` or the enum member —, a ``.pth`` state_dict or a run directory of
ours), ``pretrained=True`` (torchvision's ``DEFAULT``), ``num_classes`` and the model's own
keyword arguments (``alexnet models``/``--model-arg`` list them). A mistake, and weights that
cannot be downloaded offline, raise the project's one-line ``alexnet.UserError``.

torch.hub puts the repository's root on ``sys.path``, not its ``src/``, and installs nothing: this
file puts ``src/`` first on ``sys.path`` itself, so a clone (or hub's downloaded copy) uses its own
code even where another ``alexnet`` is installed.
"""

from __future__ import annotations

import os as _os
import sys as _sys

dependencies = ["torch", "torchvision"]

_SRC = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "src")
if _os.path.isdir(_SRC) and _SRC not in _sys.path:
    _sys.path.insert(0, _SRC)

from alexnet.core.errors import UserError as _UserError  # noqa: E402  (after the path above)
from alexnet.models import build_model as _build_model  # noqa: E402
from alexnet.models import list_models as _list_models  # noqa: E402
from alexnet.models import model_cfg as _model_cfg  # noqa: E402
from alexnet.models.registry import model_args as _model_args  # noqa: E402


def _weights_spec(name: str, pretrained: bool, weights) -> str:
    """``weights=`` as a ``--weights`` spec ("" for none); ``pretrained=True`` is ``DEFAULT``."""
    import enum

    hub = _hub_name(name)
    if not isinstance(pretrained, bool):  # 1, 0 and numpy's bool read as they are meant; text is refused
        if type(pretrained).__name__ != "bool_" and not (isinstance(pretrained, int) and pretrained in (0, 1)):
            raise _UserError(f"{hub}: pretrained is True or False, not {pretrained!r}")
        pretrained = bool(pretrained)
    if isinstance(weights, enum.Enum):  # a torchvision weights enum member
        weights = f"{type(weights).__name__}.{weights.name}"
    elif weights is not None and not isinstance(weights, (str, _os.PathLike)):
        raise _UserError(f"{hub}: weights is a torchvision weights name ('DEFAULT', 'IMAGENET1K_V1') or enum "
                         f"member, a .pth file or a run directory of ours, not {weights!r}")
    spec = _os.fspath(weights) if weights is not None else ""
    if pretrained and spec and spec != "DEFAULT":
        raise _UserError(f"{hub}: give pretrained=True or weights={spec!r}, not both")
    return spec or ("DEFAULT" if pretrained else "")


def _in_hub_words(message: str, given: str) -> str:
    """A `UserError` of the weights loader in this file's words: ``weights=…``, not ``--weights …``;
    the registered models by their entry points' names (``alexnet_owt``) and the command line's
    hints as arguments — but never inside the path the caller gave (a run folder named
    ``alexnet-owt`` stays as typed), nor in a file name (``alexnet-owt-7be5be79.pth``)."""
    import re

    message = message.replace(f"--weights {given}", f"weights={given!r}", 1)
    message = re.sub(r"--weights ([^\s);,]+?)(:?)(?=[\s);,]|$)",
                     lambda m: f"weights={m.group(1)!r}{m.group(2)}", message)
    hints = {"are for --model ": "are for ",
             "continue training it with --resume ": "continue training it with `alexnet train --resume` ",
             "give the model (and --model-arg) they were made for":
                 "load them with the entry point (and the keyword arguments) they were made for"}
    pieces = re.split(f"({re.escape(repr(given))}|{re.escape(given)})", message)  # the caller's own text: kept
    for k, piece in enumerate(pieces):
        if k % 2:
            continue
        for cli, hub in hints.items():
            piece = piece.replace(cli, hub)
        for model in _list_models():
            if _hub_name(model) != model:
                piece = re.sub(rf"(?<![\w./-]){re.escape(model)}(?![\w.-])", _hub_name(model), piece)
        pieces[k] = piece
    return "".join(pieces)


def _run_meta(spec: str) -> dict | None:
    """The weights.json of ``spec`` when it names a run directory or weights file of ours, else None."""
    if not spec or not _os.path.exists(spec) or spec.endswith((".pth", ".pt")):
        return None
    from alexnet.models.weights import load_meta

    try:
        return load_meta(spec)
    except _UserError:
        return None  # not ours: load_pretrained says what it is


def _entry_point(name: str):
    def load(pretrained: bool = False, weights=None, progress: bool = True, num_classes: int | None = None,
             **kwargs):
        spec = _weights_spec(name, pretrained, weights)
        ours = _run_meta(spec)
        if ours is not None:  # a run of ours: its classes and model arguments, as `train --weights RUN` takes them
            num_classes = len(ours["classes"]) if num_classes is None else num_classes
            kwargs = {**ours.get("model_kwargs", {}), **kwargs}
        model = _build_model(name, num_classes=num_classes, **kwargs)
        if spec:
            from alexnet.models.pretrained import load_pretrained

            try:
                load_pretrained(model, spec, name, progress=progress)  # a new head stays as initialised
            except _UserError as e:
                raise _UserError(_in_hub_words(str(e), spec)) from None
        return model

    cfg = _model_cfg(name)
    args = ", ".join(f"{k}={v!r}" for k, v in _model_args(name).items())
    load.__name__ = load.__qualname__ = _hub_name(name)
    load.__doc__ = (
        f"``{name}`` ({cfg.year}): {cfg.notes or cfg.result}.\n\n"
        f"{cfg.result}{' — ' + cfg.reference if cfg.reference else ''}\n"
        f"Input {'×'.join(map(str, cfg.input_size))}, {cfg.num_classes} classes by default.\n\n"
        f"Args:\n"
        f"    pretrained: torchvision's DEFAULT weights (for the models that have them).\n"
        f"    weights: a torchvision weights name or enum member, a .pth state_dict, or a run directory\n"
        f"        of ours (as `alexnet train --weights`: its classes and model arguments are taken over\n"
        f"        unless given); a head of another size stays initialised.\n"
        f"    progress: show the download's progress bar.\n"
        f"    num_classes: outputs of the last layer (default {cfg.num_classes}).\n"
        f"    **kwargs: the model's arguments: {args or 'none'}.\n")
    return load


def _hub_name(model: str) -> str:
    """The entry point's name for registered model ``model``: a Python identifier."""
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in model)
    return name if name.isidentifier() else f"m_{name}"


for _name in _list_models():
    globals()[_hub_name(_name)] = _entry_point(_name)
