"""The data layer: datasets, decoding, transforms, loaders, checks. Imports only `alexnet.core`.

    from alexnet.data import build_dataset, build_transforms, build_loader, normalizer_for

    ds = build_dataset("digits", "train", build_transforms(cfg, train=True))
    loader = build_loader(ds, batch_size=64, train=True, workers=2, seed=0)
    for images, labels, bad in loader:      # uint8 [B, C, H, W], int64 [B], [(path, reason)]
        x = normalizer(images.to(device))   # float32, normalised on the device

See docs/data.md for every dataset spec and every ``alexnet data`` command.

The names below are imported on first use: `alexnet.engine.config` (read by the CLI to build its
help, without torch) imports `alexnet.data.augment`, which is plain Python.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "augment": ("AugPlan", "Augmentation"),
    "cache": ("CacheDataset",),
    "cache_build": ("build_cache",),
    "check": ("CheckReport", "check_dataset", "format_report", "index_folder", "write_list_files"),
    "datasets": ("KINDS", "FileDataset", "ImageDataset", "SubsetDataset", "TensorImageDataset", "build_dataset",
                 "default_eval_split", "parse_spec", "read_list", "split_indices", "take_subset"),
    "decode": ("DEFAULT_MAX_PIXELS", "BadImageError", "ImageInfo", "decode_image", "decode_image_info",
               "sniff_format"),
    "gpu": ("DeviceBatchLoader", "augment_batch"),
    "imagenet": ("Devkit", "imagenet_val_relayout", "read_devkit"),
    "loader": ("BadSample", "BadSampleLog", "Batch", "ResumableSampler", "SafeDataset", "build_loader", "collate",
               "mix_seed", "summarize_bad", "LitBatch"),
    "pca": ("compute_mean", "compute_pca_stats"),
    "pipeline": ("TrainingData", "TrainingDataConfig", "open_training_data"),
    "shards": ("ShardDataset",),
    "shards_build": ("build_shards",),
    "samples": ("SampleList",),
    "transforms": ("IMAGENET_PCA", "ImageTransform", "Normalizer", "PCALighting", "TenCrop", "ToChannels",
                   "build_transforms", "load_pca", "normalizer_for", "resolve_aug"),
}
_LAZY = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "build_dataset", "KINDS", "default_eval_split", "take_subset", "SubsetDataset", "parse_spec", "split_indices",
    "read_list", "ImageDataset", "FileDataset",
    "TensorImageDataset", "build_transforms", "resolve_aug", "ImageTransform", "PCALighting", "TenCrop",
    "ToChannels", "IMAGENET_PCA", "load_pca", "Normalizer", "normalizer_for", "compute_pca_stats", "compute_mean",
    "build_loader", "collate", "Batch", "BadSample", "ResumableSampler", "SafeDataset", "BadSampleLog", "summarize_bad",
    "mix_seed", "decode_image", "decode_image_info", "sniff_format", "BadImageError", "ImageInfo",
    "DEFAULT_MAX_PIXELS", "check_dataset", "format_report", "CheckReport", "write_list_files", "index_folder",
    "imagenet_val_relayout", "read_devkit", "Devkit", "CacheDataset", "build_cache", "DeviceBatchLoader",
    "augment_batch", "TrainingDataConfig", "TrainingData", "open_training_data", "AugPlan", "Augmentation",
    "ShardDataset", "build_shards",
    "LitBatch", "SampleList",
]
