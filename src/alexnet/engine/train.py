"""A training run: `fit(config)` → a run directory.

One straight path (docs/architecture.md): `TrainConfig` → `build_model` + `open_training_data`
(data/pipeline.py: the CPU, GPU or resident data path) → epochs of `TrainLoop.train_one_epoch`
(engine/loop.py) and `evaluate` → a run directory (engine/rundir.py) with config, classes,
metrics, checkpoints and weights; `RunReport` (engine/report.py) says how it went. `Trainer`
composes these parts and owns what they share: the model, the optimiser and the position.

Exact resume: a checkpoint holds the model, optimiser, schedule, grad scaler, position in the
epoch, running epoch statistics and every RNG state; the data order and the augmentation of each
sample are pure functions of (seed, epoch, index), so a run killed at any step and resumed from its
last checkpoint (with ``--deterministic``) ends with bit-identical weights.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..core.device import Precision, resolve_device, use_channels_last
from ..core.errors import UserError, worker_died
from ..core.memory import keep_large_buffers
from ..core.seed import seed_everything, set_deterministic
from ..data import BadSampleLog, normalizer_for, open_training_data
from ..data.transforms import ten_crop_note
from ..models import build_model, make_meta, model_cfg
from .budget_run import RunBudget
from .checkpoint import data_changes
from .config import TrainConfig
from .distributed import (World, all_reduce_sum, broadcast_object, gather_object, init_distributed, plan_batch,
                          resume_command, shutdown)
from .ema import EMA_COLUMNS, EpochScores, ModelEma, ema_summary
from .elastic import own_rank_state, rank_state, resolve_auto_resume
from .evaluate import EvalResult, evaluate
from .loop import DivergedError, Position, StoppedBySignal, TrainLoop, loader_died, loader_died_unsaved
from .optim import Lookahead, build_optimizer
from .precision import run_precision
from .progress import MetricsLog, log, plural
from .report import RunReport, TrainResult, log_setup
from .rundir import RunDir, disk_estimate, load_model_state, run_dir_path
from .schedule import LRSchedule
from .setup import (check_channels, check_compiler, check_data_spec, check_validation, data_config, init_from_data,
                    note_few_images, pixel_mean, place_resident)
from .tta import final_tta

__all__ = ["fit", "TrainResult", "Trainer", "DivergedError"]


class Trainer:
    """One run, composed of its data (`TrainingData`), its loop (`TrainLoop`), its directory
    (`RunDir`) and its report (`RunReport`); `run` trains. Use `fit` rather than this class directly."""

    def __init__(self, cfg: TrainConfig, world: World, device: torch.device, started: float | None = None):
        self.t_start = time.perf_counter()  # time-to-accuracy (--report-at) counts from here, decoding included
        cfg, start_over = resolve_auto_resume(cfg, world)  # a copy (the run fills in pixel_mean); --resume auto
        self.cfg, self.world, self.device = cfg, world, device
        cfg.processes = world.world_size  # recorded: a --config re-run on another number says what that changes
        self.allocator = keep_large_buffers()  # before the first large buffer (and the bf16 probe)
        self.plan = plan_batch(cfg.batch_size, cfg.lr, world.world_size, cfg.global_batch, cfg.scale_lr)
        self.batch_size = self.plan.per_process  # what each process's loader takes
        if cfg.deterministic:
            set_deterministic(True)
        seed_everything(cfg.seed + world.rank)
        self.dir = RunDir(run_dir_path(cfg, world), world, start_over=start_over)
        self.dir.check(cfg)  # a file, an unwritable folder or an existing run: one line before any data
        self.run_dir = self.dir.path
        self.mcfg = model_cfg(cfg.model)
        check_data_spec(cfg.data)
        self.data = open_training_data(data_config(cfg, world), self.mcfg, device.type)
        check_validation(cfg, self.data, world)
        self.train_ds, self.val_ds = self.data.train_ds, self.data.val_ds
        for warning in cfg.check_with_data(lighting=self.data.aug_plan.lighting > 0, train_images=len(self.train_ds),
                                           batch_per_process=self.batch_size, world_size=world.world_size):
            log(world, f"warning: {warning}")
        self.classes = list(self.train_ds.classes)
        self._build_model()
        self._build_optimiser()
        self.disk_need = disk_estimate(self.model, cfg)  # said at the start (`log_setup`)
        if not cfg.resume:  # a disk too full for the run's files: said now, not at the first checkpoint
            self.dir.check_space(self.disk_need)
        self.bad_log = BadSampleLog()
        place_resident(cfg, world, self.data, device)  # --resident on a GPU: the set and its augmentation there
        self.data.build_loaders(self.batch_size, self.bad_log)
        self.train_loader, self.val_loader = self.data.train_loader, self.data.val_loader
        self.whiten_note = init_from_data(cfg, self.model, self.data, self.normalize, device)
        self.ema = ModelEma.maybe(cfg.ema, self.model)  # --ema: of the model as it starts (engine/ema.py)
        self.steps_per_epoch = len(self.train_loader)
        if self.steps_per_epoch == 0:
            raise UserError(f"batch size {self.batch_size} is larger than the training set "
                            f"({len(self.train_ds)} images per process); lower -b")
        self.budget = RunBudget(self, started)  # --time-budget: measures, plans cfg.epochs and the steps
        self.schedule = LRSchedule(
            cfg.lr_scheduler, self.plan.lr, total_steps=self.budget.total_steps,
            steps_per_epoch=self.steps_per_epoch, warmup_steps=int(cfg.lr_warmup_epochs * self.steps_per_epoch),
            step_size=cfg.lr_step_size, gamma=cfg.lr_gamma, patience=cfg.lr_patience, max_drops=cfg.lr_max_drops)
        self.lookahead = Lookahead(self.model, self.budget.total_steps) if cfg.lookahead else None
        self.metrics = MetricsLog(self.run_dir, enabled=world.is_main, extra_columns=EMA_COLUMNS if self.ema else ())
        self.pos, self.best_top1, self.scores = Position(), -math.inf, None
        self.best_cut_short = False  # the best so far is an epoch --max-steps cut short (`_finish_epoch`)
        self.loop = TrainLoop(
            cfg, world, device, self.pos, model=self.model, net=self.net, optimizer=self.optimizer,
            scaler=self.scaler, schedule=self.schedule, lookahead=self.lookahead, normalize=self.normalize,
            precision=self.precision, channels_last=self.channels_last, frozen=self.frozen, loader=self.train_loader,
            bad_log=self.bad_log, batch_size=self.batch_size, checkpoints=self.dir.checkpoints,
            save_last=lambda: self.save("last.pt"), ema=self.ema)
        self.report = RunReport(cfg, world, self.run_dir, classes=self.classes, train_ds=self.train_ds,
                                val_ds=self.val_ds, mirror=self.data.aug_plan.flip, t_start=self.t_start)

    # -- setup ---------------------------------------------------------------------------------
    def _build_model(self) -> None:
        """The model (with --weights and --freeze) on the device, and the normaliser."""
        cfg, world, device = self.cfg, self.world, self.device
        self.model = build_model(cfg.model, num_classes=len(self.classes), **cfg.model_kwargs)
        self.pretrained: dict[str, Any] | None = None
        if cfg.weights and not cfg.resume:
            from ..models.pretrained import load_pretrained

            info = load_pretrained(self.model, cfg.weights, cfg.model, progress=world.is_main, classes=self.classes)
            self.pretrained = info.to_dict()
        self.frozen = None
        if cfg.freeze:
            from ..models.pretrained import freeze

            self.frozen = freeze(self.model, cfg.freeze)
        self.model = self.model.to(device)
        check_channels(cfg, world, self.mcfg, self.train_ds)
        note_few_images(cfg, world, self.mcfg, len(self.train_ds))
        self.channels_last = {"on": True, "off": False}.get(cfg.channels_last, use_channels_last(device))
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.mean_note = ""
        if cfg.normalize == "pixelmean":  # §2: the training data's own mean, stored with the run
            cfg.pixel_mean, self.mean_note = pixel_mean(cfg, world, self.mcfg)
            self.mcfg = self.data.model_cfg = dataclasses.replace(self.mcfg, mean=tuple(cfg.pixel_mean))
        self.normalize = normalizer_for(self.mcfg, mode=cfg.normalize).to(device)

    def _build_optimiser(self) -> None:
        """Precision (decided once per run: engine/precision.py), grad scaler, optimiser, and ``net``:
        the model as the loop calls it (DDP under torchrun, compiled with --compile)."""
        cfg, world, device = self.cfg, self.world, self.device
        self.precision: Precision = run_precision(cfg, world, device, self.model, self.mcfg.input_size,
                                                  self.batch_size, self.channels_last)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision.use_scaler)
        self.optimizer = build_optimizer(cfg, self.model, self.plan.lr)
        self.net: nn.Module = self.model
        if world.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.net = DDP(self.model, device_ids=[device.index] if device.type == "cuda" else None)
        if cfg.compile:
            check_compiler(device)
            self.net = torch.compile(self.net)  # the first steps are slow: they compile

    def _meta(self, **extra: Any) -> dict[str, Any]:
        if self.pretrained:
            extra["init_weights"] = self.pretrained
        return make_meta(self.cfg.model, self.classes, self.mcfg, self.cfg.model_kwargs,
                         normalize=self.cfg.normalize, class_ids=self._class_ids(),
                         train_flip=self.report.mirror, **extra)

    def _class_ids(self) -> list[Any]:
        return list(getattr(self.train_ds, "class_ids", self.classes))

    # -- checkpoints ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything an exact resume needs (checkpoints/last.pt); `save` adds every rank's own part."""
        pos = self.pos
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(), "schedule": self.schedule.state_dict(),
            "epoch": pos.epoch, "step_in_epoch": pos.step_in_epoch, "global_step": pos.global_step,
            "best_top1": self.best_top1, "best_cut_short": self.best_cut_short, **rank_state(pos, self.bad_log),
            "world_size": self.world.world_size,
            "sampler": self.train_loader.sampler.state_dict(),
            **({"lookahead": self.lookahead.state_dict()} if self.lookahead is not None else {}),
            **({"ema": self.ema.state_dict()} if self.ema is not None else {}),
            "model_name": self.cfg.model, "num_classes": len(self.classes), "classes": self.classes,
            "images": self._images(), "config": self.cfg.saved_dict(),
        }

    def save(self, name: str) -> None:
        """Write ``checkpoints/<name>`` here; every rank calls it (last.pt keeps each rank's own part)."""
        ranks = gather_object(rank_state(self.pos, self.bad_log)) if name == "last.pt" else None
        self.dir.save(name, lambda: {**self.state(), "ranks": ranks})

    def _images(self) -> dict[str, int]:
        return {"train": len(self.train_ds), "val": len(self.val_ds) if self.val_ds is not None else 0}

    def _load_model(self, ck: dict[str, Any], path: Path) -> None:
        load_model_state(self.model, ck, path, self.cfg.model, len(self.classes))

    def resume(self) -> None:
        """Continue from checkpoints/last.pt (last.prev.pt when it is broken); a finished run whose
        final files did not all reach the disk gets them now."""
        cfg, pos = self.cfg, self.pos
        self.dir.remove_stale_temps()
        ck, used = self.dir.open_last()
        own = own_rank_state(ck, self.world, used)  # another number of processes: refused here
        changed = data_changes(ck, self.classes, self._images(), used)  # other classes: refused here
        if changed:
            log(self.world, changed)
        self.pretrained = self.dir.init_weights()  # for the weights.json this run writes next
        self._load_model(ck, used)
        try:
            self.optimizer.load_state_dict(ck["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise UserError(f"--resume {used}: the optimiser state does not fit this model "
                            f"({str(e).splitlines()[0][:160]})") from None
        self.scaler.load_state_dict(ck["scaler"])
        self.schedule.load_state_dict(ck["schedule"])
        if self.lookahead is not None and "lookahead" in ck:
            self.lookahead.load_state_dict(ck["lookahead"])
        if self.ema is not None:
            self.ema.restore(ck, used)
        pos.epoch, pos.step_in_epoch = int(ck["epoch"]), int(ck["step_in_epoch"])
        pos.global_step, self.best_top1 = int(ck["global_step"]), float(ck["best_top1"])
        pos.epoch_stats = [float(x) for x in own["epoch_stats"]]
        # --report-at: thresholds passed before the interruption were reported then (with that
        # session's times); this session reports only new ones
        self.report.reported = {t for t in cfg.report_at if self.best_top1 >= t}
        if ck.get("best_cut_short"):  # the weights of an epoch cut short stand until the first one finishes
            self.best_top1 = -math.inf
        self.loop.rng_to_restore = own["rng"]
        self.bad_log.load_state_dict(own["bad_samples"])
        trimmed = self.metrics.trim(pos.epoch)
        if trimmed:
            log(self.world, trimmed)
        if pos.epoch >= cfg.epochs:
            self.dir.complete_final_files(ck, used, self.model, self._load_model, self._meta)
            if not cfg.test_only:  # --test-only asked for no training
                log(self.world, f"{self.run_dir} already finished its {plural(pos.epoch, 'epoch')}: nothing to "
                                f"train (--epochs N with N > {pos.epoch} trains it further)")
            return
        log(self.world, f"resumed {self.run_dir} at epoch {pos.epoch + 1}, step {pos.step_in_epoch} "
                        f"of {self.steps_per_epoch} ({pos.global_step} steps done)")
        was = int(ck.get("config", {}).get("epochs", cfg.epochs))
        if was != cfg.epochs and cfg.lr_scheduler in ("onecycle", "cosine"):
            log(self.world, f"note: the {cfg.lr_scheduler} schedule was laid out for {plural(was, 'epoch')} "
                            f"and is now laid out for {cfg.epochs}: the rate goes from "
                            f"{self.optimizer.param_groups[0]['lr']:.3g} to {self.schedule.lr(pos.global_step):.3g} "
                            f"here (a new run gives the full schedule)")

    # -- the run -------------------------------------------------------------------------------
    def _eval(self, loader=None, model: nn.Module | None = None) -> EvalResult:
        """The raw weights (or ``model``: the EMA, whose pass counts no bad files again) on ``loader``."""
        if loader is None and self.val_loader is None:  # --val-split 0: nothing to validate on
            return EvalResult(math.nan, math.nan, math.nan, 0)
        raw = model is None
        return evaluate(self.model if raw else model, loader or self.val_loader, self.normalize, self.precision,
                        self.device, self.channels_last, progress=self.world.is_main,
                        bad_log=self.bad_log if raw else None)

    def ten_crop_eval(self) -> EvalResult:
        note = ten_crop_note(self.data.model_cfg, self.report.mirror)  # the five crops may coincide
        if note:
            log(self.world, note)
        return self._eval(self.data.ten_crop_loader(self.batch_size, self.report.mirror))

    def _finish_epoch(self, complete: bool, t_epoch: float) -> EvalResult:
        """Validate (the EMA too, with --ema), log the epoch's line and metrics row, step a plateau
        schedule, and save: best.pt and the weights when validation improved (the better of the raw
        weights and their EMA), then last.pt."""
        pos, res = self.pos, self._eval()
        self.scores = scores = EpochScores(res, self._eval(model=self.ema.module) if self.ema else None)
        loss_sum, correct, n = all_reduce_sum(pos.epoch_stats, self.device)
        train_loss = loss_sum / n if n else float("nan")
        train_top1 = 100.0 * correct / n if n else float("nan")
        groups = self.optimizer.param_groups  # the head's rate: the last group at ×1 (not the biases' multiple)
        lr = next((g["lr"] for g in reversed(groups) if g.get("lr_mult", 1.0) == 1.0), groups[-1]["lr"])
        self.metrics.append({"epoch": pos.epoch + 1, "step": pos.global_step, "train_loss": train_loss,
                             "train_top1": train_top1, "val_loss": res.loss, "val_top1": res.top1,
                             "val_top5": res.top5, "lr": lr, "time": round(time.perf_counter() - t_epoch, 2),
                             "img_per_s": round(self.loop.img_per_s, 1), **scores.row()})
        top5 = f"  top-5 {res.top5:6.2f}%" if self.report.top5 else ""
        val = (f"val loss {res.loss:.4f}  top-1 {res.top1:6.2f}%{top5}{scores.note()}" if res.n
               else f"train top-1 {train_top1:6.2f}% (no validation)")
        log(self.world, f"epoch {pos.epoch + 1:>3}/{self.cfg.epochs}  train loss {train_loss:.4f}  {val}  "
                        f"lr {lr:.3g}  {time.perf_counter() - t_epoch:.1f}s")
        summary = self.bad_log.end_epoch()
        if summary:
            log(self.world, f"  {summary}")
        self.report.thresholds(res, "", f"epoch {pos.epoch + 1}")
        kept = scores.kept  # the raw weights' scores, or the EMA's when they are better
        # no validation (--val-split 0, or not one of its images could be read): keep the latest. An epoch
        # --max-steps cut short is a best only while no epoch has finished (the run's weights till then), and
        # only until the run resumes: its score is in no metrics.csv row that a resume keeps (`resume`)
        improved = (kept.top1 > self.best_top1 or not kept.n) and (complete or pos.epoch == 0)
        if improved and not math.isnan(kept.top1):
            self.best_top1, self.best_cut_short = kept.top1, not complete
        if complete:
            if self.schedule.epoch_end(100.0 - res.top1):
                log(self.world, f"  validation error stopped improving: lr divided by {1 / self.cfg.lr_gamma:g} "
                                f"({self.schedule.state['drops']} of {self.cfg.lr_max_drops})")
            pos.epoch += 1
            pos.step_in_epoch = 0
        # last.pt comes last: until it is written, a resume redoes this epoch's end, so a last.pt
        # that says "finished" means best.pt, the weights and the metrics row are all on disk.
        if improved:  # --ema: the EMA's weights when they scored better (said in best.pt and weights.json)
            weights, src = self.ema.choose(scores, self.model) if self.ema is not None else (self.model, {})
            self.dir.save("best.pt", lambda: {**self.state(), "model": weights.state_dict(), **src})
            best = dict(val_top1=kept.top1, val_top5=kept.top5) if kept.n else {}  # no NaN in weights.json
            self.dir.save_weights(weights, self._meta(**best, **src, epoch=pos.epoch + (0 if complete else 1)))
        if self.world.is_main and len(self.bad_log):
            self.bad_log.write(self.run_dir)
        self.save("last.pt")
        return res

    def _train(self) -> EvalResult | None:
        """Epochs until the last (or --max-steps); Ctrl-C (SIGTERM) saves a resumable checkpoint first."""
        cfg, world, last = self.cfg, self.world, None
        restore_signals = self.loop.catch_stop_signals()
        try:
            while self.pos.epoch < cfg.epochs:
                complete = self.budget.train_epoch(self.loop)  # under --time-budget's plan; times the epoch
                # a Ctrl-C after the epoch's last read-back: every rank saves, or none yet
                if self.loop.agree_to_stop() or self.loop.worker_death:
                    self.save("last.pt")
                    saved = (f"resumable checkpoint saved to {self.dir.checkpoints / 'last.pt'}; "
                             f"continue with: {resume_command(self.run_dir, world)}")
                    if self.loop.worker_death:
                        raise loader_died(self.loop.worker_death, f"Stopped at step {self.pos.global_step}: {saved}")
                    log(world, f"stopped: {saved}")
                    raise StoppedBySignal(self.loop.stop_signal)
                # --max-steps on an epoch's last step: the epoch is whole (its weights may be the best)
                complete = complete or self.pos.step_in_epoch >= self.loop.steps_per_epoch
                last = self._finish_epoch(complete, self.budget.t_epoch)
                self.budget.epoch_done()  # the first epochs may re-plan the rest
                if self.loop.max_steps_reached() and self.pos.epoch < cfg.epochs:
                    where = f"after epoch {self.pos.epoch}" if complete else f"in epoch {self.pos.epoch + 1}"
                    log(world, f"stopped at step {self.pos.global_step} (--max-steps {cfg.max_steps}), {where} of "
                               f"{cfg.epochs}: continue with {resume_command(self.run_dir, world)}")
                    break
        finally:
            restore_signals()
            self.metrics.close()
        return last

    def run(self) -> TrainResult:
        cfg, world, pos = self.cfg, self.world, self.pos
        closing_only = False  # a finished run whose closing evaluation was cut short (no final.json)
        if cfg.resume:
            self.resume()
            if cfg.max_steps and pos.global_step >= cfg.max_steps and pos.epoch < cfg.epochs and not cfg.test_only:
                log(world, f"the run has done {plural(pos.global_step, 'step')}, --max-steps {cfg.max_steps} or more: "
                           f"nothing to train; continue with {resume_command(self.run_dir, world)} (without "
                           f"--max-steps, or a larger one)")
                return TrainResult(self.run_dir, self.best_top1, None, None, pos.epoch, pos.global_step)
            if pos.epoch >= cfg.epochs and not cfg.test_only:
                if broadcast_object((self.run_dir / "final.json").is_file()):  # rank 0's files say
                    return TrainResult(self.run_dir, self.best_top1, None, None, pos.epoch, pos.global_step)
                closing_only = True
                log(world, "its closing evaluation did not finish (no final.json): it runs now")
        else:
            self.dir.remove_stale_temps()
        self.dir.write_run_files(cfg, self.classes, self._class_ids())
        self.metrics.open_loggers(cfg)
        log_setup(self)
        if cfg.test_only:
            last = self._eval()
            top5 = f"  top-5 {last.top5:.2f}% (error {last.top5_error:.2f}%)" if self.report.top5 else ""
            log(world, f"top-1 {last.top1:.2f}% (error {last.top1_error:.2f}%){top5}  loss {last.loss:.4f}  "
                       f"on {last.n} images")
            return TrainResult(self.run_dir, self.best_top1, last, None, pos.epoch, pos.global_step)
        last = self._eval() if closing_only else self._train()
        ten = None
        if self.val_ds is not None and (cfg.ten_crop and world.is_main or (cfg.ten_crop and world.distributed)):
            ten = self.ten_crop_eval()
        self.report.tta = final_tta(self)  # --tta: airbench's views, logits averaged (engine/tta.py)
        ema_line = ema_summary(self.ema, self.scores, last)  # --ema: raw vs EMA, and which was kept
        self.report.final(last, ten, self.best_top1, len(self.bad_log), ema_line=ema_line)
        bad = self.report.bad_files(len(self.bad_log), self.device)
        return TrainResult(self.run_dir, self.best_top1, last, ten, pos.epoch, pos.global_step,
                           bad_files=bad.count, bad_fraction=bad.fraction, too_many_bad=bad.too_many)


def fit(config: TrainConfig, *, started: float | None = None) -> TrainResult:
    """Train as ``config`` says (``--time-budget`` counts from ``started``, a perf_counter; default: now)."""
    cfg = config.validate()
    device = resolve_device(cfg.device)
    world, trainer = init_distributed(device.type), None
    try:
        trainer = Trainer(cfg, world, device, started)
        return trainer.run()
    except RuntimeError as e:  # a validation or ten-crop loader's worker died
        if trainer is None or not worker_died(e):
            raise
        raise loader_died_unsaved(e, trainer.dir.checkpoints, world) from None
    finally:
        if trainer is not None:  # the loaders' workers end now: a torchrun rank leaves by os._exit
            trainer.data.close()
            trainer.dir.unlock()
        shutdown()
