"""Starting weights for fine-tuning (``alexnet train --weights SPEC``) and layer freezing
(``--freeze LAYER``).

``SPEC`` is one of

- a torchvision weights name: ``AlexNet_Weights.IMAGENET1K_V1``, or just ``IMAGENET1K_V1`` /
  ``DEFAULT`` for the model being trained (``alexnet-owt`` is torchvision's AlexNet; the zoo
  models carry their torchvision names). Loaded through torchvision's own weights API
  (``weights.get_state_dict``): read from the torch hub cache (``torch.hub.get_dir()/checkpoints``)
  when the file is there, downloaded otherwise;
- a ``.pth``/``.pt`` state_dict in torchvision's layout, loaded with ``weights_only=True`` (a file
  holding pickled code is refused);
- a run directory of ours, or its ``weights.safetensors``.

Tensors whose shapes differ from the model's (the classifier when the number of classes
changes) keep the model's fresh initialisation and are listed; every other tensor must be there
with the same name and shape (strict otherwise).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..core.errors import UserError
from ..core.io import safe_torch_load

# our model name → torchvision's builder name (its weights enum is torchvision.models.get_model_weights(name))
TORCHVISION_NAMES = {"alexnet-owt": "alexnet", "vgg16": "vgg16", "googlenet": "googlenet", "resnet18": "resnet18",
                     "resnet50": "resnet50", "resnext50_32x4d": "resnext50_32x4d"}


def imagenet_start(model: str) -> str:
    """The flags that start ``model``'s training from ImageNet's weights: the model's own torchvision weights,
    or, for a model torchvision has none for, the same weights with the network they fit (alexnet-owt)."""
    return "--weights IMAGENET1K_V1" + ("" if model in TORCHVISION_NAMES else " --model alexnet-owt")


@dataclass
class PretrainedInfo:
    """Where starting weights came from and what of them was used (recorded in the run)."""

    spec: str
    kind: str  # torchvision, file, run
    source: str  # the file read (or the URL downloaded)
    loaded: int = 0  # tensors loaded
    reinitialised: list[str] = field(default_factory=list)  # layers left at their fresh initialisation
    model: str = ""  # the model the weights were made for (runs and torchvision names)
    classes: list[str] = field(default_factory=list)  # the classes they were trained on, when known (runs)

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec, "kind": self.kind, "source": self.source, "loaded": self.loaded,
                "reinitialised": list(self.reinitialised), "model": self.model, "classes": list(self.classes)}


def state_dict_from_checkpoint(obj: Any, path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint: a bare state_dict, or one under "model"/"state_dict";
    DataParallel/DDP ``module.`` prefixes removed."""
    if isinstance(obj, dict):
        for key in ("model", "state_dict", "model_state"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise UserError(f"{path}: not a state_dict (a mapping of parameter names to tensors)")
    sd = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            raise UserError(f"{path}: entry {k!r} is a {type(v).__name__}, not a tensor; not a state_dict")
        sd[k[len("module."):] if k.startswith("module.") else k] = v
    return sd


def _torchvision_weight(spec: str, model_name: str | None):
    """The torchvision weights enum member ``spec`` names (full or bare), checked against the model."""
    from torchvision.models import get_model_weights, get_weight

    tv = TORCHVISION_NAMES.get(model_name or "")
    if "." in spec:
        try:
            w = get_weight(spec)
        except (ValueError, KeyError):
            raise UserError(f"--weights {spec}: not a torchvision weights name, file or run directory") from None
        if model_name and (tv is None or not isinstance(w, get_model_weights(tv))):
            fits = [m for m, t in TORCHVISION_NAMES.items() if isinstance(w, get_model_weights(t))]
            raise UserError(f"--weights {spec} are for --model {fits[0] if fits else '?'}, not {model_name}")
        return w
    if tv is None:
        have = ", ".join(TORCHVISION_NAMES)
        raise UserError(f"--weights {spec}: model {model_name or '?'} has no torchvision weights "
                        f"(models with them: {have}; or give a .pth file or a run directory)")
    enum = get_model_weights(tv)
    try:
        return enum[spec]
    except KeyError:
        raise UserError(f"--weights {spec}: not a weights name of {model_name} "
                        f"(choose from {', '.join(dict.fromkeys(['DEFAULT', *enum.__members__]))})") from None


def model_for_weights(spec: str) -> tuple[str, dict[str, Any]] | None:
    """The model (name, kwargs) a ``--weights`` spec was made for, when it says: a run directory of
    ours or a full torchvision weights name. None for a bare name or a plain state_dict file."""
    p = Path(spec).expanduser()
    if p.exists() and (p.is_dir() or p.suffix in (".safetensors", ".json")):
        from .weights import load_meta

        meta = load_meta(p)
        return meta["model"], dict(meta.get("model_kwargs", {}))
    if not p.exists() and "." in spec and not spec.endswith((".pth", ".pt", ".safetensors")):
        from torchvision.models import get_model_weights

        w = _torchvision_weight(spec, None)
        for ours, tv in TORCHVISION_NAMES.items():
            if isinstance(w, get_model_weights(tv)):
                return ours, {}
    return None


def hub_file(url: str) -> Path:
    """Where torchvision's weights API keeps the file of ``url`` (the torch hub cache)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def read_pretrained(spec: str, model_name: str | None = None, progress: bool = True
                    ) -> tuple[dict[str, torch.Tensor], PretrainedInfo]:
    """The state_dict ``spec`` names and where it came from (see the module docstring)."""
    p = Path(spec).expanduser()
    if p.exists():
        if p.is_dir() or p.suffix in (".safetensors", ".json"):
            from safetensors import SafetensorError
            from safetensors.torch import load_file

            from .weights import load_meta, resolve_weights

            st, _ = resolve_weights(p)
            meta = load_meta(st)
            try:
                sd = load_file(str(st), device="cpu")
            except (SafetensorError, OSError, ValueError) as e:
                raise UserError(f"{st}: not a readable safetensors file ({e})") from None
            return sd, PretrainedInfo(spec, "run", str(st), model=meta["model"], classes=list(meta["classes"]))
        if p.parent.name == "checkpoints" and (p.parent.parent / "config.json").is_file():
            run = p.parent.parent
            raise UserError(f"--weights {spec}: a training checkpoint of run {run}; give the run directory "
                            f"(--weights {run}), or continue training it with --resume {run}")
        sd = state_dict_from_checkpoint(safe_torch_load(p, map_location="cpu"), p)
        return sd, PretrainedInfo(spec, "file", str(p.resolve()))
    if spec.endswith((".pth", ".pt", ".safetensors")) or os.sep in spec:
        raise UserError(f"--weights {spec}: no such file or run directory")
    w = _torchvision_weight(spec, model_name)
    name = f"{type(w).__name__}.{w.name}"
    cached = hub_file(w.url)
    try:
        sd = w.get_state_dict(progress=progress, weights_only=True)
    except Exception as e:  # URLError, HTTPError, socket errors, SSL errors: all "could not download"
        if cached.is_file():
            raise UserError(f"{cached}: cannot read torchvision's {name} "
                            f"({str(e).splitlines()[0][:160] if str(e) else type(e).__name__})") from None
        reason = getattr(e, "reason", None) or str(e).splitlines()[0][:120] or type(e).__name__
        raise UserError(f"--weights {name}: cannot download {w.url} ({reason}); offline, put "
                        f"{cached.name} in {cached.parent}/ (or give the file: --weights /path/{cached.name})"
                        ) from None
    return state_dict_from_checkpoint(sd, cached), PretrainedInfo(name, "torchvision", str(cached),
                                                                  model=model_name or "")


def _layer(key: str) -> str:
    return key.rsplit(".", 1)[0]


def load_pretrained(model: nn.Module, spec: str, model_name: str | None = None,
                    progress: bool = True, classes: list[str] | None = None) -> PretrainedInfo:
    """Load ``spec``'s weights into ``model``: same-shaped tensors exactly, the last layer left as
    initialised when its shape differs (a new number of classes) and listed in ``info.reinitialised``;
    any other tensor of another shape is a `UserError` (the weights are of another network). With
    ``classes`` (the new data's) and weights whose classes are known (a run of ours) and differ, the
    last layer is re-initialised even when the number of classes is the same: its rows stand for
    other classes."""
    sd, info = read_pretrained(spec, model_name, progress)
    own = model.state_dict()
    # batch norm's step counter, absent from files saved before PyTorch 0.4.1 (torch's own
    # load_state_dict accepts them so): the model's own count is kept
    missing = [k for k in own if k not in sd and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in sd if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:4])}{' …' if len(missing) > 4 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:4])}{' …' if len(unexpected) > 4 else ''}")
        raise UserError(f"--weights {spec}: does not fit model {model_name or type(model).__name__} "
                        f"({'; '.join(parts)}){' — weights made for ' + info.model if info.model else ''}")
    differ = {k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)}
    head_ids = head_parameters(model)
    head = {k for k, p in model.named_parameters() if id(p) in head_ids}
    body = [k for k in own if k in differ and k not in head]  # only the classifier may change (its classes)
    if body:
        shown = "; ".join(f"{k}: weights {list(sd[k].shape)}, model {list(own[k].shape)}" for k in body[:3])
        raise UserError(f"--weights {spec}: does not fit model {model_name or type(model).__name__}: "
                        f"{len(body)} tensors before its last layer differ in shape ({shown}"
                        f"{'; …' if len(body) > 3 else ''}){' — weights made for ' + info.model if info.model else ''}"
                        f"; give the model (and --model-arg) they were made for")
    if classes is not None and info.classes and list(classes) != info.classes:
        differ |= head
    keep = {k: sd[k].to(own[k].dtype) for k in own if k not in differ and k in sd}
    model.load_state_dict({**own, **keep}, strict=True)
    info.loaded = len(keep)
    info.reinitialised = list(dict.fromkeys(_layer(k) for k in own if k in differ))  # model order
    return info


# ------------------------------------------------------------------------------ freezing

def _leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules without children, in forward order: registration order, which is forward order
    for every model here but the two-tower AlexNet, which gives its own (``leaf_order``)."""
    leaves = [(n, m) for n, m in model.named_modules() if n and not list(m.children())]
    order = getattr(model, "leaf_order", None)
    if callable(order):
        rank = {n: i for i, n in enumerate(order())}
        leaves.sort(key=lambda nm: rank.get(nm[0], len(rank)))
    return leaves


def find_layer(model: nn.Module, layer: str) -> str:
    """The qualified module name ``layer`` means in ``model``: an exact name (``features``,
    ``features.8``, ``layer3``), a last component that only one module has (``fc7``, ``conv3``), or,
    on networks laid out as AlexNet (five convolutions, three linear layers) without those names,
    the paper's (``conv<k>`` = the k-th convolution, ``fc<5+k>`` = the k-th linear layer). A last
    component that many modules have (ResNet's ``bn1``) is refused with them listed, as are the
    paper's names on other networks, where "the third convolution" names nothing a person means."""
    names = dict(model.named_modules())
    if layer in names and layer:
        return layer
    ends = [n for n in names if n.split(".")[-1] == layer]
    if len(ends) == 1:
        return ends[0]
    leaves = _leaf_modules(model)
    if len(ends) > 1:
        with_params = [n for n, mod in leaves if any(True for _ in mod.parameters(recurse=False))]
        at = sorted(with_params.index(n) for n in ends if n in with_params)
        if len(at) == len(ends) and at[-1] - at[0] == len(at) - 1:
            return with_params[at[-1]]  # one layer run side by side (the two towers' conv3): the last
        shown = ", ".join(ends[:4]) + (f", … ({len(ends)} in all)" if len(ends) > 4 else "")
        raise UserError(f"--freeze {layer}: more than one layer is named so ({shown}); give the whole "
                        f"name of the last one to freeze, e.g. --freeze {ends[-1]}")
    convs = [n for n, mod in leaves if isinstance(mod, nn.Conv2d)]
    linears = [n for n, mod in leaves if isinstance(mod, nn.Linear)]
    alexnet_like = len(convs) == 5 and len(linears) == 3
    tops = ", ".join(n for n in names if n and "." not in n)
    m = re.fullmatch(r"(conv|fc)(\d+)", layer)
    if m and alexnet_like:
        k = int(m.group(2)) - (1 if m.group(1) == "conv" else 6)
        of_kind = convs if m.group(1) == "conv" else linears
        if 0 <= k < len(of_kind):
            return of_kind[k]
    elif m and not any(re.fullmatch(r"(conv|fc)\d+", n.split(".")[-1]) for n in names if n):  # cifar4 names its own
        raise UserError(f"--freeze {layer}: the paper's layer names (conv1…conv5, fc6, fc7) are AlexNet's, "
                        f"and this network is not laid out as AlexNet ({len(convs)} convolutions, "
                        f"{len(linears)} linear layer{'s' if len(linears) != 1 else ''}); give a module name ({tops}, or one from "
                        f"`alexnet summary MODEL`)")
    paper = "conv1…conv5, fc6, fc7, " if alexnet_like else ""
    raise UserError(f"--freeze {layer}: no such layer (try {tops}, {paper}or a module name from "
                    f"`alexnet summary MODEL`)")


@dataclass
class Frozen:
    """What `freeze` froze: parameter names and the leaf modules kept in eval mode."""

    layer: str
    params: list[str]
    modules: list[nn.Module]

    def set_eval(self) -> None:
        """Keep the frozen part in eval mode (batch-norm statistics fixed, no dropout) after ``.train()``."""
        for m in self.modules:
            m.eval()


def freeze(model: nn.Module, layer: str) -> Frozen:
    """Freeze ``layer`` and everything before it (in forward order, `_leaf_modules`), with the batch
    norm that normalises its output when one follows it next (a convolution's block: ``conv3`` with
    ``bn3``), so that the frozen part's output stays as loaded: ``requires_grad=False``; batch norm
    and dropout there run in eval mode."""
    target = find_layer(model, layer)
    leaves = _leaf_modules(model)
    inside = [i for i, (n, _) in enumerate(leaves) if n == target or n.startswith(target + ".")]
    if max(inside) - min(inside) + 1 != len(inside):  # the two-tower network's tower1: run layer by layer with tower2
        raise UserError(f"--freeze {layer}: its layers run interleaved with others' (layer by layer, tower by tower), "
                        f"so 'it and everything before it' is not a part of the network; freeze up to one layer "
                        f"(conv3: both towers' conv1–conv3)")
    last = max(inside)
    params_after = [i for i in range(last + 1, len(leaves)) if any(True for _ in leaves[i][1].parameters(recurse=False))
                    or isinstance(leaves[i][1], nn.modules.batchnorm._BatchNorm)]
    if params_after and isinstance(leaves[params_after[0]][1], nn.modules.batchnorm._BatchNorm):
        last = params_after[0]  # its own batch norm (only parameter-free layers, e.g. ReLU, between)
    frozen_mods = [m for _, m in leaves[:last + 1]]
    names = []
    for n, mod in leaves[:last + 1]:
        for pn, p in mod.named_parameters(recurse=False):
            p.requires_grad_(False)
            names.append(f"{n}.{pn}")
    if not names:
        raise UserError(f"--freeze {layer}: nothing to freeze up to there")
    if all(not p.requires_grad for p in model.parameters()):
        raise UserError(f"--freeze {layer}: that freezes every layer; nothing would train")
    return Frozen(target, names, frozen_mods)


def head_parameters(model: nn.Module) -> set[int]:
    """ids of the parameters of the last linear layer (the classifier head)."""
    linears = [m for _, m in _leaf_modules(model) if isinstance(m, nn.Linear)]
    return {id(p) for p in linears[-1].parameters()} if linears else set()
