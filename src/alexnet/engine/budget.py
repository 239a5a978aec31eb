"""``--time-budget``: the arithmetic that lays out a run's length so the whole command ends in time.

A recipe fixed in epochs promises a time only on the machine it was tuned on. With a budget
(``90s``, ``15m``, ``2h``, ``1h30m``) the run plans its own length from what it measured on the
machine at hand (engine/budget_run.py measures and applies; this module is plain Python, no torch):

- **costs** (`Costs`): the seconds already spent when the plan is made (start-up, decoding the
  data, building the model, the probes), one training step, what an epoch costs besides its steps
  (validation, checkpoints), and what comes after the last epoch (the final ten-crop or flip
  averaging);
- **the plan** (`make_plan`): the most optimiser steps whose epochs, with their validation, and the
  final evaluation end by `target` — the budget less `RESERVE` of it and `CLOSE_S` for the
  process's exit. Whole epochs, and the last one cut short when part of one still fits (the
  schedule, the lookahead and the loop all end at the planned step). Less than one epoch is a
  one-line error that says the smallest budget that would do;
- **one re-plan** (`replan`, when `replan_due`): the first plan comes from a probe of the model's
  own step on random data; real epochs then measure the real thing (data loading, optimiser,
  validation, checkpoints), the first left out when there are others (it also pays one-off costs):
  the epochs that end in the first `REPLAN_AFTER` of the budget and at least `REPLAN_EPOCHS` after
  the first (one epoch's pace can differ from the rest's by 4 %: on a slow CPU a re-plan on one
  epoch moved a 20-minute run's end by −5 %), unless `REPLAN_LATEST` of the budget has gone by
  then, which a few long epochs make (then the epochs so far, at least one). When the end projected
  from them is more than
  `DRIFT` of the budget before the target, or more than `LATE` after it (a run that is late by
  more than half the reserve would end too close to the budget, or past it), the rest of the run
  is laid out again, once. The
  steps already taken keep their rates: a schedule defined over the total number of steps
  (one-cycle, linear, cosine: its warm-up and its decay) keeps its shape, and the part after the
  re-plan is stretched or squeezed onto the steps now planned (`LRSchedule.stretch_at` /
  ``stretch_from``), so the rate is continuous.

The plan is recorded in ``config.json`` (``budget_plan``: `BudgetPlan`, and ``epochs``), like the
precision ``--amp auto`` measures: a resumed run (or a rerun of the same config) keeps it and
measures nothing. The budget is the wall time of one uninterrupted command; a resumed run finishes
the plan whatever time is left.
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ..core.errors import UserError

RESERVE = 0.02  # the plan aims 2 % short of the budget: the measurements are medians, the machine may slow
CLOSE_S = 1.0  # the exit after the last line: 0.3 s measured on 2 CPU cores (cli.entry), the rest for slower machines
DRIFT = 0.03  # re-plan when the epochs measured move the projected end earlier by more than 3 % of the budget …
LATE = 0.01  # … or later by more than 1 %: half of RESERVE, so that a late run still ends inside the budget
REPLAN_AFTER = 0.1  # measured over the epochs that end in the first 10 % of the budget …
REPLAN_EPOCHS = 2  # … and at least two epochs after the first …
REPLAN_LATEST = 0.3  # … unless 30 % of the budget went to training by then: the rest still absorbs the change
UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}
MAX_BUDGET_S = 30 * 86400.0  # a month: a longer budget for one uninterrupted command is a slip of the keys


def parse_duration(text: str) -> float:
    """``90s``, ``15m``, ``2h``, ``1h30m``, ``1.5h`` → seconds; anything else (``5h99m``, zero, more than a month)
    is a one-line `UserError`."""
    t = str(text).strip().lower().replace(" ", "")
    m = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", t)
    if not t or not m:
        hint = f" (seconds? write {t}s)" if re.fullmatch(r"\d+(\.\d+)?", t) else ""
        raise UserError(f"--time-budget takes a duration such as 90s, 15m, 2h or 1h30m, not {text!r}{hint}")
    parts = [(float(v), u) for v, u in zip(m.groups(), "hms") if v]
    seconds = sum(v * UNITS[u] for v, u in parts)
    if seconds <= 0:
        raise UserError(f"--time-budget must be longer than zero, not {text!r}")
    if any(v >= 60 for v, _ in parts[1:]):  # 5h99m: a slip, or 6h39m meant? Either way not what it looks like
        raise UserError(f"--time-budget {text!r}: minutes and seconds after a larger unit must be under 60 "
                        f"(write {format_duration(seconds)} for that long)")
    if seconds > MAX_BUDGET_S:
        raise UserError(f"--time-budget {text!r} is {seconds / 86400:,.1f} days: the longest it plans is "
                        f"{format_duration(MAX_BUDGET_S)} ({MAX_BUDGET_S / 86400:.0f} days); a typo?")
    return seconds


def format_duration(seconds: float) -> str:
    """Whole seconds, rounded up, the way ``--time-budget`` takes them: 95 → ``1m35s``, 5400 → ``1h30m``."""
    s = int(math.ceil(seconds - 1e-9))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (s, "s")) if v) or "0s"


def seconds_text(s: float) -> str:
    """A measured time for a plan's line: ``0.0123 s``, ``4.2 s``, ``41 s``."""
    return f"{s:.3g} s" if s < 10 else f"{s:.0f} s"


def process_started() -> float:
    """`time.perf_counter` at the start of the command (Linux: ``/proc/PID/stat``): this process, or
    under torchrun the torchrun process that started it (its parent, when it started at most
    `LAUNCHER_LEAD_S` before this one: torchrun's own start and rendezvous, not a notebook's kernel or
    the init process an orphan is left to), so that a command's budget also counts the interpreter's
    start, torch's import and torchrun's own start; now where that cannot be read."""
    now = time.perf_counter()
    try:
        tick = os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        start = _start_ticks("self") / tick
        if os.environ.get("TORCHELASTIC_RUN_ID") and os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0":
            parent = _start_ticks(str(os.getppid())) / tick
            if 0 <= start - parent <= LAUNCHER_LEAD_S:
                start = parent
        age = uptime - start
    except (OSError, ValueError, IndexError, AttributeError):
        return now
    return now - age if 0 <= age < 600 else now  # a command asks within seconds of starting


LAUNCHER_LEAD_S = 120.0  # the most torchrun's start and rendezvous may precede its ranks' and be counted


def _start_ticks(pid: str) -> int:
    """A process's start, in clock ticks since boot (field 22 of ``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


@dataclass(frozen=True)
class Costs:
    """Seconds: already spent (``setup``), per training step, per epoch besides its steps
    (validation, checkpoints), and after the last epoch (final evaluation)."""

    setup: float
    step: float
    epoch: float
    final: float


@dataclass
class BudgetPlan:
    """A run's length under ``--time-budget``, as recorded in ``config.json`` (``budget_plan``)."""

    budget: str  # the --time-budget it was made for
    seconds: float  # that budget in seconds
    steps_per_epoch: int
    steps: int  # optimiser steps in all; the last epoch is cut short when steps_per_epoch does not divide them
    epochs: int  # ceil(steps / steps_per_epoch)
    step_s: float  # the costs the plan (or its re-plan) is built on: seconds per step,
    epoch_s: float  # per epoch besides its steps,
    final_s: float  # after the last epoch,
    setup_s: float  # and before the first
    reason: str  # the line the run prints at its start
    stretch_at: int = 0  # re-planned after this step (0: never); the schedule after it is stretched
    stretch_from: int = 0  # from the steps first planned onto `steps`
    replan: str = ""  # the line the re-plan printed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BudgetPlan":
        names = {f.name for f in fields(cls)}
        if not isinstance(d, dict):
            raise UserError(f"config.json: budget_plan must be an object (a plan), not {d!r}")
        try:
            return cls(**{k: v for k, v in d.items() if k in names})
        except TypeError as e:
            raise UserError(f"config.json: budget_plan is not a plan this version reads ({e})") from None


def target(seconds: float) -> float:
    """Where a plan aims the end of the command: the budget less `RESERVE` and `CLOSE_S`."""
    return seconds * (1 - RESERVE) - CLOSE_S


def steps_within(avail: float, costs: Costs, steps_per_epoch: int) -> int:
    """The most optimiser steps, from an epoch boundary, whose epochs (each with its ``costs.epoch``)
    take at most ``avail`` seconds: whole epochs, then the part of one more that still fits."""
    per_epoch = steps_per_epoch * costs.step + costs.epoch
    if avail <= 0 or per_epoch <= 0:
        return 0 if avail <= 0 else 10 ** 9
    full = int(avail / per_epoch + 1e-9)  # (+ 1e-9: a step that fits exactly is not lost to rounding)
    rest = avail - full * per_epoch - costs.epoch
    part = min(steps_per_epoch - 1, int(rest / costs.step + 1e-9)) if rest > 0 and costs.step > 0 else 0
    return full * steps_per_epoch + max(0, part)


def describe(steps: int, steps_per_epoch: int) -> str:
    """``21 epochs (1,848 steps)`` or ``21 epochs, the last cut to 37 of 88 steps (1,797 steps)``."""
    epochs, part = -(-steps // steps_per_epoch), steps % steps_per_epoch
    cut = f", the last cut to {part} of {steps_per_epoch} steps" if part else ""
    return f"{epochs} epoch{'s' if epochs != 1 else ''}{cut} ({steps:,} steps)"


def make_plan(budget: str, costs: Costs, steps_per_epoch: int, precision: str = "") -> BudgetPlan:
    """The plan for ``budget`` from ``costs`` (``costs.setup``: spent so far). A budget that holds
    less than one epoch is a `UserError` naming the smallest that would do."""
    seconds = parse_duration(budget)
    steps = steps_within(target(seconds) - costs.setup - costs.final, costs, steps_per_epoch)
    epoch = steps_per_epoch * costs.step + costs.epoch
    if steps < steps_per_epoch:
        least = (costs.setup + epoch + costs.final + CLOSE_S) / (1 - RESERVE)
        raise UserError(f"--time-budget {budget} is too short for one epoch here: setup took "
                        f"{seconds_text(costs.setup)}, an epoch takes about {seconds_text(epoch)} ({steps_per_epoch} "
                        f"steps of {seconds_text(costs.step)}), the final evaluation {seconds_text(costs.final)}: "
                        f"give at least --time-budget {format_duration(least)}")
    how = f" ({precision})" if precision else ""
    final = f", final evaluation {seconds_text(costs.final)}" if costs.final else ""
    reason = (f"time budget {budget}: {seconds_text(costs.step)}/step measured{how}, {steps_per_epoch} steps/epoch, "
              f"validation and checkpoints ~{seconds_text(costs.epoch)}/epoch{final}, "
              f"{seconds_text(costs.setup)} spent before training → {describe(steps, steps_per_epoch)}")
    return BudgetPlan(budget, seconds, steps_per_epoch, steps, -(-steps // steps_per_epoch), costs.step,
                      costs.epoch, costs.final, costs.setup, reason)


def replan_due(train_s: float, epochs: int, budget_s: float) -> bool:
    """Whether the re-plan measures now, at the end of whole epoch ``epochs`` (counted from the run's
    first), ``train_s`` seconds after its training began: after `REPLAN_AFTER` of the budget once
    `REPLAN_EPOCHS` epochs after the first are measured, or at the first end of an epoch after
    `REPLAN_LATEST` of it, however few."""
    if epochs < 1 or train_s < REPLAN_AFTER * budget_s:
        return False
    return epochs - 1 >= REPLAN_EPOCHS or train_s >= REPLAN_LATEST * budget_s


def replan(plan: BudgetPlan, done_steps: int, elapsed: float, costs: Costs, over: str = "") -> BudgetPlan | None:
    """The plan laid out again after ``done_steps`` (at an epoch boundary; ``elapsed`` seconds since
    the command started) from ``costs`` measured on real epochs (``over``: which, for the line it
    prints, e.g. ``epochs 2-3``), or None when the end it projects is
    no more than `DRIFT` before the target and `LATE` after it, when the run was re-planned already, or
    nothing is left to plan."""
    spe = plan.steps_per_epoch
    if plan.stretch_from or done_steps >= plan.steps:
        return None
    aim = target(plan.seconds)
    left_epochs = plan.epochs - done_steps // spe
    projected = elapsed + (plan.steps - done_steps) * costs.step + left_epochs * costs.epoch + costs.final
    if -DRIFT * plan.seconds <= projected - aim <= LATE * plan.seconds:
        return None
    steps = done_steps + steps_within(aim - elapsed - costs.final, costs, spe)
    if steps == plan.steps:
        return None
    after = f"epoch {done_steps // spe}" if done_steps % spe == 0 else f"step {done_steps}"
    now = (f"the rest of the schedule stretched onto {describe(steps, spe)}" if steps > done_steps
           else f"no time left for more training: the run stops after {after}")
    over = f" over {over}" if over else ""
    note = (f"time budget re-planned after {after}: measured{over} {seconds_text(costs.step)}/step and "
            f"{seconds_text(costs.epoch)}/epoch of validation and checkpoints (planned {seconds_text(plan.step_s)} "
            f"and {seconds_text(plan.epoch_s)}), so the plan would end at {seconds_text(projected)} of "
            f"{plan.budget}; {now}")
    return replace(plan, steps=max(steps, done_steps), epochs=-(-max(steps, done_steps) // spe), step_s=costs.step,
                   epoch_s=costs.epoch, final_s=costs.final, stretch_at=done_steps, stretch_from=plan.steps,
                   replan=note)


def check_resume_flags(saved: dict[str, Any], given: dict[str, Any]) -> None:
    """``--resume``: a run planned for a time budget keeps its plan, so ``--epochs`` or another
    ``--time-budget`` is a `UserError`; a budget cannot be added to a run that started without one."""
    budget = given.get("time_budget")
    if saved.get("budget_plan"):
        if "epochs" in given or (budget is not None and budget != saved.get("time_budget")):
            raise UserError(f"--resume: this run's length was planned for --time-budget {saved.get('time_budget')} "
                            f"and a resumed run keeps that plan: leave out --epochs and --time-budget (a new run "
                            f"plans afresh)")
    elif budget and budget != saved.get("time_budget"):
        raise UserError("--time-budget plans a run from its start: it cannot be added to a resumed run "
                        "(start a new run with it)")
