"""tools/cifar10_jpeg.py: the official batches as the JPEG class folders the CIFAR-10 figures used."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from PIL import Image

from alexnet.data import build_dataset

TOOL = Path(__file__).resolve().parents[2] / "tools" / "cifar10_jpeg.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("cifar10_jpeg", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_batches_become_class_folders_with_the_same_labels_in_the_batches_order(cifar10_root, tmp_path, capsys):
    tool = load_tool()
    out = tmp_path / "jpeg"
    assert tool.main([str(cifar10_root), str(out)]) == 0
    assert "20 train images" in capsys.readouterr().out and not (out / "test").exists()
    official = build_dataset(f"cifar10:{cifar10_root}", "train", val_split=0)
    folders = build_dataset(f"folder:{out}", "train", val_split=0)
    assert len(folders) == len(official) == 20  # (these tiny batches hold 8 of the 10 classes)
    named = sorted(folders.classes[t] for t in folders.targets)
    assert named == sorted(official.classes[t] for t in official.targets)
    # the first image of a class in the batches' order is its 0000.jpg: data_batch_1's first image has label 1
    path = out / "train" / official.classes[official[0][1]] / "0000.jpg"
    first = Image.open(path)
    assert first.size == (32, 32) and first.format == "JPEG"
    got = folders[[p for p, _ in folders.samples].index(str(path))][0].float()
    errors = [float((got - official[i][0].float()).abs().mean()) for i in range(len(official))]
    assert min(range(len(errors)), key=errors.__getitem__) == 0  # lossy, but nearest to its own picture
    assert tool.main([str(cifar10_root), str(out), "--with-test"]) == 0  # train/ kept, test/ added
    assert len(list((out / "test").rglob("*.jpg"))) == 6 and len(list((out / "train").rglob("*.jpg"))) == 20


def test_a_folder_without_the_batches_is_one_line(tmp_path):
    with pytest.raises(SystemExit, match="error: no cifar-10-batches-py/data_batch_1"):
        load_tool().main([str(tmp_path), str(tmp_path / "out")])
