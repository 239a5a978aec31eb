"""The RGB eigen-decomposition behind AlexNet's colour augmentation (§4.1), from your own data.

"We perform PCA on the set of RGB pixel values throughout the ImageNet training set" — here on
up to ``max_images`` images of a training set (evenly spread, a seeded choice), pixel values
scaled to [0, 1], which is the scale `PCALighting` expects.
"""

from __future__ import annotations

import random
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from ..core.errors import UserError


def compute_pca_stats(dataset: Dataset, max_images: int = 2000, *, seed: int = 0, workers: int = 0,
                      progress: bool = False) -> dict[str, Any]:
    """``{"eigval": [λ1 ≥ λ2 ≥ λ3], "eigvec": 3×3 with eigenvectors as columns, "mean": [3],
    "std": [3], "images": n, "pixels": n}`` of the RGB covariance of ``dataset``'s images.

    ``dataset`` yields ``(uint8 [3, H, W], label)`` (give it a resizing transform to keep this
    fast); bad files are skipped through `SafeDataset`.
    """
    from tqdm import tqdm

    loader = _sample_loader(dataset, max_images, seed, workers, "pca-stats")
    s1 = torch.zeros(3, dtype=torch.float64)
    s2 = torch.zeros(3, 3, dtype=torch.float64)
    count = images = 0
    seen_bad: set[str] = set()
    for img, _, bad in tqdm(loader, desc="pca-stats", unit="img", disable=not progress):
        seen_bad.update(p for p, _ in bad)
        if img.dim() != 4 or img.shape[1] != 3:
            raise UserError(f"pca-stats needs RGB images, got shape {tuple(img.shape[1:])}")
        x = img[0].reshape(3, -1).to(torch.float64) / 255.0
        s1 += x.sum(1)
        s2 += x @ x.T
        count += x.shape[1]
        images += 1
    if images == 0:
        raise UserError(f"pca-stats: none of the {min(max_images, len(dataset))} sampled images could be read "
                        f"({len(seen_bad)} bad)")
    mean = s1 / count
    cov = s2 / count - torch.outer(mean, mean)
    eigval, eigvec = torch.linalg.eigh(cov)  # ascending
    eigval, eigvec = eigval.flip(0).clamp_min(0), eigvec.flip(1)
    for k in range(3):  # a fixed sign, so that reruns agree: largest component negative
        if eigvec[eigvec[:, k].abs().argmax(), k] > 0:
            eigvec[:, k] = -eigvec[:, k]
    return {
        "eigval": [_sig(v) for v in eigval],
        "eigvec": [[_sig(v) for v in row] for row in eigvec],
        "mean": [_sig(v) for v in mean],
        "std": [_sig(v) for v in cov.diagonal().clamp_min(0).sqrt()],
        "images": images,
        "pixels": count,
        "bad": len(seen_bad),
    }


def _sample_loader(dataset: Dataset, max_images: int, seed: int, workers: int, what: str):
    """A loader over up to ``max_images`` images of ``dataset`` (a seeded, sorted choice), one at a time."""
    from .loader import build_loader

    n = len(dataset)  # type: ignore[arg-type]
    if max_images < 1:
        raise UserError(f"{what}: max_images must be at least 1, not {max_images}")
    if n == 0:
        raise UserError(f"{what}: the dataset is empty")
    idx = list(range(n)) if n <= max_images else sorted(random.Random(seed).sample(range(n), max_images))
    return build_loader(Subset(dataset, idx), batch_size=1, train=False, workers=workers, seed=seed,
                        pin_memory=False, persistent_workers=False)


def compute_mean(dataset: Dataset, max_images: int = 1000, *, seed: int = 0, workers: int = 0,
                 progress: bool = False) -> dict[str, Any]:
    """``{"mean": [C values in [0, 1]], "images": n}``: the mean pixel of up to ``max_images``
    images of ``dataset`` (every pixel of every image counts once; a seeded choice when there are more).

    §2: "subtracting the mean activity over the training set from each pixel". The paper subtracts
    the mean *image* (so do cuda-convnet2 and Caffe's ``bvlc_alexnet``, ``mean_file``); this is its
    average over positions (one value per channel), which a model that takes crops anywhere in the
    image can use, which travels with the weights as three numbers, and which torchvision's models
    and Caffe's later ``bvlc_googlenet`` (``mean_value``) use.
    ``dataset`` yields ``(uint8 [C, H, W], label)``, any C; bad files are skipped.
    """
    from tqdm import tqdm

    loader = _sample_loader(dataset, max_images, seed, workers, "mean pixel")
    total: torch.Tensor | None = None
    count = images = 0
    for img, _, _bad in tqdm(loader, desc="mean pixel", unit="img", disable=not progress):
        x = img[0].reshape(img.shape[1], -1).to(torch.float64)
        total = x.sum(1) if total is None else total + x.sum(1)
        count += x.shape[1]
        images += 1
    if total is None or not count:
        raise UserError("mean pixel: no readable image in the training data")
    return {"mean": [_sig(v) for v in total / count / 255.0], "images": images}


def _sig(v: Any) -> float:
    return float(f"{float(v):.7g}")  # 7 significant digits: readable JSON, nothing lost that matters
