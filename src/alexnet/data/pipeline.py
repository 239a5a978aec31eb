"""Which data path a training run takes: the CPU loader, the GPU path or the resident loader.

    config = TrainingDataConfig(data="cifar10:/data/cifar10", aug="auto", resident=True, ...)
    data = open_training_data(config, model_cfg, model_device="cpu")   # the train and val datasets
    data.build_loaders(batch_size=512, bad_log=BadSampleLog())          # data.train_loader, data.val_loader

Three paths yield the same batches ``(uint8 images [B, C, H, W], int64 labels, bad samples)``:

- the CPU loader (`build_loader`): worker processes decode and augment each image;
- the GPU path (``--data-device cuda``, `DeviceBatchLoader`): the workers read bytes, the GPU
  decodes and augments;
- the resident loader (``--resident``, `ResidentLoader`): every image is decoded once, as the
  network sees it at test time, and whole batches are augmented in memory — on the GPU when the
  model trains on one whose free memory holds the set (`resident_placement`), else on the host.

The choice is made here from plain values (`TrainingDataConfig`), so the engine only asks for
loaders; docs/architecture.md shows where this sits in a run.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader

from ..core.errors import UserError
from .augment import AugPlan
from .base import take_subset
from .datasets import build_dataset
from .loader import BadSampleLog, build_loader
from .transforms import build_transforms


@dataclass(frozen=True)
class TrainingDataConfig:
    """The data settings of a training run (the fields of the engine's `TrainConfig` of the same
    names) and the process's place among ``world_size`` processes."""

    data: str
    val_split: float
    train_subset: int = 0
    download: bool = False
    aug: str = "auto"
    pca: str | None = None
    pca_scale: str = "sqrt"
    translate: int = 2
    resident: bool = False
    resident_device: str = ""  # where a resident set lives: cpu, cuda, or "" (not decided yet)
    data_device: str = "cpu"
    workers: int = 0
    seed: int = 0
    rank: int = 0
    world_size: int = 1


def close_loader(loader: Any) -> None:
    """End ``loader``'s worker processes now. A DataLoader with persistent workers keeps them until
    it is collected, and a process that leaves with ``os._exit`` (a torchrun rank) orphans them: they
    linger holding its output pipes until they notice. A wrapper holding its DataLoader as
    ``_loader`` (`DeviceBatchLoader`) is closed through it; a loader without workers is left as it is.
    The loader stays usable: iterating it again starts new workers."""
    inner = getattr(loader, "_loader", loader)
    it = getattr(inner, "_iterator", None)
    if it is not None and hasattr(it, "_shutdown_workers"):
        it._shutdown_workers()
    if isinstance(inner, DataLoader):
        inner._iterator = None


@dataclass
class TrainingData:
    """A run's datasets and, after `build_loaders`, its loaders. ``val_ds`` is None with
    ``--val-split 0`` on data that has no validation part of its own."""

    config: TrainingDataConfig
    model_cfg: Any
    train_ds: Any
    val_ds: Any | None
    aug_plan: AugPlan  # the training augmentation, resolved once for this data path
    train_loader: Any = None
    val_loader: Any = None
    train_images: torch.Tensor | None = None  # the resident loader's decoded training images
    note: str = ""  # one line on what the resident loader did ("" otherwise)
    resident_on: torch.device | None = None  # the device the resident set is kept on (None: host memory)
    placement_note: str = ""  # why there (`ResidentPlacement.reason`), added to ``note``

    def build_loaders(self, batch_size: int, bad_log: BadSampleLog) -> None:
        """Set ``train_loader`` and ``val_loader`` (None without a validation split) for the path
        the config names; unreadable files found while decoding go to ``bad_log``."""
        c = self.config
        if c.resident:
            self._resident_loaders(batch_size, bad_log)
            return
        kw = dict(workers=c.workers, seed=c.seed, rank=c.rank, world_size=c.world_size)
        if c.data_device != "cpu":  # decode + augment on the GPU; the CPU workers only read bytes
            from .gpu import DeviceBatchLoader, check_data_device

            self.train_loader = DeviceBatchLoader(self.train_ds, batch_size=batch_size, train=True,
                                                  device=check_data_device(c.data_device), **kw)
        else:
            # a raw cache's batches leave PCA lighting to the training step (`LitBatch`)
            self.train_loader = build_loader(self.train_ds, batch_size=batch_size, train=True, defer_lighting=True,
                                             **kw)
        self.val_loader = (build_loader(self.val_ds, batch_size=batch_size, train=False, substitute=False, **kw)
                           if self.val_ds is not None else None)

    def close(self) -> None:
        """End the loaders' worker processes (`close_loader`); the loaders stay usable."""
        for loader in (self.train_loader, self.val_loader):
            if loader is not None:
                close_loader(loader)

    def _resident_loaders(self, batch_size: int, bad_log: BadSampleLog) -> None:
        """--resident: decode the training (and validation) images once into memory as uint8 and
        serve batches from there, augmented a whole epoch at a time (data.resident)."""
        from .resident import ResidentLoader, decode_all, stored_size

        cfg, c, (h, w) = self.config, self.model_cfg.input_size[0], stored_size(self.aug_plan)
        n = len(self.train_ds) + (len(self.val_ds) if self.val_ds is not None else 0)
        need, on = self.resident_bytes(), self.resident_on or torch.device("cpu")
        total = memory_bytes()
        if total and need > total // 2:
            raise UserError(f"--resident would hold {n} images of {c}×{h}×{w} in memory ({format_bytes(need)}), "
                            f"more than half of this machine's {format_bytes(total)}: leave out --resident (the "
                            f"streaming loader) or use fewer images (--train-subset)")
        t = time.perf_counter()
        x, y, bad = decode_all(self.train_ds, workers=cfg.workers)
        x, y = x.to(on), y.to(on)  # the host copy is dropped
        bad_log.add(bad)
        if not len(y):
            raise UserError(f"{cfg.data}: no training image could be read")
        plan = self.aug_plan
        kw = dict(seed=cfg.seed, rank=cfg.rank, world_size=cfg.world_size)
        self.train_loader = ResidentLoader(x, y, batch_size=batch_size, train=True, aug=plan, **kw)
        self.train_images = x
        val = None
        if self.val_ds is not None:
            vx, vy, vbad = decode_all(self.val_ds, workers=cfg.workers)
            bad_log.add(vbad)
            val = ResidentLoader(vx.to(on), vy.to(on), batch_size=max(batch_size, 500), train=False, **kw)
            n_val = f" + {len(vy):,} val"
        else:
            n_val = ""
        self.val_loader = val
        self.note = (f"decoded {len(y):,} train{n_val} images into memory "
                     f"({format_bytes(x.numel() + (val.images.numel() if val else 0))} uint8) in "
                     f"{time.perf_counter() - t:.1f}s · augmentation {plan.name}"
                     + (f" (±{plan.translate} px)" if plan.name == "flip-translate" else "")
                     + (f" ({plan.size[0]}×{plan.size[1]} crops of {h}×{w})" if (h, w) != tuple(plan.size) else "")
                     + " on whole batches"
                     + (f" · {self.placement_note}" if self.placement_note else ""))

    def resident_bytes(self) -> int:
        """Bytes of the resident set: every training and validation image as uint8 at the size it is
        kept at (`stored_size`: the input size, or the larger square a recipe crops it out of)."""
        from .resident import stored_size

        n = len(self.train_ds) + (len(self.val_ds) if self.val_ds is not None else 0)
        h, w = stored_size(self.aug_plan)
        return n * self.model_cfg.input_size[0] * h * w

    def resident_placement(self, device: torch.device) -> "ResidentPlacement":
        """Where the resident set of a run whose model is on ``device`` lives and is augmented, and
        why: the recorded choice (``config.resident_device``), else decided now from the free
        memory of a CUDA ``device`` (`decide_resident_placement`). Pair it with `place_resident`."""
        free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" and not self.config.resident_device else 0
        return decide_resident_placement(device, self.resident_bytes(), free, self.config.resident_device)

    def place_resident(self, placement: "ResidentPlacement", device: torch.device) -> None:
        """Keep the resident set where ``placement`` says (``device`` for ``cuda``): `build_loaders`
        then moves it there once, and the loaders augment and index it there."""
        self.resident_on = device if placement.where == "cuda" else None
        self.placement_note = placement.reason

    def ten_crop_loader(self, batch_size: int, mirror: bool) -> Any:
        """The validation images as ten crops (five without ``mirror``) per image, for the final
        evaluation (§4.1). Resident images no larger than the network's input: the five crops
        coincide, so ten-crop is the image and its mirror five times over and the loader yields
        the two views once."""
        c, m = self.config, self.model_cfg
        if (c.resident and self.val_loader is not None and mirror and m.resize <= m.input_size[-1]
                and tuple(self.train_images.shape[-2:]) == tuple(m.input_size[-2:])):
            from .resident import ResidentLoader

            v = self.val_loader
            return ResidentLoader(v.images, v.labels, batch_size=v.batch_size, train=False, seed=c.seed,
                                  rank=c.rank, world_size=c.world_size, mirror_views=True)
        tf = build_transforms(m, train=False, ten_crop=True, mirror=mirror)
        ds = build_dataset(c.data, "val", transform=tf, val_split=c.val_split)
        return build_loader(ds, batch_size=max(1, batch_size // 10), train=False, workers=c.workers, seed=c.seed,
                            rank=c.rank, world_size=c.world_size, substitute=False,
                            persistent_workers=False)  # one pass: its workers end with it

    def sample_images(self, n: int) -> torch.Tensor:
        """Up to ``n`` training images as the network sees them at test time (uint8): the resident
        images when there are any, else the first of a stratified sample of ``n``, decoded now."""
        from .resident import center_crop, decode_all

        if self.train_images is not None:  # held larger than the input for crops out of the centre square
            size = tuple(self.model_cfg.input_size[-2:])
            x = self.train_images
            return x if tuple(x.shape[-2:]) == size else center_crop(x, size)

        c = self.config
        sub = take_subset(build_dataset(c.data, "train", transform=build_transforms(self.model_cfg, train=False),
                                        val_split=c.val_split), n)
        images, _, _ = decode_all(sub, workers=c.workers)
        return images


def open_training_data(config: TrainingDataConfig, model_cfg: Any, model_device: str) -> TrainingData:
    """The training and validation datasets of a run (``config.train_subset`` applied), with the
    transforms of its data path: the resident loader decodes the images as the network sees them
    at test time and augments later; the others augment each image as it is read. ``model_device``
    is the device type the model trains on (the GPU path needs a CUDA model)."""
    c = config
    if c.data_device != "cpu":
        from .gpu import check_data_device

        check_data_device(c.data_device)  # before any data is read: no GPU → one line
        if model_device != "cuda":
            raise UserError(f"--data-device {c.data_device} puts the batches on the GPU, but the model "
                            f"trains on {model_device}; add --device cuda")
    # The augmentation is resolved once, for the path that runs it; every later use reads this plan.
    plan = AugPlan.resolve(c.aug, model_cfg, path="resident" if c.resident else "cpu", pca=c.pca or None,
                           pca_scale=c.pca_scale, translate=c.translate)
    val_tf = build_transforms(model_cfg, train=False)
    train_tf = resident_transform(model_cfg, plan) if c.resident else build_transforms(model_cfg, train=True, aug=plan)
    download = c.download and c.rank == 0  # one process downloads
    train_ds = build_dataset(c.data, "train", transform=train_tf, val_split=c.val_split, download=download)
    try:
        val_ds = build_dataset(c.data, "val", transform=val_tf, val_split=c.val_split, download=download)
    except UserError:
        if c.val_split != 0:
            raise
        val_ds = None  # every image trains, no epoch is validated
    # The sample is the same for every seed, so runs that differ in seed see the same images.
    return TrainingData(c, model_cfg, take_subset(train_ds, c.train_subset), val_ds, plan)


@dataclass(frozen=True)
class ResidentPlacement:
    """Where a resident set lives and is augmented (``cpu``: host memory, or ``cuda``) and why,
    as said at the start of the run ("" when nothing needs saying: a CPU run)."""

    where: str
    reason: str = ""


GPU_ROOM = 4  # the set, an epoch's augmented copy and translate's working copies (padded, shifted)


def decide_resident_placement(device: torch.device, need: int, free: int, recorded: str = "") -> ResidentPlacement:
    """The resident set of ``need`` bytes for a model on ``device`` (``free`` bytes free there): on a
    CUDA device when ``GPU_ROOM`` times the set fits in half its free memory (the rest is the
    model's), so that no batch crosses PCIe (airbench's way); in host memory otherwise. A
    ``recorded`` choice (a resumed run, a run's config.json) is kept when the device can take it."""
    d = torch.device(device)
    if d.type != "cuda":
        why = f"resident set in host memory (the run's config said {recorded}; this run trains on {d.type})"
        return ResidentPlacement("cpu", why if recorded == "cuda" else "")
    if recorded:
        where = f"on {d}" if recorded == "cuda" else f"in host memory (each batch copied to {d})"
        return ResidentPlacement(recorded, f"resident set {where}, as recorded in the run's config")
    fits = GPU_ROOM * need <= free // 2
    sizes = (f"{GPU_ROOM}× its {format_bytes(need)} {'fits' if fits else 'does not fit'} in half of "
             f"{format_bytes(free)} free")
    if fits:
        return ResidentPlacement("cuda", f"resident set and its augmentation on {d} ({sizes}): no batch crosses PCIe")
    return ResidentPlacement("cpu", f"resident set in host memory, each batch copied to {d} ({sizes} there)")


def resident_transform(model_cfg: Any, plan: AugPlan):
    """How the resident loader decodes the training images: as the network sees them at test
    time, except for the recipes that crop the input out of a larger centre square (`stored_size`:
    ``paper``'s 24×24 crops of 32×32 images, §4.1), which keep that square."""
    from types import SimpleNamespace

    from .resident import stored_size

    size = stored_size(plan)
    if size == tuple(plan.size):
        return build_transforms(model_cfg, train=False)
    return build_transforms(SimpleNamespace(input_size=(plan.channels, *size), resize=plan.resize), train=False)


def memory_bytes() -> int:
    """This machine's physical memory in bytes (0 if unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def format_bytes(n: float) -> str:
    """``512`` → ``512 bytes``, ``1.5e8`` → ``150 MB`` (decimal units, three digits)."""
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} GB"


__all__ = ["TrainingDataConfig", "TrainingData", "open_training_data", "memory_bytes", "format_bytes",
           "ResidentPlacement", "decide_resident_placement"]
