"""Checks and data-dependent choices made once, before a run's first step.

Each check turns a mistake that would fail late (or silently train the wrong thing) into one line
at the start: an unknown data spec, a missing C++ compiler for ``--compile``, a 1-channel network
given colour photos, no validation split where one is needed. The data-dependent settings are
the mean pixel of ``--normalize pixelmean`` (§2) and the layers some models set from the data.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from ..core.errors import UserError
from ..data import TrainingData, TrainingDataConfig, build_dataset, build_transforms, compute_mean, load_pca
from .config import TrainConfig
from .distributed import World, broadcast_object
from .progress import count, log

PIXEL_MEAN_IMAGES = 1000  # --normalize pixelmean: images the mean pixel is measured on (seeded choice)
INIT_FROM_DATA_IMAGES = 5000  # alexnet-cifar-fast's whitening filters: images they are computed on


def check_data_spec(spec: str) -> None:
    if ":" not in spec and spec not in ("digits",) and not Path(spec).expanduser().exists():
        raise UserError(f"--data {spec!r}: no such dataset or path (try digits, cifar10:/path, "
                        f"mnist:/path, imagenet:/path, folder:/path, list:/path/train.txt)")


def class_counts(data: TrainingData) -> list[int] | None:
    """Images per class over the training and validation splits together; None when a split cannot
    count them without reading every sample (streamed shards): then no class is called empty."""
    counts = None
    for ds in (data.train_ds, data.val_ds):
        if ds is None:
            continue
        count = getattr(ds, "class_counts", None)
        if count is None:
            return None
        got = count()
        counts = got if counts is None else [a + b for a, b in zip(counts, got)]
    return counts


def check_validation(cfg: TrainConfig, data: TrainingData, world: World) -> None:
    """Without a validation split (``--val-split 0``) the plateau schedule and --test-only have
    nothing to go on; an empty training split has nothing to train on, and one class nothing to
    tell apart (it would score 100 %). A class folder without images is a class the model can never
    predict: with fewer than two classes that have images, one line; otherwise a warning naming it."""
    if data.val_ds is None:
        if cfg.lr_scheduler == "plateau":
            raise UserError("--val-split 0 leaves no validation images, and the plateau schedule needs "
                            "them: use another --lr-scheduler (step, cosine, onecycle) or --val-split > 0")
        if cfg.test_only:
            raise UserError("--test-only evaluates on the validation split; this run has none (--val-split 0)")
    if len(data.train_ds) == 0:
        raise UserError(f"{cfg.data}: the training split is empty")
    classes = list(data.train_ds.classes)
    if len(classes) < 2:
        raise UserError(f"{cfg.data}: only one class ({classes[0] if classes else 'none'!r}); a classifier needs at "
                        f"least two (give each class its own sub-folder)")
    empty = [c for c, n in zip(classes, class_counts(data) or []) if n == 0]
    if not empty:
        return
    names = ", ".join(map(repr, empty[:5])) + (" …" if len(empty) > 5 else "")
    if len(classes) - len(empty) < 2:
        full = [c for c in classes if c not in empty]
        raise UserError(f"{cfg.data}: only one class has images ({full[0] if full else 'none'!r}; no images in "
                        f"{names}); a classifier needs at least two")
    log(world, f"warning: {len(empty)} of {len(classes)} classes have no images in {cfg.data} ({names}): the model "
               f"keeps an output for each that it can never learn to predict")


def check_compiler(device: torch.device) -> None:
    """torch.compile on a CPU writes C++ and builds it; without a compiler it would fail at the
    first step with a long traceback, so say so before the run starts."""
    if device.type == "cpu" and not any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++")
                                        if c):
        raise UserError("--compile on a CPU needs a C++ compiler (g++ or clang++; or set CXX); "
                        "install one or train without --compile")


def check_channels(cfg: TrainConfig, world: World, mcfg: Any, train_ds: Any) -> None:
    """Warn when the 1-channel digits/MNIST net is about to train on colour images (usually a
    forgotten --model): they would be turned grey and resized to its input. Grey files are not
    colour images, though a folder's loader hands them over as RGB: their own mode decides."""
    from ..data.datasets import first_image

    if mcfg.input_size[0] != 1 or not world.is_main or not len(train_ds):
        return
    seen = first_image(cfg.data)[2]  # a folder's or list's first image, from its header
    if seen is None:
        try:
            seen = tuple(train_ds.load(0).shape[-3:])
        except Exception:  # a bad first image is reported by the loader later
            return
    if seen[0] == 3:
        c, h, w = mcfg.input_size
        log(world, f"warning: {cfg.model} is a 1-channel {h}×{w} network and {cfg.data} holds "
                   f"colour images: they are made grey and resized to {h}×{w}. For photos give "
                   f"--model alexnet-owt (--weights IMAGENET1K_V1 to fine-tune), or --model alexnet-cifar "
                   f"for small images")


FEW_FOR_SCRATCH = 10_000  # fewer training images than this are few for an ImageNet-sized network from scratch


def note_few_images(cfg: TrainConfig, world: World, mcfg: Any, n_train: int) -> None:
    """Say at the start, not after every epoch has run, that a few thousand images are few to train
    an ImageNet-sized network from scratch, and how to start from ImageNet's weights instead."""
    from ..models.pretrained import imagenet_start

    if cfg.weights or cfg.resume or not world.is_main or min(mcfg.input_size[1:]) < 150 or n_train >= FEW_FOR_SCRATCH:
        return
    log(world, f"note: {n_train:,} training images are few to train {cfg.model} from scratch; starting from "
               f"ImageNet's weights learns far more from them: {imagenet_start(cfg.model)} (recipe finetune)")


def pixel_mean(cfg: TrainConfig, world: World, mcfg: Any) -> tuple[list[float], str]:
    """The mean pixel for ``--normalize pixelmean`` and where it came from: the run's config (a
    resumed run), ``--pca``'s pca.json (``alexnet data pca-stats`` writes one), or measured now on
    up to PIXEL_MEAN_IMAGES training images, uncropped by augmentation (the eval transform)."""
    c = int(mcfg.input_size[0])
    if cfg.pixel_mean is not None:
        if len(cfg.pixel_mean) != c:
            raise UserError(f"pixel_mean has {len(cfg.pixel_mean)} values for a {c}-channel model")
        return [float(v) for v in cfg.pixel_mean], "from the run's config"
    if cfg.pca:
        mean = load_pca(cfg.pca).get("mean")
        if mean and len(mean) == c:
            return mean, f"from {cfg.pca}"
    measured: Any = None
    if world.is_main:
        ds = build_dataset(cfg.data, "train", transform=build_transforms(mcfg, train=False), val_split=cfg.val_split)
        stats = compute_mean(ds, PIXEL_MEAN_IMAGES, seed=cfg.seed, workers=cfg.workers)
        measured = (stats["mean"], f"measured on {count(stats['images'])} training images")
    mean, note = broadcast_object(measured)  # one rank reads the images; all use its numbers
    return list(mean), note


def init_from_data(cfg: TrainConfig, model: nn.Module, data: TrainingData, normalize: Callable,
                   device: torch.device) -> str:
    """Models that set layers from the data before training (`alexnet-cifar-fast`'s whitening
    filters) get up to INIT_FROM_DATA_IMAGES training images, normalised; not when resuming or
    starting from --weights (the filters are in the weights). The line saying so, or ""."""
    init = getattr(model, "init_from_data", None)
    if init is None or cfg.resume or cfg.weights:
        return ""
    images = data.sample_images(INIT_FROM_DATA_IMAGES)
    g = torch.Generator().manual_seed(cfg.seed)
    pick = torch.randperm(len(images), generator=g)[:INIT_FROM_DATA_IMAGES]
    init(normalize(images[pick.to(images.device)].to(device)))  # a resident set may be on the GPU
    return f"{type(model).__name__}.init_from_data: set from {count(len(pick))} training images"


def data_config(cfg: TrainConfig, world: World) -> TrainingDataConfig:
    """The data settings of ``cfg`` for this process."""
    return TrainingDataConfig(
        data=cfg.data, val_split=cfg.val_split, train_subset=cfg.train_subset, download=cfg.download, aug=cfg.aug,
        pca=cfg.pca, pca_scale=cfg.pca_scale, translate=cfg.translate, resident=cfg.resident,
        resident_device=cfg.resident_device, data_device=cfg.data_device, workers=cfg.workers, seed=cfg.seed,
        rank=world.rank, world_size=world.world_size)


def place_resident(cfg: TrainConfig, world: World, data: TrainingData, device: torch.device) -> None:
    """--resident: where the decoded set lives and is augmented — on a CUDA ``device`` whose free
    memory holds it, else in host memory (data/pipeline.py). Decided once, at the run's start, on
    rank 0 for every rank; recorded in ``cfg.resident_device`` (config.json) and kept on resume."""
    if not cfg.resident:
        return
    placement = broadcast_object(data.resident_placement(device) if world.is_main else None)
    cfg.resident_device = placement.where
    data.place_resident(placement, device)
