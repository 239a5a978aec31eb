"""The compact sample list: reads like a list of (path, label), costs tens of bytes per image."""

from __future__ import annotations

import gc
import os
import pickle
import tracemalloc

import pytest

from alexnet.data import FileDataset, build_dataset
from alexnet.data.folders import scan_folder
from alexnet.data.samples import SampleList


def _imagenet_like(root: str, n: int):
    """Fresh (path, label) pairs shaped like ImageNet's: root/train/<wnid>/<wnid>_<k>.JPEG."""
    for k in range(n):
        wnid = f"n{1440764 + (k % 1000) * 9973:08d}"
        yield f"{root}/train/{wnid}/{wnid}_{k}.JPEG", k % 1000


def test_it_reads_like_the_list_of_tuples_it_replaces(tmp_path):
    pairs = [(f"{tmp_path}/a/x{i}.jpg", i % 3) for i in range(7)] + [(f"{tmp_path}/b/é ü.png", 2),
                                                                      (f"{tmp_path}/b/\udcff.jpg", 1)]
    s = SampleList(pairs)
    assert s.prefix == f"{tmp_path}/" and len(s) == 9
    assert s == pairs and list(s) == pairs and s[-1] == pairs[-1] and s[3] == pairs[3]
    assert s[2:5] == pairs[2:5] and s.take([8, 0, 8]) == [pairs[8], pairs[0], pairs[8]]
    assert s + SampleList(pairs[:2]) == pairs + pairs[:2]
    assert s + [("/elsewhere/z.jpg", 0)] == pairs + [("/elsewhere/z.jpg", 0)]
    assert pickle.loads(pickle.dumps(s)) == pairs and s.path(7) == pairs[7][0]
    assert s.labels.tolist() == [t for _, t in pairs]
    with pytest.raises(IndexError):
        s[9]
    assert SampleList([]) == [] and SampleList([("x.jpg", 0)]) == [("x.jpg", 0)]


def test_a_folder_scan_keeps_torchvisions_order(image_folder):
    from torchvision.datasets.folder import make_dataset

    from alexnet.data.base import IMG_EXTENSIONS

    idx = {c: i for i, c in enumerate(sorted(os.listdir(image_folder)))}
    assert scan_folder(str(image_folder), idx) == make_dataset(str(image_folder), idx, extensions=IMG_EXTENSIONS,
                                                                allow_empty=True)
    ds = build_dataset(str(image_folder), "train", val_split=0.3)
    assert isinstance(ds.samples, SampleList) and ds.targets == [t for _, t in ds.samples]


def test_the_file_list_costs_tens_of_bytes_per_image_not_hundreds(tmp_path):
    """ImageNet's 1.28 million files: a list of (str, int) tuples would hold ~250 bytes an image
    (of Path objects, more), ~300 MB in every process; the target is under 300, ours ~45."""
    n = 20_000
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        ds = FileDataset(_imagenet_like(str(tmp_path), n), [str(i) for i in range(1000)])
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    per_image = held / n
    assert per_image < 80, f"{per_image:.0f} bytes per image"
    assert len(ds) == n and ds.samples[12345] == next(p for i, p in enumerate(_imagenet_like(str(tmp_path), n))
                                                      if i == 12345)
