"""The data layer: datasets, decoding, transforms, loaders, checks. Imports only `alexnet.core`.

    from alexnet.data import build_dataset, build_transforms, build_loader, normalizer_for

    ds = build_dataset("digits", "train", build_transforms(cfg, train=True))
    loader = build_loader(ds, batch_size=64, train=True, workers=2, seed=0)
    for images, labels, bad in loader:      # uint8 [B, C, H, W], int64 [B], [(path, reason)]
        x = normalizer(images.to(device))   # float32, normalised on the device

See docs/data.md for every dataset spec and every ``alexnet data`` command.
"""

from .cache import CacheDataset
from .cache_build import build_cache
from .check import CheckReport, check_dataset, format_report, index_folder, write_list_files
from .datasets import (KINDS, FileDataset, ImageDataset, SubsetDataset, TensorImageDataset, build_dataset,
                       default_eval_split, parse_spec, read_list, split_indices, take_subset)
from .decode import (DEFAULT_MAX_PIXELS, BadImageError, ImageInfo, decode_image, decode_image_info,
                     sniff_format)
from .gpu import DeviceBatchLoader, augment_batch
from .imagenet import Devkit, imagenet_val_relayout, read_devkit
from .loader import (BadSample, BadSampleLog, Batch, ResumableSampler, SafeDataset, build_loader, collate, mix_seed,
                     summarize_bad)
from .pca import compute_mean, compute_pca_stats
from .pipeline import TrainingData, TrainingDataConfig, open_training_data
from .transforms import (IMAGENET_PCA, ImageTransform, Normalizer, PCALighting, TenCrop, ToChannels,
                         build_transforms, load_pca, normalizer_for, resolve_aug)

__all__ = [
    "build_dataset", "KINDS", "default_eval_split", "take_subset", "SubsetDataset", "parse_spec", "split_indices",
    "read_list", "ImageDataset", "FileDataset",
    "TensorImageDataset", "build_transforms", "resolve_aug", "ImageTransform", "PCALighting", "TenCrop",
    "ToChannels", "IMAGENET_PCA", "load_pca", "Normalizer", "normalizer_for", "compute_pca_stats", "compute_mean",
    "build_loader", "collate", "Batch", "BadSample", "ResumableSampler", "SafeDataset", "BadSampleLog", "summarize_bad",
    "mix_seed", "decode_image", "decode_image_info", "sniff_format", "BadImageError", "ImageInfo",
    "DEFAULT_MAX_PIXELS", "check_dataset", "format_report", "CheckReport", "write_list_files", "index_folder",
    "imagenet_val_relayout", "read_devkit", "Devkit", "CacheDataset", "build_cache", "DeviceBatchLoader",
    "augment_batch", "TrainingDataConfig", "TrainingData", "open_training_data",
]
