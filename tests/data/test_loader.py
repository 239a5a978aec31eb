"""ResumableSampler, SafeDataset, build_loader, BadSampleLog: determinism, resume, bad files."""

from __future__ import annotations

import os
import pickle
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet.data import (BadSampleLog, FileDataset, ResumableSampler, SafeDataset, TensorImageDataset,
                          build_dataset, build_loader, build_transforms)


def cfg(c=3, h=12, w=12, resize=16):
    return SimpleNamespace(input_size=(c, h, w), resize=resize, mean=(0.5,) * c, std=(0.25,) * c)


def tensor_ds(n=20, transform=None, size=16):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    return TensorImageDataset(images, [i % 4 for i in range(n)], list("abcd"), transform, name="t")


# ----------------------------------------------------------------------------- sampler

def test_sampler_order_is_a_pure_function_of_seed_and_epoch():
    a = ResumableSampler(50, shuffle=True, seed=3)
    b = ResumableSampler(50, shuffle=True, seed=3)
    assert list(a) == list(b) and sorted(i for i, _ in a) == list(range(50))
    assert all(e == 0 for _, e in a)
    first = a.indices()
    a.set_epoch(1)
    assert a.indices() != first and all(e == 1 for _, e in a)
    assert ResumableSampler(50, shuffle=True, seed=4).indices() != first
    assert ResumableSampler(5, shuffle=False, seed=3).indices() == [0, 1, 2, 3, 4]
    state = torch.get_rng_state()
    list(ResumableSampler(50, shuffle=True, seed=9))
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is never touched


def test_sampler_start_at_skips_and_set_epoch_resets():
    s = ResumableSampler(30, shuffle=True, seed=0)
    s.set_epoch(2)
    full = list(s)
    s.start_at(7)
    assert list(s) == full[7:] and s.remaining() == 23 and len(s) == 30
    s.set_epoch(2)
    assert list(s) == full
    with pytest.raises(ValueError):
        s.start_at(31)


def test_sampler_state_dict_round_trip_with_primitives_only():
    s = ResumableSampler(30, shuffle=True, seed=5, rank=1, world_size=2)
    s.set_epoch(4)
    s.start_at(6)
    state = s.state_dict()
    assert all(isinstance(v, (int, bool)) for v in state.values())
    t = ResumableSampler(30, shuffle=True, seed=5, rank=1, world_size=2)
    t.load_state_dict(state)
    assert list(t) == list(s) and t.epoch == 4
    with pytest.raises(ValueError, match="n=30"):
        ResumableSampler(31, shuffle=True, seed=5, rank=1, world_size=2).load_state_dict(state)


@pytest.mark.parametrize("shuffle", [False, True])
def test_distributed_shards(shuffle):
    n, ws = 10, 3
    padded = [ResumableSampler(n, shuffle=shuffle, seed=1, rank=r, world_size=ws) for r in range(ws)]
    assert [len(s) for s in padded] == [4, 4, 4] and [len(list(s)) for s in padded] == [4, 4, 4]
    allp = [i for s in padded for i, _ in s]
    assert set(allp) == set(range(n)) and len(allp) == 12
    exact = [ResumableSampler(n, shuffle=shuffle, seed=1, rank=r, world_size=ws, pad=False) for r in range(ws)]
    assert [len(s) for s in exact] == [4, 3, 3] == [len(list(s)) for s in exact]
    alle = [i for s in exact for i, _ in s]
    assert sorted(alle) == list(range(n))  # disjoint, nothing counted twice
    dropped = [ResumableSampler(n, shuffle=shuffle, seed=1, rank=r, world_size=ws, drop_last=True) for r in range(ws)]
    alld = [i for s in dropped for i, _ in s]
    assert [len(s) for s in dropped] == [3, 3, 3] and len(set(alld)) == 9


# ----------------------------------------------------------------------------- SafeDataset

def test_safe_dataset_augmentation_depends_only_on_seed_epoch_index():
    t = build_transforms(cfg(), train=True, aug="paper")
    ds = SafeDataset(tensor_ds(transform=t), seed=7)
    torch.manual_seed(123)
    random.seed(1)
    np.random.seed(2)
    states = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    a = ds[(3, 0)]
    torch.rand(5)  # whatever happens in between does not matter
    b = ds[(3, 0)]
    assert torch.equal(a[0], b[0]) and a[1] == b[1] == 3 and a[2] == []
    assert torch.equal(ds[3][0], a[0])  # plain index = epoch 0
    assert not torch.equal(ds[(3, 1)][0], a[0])  # another epoch, another crop/flip/lighting
    assert not torch.equal(SafeDataset(tensor_ds(transform=t), seed=8)[(3, 0)][0], a[0])  # another seed
    torch.manual_seed(123)
    random.seed(1)
    np.random.seed(2)
    ds[(5, 2)]
    assert torch.equal(states[0], torch.get_rng_state())
    assert states[1] == random.getstate() and np.array_equal(states[2], np.random.get_state()[1])
    assert ds.classes == list("abcd") and len(ds) == 20  # attributes pass through


class Flaky(torch.utils.data.Dataset):
    """Fails for the indices in ``bad`` (or all); for SafeDataset's fallback."""

    classes = ["x"]

    def __init__(self, n, bad):
        self.n, self.bad = n, bad

    def __len__(self):
        return self.n

    def samples_path(self, i):
        return f"item{i}"

    def __getitem__(self, i):
        if self.bad == "all" or i in self.bad:
            raise ValueError(f"broken {i}")
        return torch.full((1, 2, 2), i, dtype=torch.uint8), 0


def test_safe_dataset_substitutes_the_next_good_sample():
    ds = SafeDataset(Flaky(6, {2, 3, 5}), seed=0)
    img, label, bad = ds[2]
    assert int(img[0, 0, 0]) == 4 and bad == [("item2", "ValueError: broken 2"), ("item3", "ValueError: broken 3")]
    assert int(ds[5][0][0, 0, 0]) == 0  # wraps around
    assert ds[2][2] == bad  # the same report from the cache of known-bad samples
    with pytest.raises(RuntimeError, match="bug, not bad files"):
        SafeDataset(Flaky(100, "all"), seed=0)[0]


# ----------------------------------------------------------------------------- loader

def _epoch(loader):
    return [(x.clone(), y.clone(), bad) for x, y, bad in loader]


def test_loader_batches_and_resume_mid_epoch():
    ds = tensor_ds(transform=build_transforms(cfg(), train=True, aug="paper"))
    loader = build_loader(ds, batch_size=4, train=True, seed=1)
    assert isinstance(loader.sampler, ResumableSampler)
    loader.sampler.set_epoch(3)
    full = _epoch(loader)
    x, y, bad = full[0]
    batch = next(iter(loader))
    assert type(batch).__name__ == "Batch" and batch.images.shape == x.shape and batch.bad == []
    assert x.dtype == torch.uint8 and x.shape == (4, 3, 12, 12) and y.dtype == torch.int64 and bad == []
    assert len(full) == 5
    resumed = build_loader(ds, batch_size=4, train=True, seed=1)
    resumed.sampler.load_state_dict({**loader.sampler.state_dict(), "position": 8})
    rest = _epoch(resumed)
    assert len(rest) == 3
    for (a, la, _), (b, lb, _) in zip(full[2:], rest):
        assert torch.equal(a, b) and torch.equal(la, lb)


def test_loader_eval_ten_crop_and_no_drop():
    ds = tensor_ds(n=10, transform=build_transforms(cfg(), train=False, ten_crop=True))
    batches = _epoch(build_loader(ds, batch_size=4, train=False))
    assert [b[0].shape for b in batches] == [(4, 10, 3, 12, 12)] * 2 + [(2, 10, 3, 12, 12)]
    assert torch.cat([b[1] for b in batches]).tolist() == [i % 4 for i in range(10)]  # in order


def test_loader_is_identical_with_and_without_workers(image_folder):
    t = build_transforms(cfg(), train=True, aug="paper")
    ds = build_dataset(str(image_folder), "train", t, val_split=0)
    runs = []
    for workers in (0, 2):
        loader = build_loader(ds, batch_size=5, train=True, workers=workers, seed=4)
        loader.sampler.set_epoch(1)
        runs.append(_epoch(loader))
    assert len(runs[0]) == 2
    for (a, la, _), (b, lb, _) in zip(*runs):
        assert torch.equal(a, b) and torch.equal(la, lb)


def test_close_loader_ends_the_persistent_workers_and_leaves_the_loader_usable():
    """A loader left mid-epoch (--max-steps) keeps its persistent workers alive; `close_loader` ends
    them at once, and iterating the loader again starts new ones and yields the same epoch."""
    from alexnet.data.pipeline import close_loader

    loader = build_loader(tensor_ds(n=20), batch_size=4, train=True, workers=2, seed=1)
    it = iter(loader)
    first = next(it)
    workers = list(it._workers)
    assert len(workers) == 2 and all(w.is_alive() for w in workers)
    close_loader(loader)
    assert not any(w.is_alive() for w in workers) and loader._iterator is None
    again = next(iter(loader))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    close_loader(loader)
    close_loader(build_loader(tensor_ds(n=8), batch_size=4, train=False))  # no workers: nothing to do


def test_datasets_pickle_for_spawned_workers(image_folder, cifar10_root):
    """What a spawned worker (macOS/Windows default) gets is pickled: it must round-trip."""
    t = build_transforms(cfg(), train=True, aug="paper")
    for ds in (build_dataset(str(image_folder), "train", t, val_split=0), build_dataset(str(cifar10_root), "val", t)):
        safe = SafeDataset(ds, 1)
        copy = pickle.loads(pickle.dumps(safe))
        a, b = safe[(2, 3)], copy[(2, 3)]
        assert torch.equal(a[0], b[0]) and a[1] == b[1]


@pytest.mark.slow  # a spawned worker imports torch and torchvision afresh: ~10 s on 2 cores
def test_loader_works_with_spawned_workers(image_folder):
    t = build_transforms(cfg(), train=False)
    ds = build_dataset(str(image_folder), "train", t, val_split=0)
    loader = build_loader(ds, batch_size=6, train=False, workers=1)
    loader.multiprocessing_context = "spawn"
    labels = torch.cat([y for _, y, _ in loader]).tolist()
    assert labels == [0] * 4 + [1] * 4 + [2] * 4


def test_distributed_loaders_have_equal_lengths():
    ds = tensor_ds(n=10)
    lengths = [len(list(build_loader(ds, batch_size=2, train=True, rank=r, world_size=3))) for r in range(3)]
    assert lengths == [2, 2, 2]
    ev = [sum(len(y) for _, y, _ in build_loader(ds, batch_size=2, train=False, rank=r, world_size=3))
          for r in range(3)]
    assert ev == [4, 3, 3]


def test_dataset_passes_the_transforms_short_side_to_the_decoder(monkeypatch, tmp_path):
    import alexnet.data.base as datasets  # FileDataset lives in base.py

    seen = []
    real = datasets.decode_image
    monkeypatch.setattr(datasets, "decode_image", lambda p, **kw: seen.append(kw) or real(p, **kw))
    Image.new("RGB", (64, 48)).save(tmp_path / "a.jpg")
    ds = FileDataset([(str(tmp_path / "a.jpg"), 0)], ["a"], transform=build_transforms(cfg(), train=False))
    assert ds[0][0].shape == (3, 12, 12) and seen[-1]["target_short_side"] == 16


# ----------------------------------------------------------------------------- the corrupt-file zoo

@pytest.fixture
def zoo(tmp_path):
    """Good images of distinct colours and every kind of bad file, in one class folder tree."""
    root = tmp_path / "zoo"
    good = {}
    for k in range(6):
        cls = "a" if k % 2 else "b"
        p = root / cls / f"good{k}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 16), (20 * k + 10, 0, 0)).save(p)
        good[20 * k + 10] = str(p)
    Image.new("RGB", (16, 16), (200, 0, 0)).save(root / "a" / "png_named.JPEG", format="PNG")  # fine
    good[200] = str(root / "a" / "png_named.JPEG")
    import io

    jpg = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)).save(jpg, "JPEG")
    bad = {
        "truncated.jpg": "truncated JPEG",
        "empty.jpg": "empty file",
        "text.jpg": "not an image",
        "bomb.png": "too many pixels (100000000 > 89478485): shrink it to at most 9459 pixels wide",
        "missing.jpg": "unreadable: No such file or directory",
    }
    (root / "b" / "truncated.jpg").write_bytes(jpg.getvalue()[: len(jpg.getvalue()) // 2])
    (root / "b" / "empty.jpg").write_bytes(b"")
    (root / "a" / "text.jpg").write_text("<html>404 not found</html>")
    Image.new("1", (10000, 10000)).save(root / "b" / "bomb.png")  # 12 KB on disk, 100 Mpx
    os.symlink(root / "nowhere.jpg", root / "a" / "missing.jpg")  # unreadable: a dangling link
    if os.geteuid() != 0:  # root reads anything
        (root / "a" / "secret.jpg").write_bytes(jpg.getvalue())
        os.chmod(root / "a" / "secret.jpg", 0)
        bad["secret.jpg"] = "unreadable: Permission denied"
    return SimpleNamespace(root=root, good=good, bad=bad)


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_zoo_loader_completes_and_reports_every_bad_file(zoo, tmp_path, workers):
    ds = build_dataset(f"folder:{zoo.root}", "train", build_transforms(cfg(), train=False), val_split=0)
    assert len(ds) == len(zoo.good) + len(zoo.bad)
    log = BadSampleLog()
    seen = set()
    loader = build_loader(ds, batch_size=3, train=False, workers=workers)
    n = 0
    for x, y, bad in loader:
        assert all(type(b).__name__ == "BadSample" and b == (b.path, b.reason) for b in bad)
        log.add(bad)
        n += len(y)
        seen.update(int(v) for v in x[:, 0].reshape(len(y), -1).float().mean(1).round())
    assert n == len(ds)  # every slot filled, bad ones by substitutes
    assert seen == set(zoo.good)  # every good image seen
    reported = {os.path.basename(p): r for p, r in log.total.items()}
    assert reported == zoo.bad
    summary = log.end_epoch()
    assert summary.startswith(f"{len(zoo.bad)} bad samples skipped: ")
    assert "1 truncated JPEG" in summary and "1 too many pixels" in summary and "1 not an image" in summary
    path = log.write(tmp_path / "run")
    lines = open(path).read().splitlines()
    assert len(lines) == len(zoo.bad) and all(line.count("\t") == 1 for line in lines)
    assert {os.path.basename(line.split("\t")[0]): line.split("\t")[1] for line in lines} == zoo.bad


def test_bad_sample_log():
    log = BadSampleLog()
    assert log.end_epoch() == "" and log.write("/nonexistent") is None
    log.add([("/a.jpg", "truncated JPEG"), ("/b.jpg", "truncated JPEG")])
    log.add([("/a.jpg", "truncated JPEG"), ("/c.jpg", "not an image")])
    assert log.epoch_summary() == "3 bad samples skipped: 2 truncated JPEG, 1 not an image"
    assert log.end_epoch() == "3 bad samples skipped: 2 truncated JPEG, 1 not an image"
    log.add([("/d.png", "too many pixels (9 > 4)")])
    assert log.end_epoch() == "1 bad sample skipped: 1 too many pixels"
    again = BadSampleLog()
    again.load_state_dict(pickle.loads(pickle.dumps(log.state_dict())))
    assert again.summary() == log.summary() and len(again) == 4
