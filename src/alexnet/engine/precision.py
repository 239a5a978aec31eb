"""The precision a run trains in: decided once, recorded, reused (docs/architecture.md).

``--amp auto`` on a CPU with native bf16 times the model's own training step in bf16 and fp32
(`alexnet.core.device.model_bf16_speedup`: interleaved medians) and takes bf16 only when it
measured at least `BF16_MARGIN` times faster. A timing is still a measurement (another process's
load moves it), so it is made once and then treated as a fact of the run:

- a run decides on rank 0 only; the other ranks of a distributed run take rank 0's answer;
- the answer goes into ``config.json`` (``precision``: fp32, bf16 or fp16, and
  ``precision_reason``), and a resumed run reuses it without measuring again;
- an experiment decides once for all its arms (`decide_precision` on its first arm) and gives
  every arm that answer (`pinned_fields`), so its arms differ only in what they test.

An explicit ``--amp off|bf16|fp16`` needs no measurement and always means what it says.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from ..core.device import BF16_MARGIN, Precision, model_bf16_speedup, precision_named, resolve_device, resolve_precision
from ..core.errors import UserError
from .config import TrainConfig
from .distributed import World, broadcast_object

__all__ = ["BF16_MARGIN", "decide_precision", "run_precision", "pinned_fields", "experiment_precision"]


def decide_precision(amp: str, device: torch.device, model: nn.Module | None = None,
                     input_size: tuple[int, int, int] = (3, 32, 32), batch_size: int = 64,
                     channels_last: bool = False) -> Precision:
    """Map ``--amp`` to a `Precision` for ``device``, timing ``model``'s own training step on a CPU
    with native bf16 (without a model, a matmul decides)."""
    probe = None
    if model is not None and device.type == "cpu":
        probe = lambda: model_bf16_speedup(model, input_size, batch_size, channels_last)  # noqa: E731
    return resolve_precision(amp, device, step_speedup=probe)


def check_fits(p: Precision, device: torch.device) -> None:
    """A recorded precision the device cannot run (fp16 on a CPU, bf16 on a GPU without it) is one line."""
    if p.name == "fp16" and device.type != "cuda":
        raise UserError(f"this run trains in fp16 (recorded in its config.json), which needs a GPU; "
                        f"{device.type} cannot run it")
    if p.name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError("this run trains in bf16 (recorded in its config.json), which this GPU does not support")


def run_precision(cfg: TrainConfig, world: World, device: torch.device, model: nn.Module,
                  input_size: tuple[int, int, int], batch_size: int, channels_last: bool) -> Precision:
    """The precision of the run ``cfg``: the recorded one (``cfg.precision``: a resumed run, an
    experiment's arm) under ``--amp auto``, else decided now on rank 0 and taken by every rank.
    Fills in ``cfg.precision`` and ``cfg.precision_reason`` for config.json."""
    if cfg.precision and cfg.amp == "auto":
        reason = cfg.precision_reason or cfg.precision
        if cfg.resume:
            reason += ", as decided at the run's start"
        p = precision_named(cfg.precision, reason)
        check_fits(p, device)
        return p
    decided = None
    if world.is_main:
        p = decide_precision(cfg.amp, device, model, input_size, batch_size, channels_last)
        decided = (p.name, p.reason)
    name, reason = broadcast_object(decided)
    cfg.precision, cfg.precision_reason = name, reason
    return precision_named(name, reason)


def pinned_fields(p: Precision, why: str) -> dict[str, Any]:
    """The config fields that make a run train in ``p`` without deciding again (``why``: who pinned it)."""
    return {"precision": p.name, "precision_reason": f"{p.reason} ({why})"}


def experiment_precision(cfg: TrainConfig) -> Precision:
    """The precision for every arm of an experiment, decided once from its first arm ``cfg``: its
    ``--amp``, timed on its model (at the model's default number of classes) on a CPU."""
    from ..models import build_model, model_cfg

    device = resolve_device(cfg.device)

    def probe() -> float:  # the model is built only where a measurement is needed
        model = build_model(cfg.model, **cfg.model_kwargs)
        return model_bf16_speedup(model, model_cfg(cfg.model).input_size, cfg.batch_size)

    return resolve_precision(cfg.amp, device, step_speedup=probe if device.type == "cpu" else None)
