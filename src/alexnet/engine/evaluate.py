"""Evaluation: loss, top-1/top-5 accuracy and error (§6 reports error), centre crop and ten-crop.

Exact under distribution: each process evaluates a disjoint shard (no padding), and the sums —
not the means — are reduced, so no sample is counted twice. A file that cannot be read is reported
and left out (the loader is built with ``substitute=False``): ``n`` is the number of images really
scored, ``bad`` the number of distinct files that could not be.

Scoring saved weights (a run directory) on a dataset is `alexnet.infer.evaluation.evaluate_weights`,
with the other uses of a trained model; it calls `evaluate` here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.device import Precision
from .distributed import all_reduce_sum


@dataclass
class EvalResult:
    loss: float
    top1: float  # accuracy, percent
    top5: float
    n: int
    bad: int = 0

    @property
    def top1_error(self) -> float:
        return 100.0 - self.top1

    @property
    def top5_error(self) -> float:
        return 100.0 - self.top5

    def to_dict(self) -> dict:
        return {"loss": self.loss, "top1": self.top1, "top5": self.top5, "top1_error": self.top1_error,
                "top5_error": self.top5_error, "n": self.n, "bad_samples": self.bad}


def predict_batch(model: nn.Module, images: torch.Tensor, normalize: nn.Module, precision: Precision,
                  device: torch.device, channels_last: bool = False) -> torch.Tensor:
    """Class probabilities for a uint8 batch ``[B,C,H,W]``, or ``[B,10,C,H,W]`` ten-crop stacks
    (the ten softmaxes are averaged, §4.1)."""
    x = images.to(device, non_blocking=True)
    crops = x.shape[1] if x.ndim == 5 else 0
    if crops:
        x = x.flatten(0, 1)
    x = normalize(x)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with precision.autocast(device):
        logits = model(x)
    probs = F.softmax(logits.float(), dim=1)
    if crops:
        probs = probs.view(-1, crops, probs.shape[1]).mean(1)
    return probs


@torch.inference_mode()
def evaluate(model: nn.Module, loader, normalize: nn.Module, precision: Precision, device: torch.device,
             channels_last: bool = False, on_batch: Callable | None = None, progress: bool = False,
             bad_log=None) -> EvalResult:
    """Evaluate ``model`` on ``loader`` (batches ``(uint8 images, labels, bad)``)."""
    was_training = model.training
    model.eval()
    n = 0.0
    bad_paths: set[str] = set()  # distinct files: a file met twice is one bad file
    # summed on the device, read back once at the end: no host-device wait per batch on a GPU
    sums = torch.zeros(3, device=device, dtype=torch.float32 if device.type == "mps" else torch.float64)
    it = loader
    if progress:
        from tqdm import tqdm

        it = tqdm(loader, desc="evaluate", leave=False, dynamic_ncols=True, disable=None)
    try:
        for images, labels, bad_items in it:
            if bad_items:
                bad_paths.update(str(b[0]) for b in bad_items)
                if bad_log is not None:
                    bad_log.extend(bad_items) if hasattr(bad_log, "extend") else None
            if labels.numel() == 0:  # every file of the batch was bad
                continue
            labels = labels.to(device, non_blocking=True)
            probs = predict_batch(model, images, normalize, precision, device, channels_last)
            k = min(5, probs.shape[1])
            hit = probs.topk(k, dim=1).indices == labels[:, None]
            sums[0] += F.nll_loss(torch.log(probs.clamp_min(1e-12)), labels, reduction="sum")
            sums[1] += hit[:, 0].sum()
            sums[2] += hit.any(1).sum()
            n += labels.numel()
            if on_batch is not None:
                on_batch(probs, labels)
    finally:
        model.train(was_training)
    # the shards are disjoint, so the distinct bad files of all processes add up
    loss_sum, correct1, correct5, n, bad = all_reduce_sum([*sums.tolist(), n, float(len(bad_paths))], device)
    n = int(n)
    if n == 0:
        return EvalResult(float("nan"), float("nan"), float("nan"), 0, int(bad))
    return EvalResult(loss_sum / n, 100.0 * correct1 / n, 100.0 * correct5 / n, n, int(bad))
