"""Evaluation: loss, top-1/top-5 accuracy and error (§6 reports error), centre crop and ten-crop.

Exact under distribution: each process evaluates a disjoint shard (no padding), and the sums —
not the means — are reduced, so no sample is counted twice. A file that cannot be read is reported
and left out (the loader is built with ``substitute=False``): ``n`` is the number of images really
scored, ``bad`` the number of distinct files that could not be.
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


def evaluate_weights(weights: str, data: str | None = None, *, split: str | None = None, ten_crop: bool = False,
                     batch_size: int = 64, workers: int = 0, device: str = "auto", amp: str = "auto",
                     val_split: float | None = None, on_batch: Callable | None = None,
                     announce: Callable[[str], None] | None = None) -> dict:
    """Evaluate a run directory (or the ``--output-dir`` folder holding runs: its newest) or
    ``weights.safetensors`` on ``data`` (default: the run's own data).

    ``split``: default ``val`` for the run's own data; for ``data`` given here, ``all`` (every image)
    when it has no validation part of its own (a folder without train/val sub-folders, a list), else
    ``val``. A seeded slice is announced through ``announce`` (default: stderr).

    Returns ``{"centre": EvalResult, "ten_crop": EvalResult | None, "meta": …, "data": spec, "split": …,
    "mirror": bool, "bad_files": {path: reason}}``; unreadable files are left out of the scores. Preprocessing comes from the cfg stored with the weights, so it is the one
    training validated with; ten-crop mirrors its crops only when training flipped images.
    """
    import json
    import sys
    from pathlib import Path

    from ..core.device import resolve_device, resolve_precision
    from ..core.errors import UserError
    from ..data import BadSampleLog, build_dataset, build_loader, build_transforms, normalizer_for
    from ..data.datasets import folder_splits, parse_spec
    from ..models import load_weights, meta_cfg, resolve_run_dir

    say = announce or (lambda msg: print(msg, file=sys.stderr))
    weights = str(resolve_run_dir(weights))
    dev = resolve_device(device)
    model, meta = load_weights(weights, dev)
    run_cfg = Path(weights) / "config.json"
    saved = json.loads(run_cfg.read_text()) if Path(weights).is_dir() and run_cfg.is_file() else {}
    spec = data or saved.get("data")
    if not spec:
        raise UserError("--data is needed: the weights do not come with a run's config.json")
    if split is None:
        split = "val"
        if data:  # a folder or list handed over for evaluation is scored whole unless it has a val part
            kind, path = parse_spec(data)
            if kind == "folder" and folder_splits(path)[1] is None:
                split = "all"
            elif kind == "list":
                from ..data.datasets import _is_eval_name, _list_sibling

                if not _list_sibling(path) and not _is_eval_name(Path(path).name):
                    split = "all"
    vs = val_split if val_split is not None else saved.get("val_split", 0.1)
    cfg = meta_cfg(meta)
    precision = resolve_precision(amp, dev)
    normalize = normalizer_for(cfg, mode=meta.get("normalize", "meanstd")).to(dev)
    mirror = bool(meta.get("train_flip", cfg.input_size[0] != 1))
    out: dict = {"meta": meta, "data": spec, "ten_crop": None, "split": split, "mirror": mirror, "run": weights}
    for key, tc in (("centre", False), ("ten_crop", True)) if ten_crop else (("centre", False),):
        ds = build_dataset(spec, split, transform=build_transforms(cfg, train=False, ten_crop=tc, mirror=mirror),
                           val_split=vs)
        if key == "centre" and getattr(ds, "slice_note", ""):
            say(f"note: scoring {ds.slice_note} (--split all scores every image)")
        if len(ds.classes) != len(meta["classes"]):
            raise UserError(f"{spec} has {len(ds.classes)} classes; the model was trained on {len(meta['classes'])}")
        if key == "centre" and list(ds.classes) != list(meta["classes"]):
            diff = next(i for i, (a, b) in enumerate(zip(ds.classes, meta["classes"])) if a != b)
            print(f"warning: class names differ from the model's (class {diff}: {ds.classes[diff]!r} in the data, "
                  f"{meta['classes'][diff]!r} in the model); labels are matched by index", file=sys.stderr)
        if tc and not mirror:
            say("note: ten-crop without its 5 mirrored crops — the model was trained without flips, so mirrored "
                "crops would be images it never saw (five crops are averaged)")
        loader = build_loader(ds, batch_size=max(1, batch_size // (10 if tc else 1)), train=False, workers=workers,
                              substitute=False)
        log = BadSampleLog()
        out[key] = evaluate(model, loader, normalize, precision, dev, progress=True,
                            on_batch=on_batch if not tc else None, bad_log=log)
        out.setdefault("bad_files", {}).update(log.total)
        out[f"{key}_dataset"] = ds
    return out
