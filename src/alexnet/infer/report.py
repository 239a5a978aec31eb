"""The evaluation report: top-1/top-5, per-class accuracy, confusion matrix and the most confident
mistakes, written to a folder.

    probs, labels, paths = collect_predictions(predictor, dataset)    # or from your own loop
    write_report("runs/x/report", probs, labels, classes, paths=paths, images=dataset)

Files written (``alexnet evaluate … --report DIR`` calls `write_report`):

- ``metrics.json``   samples, classes, top-1/top-5 accuracy and error in percent (the paper reports
  error rates, §6), mean per-class accuracy;
- ``per_class.csv``  index, class, samples, top-1 and top-5 accuracy, precision, and the class it
  is most often mistaken for;
- ``confusion.csv``  the matrix, rows = true class, columns = predicted class, with names;
- ``confusion.png``  heat map with names (≤ 30 classes) or a summary (most confused classes and pairs);
- ``mistakes.png``   the most confident wrong predictions: image, true, predicted, probability.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from ..core.io import atomic_write, atomic_write_json


def confusion_matrix(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``cm[true, predicted]`` counts (int64, ``[K, K]``)."""
    pred, labels = pred.long().flatten().cpu(), labels.long().flatten().cpu()
    return torch.bincount(labels * num_classes + pred, minlength=num_classes * num_classes).view(
        num_classes, num_classes)


def topk_correct(probs: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Per sample, whether the true label is among the ``k`` most probable classes (bool ``[N]``)."""
    k = min(k, probs.shape[1])
    return (probs.topk(k, dim=1).indices == labels.view(-1, 1)).any(dim=1)


def _pct(x: float) -> float:
    return round(100.0 * x, 4)


def compute_metrics(probs: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """Top-1/top-5 accuracy and error (percent) and mean per-class accuracy."""
    n, K = probs.shape
    top1 = topk_correct(probs, labels, 1).float()
    top5 = topk_correct(probs, labels, 5).float()
    per_class = [top1[labels == c].mean().item() for c in range(K) if bool((labels == c).any())]
    a1 = top1.mean().item() if n else math.nan
    a5 = top5.mean().item() if n else math.nan
    return {"samples": n, "num_classes": K, "top1": _pct(a1), "top5": _pct(a5),
            "top1_error": _pct(1 - a1), "top5_error": _pct(1 - a5),
            "mean_per_class_top1": _pct(sum(per_class) / len(per_class)) if per_class else math.nan,
            "top5_k": min(5, K), "unit": "percent"}


def _csv(rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def per_class_rows(probs: torch.Tensor, labels: torch.Tensor, classes: Sequence[str],
                   cm: torch.Tensor) -> list[list[Any]]:
    """The rows of ``per_class.csv`` (with header)."""
    top5 = topk_correct(probs, labels, 5)
    rows: list[list[Any]] = [["index", "class", "samples", "top1", "top5", "precision",
                              "most_confused_with", "confused_count"]]
    off = cm.clone()
    off.fill_diagonal_(0)
    predicted = cm.sum(0)
    for c, name in enumerate(classes):
        n = int(cm[c].sum())
        right = int(cm[c, c])
        t5 = int(top5[labels == c].sum()) if n else 0
        worst = int(off[c].argmax()) if n and int(off[c].max()) > 0 else None
        rows.append([c, name, n,
                     f"{100 * right / n:.2f}" if n else "",
                     f"{100 * t5 / n:.2f}" if n else "",
                     f"{100 * right / int(predicted[c]):.2f}" if int(predicted[c]) else "",
                     classes[worst] if worst is not None else "",
                     int(off[c, worst]) if worst is not None else 0])
    return rows


def confident_mistakes(probs: torch.Tensor, labels: torch.Tensor, n: int) -> list[tuple[int, int, float]]:
    """The ``n`` wrong predictions made with the highest probability: ``(sample, predicted, prob)``."""
    conf, pred = (t[:, 0] for t in probs.topk(1, dim=1))  # ties broken as top-1 is scored
    wrong = (pred != labels).nonzero().flatten()
    if not len(wrong):
        return []
    order = conf[wrong].argsort(descending=True)[:n]
    return [(int(wrong[i]), int(pred[wrong[i]]), float(conf[wrong[i]])) for i in order]


def _image_for(i: int, paths: Sequence[str] | None, images: Any) -> torch.Tensor | None:
    """Sample ``i``'s image: from ``images`` (a sequence of uint8 CHW tensors, or a dataset whose
    items are ``(image, label)``), else decoded from ``paths[i]``; None when neither works."""
    try:
        if images is not None:
            item = images[i]
            img = item[0] if isinstance(item, (tuple, list)) else item
            return img if isinstance(img, torch.Tensor) else None
        if paths is not None and paths[i]:
            from ..data import decode_image

            return decode_image(paths[i], target_short_side=256)
    except Exception:  # noqa: BLE001 — a picture that cannot be shown must not stop the report
        return None
    return None


def write_report(out_dir: str | Path, probs: torch.Tensor, labels: torch.Tensor | Sequence[int],
                 classes: Sequence[str], paths: Sequence[str] | None = None, images: Any = None,
                 mistakes: int = 24, title: str | None = None) -> dict[str, Any]:
    """Write the evaluation report for ``probs [N, K]`` (softmax outputs) against ``labels [N]``
    into ``out_dir``; return the metrics (also in ``metrics.json``).

    ``paths`` (optional, one per sample) name the samples in the mistakes gallery and let it
    decode their images; ``images`` (optional) is any ``images[i]`` → uint8 CHW tensor or
    ``(tensor, label)`` — pass the evaluation dataset itself, so no image is held in memory.
    """
    from ..viz import plot_confusion, plot_mistakes

    probs = torch.as_tensor(probs).detach().float().cpu()
    labels = torch.as_tensor(labels).detach().long().cpu().flatten()
    if probs.ndim != 2 or probs.shape[0] != labels.shape[0]:
        raise ValueError(f"probs {tuple(probs.shape)} and labels {tuple(labels.shape)} do not match")
    K = probs.shape[1]
    if len(classes) != K:
        raise ValueError(f"{len(classes)} class names for {K} outputs")
    if len(labels) and (labels.min() < 0 or labels.max() >= K):
        raise ValueError(f"labels outside [0, {K})")
    if paths is not None and len(paths) != len(labels):
        raise ValueError(f"{len(paths)} paths for {len(labels)} samples")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    metrics = compute_metrics(probs, labels)
    cm = confusion_matrix(probs.topk(1, dim=1).indices[:, 0], labels, K)  # ties broken as top-1 is scored
    atomic_write_json(out / "metrics.json", metrics)
    atomic_write(out / "per_class.csv", _csv(per_class_rows(probs, labels, classes, cm)))
    atomic_write(out / "confusion.csv", _csv([["true \\ predicted", *classes],
                                              *[[classes[i], *cm[i].tolist()] for i in range(K)]]))
    plot_confusion(cm, classes, out / "confusion.png", title=title or "confusion matrix")
    items = []
    for i, p, conf in confident_mistakes(probs, labels, mistakes):
        img = _image_for(i, paths, images)
        name = Path(str(paths[i])).name if paths is not None and paths[i] else f"#{i}"
        items.append((img, classes[int(labels[i])], classes[p], conf, name))
    plot_mistakes(items, out / "mistakes.png")
    return metrics


class ReportCollector:
    """Gathers ``(probs, labels)`` batch by batch — e.g. as ``on_batch`` of
    `alexnet.engine.evaluate` — and writes the report at the end:

        collector = ReportCollector(dataset)
        evaluate(model, loader, …, on_batch=collector)
        collector.write("runs/x/report", classes)

    With ``dataset`` (in loader order, ``train=False``, one process) the mistakes gallery shows
    the images and their paths; this is only done when the row count equals the dataset's
    length, i.e. no bad sample was substituted and rows are the dataset's samples in order.
    """

    def __init__(self, dataset: Any = None):
        self.dataset = dataset
        self._probs: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []

    def __call__(self, probs: torch.Tensor, labels: torch.Tensor) -> None:
        self._probs.append(probs.detach().float().cpu())
        self._labels.append(labels.detach().long().cpu())

    def __len__(self) -> int:
        return sum(len(x) for x in self._labels)

    def write(self, out_dir: str | Path, classes: Sequence[str], **kwargs: Any) -> dict[str, Any]:
        probs = torch.cat(self._probs) if self._probs else torch.empty(0, len(classes))
        labels = torch.cat(self._labels) if self._labels else torch.empty(0, dtype=torch.long)
        paths = images = None
        ds = self.dataset
        if ds is not None and len(ds) == len(labels):
            name = getattr(ds, "samples_path", None)
            paths = [str(name(i)) for i in range(len(ds))] if name else None
            images = _RowImages(ds, torch.arange(len(ds)))
        return write_report(out_dir, probs, labels, classes, paths=paths, images=images, **kwargs)


@dataclass
class Collected:
    """What `collect_predictions` gathered: one row per good sample, in dataset order."""

    probs: torch.Tensor  # [N, K] softmax (ten crops averaged with ten-crop)
    labels: torch.Tensor  # [N] int64
    paths: list[str]  # a file path or identifier per row (dataset.samples_path)
    indices: torch.Tensor  # [N] the rows' indices in the dataset
    bad: dict[str, str]  # samples that could not be loaded: path → reason
    dataset: Any

    def images(self) -> "_RowImages":
        """``images[row]`` → that row's image before the transform (for `write_report`)."""
        return _RowImages(self.dataset, self.indices)


class _RowImages:
    def __init__(self, dataset: Any, indices: torch.Tensor):
        self.dataset, self.indices = dataset, indices

    def __getitem__(self, row: int) -> torch.Tensor:
        i = int(self.indices[row])
        if hasattr(self.dataset, "load"):
            return self.dataset.load(i)  # the original image, not the network's crop
        return self.dataset[i][0]


def class_mapping(data_classes: Sequence[str], model_classes: Sequence[str],
                  name: str = "the data") -> list[int] | None:
    """Dataset label → model output index, matched by class name when the order differs (a
    folder's classes are sorted; the model's are in the order it was trained with) or the data
    hold some of the model's classes; None when they already agree. Raises `UserError`, naming
    them, when some of the classes (of ``name``) are not the model's and cannot be matched."""
    from ..core.errors import UserError

    data_classes, model_classes = list(data_classes), list(model_classes)
    if not data_classes or data_classes == model_classes:
        return None
    where = {c: i for i, c in enumerate(model_classes)}
    unknown = [c for c in data_classes if c not in where]
    if not unknown:  # the same names in another order, or a subset
        return [where[c] for c in data_classes]
    if len(data_classes) == len(model_classes) and len(unknown) == len(data_classes):
        # no name in common: other names for the same labels (e.g. WordNet ids vs words), so the
        # order is all there is; a name in common says the names are meant, so the rest must match
        return None
    raise UserError(f"{name} has {len(data_classes)} classes, {len(unknown)} of them not among the "
                    f"{len(model_classes)} the model was trained on ({', '.join(map(repr, unknown[:5]))}"
                    f"{', …' if len(unknown) > 5 else ''})")


def collect_predictions(predictor: Any, data: Any, split: str = "val", *, batch_size: int = 64,
                        workers: int = 0, val_split: float | None = None, limit: int | None = None,
                        progress: bool = False) -> Collected:
    """Run ``predictor`` (a `Predictor`) over ``data`` — a dataset spec/folder (built with the
    predictor's own evaluation transform) or a dataset whose items are already transformed — and
    return the probabilities, labels and paths, ready for `write_report`:

        c = collect_predictions(Predictor("runs/x"), "folder:photos")
        write_report("report", c.probs, c.labels, predictor.classes, paths=c.paths, images=c.images())
    """
    from .stream import stream, targets_of

    if isinstance(data, (str, Path)):
        from ..data import build_dataset

        dataset = build_dataset(str(data), split, transform=predictor.transform, val_split=val_split)
    else:
        dataset = data
    targets = targets_of(dataset)
    if targets is None:
        raise ValueError("the dataset has no targets (labels)")
    remap = class_mapping(list(getattr(dataset, "classes", []) or []), list(predictor.classes))
    targets = [remap[t] for t in targets] if remap is not None else targets
    stop = len(dataset) if limit is None else min(limit, len(dataset))
    probs, idx, bad = [], [], {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=stop, desc="predict", unit="img", leave=False)
    for images, ids, bad_items in stream(dataset, batch_size, workers, 0, stop):
        bad.update((str(p), str(r)) for p, r in bad_items)
        if len(ids):
            probs.append(predictor.batch_probs(images))
            idx.append(ids)
        if bar is not None:
            bar.update(len(ids) + len(bad_items))
    if bar is not None:
        bar.close()
    k = len(predictor.classes)
    indices = torch.cat(idx) if idx else torch.empty(0, dtype=torch.long)
    name = getattr(dataset, "samples_path", None)
    return Collected(torch.cat(probs) if probs else torch.empty(0, k),
                     torch.tensor([targets[i] for i in indices.tolist()], dtype=torch.long),
                     [str(name(i)) if name else f"#{i}" for i in indices.tolist()],
                     indices, bad, dataset)
