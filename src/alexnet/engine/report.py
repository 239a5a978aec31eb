"""What a run says when it starts and when it ends, and the warnings it owes its user.

The lines that open a run (`log_setup`): where it writes and how much, the model, the data, the
recipe, the device and precision, and every choice made for the run.

The final scores (centre crop, and ten-crop §4.1 when asked), the ``--report-at`` lines (the wall
time at which validation top-1 first reached each threshold), a warning when the model does no
better than always guessing the largest class, and a loud one when too many files could not be
read for the numbers to describe the dataset.

Useless is judged against the validation split itself (`uselessness`): its own largest class, and
whether the model gives one answer for nearly every image.
"""

from __future__ import annotations

import math
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data.pipeline import format_bytes
from ..models import model_cfg
from ..models.pretrained import imagenet_start
from .config import TrainConfig
from .distributed import World, all_reduce_sum
from .evaluate import EvalResult, uselessness
from .progress import clock, count, log, plural
from .rundir import itemized


def log_setup(trainer: Any) -> None:
    """The lines that open a run (a `Trainer`): where it writes, the model, data, recipe and machinery."""
    t, cfg, world = trainer, trainer.cfg, trainer.world
    nparams = sum(p.numel() for p in t.model.parameters())
    log(world, f"run directory: {t.run_dir}")
    if not cfg.test_only:  # --test-only evaluates: it writes nothing
        log(world, f"this run writes about {format_bytes(sum(t.disk_need.values()))} there: {itemized(t.disk_need)}")
    log(world, f"model {cfg.model} ({count(nparams)} parameters, {len(t.classes)} classes) · "
               f"data {cfg.data}: {count(len(t.train_ds))} train / "
               + (f"{count(len(t.val_ds))} val images" if t.val_ds is not None else
                  "no val images (--val-split 0: every image trains; the last epoch's weights are kept)"))
    log(world, f"recipe {cfg.recipe}: {cfg.optimizer} lr {cfg.lr:g}"
               + (f" momentum {cfg.momentum:g}" if cfg.optimizer in ("sgd", "sgd-paper") else "")
               + f" · weight decay {cfg.weight_decay:g} · {cfg.lr_scheduler} schedule · "
                 f"{plural(cfg.epochs, 'epoch')} · batch {cfg.global_batch or cfg.batch_size} · "
                 f"aug {aug_line(cfg, t)} · "
                 f"input {'×'.join(map(str, t.mcfg.input_size))}")
    if t.pretrained:
        p = t.pretrained
        re_init = (f"; re-initialised (new classes): {', '.join(p['reinitialised'])}" if p["reinitialised"]
                   else "")
        src = f" ({p['source']})" if p["source"] != p["spec"] else ""
        log(world, f"weights from {p['spec']}{src}: {p['loaded']} tensors loaded{re_init}")
    if t.frozen is not None:
        n_frozen = sum(p.numel() for p in t.model.parameters() if not p.requires_grad)
        log(world, f"frozen up to {t.frozen.layer} (--freeze {cfg.freeze}): {count(n_frozen)} of "
                   f"{count(nparams)} parameters; training the rest")
    if cfg.lr_backbone_scale != 1.0:
        from ..models.pretrained import head_parameters

        head = head_parameters(t.model)
        before = any(p.requires_grad for p in t.model.parameters() if id(p) not in head)
        log(world, f"the last layer trains at lr {cfg.lr:g}, " + (
            f"the {'unfrozen ' if t.frozen is not None else ''}layers before it at {cfg.lr_backbone_scale:g}× that"
            if before else f"every layer before it is frozen (--lr-backbone-scale {cfg.lr_backbone_scale:g} "
                           f"has nothing to scale)"))
    log(world, f"device {t.device} · {t.precision.reason} · channels_last "
               f"{'on' if t.channels_last else 'off'} · {plural(torch.get_num_threads(), 'thread')}"
               f" · memory: {t.allocator}"
               + (f" · {world.world_size} processes, batch {t.batch_size} each" if world.distributed else ""))
    if world.distributed or cfg.scale_lr or cfg.global_batch:
        log(world, t.plan.note)
    for note in (t.data.note, t.whiten_note, t.budget.note):
        if note:
            log(world, note)
    if t.lookahead is not None:
        log(world, "lookahead: every 5 steps the weights move to their running average (airbench)")
    if t.ema is not None:
        log(world, t.ema.describe())
    if t.mean_note:
        mean = ", ".join(f"{255 * v:.1f}" for v in cfg.pixel_mean or [])
        log(world, f"mean pixel subtracted (§2): ({mean}) in 0-255 units, {t.mean_note}")


@dataclass
class TrainResult:
    run_dir: Path
    best_top1: float
    last: EvalResult | None
    ten_crop: EvalResult | None
    epochs_done: int
    steps_done: int
    bad_files: int = 0  # distinct files that could not be read (stand-ins were used in training)
    bad_fraction: float = 0.0  # of all training + validation files
    too_many_bad: bool = False  # bad_fraction over the config's max_bad_fraction: the CLI exits 1


@dataclass
class BadFiles:
    """Distinct files that could not be read, their share of all training + validation files, and
    whether that share is over ``--max-bad-fraction``."""

    count: int
    fraction: float
    too_many: bool


class RunReport:
    """The end-of-run messages of one run. ``mirror``: the model trained with flips (ten-crop then
    averages mirrored views too); ``t_start``: ``time.perf_counter()`` at the start of the run."""

    def __init__(self, cfg: TrainConfig, world: World, run_dir: Path, *, classes: list[str], train_ds: Any,
                 val_ds: Any | None, mirror: bool, t_start: float):
        self.cfg, self.world, self.run_dir, self.classes = cfg, world, run_dir, classes
        self.train_ds, self.val_ds, self.mirror, self.t_start = train_ds, val_ds, mirror, t_start
        self.top5 = len(classes) > 5  # top-5 means something only with more than five classes
        self.reported: set[float] = set()  # --report-at thresholds already crossed
        self.reached: dict[str, dict[str, Any]] = {}  # those crossings, for final.json
        self.tta: EvalResult | None = None  # --tta: the final evaluation with airbench's views (engine/tta.py)

    def thresholds(self, res: EvalResult, how: str, when: str) -> None:
        """--report-at: say once, with the wall time since the start, each threshold ``res`` passes."""
        for target in sorted(self.cfg.report_at):
            if target not in self.reported and res.n and res.top1 >= target:
                self.reported.add(target)
                self.reached[f"{target:g}"] = {"seconds": round(time.perf_counter() - self.t_start, 1),
                                               "when": when, "top1": res.top1, "views": how.strip() or "centre"}
                log(self.world, f"  validation top-1 reached {target:g} % {how}after "
                                f"{clock(time.perf_counter() - self.t_start)} ({when}, {res.top1:.2f} %; "
                                f"wall time since the start, decoding included)")

    def final(self, last: EvalResult | None, ten: EvalResult | None, best_top1: float, bad_samples: int,
              ema_line: str = "") -> None:
        """The closing lines: best and last scores (``ema_line``: raw vs EMA, with ``--ema``), ten-crop,
        thresholds its averaging reached, the chance warning, bad samples, the files written and what
        to run next."""
        w = self.world
        if last is not None and self.val_ds is None:
            log(w, "\nno validation split (--val-split 0): weights.safetensors holds the last epoch's weights")
        elif last is not None and not last.n:
            log(w, f"\nno validation image could be read ({plural(len(self.val_ds), 'file')} in the validation "
                   f"split, every one bad): weights.safetensors holds the last epoch's weights")
        elif last is not None:
            top5 = f", top-5 {last.top5:.2f}% (error {last.top5_error:.2f}%)" if self.top5 else ""
            log(w, f"\nbest validation top-1 {best_top1:.2f}% · last: top-1 {last.top1:.2f}% "
                   f"(error {last.top1_error:.2f}%){top5}")
            if ema_line:
                log(w, ema_line)
        if ten is not None and last is not None and ten.n:
            crops = ("ten-crop (§4.1)" if self.mirror
                     else "five-crop (ten-crop without mirrors: trained without flips)")
            top5 = (f", top-5 {ten.top5:.2f}% (error {ten.top5_error:.2f}%) vs centre crop {last.top1:.2f}% / "
                    f"{last.top5:.2f}%" if self.top5 else f" vs centre crop {last.top1:.2f}%")
            log(w, f"{crops}: top-1 {ten.top1:.2f}% (error {ten.top1_error:.2f}%){top5}")
            # a threshold the centre crop never reached but the averaged views did is reached at the
            # end of training, after the ten-crop pass (its time included)
            self.thresholds(ten, f"with {crops.split(' ')[0]} averaging ", "end of training")
        if self.tta is not None and last is not None and self.tta.n:
            views = {1: "2 views: the image and its mirror", 2: "6 views: mirrored, shifted by 1 px"}[self.cfg.tta]
            log(w, f"airbench's test-time augmentation (--tta {self.cfg.tta}, {views}; logits averaged): top-1 "
                   f"{self.tta.top1:.2f}% (error {self.tta.top1_error:.2f}%) vs centre crop {last.top1:.2f}%")
            self.thresholds(self.tta, f"with --tta {self.cfg.tta} ", "end of training")
        if last is not None and last.n and best_top1 > last.top1 and (ten is not None or self.tta is not None):
            log(w, f"(these closing scores are of the last epoch's weights; weights.safetensors holds the best "
                   f"epoch's, top-1 {best_top1:.2f}%, which `alexnet evaluate` scores)")
        if self.cfg.report_at and last is not None:
            missed = [f"{t:g} %" for t in sorted(self.cfg.report_at)
                      if t not in self.reported and f"{t:g}" not in self.reached]
            if missed:
                best = f"best validation top-1 {best_top1:.2f}%" if math.isfinite(best_top1) else "no validation score"
                log(w, f"not reached: {', '.join(missed)} ({best}; these thresholds are the {self.cfg.recipe} "
                       f"recipe's or --report-at's, e.g. --report-at none)")
            log(w, f"wall time {clock(time.perf_counter() - self.t_start)} from the start, decoding and the final "
                   f"evaluation included")
        if last is not None and last.n and self.val_ds is not None:
            self.chance_warning(best_top1, last)
        if w.is_main:
            self.write_final(last, ten, best_top1)
        if bad_samples:
            log(w, f"{plural(bad_samples, 'bad sample')} skipped in all: listed in {self.run_dir / 'bad_samples.txt'}")
        if w.is_main:  # what is there, as it is (a run without validation has no best.pt)
            d = self.run_dir
            cks = [n[:-3] for n in ("last.pt", "last.prev.pt", "best.pt") if (d / "checkpoints" / n).is_file()]
            files = [n for n in ("config.json", "classes.json", "metrics.csv", "final.json") if (d / n).is_file()]
            files += [f"checkpoints/{{{','.join(cks)}}}.pt" if len(cks) > 1 else f"checkpoints/{cks[0]}.pt"] if cks else []
            files += [n for n in ("weights.safetensors", "weights.json") if (d / n).is_file()]
            log(w, f"wrote {d}/: {' '.join(files)}")
        run, data = shlex.quote(str(self.run_dir)), shlex.quote(str(self.cfg.data))  # to paste into a shell
        log(w, (f"next: alexnet evaluate {run} --data {data}   ·   " if self.val_ds is not None
                else "next: ") + f"alexnet predict {run} IMAGE")

    def write_final(self, last: EvalResult | None, ten: EvalResult | None, best_top1: float) -> None:
        """``final.json``: the closing scores as data (centre crop, ten-crop or flip averaging,
        ``--tta``'s as ``tta`` and ``tta_level`` when given, the best epoch's top-1, the
        ``--report-at`` crossings and the wall time since the start), so a document can cite them
        from the run rather than from its console. In a resumed run the times count from the
        resume, and thresholds passed before it have no time."""
        from ..core.io import atomic_write_json

        def number(x: float) -> float | None:  # JSON has no NaN or infinity: no score is null
            return x if math.isfinite(x) else None

        def scores(r: EvalResult | None) -> dict[str, Any] | None:
            return None if r is None else {"top1": number(r.top1), "top5": number(r.top5),
                                           "loss": number(r.loss), "n": r.n}

        views = None if ten is None else ("ten-crop" if self.mirror else "five-crop")
        earlier = {f"{t:g}": {"seconds": None, "when": "before a resume"} for t in self.reported
                   if f"{t:g}" not in self.reached}
        atomic_write_json(self.run_dir / "final.json", {
            "centre": scores(last), "ten_crop": scores(ten), "ten_crop_views": views,
            "weights_scored": "the last epoch's (checkpoints/last.pt); weights.safetensors holds the best epoch's",
            "best_top1": number(best_top1),
            "reached": {**earlier, **self.reached}, "wall_s": round(time.perf_counter() - self.t_start, 1),
            **({"tta": scores(self.tta), "tta_level": self.cfg.tta} if self.tta is not None else {})})

    def chance_warning(self, best_top1: float, last: EvalResult | None = None) -> None:
        """Say so when the best validation accuracy does not beat always guessing the validation
        split's largest class, or when the last evaluation (``last``) predicted one class for nearly
        every validation image."""
        label_counts = last.label_counts if last is not None and last.label_counts else self.val_ds.class_counts()
        useless = uselessness(best_top1, label_counts, last.pred_counts if last is not None else [], self.classes)
        if not useless:
            return
        what = []
        if useless.below_chance:
            what.append(f"the best validation top-1 ({best_top1:.2f}%) {useless.below_chance}")
        if useless.one_class:
            what.append(f"at the last epoch the model {useless.one_class.replace(' images ', ' validation images ')}")
        cfg = self.cfg
        tips = []
        # ImageNet's weights see colour, not digits; an experiment's arm tests its network as it is
        if not cfg.weights and model_cfg(cfg.model).input_size[0] == 3 and cfg.recipe != "experiment":
            tips.append(f"start from pretrained weights ({imagenet_start(cfg.model)})")
        tips += [f"train longer (--epochs {cfg.epochs * 2})", f"a lower rate (--lr {cfg.lr / 10:g})"]
        log(self.world, f"warning: {'; '.join(what)}: this model has learnt nothing useful. Try: {'; '.join(tips)}")

    def bad_files(self, bad_samples: int, device: torch.device) -> BadFiles:
        """Distinct unreadable files (``bad_samples`` on this process) over all training + validation
        files; over ``cfg.max_bad_fraction`` the run ends with a loud warning (and the CLI exits 1):
        a model trained on stand-ins for a broken dataset is not a finished run."""
        # the shards of the processes are disjoint within an epoch, so their counts add up
        bad = int(all_reduce_sum([float(bad_samples)], device)[0])
        total = len(self.train_ds) + (len(self.val_ds) if self.val_ds is not None else 0)
        fraction = bad / total if total else 0.0
        too_many = fraction > self.cfg.max_bad_fraction
        if too_many:
            bar = "!" * 78
            log(self.world, f"{bar}\nWARNING: {bad} of {total} files ({100 * fraction:.1f} %) could not be read — "
                            f"more than --max-bad-fraction {100 * self.cfg.max_bad_fraction:g} %. This run trained on "
                            f"stand-ins for them and its numbers do not describe the dataset; see "
                            f"{self.run_dir / 'bad_samples.txt'} (`alexnet data check` lists every bad file and why)."
                            f"\n{bar}")
        return BadFiles(bad, fraction, too_many)


def aug_line(cfg: Any, t: Any) -> str:
    """The augmentation as the run's recipe line names it; the paper's spelled out, PCA lighting
    included (its scale and whose eigenvectors), which `aug paper` alone does not say."""
    if cfg.aug != "paper" or t.mcfg.input_size[0] != 3:
        return cfg.aug
    scale = "α·√λ" if cfg.pca_scale == "sqrt" else "α·λ"
    whose = f"--pca {cfg.pca}" if cfg.pca else "ImageNet"
    return f"paper (crops + flips + PCA lighting {scale}, {whose}'s eigenvectors)"
