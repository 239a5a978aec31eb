"""Evaluation: loss, top-1/top-5 accuracy and error (§6 reports error), centre crop and ten-crop.

Exact under distribution: each process evaluates a disjoint shard (no padding), and the sums —
not the means — are reduced, so no sample is counted twice. A file that cannot be read is reported
and left out (the loader is built with ``substitute=False``): ``n`` is the number of images really
scored, ``bad`` the number of distinct files that could not be.

Scoring saved weights (a run directory) on a dataset is `alexnet.infer.evaluation.evaluate_weights`,
with the other uses of a trained model; it calls `evaluate` here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.device import Precision
from .distributed import all_reduce_max, all_reduce_sum

# One class predicted for at least this share of the images (with two or more classes present):
# the model answers the same whatever it is shown.
MOSTLY_ONE_CLASS = 0.95


@dataclass
class EvalResult:
    loss: float
    top1: float  # accuracy, percent
    top5: float
    n: int
    bad: int = 0
    pred_counts: list[int] = field(default_factory=list)  # images predicted as each class (top-1)
    label_counts: list[int] = field(default_factory=list)  # images of each class scored

    @property
    def top1_error(self) -> float:
        return 100.0 - self.top1

    @property
    def top5_error(self) -> float:
        return 100.0 - self.top5

    def to_dict(self) -> dict:
        return {"loss": self.loss, "top1": self.top1, "top5": self.top5, "top1_error": self.top1_error,
                "top5_error": self.top5_error, "n": self.n, "bad_samples": self.bad,
                "pred_counts": self.pred_counts}


@dataclass
class Uselessness:
    """Why scores say a model learnt nothing useful; both empty when they do not."""

    below_chance: str = ""  # "does not beat always guessing the largest class, 'bees' (54.25%)"
    one_class: str = ""  # "predicts 'bees' for 153 of 153 images (100.0%)"

    def __bool__(self) -> bool:
        return bool(self.below_chance or self.one_class)


def uselessness(top1: float, label_counts: list[int], pred_counts: list[int], classes: list[str]) -> Uselessness:
    """A model is useless on a split of two classes or more when its top-1 does not beat the share
    of the split's own largest class (what always guessing that class scores), or when it predicts
    one class for at least `MOSTLY_ONE_CLASS` of the images. Images of one class alone (a test
    folder of some of the model's classes) tell neither: guessing their class scores 100 %."""
    def name(i: int) -> str:
        return repr(classes[i]) if i < len(classes) else f"class {i}"

    out, n, m = Uselessness(), sum(label_counts), sum(pred_counts)
    if sum(c > 0 for c in label_counts) < 2:
        return out
    if n and math.isfinite(top1):
        big = max(range(len(label_counts)), key=lambda i: label_counts[i])
        share = 100.0 * label_counts[big] / n
        if top1 <= share + 1e-9:
            out.below_chance = f"does not beat always guessing the largest class, {name(big)} ({share:.2f}%)"
    if m:
        top = max(range(len(pred_counts)), key=lambda i: pred_counts[i])
        if pred_counts[top] >= MOSTLY_ONE_CLASS * m:
            k = pred_counts[top]
            out.one_class = f"predicts {name(top)} for {k} of {m} images ({100.0 * k / m:.1f}%)"
    return out


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
    counts: torch.Tensor | None = None  # [predicted, label] × class, made at the first batch
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
            top = probs.topk(k, dim=1).indices
            hit = top == labels[:, None]
            sums[0] += F.nll_loss(torch.log(probs.clamp_min(1e-12)), labels, reduction="sum")
            sums[1] += hit[:, 0].sum()
            sums[2] += hit.any(1).sum()
            if counts is None:
                counts = sums.new_zeros(2, probs.shape[1])
            c = counts.shape[1]
            counts[0] += torch.bincount(top[:, 0], minlength=c)[:c]  # the top-1 prediction, ties as top-1 scores them
            counts[1] += torch.bincount(labels, minlength=c)[:c]
            n += labels.numel()
            if on_batch is not None:
                on_batch(probs, labels)
    finally:
        model.train(was_training)
    # every process counts the same classes (one whose shard was empty has seen none)
    c = int(all_reduce_max(0 if counts is None else counts.shape[1], device))
    per_class = [0.0] * (2 * c) if counts is None else counts.flatten().tolist()
    # the shards are disjoint, so the distinct bad files of all processes add up
    loss_sum, correct1, correct5, n, bad, *per_class = all_reduce_sum(
        [*sums.tolist(), n, float(len(bad_paths)), *per_class], device)
    n = int(n)
    if n == 0:
        return EvalResult(float("nan"), float("nan"), float("nan"), 0, int(bad))
    preds, labels_seen = [int(v) for v in per_class[:c]], [int(v) for v in per_class[c:]]
    return EvalResult(loss_sum / n, 100.0 * correct1 / n, 100.0 * correct5 / n, n, int(bad), preds, labels_seen)
