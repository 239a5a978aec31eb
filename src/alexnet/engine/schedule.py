"""Learning-rate schedules as pure functions of (step, epoch, plateau state).

Written here rather than with ``torch.optim.lr_scheduler`` so the whole schedule state is three
numbers in a checkpoint (exact resume, ``weights_only`` loading) and warm-up composes with every
schedule the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class LRSchedule:
    kind: str  # plateau, step, cosine, onecycle, linear, constant
    base_lr: float
    total_steps: int
    steps_per_epoch: int
    warmup_steps: int = 0
    step_size: int = 30  # epochs, for "step"
    gamma: float = 0.1
    patience: int = 3
    max_drops: int = 3
    state: dict = field(default_factory=lambda: {"drops": 0, "best": math.inf, "bad_epochs": 0})
    # a run re-planned after step `stretch_at` (--time-budget, engine/budget.py): a schedule over the total
    # (onecycle, linear, cosine) keeps the shape it had over `stretch_from` steps, the rest stretched onto total_steps
    stretch_at: int = 0
    stretch_from: int = 0

    def lr(self, step: int) -> float:
        """The learning rate for optimiser step ``step`` (0-based, counted over the whole run)."""
        epoch = step // max(1, self.steps_per_epoch)
        total, at = self.total_steps, self.stretch_at
        if self.stretch_from and self.kind in ("onecycle", "linear", "cosine"):
            total = self.stretch_from  # the shape of the first plan: the same rates up to `at`, then stretched
            step = step if step <= at else at + (step - at) * (total - at) / max(1, self.total_steps - at)
        if self.kind == "onecycle":
            # One-cycle (Smith 2018): linear warm-up from lr/25 over the first 25 % (or the given
            # warm-up), then cosine annealing to lr/1e4.
            up = self.warmup_steps or max(1, int(0.25 * total))
            if step < up:
                return self.base_lr * (1 / 25 + (1 - 1 / 25) * step / up)
            t = min(1.0, (step - up) / max(1, total - up))
            lo = self.base_lr / 1e4
            return lo + (self.base_lr - lo) * 0.5 * (1 + math.cos(math.pi * t))
        if self.kind == "linear":
            # airbench's (Jordan 2024): linear from lr/5 up to lr over the first 23 % (or the given
            # warm-up), then linear down to 0.07·lr at the last step.
            up = self.warmup_steps or max(1, int(0.23 * total))
            if step < up:
                return self.base_lr * (0.2 + 0.8 * step / up)
            t = min(1.0, (step - up) / max(1, total - up))
            return self.base_lr * (1.0 - 0.93 * t)
        warm = 1.0
        if self.warmup_steps and step < self.warmup_steps:
            warm = (step + 1) / self.warmup_steps
        if self.kind == "constant":
            return self.base_lr * warm
        if self.kind == "step":
            return self.base_lr * warm * self.gamma ** (epoch // max(1, self.step_size))
        if self.kind == "plateau":
            return self.base_lr * warm * self.gamma ** self.state["drops"]
        if self.kind == "cosine":
            t = min(1.0, max(0, step - self.warmup_steps) / max(1, total - self.warmup_steps))
            return self.base_lr * warm * 0.5 * (1 + math.cos(math.pi * t))
        raise ValueError(self.kind)

    def epoch_end(self, val_error: float) -> bool:
        """Tell the schedule an epoch's validation error; True when a plateau drop happened."""
        if self.kind != "plateau":
            return False
        s = self.state
        if val_error < s["best"] - 1e-9:
            s["best"], s["bad_epochs"] = val_error, 0
            return False
        s["bad_epochs"] += 1
        if s["bad_epochs"] >= self.patience and s["drops"] < self.max_drops:
            s["drops"] += 1
            s["bad_epochs"] = 0
            return True
        return False

    def state_dict(self) -> dict:
        return {"drops": int(self.state["drops"]), "best": float(self.state["best"]),
                "bad_epochs": int(self.state["bad_epochs"])}

    def load_state_dict(self, d: dict) -> None:
        self.state = {"drops": int(d["drops"]), "best": float(d["best"]), "bad_epochs": int(d["bad_epochs"])}
