"""An exponential moving average (EMA) of the weights, kept beside the trained ones (``--ema DECAY``).

Not in the paper (2012): Polyak averaging (Polyak & Juditsky 1992) as practitioners use it today,
in timm (``--model-ema``, ``timm.utils.ModelEmaV3``) and torchvision's classification reference
(``--model-ema``, ``ExponentialMovingAverage``). After every optimiser step the shadow copy moves
toward the weights, ``ema ← ema + (1 − decay_t)·(w − ema)``; it never trains itself. Each epoch
both are validated (metrics.csv's ``*_ema`` columns), and the run keeps whichever scores higher
as its weights (`EpochScores`).

**Warm-up: timm's ModelEmaV3** (``use_warmup=True`` with its defaults ``warmup_gamma=1``,
``warmup_power=2/3``, ``update_after_step=0``, called with the update count as timm's train script
does): the ``t``-th update (1-based) uses ``decay_t = 0`` at ``t = 1`` (the average starts as a
copy of the weights after the first step) and ``min(decay, 1 − t^(−2/3))`` after it, so the
averaging window ``1 / (1 − decay_t)`` grows like ``t^(2/3)`` (21 steps at step 100, 100 at step
1,000) until it reaches ``1 / (1 − decay)``. TensorFlow's ``ExponentialMovingAverage(num_updates=…)``
warms up the same way with ``min(decay, (1 + t)/(10 + t))``. Why timm's rather than torchvision's:
torchvision's reference copies the weights at the first update and then uses a fixed decay
(rescaled by batch, processes and ``--model-ema-steps`` for its 600-epoch ImageNet recipes),
restarting the average only during the rate's warm-up epochs; a recipe without rate warm-up
(``cifar10`` here) would keep the first steps' near-random weights in the average for about
``1 / (1 − decay)`` steps, which on a short run is most of it. timm's warm-up depends on nothing
but the step count, so one ``--ema`` value is sensible for runs of any length.

**What is averaged: everything in the state dict, as timm does by default** (``exclude_buffers=
False``): parameters and floating-point buffers — batch norm's running mean and variance — are
averaged; integer buffers (``num_batches_tracked``) are copied. The copy is in fp32 whatever
autocast computes in (bf16 autocast leaves the weights fp32 anyway), and it is updated at every
step: the update is one fused ``lerp`` over the weights (a few memory passes, small beside a
training step's forward and backward), so torchvision's ``--model-ema-steps`` (update every N
steps, to save GPU time) is not offered.

The average is taken of the unwrapped model (not the DDP wrapper, not the ``torch.compile``d
module): DDP keeps every process's weights equal, so every process keeps the same average (batch
norm's running statistics differ slightly between processes, as the raw model's do; rank 0's are
saved). Checkpoints hold the average and its update count, so a resumed run continues it exactly.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..core.errors import UserError
from .evaluate import EvalResult

EMA_COLUMNS = ("val_loss_ema", "val_top1_ema", "val_top5_ema")  # metrics.csv, after the usual columns
WARMUP_POWER = 2.0 / 3.0  # timm ModelEmaV3's default warmup_power (warmup_gamma 1)


def ema_decay(update: int, decay: float) -> float:
    """The decay used at the ``update``-th update (1-based): 0 at the first (a copy), then timm's
    warm-up ``1 − update^(−2/3)``, capped at ``decay``."""
    if update <= 1:
        return 0.0
    return min(decay, 1.0 - update ** -WARMUP_POWER)


class ModelEma:
    """A shadow copy of ``model`` (the unwrapped module) that `update` moves toward its weights."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise UserError(f"--ema must be in [0, 1) (0: off), not {decay}")
        self.decay = float(decay)
        self.module = copy.deepcopy(model).float().eval()
        self.module.requires_grad_(False)
        self.updates = 0
        self.best_from = "raw"  # which weights the run's best.pt / weights.safetensors hold: "raw" or "ema"

    @classmethod
    def maybe(cls, decay: float, model: nn.Module) -> "ModelEma | None":
        """A `ModelEma` of ``model`` when ``decay`` > 0 (``--ema``), else None."""
        return cls(model, decay) if decay > 0 else None

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """After an optimiser step: move the average toward ``model``'s state."""
        self.updates += 1
        weight = 1.0 - ema_decay(self.updates, self.decay)
        mine, theirs = [], []
        for e, m in zip(self.module.state_dict().values(), model.state_dict().values()):
            if e.is_floating_point():
                mine.append(e)
                theirs.append(m.detach().to(e.dtype))
            else:
                e.copy_(m)
        if mine:
            torch._foreach_lerp_(mine, theirs, weight)

    def state_dict(self) -> dict[str, Any]:
        """For checkpoints: the averaged state, the number of updates, the decay (tensors and
        primitives only)."""
        return {"module": self.module.state_dict(), "updates": self.updates, "decay": self.decay,
                "best_from": self.best_from}

    def load_state_dict(self, state: Any, path: Path | str) -> None:
        """Continue the average saved in a checkpoint at ``path``."""
        try:
            self.module.load_state_dict(state["module"])
            self.updates = int(state["updates"])
            self.best_from = str(state.get("best_from", "raw"))
        except (TypeError, KeyError, RuntimeError, ValueError) as e:
            raise UserError(f"--resume {path}: the EMA of the weights saved there does not fit this model "
                            f"({str(e).splitlines()[0][:160] if str(e) else type(e).__name__}); start a new run "
                            f"or resume with --ema 0") from None

    def describe(self) -> str:
        """The run's opening line about the average."""
        return (f"EMA of the weights: decay {self.decay:g} after timm's warm-up (a window of 1/(1-decay) = "
                f"{1 / (1 - self.decay):.0f} steps), validated beside them each epoch; the better is kept")

    def choose(self, scores: "EpochScores", model: nn.Module) -> tuple[nn.Module, dict[str, Any]]:
        """A new best epoch: the weights to keep (the average when it scored better, else ``model``)
        and what best.pt and weights.json record about them (``weights_from``, ``ema_decay``)."""
        self.best_from = scores.source
        return (self.module if scores.from_ema else model), {"weights_from": self.best_from, "ema_decay": self.decay}

    def restore(self, ck: dict[str, Any], path: Path | str) -> None:
        """Resume: the checkpoint ``ck`` (at ``path``) must hold an average (`TrainConfig` refuses
        switching ``--ema`` on or off for a resume; a checkpoint without one is one line)."""
        if "ema" not in ck:
            raise UserError(f"--resume {path}: this checkpoint holds no EMA of the weights (the run trained "
                            f"without --ema); resume with --ema 0, or start a new run with --ema")
        self.load_state_dict(ck["ema"], path)


@dataclass
class EpochScores:
    """One epoch's validation of the raw weights (``raw``) and of their EMA (``ema``, None without
    ``--ema``), and which of them the run keeps: the EMA only when its top-1 is strictly higher."""

    raw: EvalResult
    ema: EvalResult | None = None

    @property
    def from_ema(self) -> bool:
        e = self.ema
        return e is not None and e.n > 0 and not math.isnan(e.top1) and e.top1 > self.raw.top1

    @property
    def kept(self) -> EvalResult:
        """The scores of the weights this epoch would keep."""
        return self.ema if self.from_ema and self.ema is not None else self.raw

    @property
    def source(self) -> str:
        """``"ema"`` or ``"raw"``: which weights `kept` describes."""
        return "ema" if self.from_ema else "raw"

    def row(self) -> dict[str, float]:
        """metrics.csv's EMA columns (none without ``--ema``)."""
        if self.ema is None:
            return {}
        return dict(zip(EMA_COLUMNS, (self.ema.loss, self.ema.top1, self.ema.top5)))

    def note(self) -> str:
        """The epoch line's EMA part: ``  EMA top-1 85.10%`` (empty without ``--ema``)."""
        if self.ema is None or not self.ema.n:
            return ""
        return f"  EMA loss {self.ema.loss:.4f} top-1 {self.ema.top1:6.2f}%"


def ema_summary(ema: ModelEma | None, scores: EpochScores | None, last: EvalResult | None) -> str:
    """The closing line of a run with ``--ema``: the last epoch's raw and EMA top-1, which is
    better, and which weights ``weights.safetensors`` holds ("" without ``--ema`` or validation)."""
    if ema is None or scores is None or scores.ema is None or last is None or not last.n or not scores.ema.n:
        return ""
    diff = scores.ema.top1 - last.top1
    verdict = "the EMA is better" if diff > 0 else "the raw weights are better" if diff < 0 else "a tie"
    held = "the EMA of the weights" if ema.best_from == "ema" else "the raw weights"
    return (f"EMA (--ema {ema.decay:g}): last epoch top-1 {scores.ema.top1:.2f}% vs raw {last.top1:.2f}% "
            f"({diff:+.2f} points: {verdict}); weights.safetensors holds {held} (the best epoch's better side)")
