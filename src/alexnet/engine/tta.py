"""airbench's test-time augmentation (``--tta LEVEL``): the final evaluation on several views of
each validation image, their *logits* averaged with airbench's weights (Jordan 2024, airbench94's
``infer``; `ten-crop`'s flip averaging averages softmaxes with equal weights instead).

- level 1: the image and its mirror, ½ each;
- level 2 (airbench94's): the image and its mirror (¼ each), and the image shifted by one pixel
  up-left and down-right — reflected borders, as airbench pads by one and crops — each with its
  mirror (⅛ each): six views.

`AirbenchTTA` wraps a model so that `engine.evaluate.evaluate` scores it unchanged: its forward
makes the views of the (normalised) batch, runs them through the model as one batch (batch norm is
in evaluation mode, so each image's logits do not depend on the others) and returns the weighted
sum of their logits. `final_tta` runs it at the end of a run.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .evaluate import EvalResult, evaluate

TTA_VIEWS = {0: 0, 1: 2, 2: 6}  # forward passes per image at each level (engine/budget_run.py plans with them)


def airbench_views(x: torch.Tensor, level: int) -> list[tuple[float, torch.Tensor]]:
    """The (weight, views) pairs of airbench's TTA ``level`` for a batch ``x`` ``[B, C, H, W]``;
    the weights add up to 1."""
    if level == 0:
        return [(1.0, x)]
    if level == 1:
        return [(0.5, x), (0.5, x.flip(-1))]
    if level != 2:
        raise ValueError(f"TTA level {level} (0, 1 or 2)")
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    up_left, down_right = padded[..., 0:h, 0:w], padded[..., 2:h + 2, 2:w + 2]
    return [(0.25, x), (0.25, x.flip(-1)), (0.125, up_left), (0.125, up_left.flip(-1)),
            (0.125, down_right), (0.125, down_right.flip(-1))]


class AirbenchTTA(nn.Module):
    """``model`` evaluated on airbench's views of its input, their logits averaged (see the module
    docstring). Its state is ``model``'s; train/eval mode passes through."""

    def __init__(self, model: nn.Module, level: int):
        super().__init__()
        self.model, self.level = model, int(level)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        views = airbench_views(x, self.level)
        batch = torch.cat([v for _, v in views])
        if x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last):
            batch = batch.contiguous(memory_format=torch.channels_last)
        logits = self.model(batch).float().split(len(x))
        return sum(w * part for (w, _), part in zip(views, logits))


def final_tta(trainer: Any) -> EvalResult | None:
    """``--tta``: the trained model (``trainer``: engine/train.py's `Trainer`) on its validation
    split with airbench's TTA; None when ``--tta`` is 0 or there is no validation split."""
    level = trainer.cfg.tta
    if not level or trainer.val_loader is None:
        return None
    return evaluate(AirbenchTTA(trainer.model, level), trainer.val_loader, trainer.normalize, trainer.precision,
                    trainer.device, trainer.channels_last, progress=trainer.world.is_main)
