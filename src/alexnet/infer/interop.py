"""Import weights from elsewhere: torchvision's AlexNet checkpoint → our ``alexnet-owt`` weights.

Users who have ``alexnet-owt-7be5be79.pth`` (torchvision's ImageNet weights, 56.5% top-1) get a
working 1,000-class ImageNet classifier offline:

    alexnet import torchvision alexnet-owt-7be5be79.pth -o runs/imagenet-owt
    alexnet predict runs/imagenet-owt photo.jpg

The file is loaded with ``weights_only=True``: a file that holds pickled code (classes, functions,
``argparse.Namespace``) is refused instead of executed.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import torch

from ..core.errors import UserError
from ..core.io import safe_torch_load

MODEL = "alexnet-owt"


def imagenet_classes() -> list[str]:
    """The 1,000 ILSVRC-2012 class names in the standard index order (torchvision's names)."""
    try:
        text = resources.files(__package__).joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
        names = [line.strip() for line in text.splitlines() if line.strip()]
    except (OSError, FileNotFoundError):  # the data file was not installed: torchvision has them too
        from torchvision.models._meta import _IMAGENET_CATEGORIES

        names = list(_IMAGENET_CATEGORIES)
    assert len(names) == 1000, len(names)
    return names


def _state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    from ..models.pretrained import state_dict_from_checkpoint

    return state_dict_from_checkpoint(obj, path)


def import_torchvision(path: str | Path, out: str | Path, classes: Sequence[str] | None = None) -> Path:
    """Convert a torchvision AlexNet state_dict file into ``<out>/weights.safetensors`` + ``.json``.

    ``classes`` default to the 1,000 ImageNet names when the checkpoint has 1,000 outputs, else
    ``class_0``, ``class_1``, …. Returns the written ``.safetensors`` path.
    """
    from ..models import build_model, make_meta, save_weights

    path = Path(path)
    sd = _state_dict(safe_torch_load(path, map_location="cpu"), path)
    fc8 = sd.get("classifier.6.weight")
    if fc8 is None or "features.0.weight" not in sd:
        raise UserError(f"{path}: not a torchvision AlexNet checkpoint (no features.0.weight / "
                        f"classifier.6.weight; torchvision.models.alexnet's layout is expected)")
    n = int(fc8.shape[0])
    if classes is None:
        classes = imagenet_classes() if n == 1000 else [f"class_{i}" for i in range(n)]
    classes = list(classes)
    if len(classes) != n:
        raise UserError(f"{len(classes)} class names given, but the checkpoint has {n} outputs")
    twice = sorted({c for c in classes if classes.count(c) > 1})
    if twice:  # classes are matched by name (evaluate, fine-tuning): two outputs of one name are ambiguous
        raise UserError(f"class names must differ; given more than once: {', '.join(twice[:5])}"
                        f"{'…' if len(twice) > 5 else ''}")
    model = build_model(MODEL, num_classes=n)
    try:
        model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    except RuntimeError as e:
        raise UserError(f"{path}: does not fit torchvision's AlexNet: {str(e).splitlines()[0][:300]}") from None
    meta = make_meta(MODEL, classes, source=f"torchvision checkpoint {path.name}")
    return save_weights(model.eval(), Path(out), meta)
