"""The training loop: `fit(config)` → a run directory.

One straight path (DESIGN.md): `TrainConfig` → `build_model` + `build_dataset`/`build_loader` →
epochs of `train_one_epoch` / `evaluate` → run directory with config, classes, metrics,
checkpoints and weights. Exact resume: a checkpoint holds the model, optimiser, schedule, grad
scaler, position in the epoch, running epoch statistics and every RNG state; the data order and
the augmentation of each sample are pure functions of (seed, epoch, index), so a run killed at any
step and resumed from its last checkpoint (with ``--deterministic``) ends with bit-identical weights.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.device import Precision, model_bf16_speedup, resolve_device, resolve_precision, use_channels_last
from ..core.errors import UserError
from ..core.io import atomic_write, atomic_write_json, remove_stale_temps
from ..core.seed import get_rng_state, seed_everything, set_deterministic, set_rng_state
from ..data import (BadSampleLog, build_dataset, build_loader, build_transforms, compute_mean, load_pca,
                    normalizer_for, take_subset)
from ..models import build_model, make_meta, model_cfg, save_weights
from .checkpoint import load_checkpoint, newest_loadable, save_checkpoint, shape_differences
from .config import TrainConfig
from .distributed import World, all_reduce_sum, broadcast_flag, init_distributed, plan_batch, shutdown
from .evaluate import EvalResult, evaluate
from .progress import MetricsLog, clock, count, log, plural
from .optim import Lookahead, build_optimizer, param_groups  # noqa: F401  (param_groups: re-exported)
from .schedule import LRSchedule

class DivergedError(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


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


PROGRESS_LINE_SECONDS = 60.0  # without a terminal: one progress line this often ($ALEXNET_PROGRESS_SECONDS)
ACCELERATOR_SYNC_EVERY = 20  # on a GPU, read the loss back (and check it) every this many steps
CPU_SYNC_EVERY = 1  # on a CPU reading it back is free
PIXEL_MEAN_IMAGES = 1000  # --normalize pixelmean: images the mean pixel is measured on (seeded choice)


def _progress_seconds() -> float:
    """Seconds between progress lines when output is not a terminal: $ALEXNET_PROGRESS_SECONDS or 60."""
    raw = os.environ.get("ALEXNET_PROGRESS_SECONDS", "")
    if not raw:
        return PROGRESS_LINE_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UserError(f"ALEXNET_PROGRESS_SECONDS must be a positive number of seconds, not {raw!r}")
    return value


def _check_compiler(device: torch.device) -> None:
    """torch.compile on a CPU writes C++ and builds it; without a compiler it would fail at the
    first step with a long traceback, so say so before the run starts."""
    import shutil

    if device.type == "cpu" and not any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++")
                                        if c):
        raise UserError("--compile on a CPU needs a C++ compiler (g++ or clang++; or set CXX); "
                        "install one or train without --compile")


class Trainer:
    """Holds the pieces of one run; `run` trains. Use `fit` rather than this class directly."""

    def __init__(self, cfg: TrainConfig, world: World, device: torch.device):
        self.t_start = time.perf_counter()  # time-to-accuracy (--report-at) counts from here, decoding included
        cfg = dataclasses.replace(cfg)  # a copy: the run fills in fields (pixel_mean), the caller's stays as given
        self.cfg, self.world, self.device = cfg, world, device
        self.plan = plan_batch(cfg.batch_size, cfg.lr, world.world_size, cfg.global_batch, cfg.scale_lr)
        self.batch_size = self.plan.per_process  # what each process's loader takes
        if cfg.deterministic:
            set_deterministic(True)
        seed_everything(cfg.seed + world.rank)
        self.mcfg = model_cfg(cfg.model)
        self._check_data_spec()
        if cfg.data_device != "cpu":
            from ..data.gpu import check_data_device

            check_data_device(cfg.data_device)  # before any data is read: no GPU → one line
            if device.type != "cuda":
                raise UserError(f"--data-device {cfg.data_device} puts the batches on the GPU, but the model "
                                f"trains on {device}; add --device cuda")
        val_tf = build_transforms(self.mcfg, train=False)
        # --resident: every image decoded once as the network sees it at test time; the augmentation
        # happens later, on whole batches (data.resident)
        train_tf = val_tf if cfg.resident else build_transforms(self.mcfg, train=True, aug=cfg.aug, pca=cfg.pca or None,
                                                                pca_scale=cfg.pca_scale)
        self.train_ds = build_dataset(cfg.data, "train", transform=train_tf, val_split=cfg.val_split,
                                      download=cfg.download and world.is_main)
        self.val_ds = self._val_dataset(val_tf)
        # The sample is the same for every seed, so runs that differ in seed see the same images.
        self.train_ds = take_subset(self.train_ds, cfg.train_subset)
        self.classes = list(self.train_ds.classes)
        if len(self.train_ds) == 0:
            raise UserError(f"{cfg.data}: the training split is empty")
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
        self._check_channels()
        self.channels_last = {"on": True, "off": False}.get(cfg.channels_last, use_channels_last(device))
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.mean_note = ""
        if cfg.normalize == "pixelmean":  # §2: the training data's own mean, stored with the run
            cfg.pixel_mean, self.mean_note = self._pixel_mean()
            self.mcfg = dataclasses.replace(self.mcfg, mean=tuple(cfg.pixel_mean))
        self.normalize = normalizer_for(self.mcfg, mode=cfg.normalize).to(device)
        probe = None
        if device.type == "cpu" and not world.distributed:  # ranks must agree: they keep the matmul probe
            def probe():
                return model_bf16_speedup(self.model, self.mcfg.input_size, self.batch_size, self.channels_last)
        self.precision: Precision = resolve_precision(cfg.amp, device, step_speedup=probe)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision.use_scaler)
        self.optimizer = build_optimizer(cfg, self.model, self.plan.lr)
        self.net: nn.Module = self.model
        if world.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.net = DDP(self.model, device_ids=[device.index] if device.type == "cuda" else None)
        if cfg.compile:
            _check_compiler(device)
            self.net = torch.compile(self.net)  # the first steps are slow: they compile
        kw = dict(workers=cfg.workers, seed=cfg.seed, rank=world.rank, world_size=world.world_size)
        self.resident_note = ""
        self.bad_log = BadSampleLog()
        if cfg.resident:
            self.train_loader, self.val_loader = self._resident_loaders()
        else:
            if cfg.data_device != "cpu":  # decode + augment on the GPU; the CPU workers only read bytes
                from ..data.gpu import DeviceBatchLoader, check_data_device

                self.train_loader = DeviceBatchLoader(self.train_ds, batch_size=self.batch_size, train=True,
                                                      device=check_data_device(cfg.data_device), **kw)
            else:
                self.train_loader = build_loader(self.train_ds, batch_size=self.batch_size, train=True, **kw)
            self.val_loader = (build_loader(self.val_ds, batch_size=self.batch_size, train=False, substitute=False,
                                            **kw) if self.val_ds is not None else None)
        self.whiten_note = self._init_from_data()
        self.steps_per_epoch = len(self.train_loader)
        if self.steps_per_epoch == 0:
            raise UserError(f"batch size {self.batch_size} is larger than the training set "
                            f"({len(self.train_ds)} images per process); lower -b")
        self.schedule = LRSchedule(
            cfg.lr_scheduler, self.plan.lr, total_steps=cfg.epochs * self.steps_per_epoch,
            steps_per_epoch=self.steps_per_epoch, warmup_steps=int(cfg.lr_warmup_epochs * self.steps_per_epoch),
            step_size=cfg.lr_step_size, gamma=cfg.lr_gamma, patience=cfg.lr_patience, max_drops=cfg.lr_max_drops)
        self.lookahead = Lookahead(self.model, cfg.epochs * self.steps_per_epoch) if cfg.lookahead else None
        self.reported: set[float] = set()  # --report-at thresholds already crossed
        self.run_dir = self._run_dir()
        self.metrics = MetricsLog(self.run_dir, enabled=world.is_main)
        # Position: the next epoch to run, optimiser steps done in it, and in total.
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.best_top1, self.epoch_stats = -math.inf, [0.0, 0.0, 0.0]
        self._rng_to_restore: dict | None = None
        self._stop_requested = False

    # -- setup ---------------------------------------------------------------------------------
    def _resident_loaders(self):
        """--resident: decode the training (and validation) images once into memory as uint8 and
        serve batches from there, augmented a whole epoch at a time (data.resident)."""
        from ..data.resident import ResidentLoader, decode_all

        cfg, c, h, w = self.cfg, *self.mcfg.input_size
        n = len(self.train_ds) + (len(self.val_ds) if self.val_ds is not None else 0)
        need = n * c * h * w
        total = _memory_bytes()
        if total and need > total // 2:
            raise UserError(f"--resident would hold {n} images of {c}×{h}×{w} in memory ({_size(need)}), more than "
                            f"half of this machine's {_size(total)}: leave out --resident (the streaming loader) "
                            f"or use fewer images (--train-subset)")
        t = time.perf_counter()
        x, y, bad = decode_all(self.train_ds, workers=cfg.workers)
        self.bad_log.add(bad)
        if not len(y):
            raise UserError(f"{cfg.data}: no training image could be read")
        aug = "flip-translate" if cfg.aug == "auto" else cfg.aug
        kw = dict(seed=cfg.seed, rank=self.world.rank, world_size=self.world.world_size)
        train = ResidentLoader(x, y, batch_size=self.batch_size, train=True, aug=aug, translate=cfg.translate, **kw)
        self.train_images = x
        val = None
        if self.val_ds is not None:
            vx, vy, vbad = decode_all(self.val_ds, workers=cfg.workers)
            self.bad_log.add(vbad)
            val = ResidentLoader(vx, vy, batch_size=max(self.batch_size, 500), train=False, **kw)
            n_val = f" + {count(len(vy))} val"
        else:
            n_val = ""
        self.resident_note = (f"decoded {count(len(y))} train{n_val} images into memory "
                              f"({_size(x.numel() + (val.images.numel() if val else 0))} uint8) in "
                              f"{time.perf_counter() - t:.1f}s · augmentation {aug}"
                              + (f" (±{cfg.translate} px)" if aug == "flip-translate" else "") + " on whole batches")
        return train, val

    def _init_from_data(self) -> str:
        """Models that set layers from the data before training (`alexnet-cifar-fast`'s whitening
        filters) get up to 5,000 training images, normalised; not when resuming or starting from
        --weights (the filters are in the weights)."""
        init = getattr(self.model, "init_from_data", None)
        if init is None or self.cfg.resume or self.cfg.weights:
            return ""
        images = getattr(self, "train_images", None)
        if images is None:
            from ..data.resident import decode_all

            sub = take_subset(build_dataset(self.cfg.data, "train", transform=build_transforms(self.mcfg, train=False),
                                            val_split=self.cfg.val_split), 5000)
            images, _, _ = decode_all(sub, workers=self.cfg.workers)
        g = torch.Generator().manual_seed(self.cfg.seed)
        pick = torch.randperm(len(images), generator=g)[:5000]
        init(self.normalize(images[pick].to(self.device)))
        return f"{type(self.model).__name__}.init_from_data: set from {count(len(pick))} training images"

    def _val_dataset(self, transform):
        """The validation split; None with ``--val-split 0`` on data that has no validation part of
        its own (every image trains, no epoch is validated, the last epoch's weights are kept)."""
        cfg = self.cfg
        try:
            return build_dataset(cfg.data, "val", transform=transform, val_split=cfg.val_split,
                                 download=cfg.download and self.world.is_main)
        except UserError:
            if cfg.val_split != 0:
                raise
        if cfg.lr_scheduler == "plateau":
            raise UserError("--val-split 0 leaves no validation images, and the plateau schedule needs "
                            "them: use another --lr-scheduler (step, cosine, onecycle) or --val-split > 0")
        if cfg.test_only:
            raise UserError("--test-only evaluates on the validation split; this run has none (--val-split 0)")
        return None

    def _check_channels(self) -> None:
        """Warn when the 1-channel digits/MNIST net is about to train on colour images (usually a
        forgotten --model): they would be turned grey and shrunk to 28×28."""
        if self.mcfg.input_size[0] != 1 or not self.world.is_main or not len(self.train_ds):
            return
        try:
            first = self.train_ds.load(0)
        except Exception:  # a bad first image is reported by the loader later
            return
        if first.shape[-3] == 3:
            c, h, w = self.mcfg.input_size
            log(self.world, f"warning: {self.cfg.model} is a 1-channel {h}×{w} network and {self.cfg.data} holds "
                            f"colour images: they are made grey and shrunk to {h}×{w}. For photos give "
                            f"--model alexnet-owt (--weights IMAGENET1K_V1 to fine-tune), or --model alexnet-cifar "
                            f"for small images")

    def _pixel_mean(self) -> tuple[list[float], str]:
        """The mean pixel for ``--normalize pixelmean`` and where it came from: the run's config (a
        resumed run), ``--pca``'s pca.json (``alexnet data pca-stats`` writes one), or measured now on
        up to PIXEL_MEAN_IMAGES training images, uncropped by augmentation (the eval transform)."""
        cfg, c = self.cfg, int(self.mcfg.input_size[0])
        if cfg.pixel_mean is not None:
            if len(cfg.pixel_mean) != c:
                raise UserError(f"pixel_mean has {len(cfg.pixel_mean)} values for a {c}-channel model")
            return [float(v) for v in cfg.pixel_mean], "from the run's config"
        if cfg.pca:
            mean = load_pca(cfg.pca).get("mean")
            if mean and len(mean) == c:
                return mean, f"from {cfg.pca}"
        box: list[Any] = [None]
        if self.world.is_main:
            ds = build_dataset(cfg.data, "train", transform=build_transforms(self.mcfg, train=False),
                               val_split=cfg.val_split)
            stats = compute_mean(ds, PIXEL_MEAN_IMAGES, seed=cfg.seed, workers=cfg.workers)
            box = [(stats["mean"], f"measured on {count(stats['images'])} training images")]
        if self.world.distributed:  # one rank reads the images; all use its numbers
            import torch.distributed as dist

            dist.broadcast_object_list(box, src=0)
        mean, note = box[0]
        return list(mean), note

    def _check_data_spec(self) -> None:
        spec = self.cfg.data
        if ":" not in spec and spec not in ("digits",) and not Path(spec).exists():
            raise UserError(f"--data {spec!r}: no such dataset or path (try digits, cifar10:/path, "
                            f"mnist:/path, imagenet:/path, folder:/path, list:/path/train.txt)")

    @property
    def _top5(self) -> bool:
        """Top-5 means something only with more than five classes."""
        return len(self.classes) > 5

    def _run_dir(self) -> Path:
        cfg = self.cfg
        if cfg.resume:
            return Path(cfg.resume)
        name = cfg.name
        if not name:
            data = Path(cfg.data.split(":", 1)[-1]).name if ":" in cfg.data else Path(cfg.data).name
            name = f"{cfg.model}-{data or 'data'}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
            if self.world.distributed:  # every rank must agree on the folder
                import torch.distributed as dist

                box = [name]
                dist.broadcast_object_list(box, src=0)
                name = box[0]
        return Path(cfg.output_dir) / name

    def _meta(self, **extra: Any) -> dict[str, Any]:
        ids = list(getattr(self.train_ds, "class_ids", self.classes))
        from ..data.transforms import trains_with_flips

        if self.pretrained:
            extra["init_weights"] = self.pretrained
        return make_meta(self.cfg.model, self.classes, self.mcfg, self.cfg.model_kwargs,
                         normalize=self.cfg.normalize, class_ids=ids,
                         train_flip=trains_with_flips(self.mcfg, self.cfg.aug), **extra)

    def _write_run_files(self) -> None:
        if not self.world.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "checkpoints").mkdir(exist_ok=True)
        atomic_write(self.run_dir / "config.json", self.cfg.to_json() + "\n")
        atomic_write_json(self.run_dir / "classes.json", {
            "classes": self.classes, "class_ids": list(getattr(self.train_ds, "class_ids", self.classes))})
        self.metrics.open_tensorboard()

    # -- checkpoints ---------------------------------------------------------------------------
    def _state(self, epoch: int, step_in_epoch: int) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(), "schedule": self.schedule.state_dict(),
            "epoch": epoch, "step_in_epoch": step_in_epoch, "global_step": self.global_step,
            "best_top1": self.best_top1, "epoch_stats": list(self.epoch_stats),
            "rng": get_rng_state(), "sampler": self.train_loader.sampler.state_dict(),
            "bad_samples": self.bad_log.state_dict(),
            **({"lookahead": self.lookahead.state_dict()} if self.lookahead is not None else {}),
            "model_name": self.cfg.model, "num_classes": len(self.classes), "classes": self.classes,
            "config": self.cfg.saved_dict(),
        }

    # What best.pt keeps: the weights and where they came from. Resuming reads last.pt only, so the
    # optimiser (momentum: one more copy of the weights, Adam two), scaler, RNG and sampler states
    # stay out of it — for alexnet-owt that is 244 MB instead of 489 MB.
    BEST_KEYS = ("model", "epoch", "step_in_epoch", "global_step", "best_top1", "model_name", "num_classes",
                 "classes", "config")

    def save(self, name: str, epoch: int, step_in_epoch: int) -> None:
        """Write ``checkpoints/<name>``; ``last.pt``'s previous version is kept as ``last.prev.pt``."""
        if self.world.is_main:
            state = self._state(epoch, step_in_epoch)
            if name == "best.pt":
                state = {k: state[k] for k in self.BEST_KEYS}
            save_checkpoint(self.run_dir / "checkpoints" / name, state, keep_previous=name == "last.pt")

    def disk_estimate(self) -> dict[str, int]:
        """Bytes this run writes, roughly: last.pt (weights + optimiser state), best.pt and
        weights.safetensors (weights each); metrics and logs are negligible."""
        weights = sum(t.numel() * t.element_size() for t in self.model.state_dict().values())
        params = sum(p.numel() * p.element_size() for p in self.model.parameters() if p.requires_grad)
        copies = {"sgd": 1 if self.cfg.momentum > 0 else 0, "adam": 2, "adamw": 2}.get(self.cfg.optimizer, 2)
        est = {"checkpoints/last.pt": weights + copies * params, "checkpoints/best.pt": weights,
               "weights.safetensors": weights}
        return est

    def _remove_stale_temps(self) -> None:
        """Temp files of writes that a kill cut short (``.last.pt.XXXXXXXX.tmp``, …) go at the start."""
        if not self.world.is_main:
            return
        removed = remove_stale_temps(self.run_dir) + remove_stale_temps(self.run_dir / "checkpoints")
        if removed:
            size = sum(n for _, n in removed)
            log(self.world, f"removed {plural(len(removed), 'temp file')} ({size / 2**20:.1f} MB) left by an "
                            f"interrupted write: {', '.join(p.name for p, _ in removed[:3])}"
                            f"{'…' if len(removed) > 3 else ''}")

    def resume(self) -> None:
        path = self.run_dir / "checkpoints" / "last.pt"
        self._remove_stale_temps()
        if not path.is_file() and not (self.run_dir / "checkpoints" / "last.prev.pt").is_file():
            raise UserError(f"--resume {self.run_dir}: no checkpoints/last.pt there")
        ck, used, skipped = newest_loadable(path)
        try:  # where the starting weights came from, for the weights.json this run writes next
            import json

            self.pretrained = json.loads((self.run_dir / "weights.json").read_text()).get("init_weights")
        except (OSError, ValueError):
            pass
        for why in skipped:
            log(self.world, f"warning: {why}")
        if used != path:
            log(self.world, f"resuming from the previous checkpoint {used} (epoch {int(ck['epoch']) + 1}, "
                            f"step {int(ck['step_in_epoch'])}, {int(ck['global_step'])} steps done)")
        self._load_model_state(ck, used)
        try:
            self.optimizer.load_state_dict(ck["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise UserError(f"--resume {used}: the optimiser state does not fit this model "
                            f"({str(e).splitlines()[0][:160]})") from None
        self.scaler.load_state_dict(ck["scaler"])
        self.schedule.load_state_dict(ck["schedule"])
        if self.lookahead is not None and "lookahead" in ck:
            self.lookahead.load_state_dict(ck["lookahead"])
        self.epoch, self.step_in_epoch = int(ck["epoch"]), int(ck["step_in_epoch"])
        self.global_step, self.best_top1 = int(ck["global_step"]), float(ck["best_top1"])
        self.epoch_stats = [float(x) for x in ck["epoch_stats"]]
        # --report-at: thresholds passed before the interruption were reported then (with that
        # session's times); this session reports only new ones
        self.reported = {t for t in self.cfg.report_at if self.best_top1 >= t}
        self._rng_to_restore = ck["rng"]
        self.bad_log.load_state_dict(ck.get("bad_samples", {}))
        self.metrics.trim(self.epoch)
        if self.epoch >= self.cfg.epochs:
            self._complete_final_files(ck, used)
            log(self.world, f"{self.run_dir} already finished its {plural(self.epoch, 'epoch')}: nothing to train "
                            f"(--epochs N with N > {self.epoch} trains it further)")
            return
        log(self.world, f"resumed {self.run_dir} at epoch {self.epoch + 1}, step {self.step_in_epoch} "
                        f"of {self.steps_per_epoch} ({self.global_step} steps done)")
        was = int(ck.get("config", {}).get("epochs", self.cfg.epochs))
        if was != self.cfg.epochs and self.cfg.lr_scheduler in ("onecycle", "cosine"):
            log(self.world, f"note: the {self.cfg.lr_scheduler} schedule was laid out for {plural(was, 'epoch')} "
                            f"and is now laid out for {self.cfg.epochs}: the rate goes from "
                            f"{self.optimizer.param_groups[0]['lr']:.3g} to {self.schedule.lr(self.global_step):.3g} "
                            f"here (a new run gives the full schedule)")

    def _load_model_state(self, ck: dict[str, Any], path: Path) -> None:
        """Load ``ck["model"]`` into the model; a checkpoint of another model is one line saying which
        layers differ and how."""
        own = self.model.state_dict()
        found = ck["model"] if isinstance(ck.get("model"), dict) else {}
        diff = shape_differences(own, found)
        if ck["model_name"] != self.cfg.model or diff:
            what = f"{ck['model_name']!r} ({ck['num_classes']} classes)"
            raise UserError(f"--resume {path}: the checkpoint holds {what}, which does not fit {self.cfg.model!r} "
                            f"with {len(self.classes)} classes" + (f" — {diff}" if diff else ""))
        try:
            self.model.load_state_dict(found)
        except (RuntimeError, ValueError) as e:
            raise UserError(f"--resume {path}: the checkpoint does not fit this model "
                            f"({str(e).splitlines()[0][:160]})") from None

    def _complete_final_files(self, ck: dict[str, Any], used: Path) -> None:
        """A finished run whose last steps did not all reach the disk (or whose files were removed):
        write what is missing — best.pt, weights.safetensors + weights.json — and say so."""
        if not self.world.is_main:
            return
        ckdir = self.run_dir / "checkpoints"
        wrote: list[str] = []
        best_path = ckdir / "best.pt"
        best = None
        if best_path.is_file():
            try:
                best = load_checkpoint(best_path)
            except UserError as e:
                log(self.world, f"warning: {e}")
        if best is None:
            # the best epoch's state is gone; the final state is the best we still have
            save_checkpoint(best_path, {k: ck[k] for k in self.BEST_KEYS})
            best = ck
            wrote.append(f"checkpoints/best.pt (from {used.name}: the best epoch's own state was lost)")
        if not ((self.run_dir / "weights.safetensors").is_file() and (self.run_dir / "weights.json").is_file()):
            self._load_model_state(best, best_path)
            row = self._best_metrics_row()
            if math.isfinite(float(best["best_top1"])):
                row["val_top1"] = float(best["best_top1"])
            save_weights(self.model, self.run_dir, self._meta(**row))
            self._load_model_state(ck, used)
            wrote.append("weights.safetensors + weights.json (from checkpoints/best.pt)")
        if wrote:
            log(self.world, f"completed the final files of the interrupted run: {'; '.join(wrote)}")

    def _best_metrics_row(self) -> dict[str, Any]:
        """val_top1, val_top5 and epoch of metrics.csv's best row ({} without one)."""
        import csv

        try:
            rows = list(csv.DictReader(self.metrics.path.open()))
        except OSError:
            return {}
        rows = [r for r in rows if r.get("val_top1") not in (None, "")]
        if not rows:
            return {}
        r = max(rows, key=lambda r: float(r["val_top1"]))
        return {"val_top1": float(r["val_top1"]), "val_top5": float(r["val_top5"]), "epoch": int(r["epoch"])}

    # -- the loop ------------------------------------------------------------------------------
    def _on_sigint(self, signum, frame) -> None:
        if self._stop_requested:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self._stop_requested = True
        log(self.world, "\nCtrl-C: finishing this step and saving a resumable checkpoint "
                        "(press again to stop at once)")

    def train_one_epoch(self) -> bool:
        """Train from the current position to the end of the epoch. False if stopped early."""
        cfg, dev, world = self.cfg, self.device, self.world
        sampler = self.train_loader.sampler
        sampler.set_epoch(self.epoch)
        start = self.step_in_epoch
        if start:
            sampler.start_at(start * self.batch_size)
        else:
            self.epoch_stats = [0.0, 0.0, 0.0]
        it = iter(self.train_loader)
        if self._rng_to_restore is not None:  # after iter(): creating workers draws from the RNG
            set_rng_state(self._rng_to_restore)
            self._rng_to_restore = None
        self.net.train()
        start_epoch = getattr(self.model, "start_epoch", None)  # e.g. alexnet-cifar-fast stops training a layer
        if start_epoch is not None:
            start_epoch(self.epoch)
        if self.frozen is not None:
            self.frozen.set_eval()  # batch norm in the frozen part keeps its statistics
        from tqdm import tqdm

        bar = tqdm(total=self.steps_per_epoch, initial=start, desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                   disable=(not world.is_main) or None, leave=False, dynamic_ncols=True, file=sys.stdout)
        kill_at = int(os.environ.get("ALEXNET_DEBUG_KILL_AT_STEP", "0"))
        nan_at = int(os.environ.get("ALEXNET_DEBUG_NAN_AT_STEP", "0"))
        t0, seen = time.perf_counter(), 0
        # Output to a file or pipe gets no progress bar; it gets a line a minute instead (unless
        # --print-freq asks for lines by step), so a log shows that a long epoch is moving.
        log_every_s = _progress_seconds() if world.is_main and not cfg.print_freq and not sys.stdout.isatty() else 0.0
        last_line = t0
        # Loss and accuracy are summed on the device and read back only every `sync_every` steps: on a
        # GPU each read (.item()) makes the host wait for the device, so the next step's kernels are
        # not queued while this one runs. On a CPU a read costs nothing, so every step is checked.
        sync_every = int(os.environ.get("ALEXNET_DEBUG_SYNC_EVERY", "0")) or (
            CPU_SYNC_EVERY if dev.type == "cpu" else ACCELERATOR_SYNC_EVERY)
        acc = torch.zeros(2, device=dev, dtype=torch.float32 if dev.type == "mps" else torch.float64)
        unsynced_from, last_loss = self.step_in_epoch + 1, float("nan")

        def sync(loss: torch.Tensor, lr: float) -> None:
            """Move the device sums into epoch_stats; stop all ranks if any loss was nan/inf."""
            nonlocal unsynced_from, last_loss
            loss_sum, correct = acc.tolist()  # one host-device transfer
            acc.zero_()
            bad = not math.isfinite(loss_sum)  # a nan/inf loss makes the sum nan/inf
            if world.distributed:
                bad = broadcast_flag(bad, dev)
            if bad:
                where = (f"at epoch {self.epoch + 1}, step {self.step_in_epoch}" if unsynced_from == self.step_in_epoch
                         else f"in epoch {self.epoch + 1}, steps {unsynced_from}–{self.step_in_epoch}")
                raise DivergedError(
                    f"loss became nan/inf {where} (lr {lr:.3g}); stopped without saving — the last good "
                    f"checkpoint is kept in {self.run_dir / 'checkpoints'}. Try a lower --lr or --clip-grad-norm")
            self.epoch_stats[0] += loss_sum
            self.epoch_stats[1] += correct
            unsynced_from, last_loss = self.step_in_epoch + 1, loss.item()

        try:
            for images, labels, bad in it:
                if bad:
                    self.bad_log.add(bad)
                lr = self.schedule.lr(self.global_step)
                for g in self.optimizer.param_groups:
                    g["lr"] = lr * g.get("lr_mult", 1.0)
                labels = labels.to(dev, non_blocking=True)
                x = self.normalize(images.to(dev, non_blocking=True))
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with self.precision.autocast(dev):
                    logits = self.net(x)
                    loss = F.cross_entropy(logits.float(), labels, label_smoothing=cfg.label_smoothing)
                if nan_at and self.global_step + 1 == nan_at:
                    loss = loss * float("nan")
                n = labels.numel()
                with torch.no_grad():
                    acc[0] += loss.detach() * n
                    acc[1] += (logits.argmax(1) == labels).sum()
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                if cfg.clip_grad_norm:
                    self.scaler.unscale_(self.optimizer)
                    nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad_norm)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.step_in_epoch += 1
                self.global_step += 1
                if self.lookahead is not None:
                    self.lookahead.step(self.global_step)
                seen += n
                self.epoch_stats[2] += n
                now = time.perf_counter()
                ips = seen * world.world_size / max(1e-9, now - t0)
                bar.update(1)
                print_now = bool(cfg.print_freq) and self.global_step % cfg.print_freq == 0
                save_now = bool(cfg.checkpoint_every) and self.global_step % cfg.checkpoint_every == 0
                last_step = self.step_in_epoch >= self.steps_per_epoch or (
                    bool(cfg.max_steps) and self.global_step >= cfg.max_steps)
                # Every rank must read back at the same steps (the nan check is collective), so only
                # step counts decide; the timed progress line waits for the next read.
                synced = (self.step_in_epoch % sync_every == 0 or print_now or save_now or last_step
                          or (self._stop_requested and not world.distributed) or self.global_step == kill_at)
                if not synced:
                    continue
                line_now = bool(log_every_s) and now - last_line >= log_every_s and not last_step
                sync(loss, lr)  # before anything is saved: a diverged run never overwrites a checkpoint
                bar.set_postfix(loss=f"{last_loss:.4f}", lr=f"{lr:.3g}", img_s=f"{ips:.0f}", refresh=False)
                if print_now:
                    log(world, f"  step {self.global_step}  loss {last_loss:.4f}  lr {lr:.4g}  {ips:.0f} img/s")
                if line_now:
                    last_line = now
                    left = (self.steps_per_epoch - self.step_in_epoch) * (now - t0) / (self.step_in_epoch - start)
                    log(world, f"  epoch {self.epoch + 1}/{cfg.epochs}  step {self.step_in_epoch}/"
                               f"{self.steps_per_epoch}  loss {last_loss:.4f}  lr {lr:.4g}  {ips:.0f} img/s  "
                               f"epoch ETA {clock(left)}")
                if save_now:
                    self.save("last.pt", self.epoch, self.step_in_epoch)
                if kill_at and self.global_step == kill_at:  # tests: die like a crashed machine
                    os.kill(os.getpid(), signal.SIGKILL)
                stop = self._stop_requested
                if world.distributed:  # every rank must stop at the same step
                    stop = broadcast_flag(stop, dev)
                if stop or (cfg.max_steps and self.global_step >= cfg.max_steps):
                    return False
        finally:
            bar.close()
            self.img_per_s = seen * world.world_size / max(1e-9, time.perf_counter() - t0)
        return True

    def _eval(self, loader=None) -> EvalResult:
        if loader is None and self.val_loader is None:  # --val-split 0: nothing to validate on
            return EvalResult(math.nan, math.nan, math.nan, 0)
        return evaluate(self.model, loader or self.val_loader, self.normalize, self.precision, self.device,
                        self.channels_last, progress=self.world.is_main, bad_log=self.bad_log)

    def _finish_epoch(self, complete: bool, t_epoch: float) -> EvalResult:
        res = self._eval()
        loss_sum, correct, n = all_reduce_sum(self.epoch_stats, self.device)
        train_loss = loss_sum / n if n else float("nan")
        train_top1 = 100.0 * correct / n if n else float("nan")
        groups = self.optimizer.param_groups  # the head's rate: the last group at ×1 (not the biases' multiple)
        lr = next((g["lr"] for g in reversed(groups) if g.get("lr_mult", 1.0) == 1.0), groups[-1]["lr"])
        self.metrics.append({"epoch": self.epoch + 1, "step": self.global_step, "train_loss": train_loss,
                              "train_top1": train_top1, "val_loss": res.loss, "val_top1": res.top1,
                              "val_top5": res.top5, "lr": lr, "time": round(time.perf_counter() - t_epoch, 2),
                              "img_per_s": round(getattr(self, "img_per_s", 0.0), 1)})
        top5 = f"  top-5 {res.top5:6.2f}%" if self._top5 else ""
        val = (f"val loss {res.loss:.4f}  top-1 {res.top1:6.2f}%{top5}" if res.n
               else f"train top-1 {train_top1:6.2f}% (no validation)")
        log(self.world, f"epoch {self.epoch + 1:>3}/{self.cfg.epochs}  train loss {train_loss:.4f}  {val}  "
                        f"lr {lr:.3g}  {time.perf_counter() - t_epoch:.1f}s")
        summary = self.bad_log.end_epoch()
        if summary:
            log(self.world, f"  {summary}")
        self._report_thresholds(res, "", f"epoch {self.epoch + 1}")
        improved = res.top1 > self.best_top1 or self.val_loader is None  # no validation: keep the latest
        if improved and not math.isnan(res.top1):
            self.best_top1 = res.top1
        if complete:
            if self.schedule.epoch_end(100.0 - res.top1):
                log(self.world, f"  validation error stopped improving: lr divided by {1 / self.cfg.lr_gamma:g} "
                                f"({self.schedule.state['drops']} of {self.cfg.lr_max_drops})")
            self.epoch += 1
            self.step_in_epoch = 0
        # last.pt comes last: until it is written, a resume redoes this epoch's end, so a last.pt
        # that says "finished" means best.pt, the weights and the metrics row are all on disk.
        if improved:
            self.save("best.pt", self.epoch, self.step_in_epoch)
            if self.world.is_main:
                scores = dict(val_top1=res.top1, val_top5=res.top5) if res.n else {}  # no NaN in weights.json
                save_weights(self.model, self.run_dir, self._meta(**scores, epoch=self.epoch + (0 if complete else 1)))
        if self.world.is_main and len(self.bad_log):
            self.bad_log.write(self.run_dir)
        self.save("last.pt", self.epoch, self.step_in_epoch)
        return res

    def run(self) -> TrainResult:
        cfg, world = self.cfg, self.world
        if cfg.resume:
            self.resume()
            if self.epoch >= cfg.epochs and not cfg.test_only:
                return TrainResult(self.run_dir, self.best_top1, None, None, self.epoch, self.global_step)
        else:
            self._remove_stale_temps()
        self._write_run_files()
        nparams = sum(p.numel() for p in self.model.parameters())
        log(world, f"run directory: {self.run_dir}")
        est = self.disk_estimate()
        log(world, f"this run writes about {_size(sum(est.values()))} there: "
                   + ", ".join(f"{k} {_size(v)}" for k, v in est.items()))
        log(world, f"model {cfg.model} ({count(nparams)} parameters, {len(self.classes)} classes) · "
                   f"data {cfg.data}: {count(len(self.train_ds))} train / "
                   + (f"{count(len(self.val_ds))} val images" if self.val_ds is not None else
                      "no val images (--val-split 0: every image trains; the last epoch's weights are kept)"))
        log(world, f"recipe {cfg.recipe}: {cfg.optimizer} lr {cfg.lr:g}"
                   + (f" momentum {cfg.momentum:g}" if cfg.optimizer == "sgd" else "")
                   + f" · weight decay {cfg.weight_decay:g} · {cfg.lr_scheduler} schedule · "
                     f"{plural(cfg.epochs, 'epoch')} · batch {cfg.batch_size} · aug {cfg.aug} · "
                     f"input {'×'.join(map(str, self.mcfg.input_size))}")
        if self.pretrained:
            p = self.pretrained
            re_init = (f"; re-initialised (new classes): {', '.join(p['reinitialised'])}" if p["reinitialised"]
                       else "")
            src = f" ({p['source']})" if p["source"] != p["spec"] else ""
            log(world, f"weights from {p['spec']}{src}: {p['loaded']} tensors loaded{re_init}")
        if self.frozen is not None:
            n_frozen = sum(p.numel() for p in self.model.parameters() if not p.requires_grad)
            log(world, f"frozen up to {self.frozen.layer} (--freeze {cfg.freeze}): {count(n_frozen)} of "
                       f"{count(nparams)} parameters; training the rest")
        if cfg.lr_backbone_scale != 1.0:
            log(world, f"the last layer trains at lr {cfg.lr:g}, the layers before it at "
                       f"{cfg.lr_backbone_scale:g}× that")
        log(world, f"device {self.device} · {self.precision.reason} · channels_last "
                   f"{'on' if self.channels_last else 'off'} · {plural(torch.get_num_threads(), 'thread')}"
                    + (f" · {world.world_size} processes, batch {self.batch_size} each" if world.distributed else ""))
        if world.distributed or cfg.scale_lr:
            log(world, self.plan.note)
        for note in (self.resident_note, self.whiten_note):
            if note:
                log(world, note)
        if self.lookahead is not None:
            log(world, "lookahead: every 5 steps the weights move to their running average (airbench)")
        if self.mean_note:
            mean = ", ".join(f"{255 * v:.1f}" for v in cfg.pixel_mean or [])
            log(world, f"mean pixel subtracted (§2): ({mean}) in 0-255 units, {self.mean_note}")
        last: EvalResult | None = None
        if cfg.test_only:
            last = self._eval()
            top5 = f"  top-5 {last.top5:.2f}% (error {last.top5_error:.2f}%)" if self._top5 else ""
            log(world, f"top-1 {last.top1:.2f}% (error {last.top1_error:.2f}%){top5}  loss {last.loss:.4f}  "
                       f"on {last.n} images")
            return TrainResult(self.run_dir, self.best_top1, last, None, self.epoch, self.global_step)
        old = signal.signal(signal.SIGINT, self._on_sigint) if world.is_main else None
        try:
            while self.epoch < cfg.epochs:
                t_epoch = time.perf_counter()
                complete = self.train_one_epoch()
                if self._stop_requested:
                    self.save("last.pt", self.epoch, self.step_in_epoch)
                    log(world, f"stopped: resumable checkpoint saved to {self.run_dir / 'checkpoints' / 'last.pt'}; "
                               f"continue with: alexnet train --resume {self.run_dir}")
                    raise KeyboardInterrupt
                last = self._finish_epoch(complete, t_epoch)
                if not complete:  # --max-steps reached
                    break
        finally:
            if old is not None:
                signal.signal(signal.SIGINT, old)
            self.metrics.close()
        ten = None
        if self.val_ds is not None and (cfg.ten_crop and world.is_main or (cfg.ten_crop and world.distributed)):
            ten = self.ten_crop_eval()
        self._report(last, ten)
        bad, fraction, too_many = self._check_bad_fraction()
        return TrainResult(self.run_dir, self.best_top1, last, ten, self.epoch, self.global_step,
                           bad_files=bad, bad_fraction=fraction, too_many_bad=too_many)

    def _check_bad_fraction(self) -> tuple[int, float, bool]:
        """Distinct unreadable files over all training + validation files; over
        ``cfg.max_bad_fraction`` the run ends with a loud warning (and the CLI exits 1): a model
        trained on stand-ins for a broken dataset is not a finished run."""
        # the shards of the processes are disjoint within an epoch, so their counts add up
        bad = int(all_reduce_sum([float(len(self.bad_log))], self.device)[0])
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
        return bad, fraction, too_many

    @property
    def _mirror(self) -> bool:
        from ..data.transforms import trains_with_flips

        return trains_with_flips(self.mcfg, self.cfg.aug)

    def _chance_warning(self) -> None:
        """Say so when the best validation accuracy does not beat always guessing the largest class."""
        counts = self.train_ds.class_counts()
        val_counts = self.val_ds.class_counts()
        if not sum(val_counts) or not counts:
            return
        largest = max(range(len(counts)), key=lambda i: counts[i])
        chance = 100.0 * val_counts[largest] / sum(val_counts)
        if self.best_top1 > chance + 1e-9:
            return
        cfg = self.cfg
        tips = []
        if not cfg.weights:
            tips.append("start from pretrained weights (--weights IMAGENET1K_V1 with --model alexnet-owt)")
        tips += [f"train longer (--epochs {cfg.epochs * 2})", f"a lower rate (--lr {cfg.lr / 10:g})"]
        log(self.world, f"warning: the best validation top-1 ({self.best_top1:.2f}%) does not beat always guessing "
                        f"the largest class, {self.classes[largest]!r} ({chance:.2f}%): this model has learnt "
                        f"nothing useful. Try: {'; '.join(tips)}")

    def ten_crop_eval(self) -> EvalResult:
        if self.cfg.resident and self.val_loader is not None and tuple(self.train_images.shape[-2:]) == tuple(
                self.mcfg.input_size[-2:]) and self.mcfg.resize <= self.mcfg.input_size[-1] and self._mirror:
            # Images no larger than the input: the five crops coincide, so ten-crop is the image and
            # its mirror five times over; evaluate the two views once.
            from ..data.resident import ResidentLoader

            v = self.val_loader
            return self._eval(ResidentLoader(v.images, v.labels, batch_size=v.batch_size, train=False, seed=self.cfg.seed,
                                             rank=self.world.rank, world_size=self.world.world_size, mirror_views=True))
        tf = build_transforms(self.mcfg, train=False, ten_crop=True, mirror=self._mirror)
        ds = build_dataset(self.cfg.data, "val", transform=tf, val_split=self.cfg.val_split)
        loader = build_loader(ds, batch_size=max(1, self.batch_size // 10), train=False,
                              workers=self.cfg.workers, seed=self.cfg.seed, rank=self.world.rank,
                              world_size=self.world.world_size, substitute=False)
        return self._eval(loader)

    def _report_thresholds(self, res: EvalResult, how: str, when: str) -> None:
        """--report-at: say once, with the wall time since the start, each threshold ``res`` passes."""
        for target in sorted(self.cfg.report_at):
            if target not in self.reported and res.n and res.top1 >= target:
                self.reported.add(target)
                log(self.world, f"  validation top-1 reached {target:g} % {how}after "
                                f"{clock(time.perf_counter() - self.t_start)} ({when}, {res.top1:.2f} %; "
                                f"wall time since the start, decoding included)")

    def _report(self, last: EvalResult | None, ten: EvalResult | None) -> None:
        w = self.world
        if last is not None and self.val_loader is None:
            log(w, "\nno validation split (--val-split 0): weights.safetensors holds the last epoch's weights")
        elif last is not None:
            top5 = f", top-5 {last.top5:.2f}% (error {last.top5_error:.2f}%)" if self._top5 else ""
            log(w, f"\nbest validation top-1 {self.best_top1:.2f}% · last: top-1 {last.top1:.2f}% "
                    f"(error {last.top1_error:.2f}%){top5}")
        if ten is not None and last is not None:
            crops = ("ten-crop (§4.1)" if self._mirror
                     else "five-crop (ten-crop without mirrors: trained without flips)")
            top5 = (f", top-5 {ten.top5:.2f}% (error {ten.top5_error:.2f}%) vs centre crop {last.top1:.2f}% / "
                    f"{last.top5:.2f}%" if self._top5 else f" vs centre crop {last.top1:.2f}%")
            log(w, f"{crops}: top-1 {ten.top1:.2f}% (error {ten.top1_error:.2f}%){top5}")
            # a threshold the centre crop never reached but the averaged views did is reached at the
            # end of training, after the ten-crop pass (its time included)
            self._report_thresholds(ten, f"with {crops.split(' ')[0]} averaging ", "end of training")
        if self.cfg.report_at and last is not None:
            log(w, f"wall time {clock(time.perf_counter() - self.t_start)} from the start, decoding and the final "
                   f"evaluation included")
        if last is not None and self.val_ds is not None:
            self._chance_warning()
        if self.bad_log and len(self.bad_log):
            log(w, f"{len(self.bad_log)} bad samples skipped in all: listed in {self.run_dir / 'bad_samples.txt'}")
        log(w, f"wrote {self.run_dir}/: config.json classes.json metrics.csv checkpoints/{{last,best}}.pt "
                f"weights.safetensors weights.json")
        log(w, (f"next: alexnet evaluate {self.run_dir} --data {self.cfg.data}   ·   " if self.val_ds is not None
                 else "next: ") + f"alexnet predict {self.run_dir} IMAGE")


def _memory_bytes() -> int:
    """This machine's physical memory in bytes (0 if unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def _size(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} GB"


def fit(config: TrainConfig) -> TrainResult:
    """Train as ``config`` says; returns where the run went and how it did."""
    cfg = config.validate()
    device = resolve_device(cfg.device)
    world = init_distributed(device.type)
    try:
        return Trainer(cfg, world, device).run()
    finally:
        shutdown()
