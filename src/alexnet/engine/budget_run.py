"""``--time-budget`` applied to a run: measure, plan (engine/budget.py), apply, re-plan once.

`RunBudget` is made by the `Trainer` once the data, the model and the precision are ready and
before the schedule is laid out:

1. **measure** (rank 0; `probe_costs`): a few training steps of the model's own step — a copy of
   the model and a fresh optimiser, random images of the run's batch and input size, the run's
   precision and memory format — and a few evaluation batches, under a forked random stream, so
   the run's weights, statistics and random numbers are untouched (as ``--amp auto``'s probe,
   core/device.py). Validation costs its images' forward passes; the final ten-crop (or flip
   averaging) as many passes as it has views. The seconds spent so far count too: the command's
   start (`process_started`), decoding the data, the probes;
2. **plan** (`make_plan`), broadcast to every rank, recorded in ``config.json`` (``budget_plan``
   and ``epochs``) and printed on one line at the start;
3. **apply** (`train_epoch`, before each epoch): the loop ends at the planned step, the schedule
   and the lookahead are laid out over the planned steps;
4. **re-plan once** (`epoch_done`, in a run planned in this command, at the first end of an epoch
   when `replan_due`: `REPLAN_AFTER` of the budget went to training and `REPLAN_EPOCHS` epochs
   after the first are measured, or `REPLAN_LATEST` of it went by): the real speed of the epochs so
   far (data loading, optimiser, validation, checkpoints included; the first epoch left out when
   there are others) projects the end; when it drifts, the rest of the run is laid out again
   (`replan`), said on one line and written to ``config.json`` and the last checkpoint. The steps
   up to the re-plan have the same rates under both plans, so a resume from any point stays exact.

A resumed run (or any run whose config already holds a plan for its budget) keeps the plan and
measures nothing.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..core.errors import EveryRankError, UserError
from ..core.io import atomic_write
from ..data.loader import SafeDataset
from ..data.transforms import ten_crop_coincides
from .budget import BudgetPlan, Costs, make_plan, replan, replan_due
from .distributed import broadcast_object
from .optim import build_optimizer
from .progress import log
from .tta import TTA_VIEWS


def timed(fn: Callable[[], None], device: torch.device, rounds: int) -> float:
    """The median seconds of ``rounds`` calls of ``fn`` after one untimed call (a GPU is synchronised)."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    sync()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def final_views(trainer: Any) -> int:
    """How many forward passes per validation image the final evaluation makes: 0 without
    ``--ten-crop``; 2 for a resident set the network sees whole (the image and its mirror); else 10
    (5 without mirrors); plus ``--tta``'s views (engine/tta.py)."""
    cfg, mirror = trainer.cfg, trainer.data.aug_plan.flip
    if trainer.val_ds is None:
        return 0
    tta = TTA_VIEWS[cfg.tta]  # --tta: airbench's views, one more pass over the validation images
    if not cfg.ten_crop:
        return tta
    if cfg.resident and mirror and ten_crop_coincides(trainer.data.model_cfg):
        return 2 + tta
    return (10 if mirror else 5) + tta


def probe_loading(trainer: Any) -> float:
    """Seconds to load one training image on the streaming CPU path (decoding and augmenting a few
    through the loader's own dataset, seeded by index as in training, so no random stream moves),
    shared by the loader's workers; 0 for the resident and GPU paths, which work on whole batches."""
    ds = getattr(trainer.train_loader, "dataset", None)
    if not isinstance(ds, SafeDataset) or not len(ds):
        return 0.0
    keys = list(range(min(len(ds), trainer.batch_size, 64)))
    return timed(lambda: ds.__getitems__(keys), torch.device("cpu"), 1) / len(keys) / max(1, trainer.cfg.workers)


def probe_costs(trainer: Any, rounds: int = 3) -> tuple[float, float]:
    """Seconds of one training step of ``trainer``'s model (loading its images, forward, loss,
    backward, optimiser step) and of the evaluation of one validation image, the model's part timed
    on a copy of it with random data."""
    t, device = trainer, trainer.device
    load_s = probe_loading(t)
    c, h, w = t.mcfg.input_size
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)
        model = copy.deepcopy(t.model).train()
        opt = build_optimizer(t.cfg, model, t.plan.lr)
        x = torch.randint(0, 256, (t.batch_size, c, h, w), dtype=torch.uint8, device=device)
        y = torch.randint(0, len(t.classes), (t.batch_size,), device=device)
        fmt = torch.channels_last if t.channels_last else torch.contiguous_format

        def step() -> None:
            with t.precision.autocast(device):
                loss = F.cross_entropy(model(t.normalize(x).contiguous(memory_format=fmt)).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        step_s = timed(step, device, rounds)
        eval_s = 0.0
        if t.val_loader is not None:
            b = int(getattr(t.val_loader, "batch_size", None) or t.batch_size)
            xv = torch.randint(0, 256, (b, c, h, w), dtype=torch.uint8, device=device)
            model.eval()

            def forward() -> None:
                with torch.no_grad(), t.precision.autocast(device):
                    model(t.normalize(xv).contiguous(memory_format=fmt))

            eval_s = timed(forward, device, max(1, rounds - 1)) / b
        del model, opt
    return step_s + load_s * t.batch_size, eval_s + (load_s if t.val_loader is not None else 0.0)


class RunBudget:
    """The time budget of one run (`Trainer`): without ``--time-budget`` it only says how many steps
    the run has (``cfg.epochs`` × steps per epoch) and runs each epoch as it is."""

    def __init__(self, trainer: Any, started: float | None = None):
        cfg = trainer.cfg
        self.trainer, self.cfg, self.world = trainer, cfg, trainer.world
        self.spe = trainer.steps_per_epoch
        self.started = trainer.t_start if started is None else started
        self.plan: BudgetPlan | None = None
        self.note = ""
        self.may_replan = False
        self.t_epoch = self.t_trained = self.t_train0 = 0.0
        self.first_step = self.epoch_step0 = -1
        self.epochs: list[tuple[int, float, float]] = []  # whole epochs so far: steps, training s, validation s
        # --train-epochs X (a fraction, airbench94's 9.9): ⌈X × steps per epoch⌉ steps, the last epoch cut short
        self.end = math.ceil(cfg.train_epochs * self.spe - 1e-9) if cfg.train_epochs and not cfg.time_budget else 0
        if not cfg.time_budget or cfg.test_only:
            return
        kept = BudgetPlan.from_dict(cfg.budget_plan) if cfg.budget_plan else None
        # a resumed run keeps its plan; a new run keeps a recorded plan made for its budget and epochs
        if kept is not None and kept.budget == cfg.time_budget and (cfg.resume or kept.steps_per_epoch == self.spe):
            self.plan = kept
            again = f"; {kept.replan}" if kept.replan else ""
            self.note = f"{kept.reason}{again} " + ("(planned at the run's start and kept)" if cfg.resume else
                                                     f"(the plan recorded in {cfg.config_file}, not timed again)")
        else:
            self.plan = self._make_plan()
            self.note, self.may_replan = self.plan.reason, True
            if kept is not None and kept.budget == cfg.time_budget:  # the recorded plan was made for other data
                self.note += (f" (the plan recorded in {cfg.config_file} was for {kept.steps_per_epoch} steps per "
                              f"epoch, these data give {self.spe}: timed afresh)")
        cfg.epochs, cfg.budget_plan = self.plan.epochs, self.plan.to_dict()

    def _make_plan(self) -> BudgetPlan:
        """Measure and plan on rank 0; every rank takes its plan (or its one-line error)."""
        t, answer = self.trainer, None
        if self.world.is_main:
            step_s, eval_s = probe_costs(t)
            n_val = len(t.val_ds) // max(1, self.world.world_size) if t.val_ds is not None else 0
            costs = Costs(setup=time.perf_counter() - self.started, step=step_s, epoch=eval_s * n_val,
                          final=eval_s * n_val * final_views(t))
            try:
                answer = make_plan(self.cfg.time_budget, costs, self.spe, t.precision.name).to_dict()
            except UserError as e:
                answer = str(e)
        answer = broadcast_object(answer)
        if isinstance(answer, str):
            raise EveryRankError(answer)
        return BudgetPlan.from_dict(answer)

    @property
    def total_steps(self) -> int:
        """The optimiser steps the run has in all: what the schedule and the lookahead are laid out over."""
        return self.plan.steps if self.plan is not None else (self.end or self.cfg.epochs * self.spe)

    def train_epoch(self, loop: Any) -> bool:
        """``loop.train_one_epoch()`` under the plan (its end step, the schedule's length and stretch,
        the lookahead's length), timed for the re-plan."""
        if self.plan is not None:
            p = self.plan
            loop.end_step = p.steps
            loop.schedule.total_steps, loop.schedule.stretch_at, loop.schedule.stretch_from = (
                p.steps, p.stretch_at, p.stretch_from)
            if loop.lookahead is not None:
                loop.lookahead.total = max(1, p.steps)
        elif self.end:
            loop.end_step = self.end  # the schedule and the lookahead were laid out over these steps
        self.first_step, self.epoch_step0 = loop.pos.step_in_epoch, loop.pos.global_step
        self.t_epoch = time.perf_counter()
        self.t_train0 = self.t_train0 or self.t_epoch
        complete = loop.train_one_epoch()
        self.t_trained = time.perf_counter()
        return complete

    def epoch_done(self) -> None:
        """After an epoch's validation and checkpoints, in a run planned in this command: once the
        epochs measured are enough (`replan_due`), re-plan the rest (once) from them — the first one
        left out when there are others, since it also pays one-off costs (warm-up, the first
        checkpoint of the best weights). Rank 0 decides, every rank follows."""
        if not self.may_replan:
            return
        t, now = self.trainer, time.perf_counter()
        whole = self.first_step == 0 and t.pos.step_in_epoch == 0  # not stopped early (--max-steps, Ctrl-C)
        answer: Any = "keep"
        if self.world.is_main and whole:
            self.epochs.append((t.pos.global_step - self.epoch_step0, self.t_trained - self.t_epoch,
                                now - self.t_trained))
            answer = "wait"
            if replan_due(now - self.t_train0, len(self.epochs), self.plan.seconds):
                seen = self.epochs[1:] or self.epochs
                steps, train_s, extra = (sum(e[i] for e in seen) for i in range(3))
                extra /= len(seen)  # validation and checkpoints, per epoch
                costs = Costs(self.plan.setup_s, train_s / max(1, steps), extra, extra * final_views(t))
                first = len(self.epochs) - len(seen) + 1  # the epochs measured, counted in this command
                over = f"epoch {first}" if len(seen) == 1 else f"epochs {first}-{len(self.epochs)}"
                new = replan(self.plan, t.pos.global_step, now - self.started, costs, over)
                answer = new.to_dict() if new is not None else "keep"
        answer = broadcast_object(answer)
        if answer == "wait":
            return
        self.may_replan = False
        if answer == "keep":
            return
        self.plan = BudgetPlan.from_dict(answer)
        self.cfg.epochs, self.cfg.budget_plan = self.plan.epochs, answer
        log(self.world, self.plan.replan)
        if self.world.is_main:
            atomic_write(t.run_dir / "config.json", self.cfg.to_json() + "\n")
        t.save("last.pt")  # its copy of the config, too, says the new plan (a resume compares the two)
