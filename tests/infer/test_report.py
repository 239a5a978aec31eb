"""The evaluation report: metrics, per-class table, confusion matrix CSV + PNG, mistakes gallery."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from PIL import Image

from alexnet.infer.report import collect_predictions, compute_metrics, confusion_matrix, write_report
from alexnet.viz.confusion import confusion_size, mistakes_size


def _fake(n: int, k: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, k, (n,), generator=g)
    logits = torch.randn(n, k, generator=g)
    logits[torch.arange(n), labels] += 1.5  # mostly right, some confident mistakes
    return logits.softmax(1), labels


def test_metrics_by_hand():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1], [0.2, 0.2, 0.6]])
    labels = torch.tensor([0, 1, 1, 2])
    m = compute_metrics(probs, labels)
    assert m["top1"] == 50.0 and m["top1_error"] == 50.0 and m["top5"] == 100.0
    assert m["mean_per_class_top1"] == pytest.approx(100 * (1 + 0 + 1) / 3, abs=1e-3)
    cm = confusion_matrix(probs.argmax(1), labels, 3)
    assert cm.tolist() == [[1, 0, 0], [1, 0, 1], [0, 0, 1]]


def test_report_files_small(tmp_path):
    classes = [f"class {i}" for i in range(10)]
    probs, labels = _fake(200, 10)
    images = [torch.full((3, 20, 24), i % 255, dtype=torch.uint8) for i in range(200)]
    m = write_report(tmp_path, probs, labels, classes, images=images)
    assert {p.name for p in tmp_path.iterdir()} >= {"metrics.json", "per_class.csv", "confusion.csv",
                                                    "confusion.png", "mistakes.png"}
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == m and saved["samples"] == 200
    want1 = (probs.argmax(1) == labels).float().mean().item() * 100
    assert saved["top1"] == pytest.approx(want1, abs=1e-3)
    rows = list(csv.reader((tmp_path / "confusion.csv").open()))
    assert rows[0][1:] == classes and [r[0] for r in rows[1:]] == classes
    cells = [[int(v) for v in r[1:]] for r in rows[1:]]
    assert sum(map(sum, cells)) == 200
    assert [sum(r) for r in cells] == torch.bincount(labels, minlength=10).tolist()
    per = list(csv.DictReader((tmp_path / "per_class.csv").open()))
    assert len(per) == 10 and sum(int(r["samples"]) for r in per) == 200
    assert float(per[3]["top1"]) == pytest.approx(100 * cells[3][3] / sum(cells[3]), abs=0.01)
    with Image.open(tmp_path / "confusion.png") as im:  # sized from its content (tests/viz: text fits)
        assert im.size == confusion_size(10, classes, f"confusion matrix: 200 samples, 10 classes, "
                                                       f"top-1 {want1:.2f}%")
    wrong = int((probs.argmax(1) != labels).sum())
    with Image.open(tmp_path / "mistakes.png") as im:
        assert im.size == mistakes_size(min(24, wrong))


def test_report_1000_classes_is_summarised(tmp_path):
    classes = [f"n{i:05d}" for i in range(1000)]
    probs, labels = _fake(1500, 1000, seed=1)
    write_report(tmp_path, probs, labels, classes, mistakes=6)
    with Image.open(tmp_path / "confusion.png") as im:
        assert 1000 < im.size[0] < 2500 and 600 < im.size[1] < 1500
    rows = list(csv.reader((tmp_path / "confusion.csv").open()))
    assert len(rows) == 1001 and sum(int(v) for r in rows[1:] for v in r[1:]) == 1500


def test_report_rejects_mismatches(tmp_path):
    probs, labels = _fake(10, 3)
    with pytest.raises(ValueError):
        write_report(tmp_path, probs, labels[:5], ["a", "b", "c"])
    with pytest.raises(ValueError):
        write_report(tmp_path, probs, labels, ["a", "b"])


def test_collect_over_a_folder_then_report(predictor, image_root, tmp_path, corrupt_file):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(image_root, data)
    shutil.copy(corrupt_file, data / "red" / "zz_broken.jpg")  # a bad sample is skipped, not counted
    c = collect_predictions(predictor, f"folder:{data}", split="train", val_split=0, batch_size=4)
    assert len(c.probs) == len(c.labels) == len(c.paths) == 18
    assert list(c.bad) == [str(data / "red" / "zz_broken.jpg")]
    assert len(set(c.paths)) == 18 and all(p.startswith(str(data)) for p in c.paths)
    for p, label in zip(c.paths, c.labels.tolist()):
        assert f"/{predictor.classes[label]}/" in p
    m = write_report(tmp_path / "report", c.probs, c.labels, predictor.classes, paths=c.paths, images=c.images())
    assert m["samples"] == 18 and m["top1"] == 100.0  # the tiny model was trained on these
    rows = list(csv.reader((tmp_path / "report" / "confusion.csv").open()))
    assert sum(int(v) for r in rows[1:] for v in r[1:]) == 18


def test_collector_as_evaluate_on_batch(tiny_run, image_root, tmp_path):
    """`alexnet evaluate … --report` wiring: engine.evaluate's on_batch feeds a ReportCollector."""
    from alexnet.core.device import resolve_precision
    from alexnet.data import build_dataset, build_loader, build_transforms, normalizer_for
    from alexnet.engine.evaluate import evaluate
    from alexnet.infer import ReportCollector
    from alexnet.models import load_weights, meta_cfg

    model, meta = load_weights(tiny_run)
    cfg = meta_cfg(meta)
    ds = build_dataset(f"folder:{image_root}", "train", build_transforms(cfg, train=False), val_split=0)
    collector = ReportCollector(ds)
    dev = torch.device("cpu")
    loader = build_loader(ds, batch_size=5, train=False)
    res = evaluate(model, loader, normalizer_for(cfg), resolve_precision("off", dev), dev, on_batch=collector)
    assert len(collector) == res.n == 18
    m = collector.write(tmp_path, ds.classes)
    assert m["samples"] == 18 and m["top1"] == pytest.approx(res.top1, abs=1e-3)
    from PIL import Image

    for name in ("mistakes.png", "confusion.png"):
        with Image.open(tmp_path / name) as im:
            assert im.format == "PNG" and min(im.size) > 100, name
            lo, hi = zip(*im.convert("RGB").getextrema())
            assert max(hi) - min(lo) > 100, name  # drawn on, not a blank canvas


@pytest.mark.parametrize("label", [0, 8])
def test_on_ties_the_confusion_matrix_names_the_class_top_1_scored(tmp_path, label):
    """Every class scored alike (a model that learnt nothing): the confusion matrix's predicted
    column is the one top-1 counted, whichever way the ties fall (argmax and topk break them apart)."""
    probs, labels = torch.full((6, 10), 0.1), torch.full((6,), label)
    m = write_report(tmp_path, probs, labels, [str(i) for i in range(10)])
    rows = list(csv.reader((tmp_path / "confusion.csv").open()))
    diagonal = int(rows[1 + label][1 + label])
    assert (m["top1"] == 100.0) == (diagonal == 6) and (m["top1"] == 0.0) == (diagonal == 0)
