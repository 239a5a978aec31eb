"""The ``shards:`` dataset kind and ``alexnet data shards``: the round trip against the source (labels,
class names, splits, pixels), webdataset reading our tars, the epoch order dealt to ranks and
workers (each sample once an epoch, the rest exactly once after a resume), corrupt records, the
command's refusals, URLs."""

from __future__ import annotations

import json
import os
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet.cli import main
from alexnet.core.errors import UserError
from alexnet.data import build_dataset, build_loader
from alexnet.data.check import check_dataset
from alexnet.data.shards import ShardDataset
from alexnet.data.shards_build import build_shards


def sources(root) -> dict[str, str]:
    """key → source path, from the shards' sources.tsv."""
    return dict(line.rstrip("\n").split("\t") for line in open(os.path.join(root, "sources.tsv")))


def assert_same_as_source(shards: ShardDataset, src, root) -> None:
    """Every image of ``src`` is in ``shards`` once, with its label and its pixels."""
    by_source = {p: i for i, p in enumerate(src.samples_path(i) for i in range(len(src)))}
    keys = sources(root)
    assert len(shards) == len(src) and shards.classes == src.classes and shards.class_ids == src.class_ids
    seen = []
    for i in range(len(shards)):
        j = by_source[keys[shards.key(i)]]
        seen.append(j)
        assert shards.targets[i] == src.targets[j]
        assert torch.equal(shards.load(i), src.load(j)), shards.key(i)
    assert sorted(seen) == list(range(len(src)))


# ----------------------------------------------------------------------------- the round trip

def test_folder_with_its_own_val_split_round_trips(tmp_path, split_folder):
    idx = build_shards(str(split_folder), tmp_path / "s", shard_mb=0.004, progress=False)
    assert set(idx["splits"]) == {"train", "val"}
    assert len(idx["splits"]["train"]["shards"]) > 1  # several shards, cut by size
    for split in ("train", "val"):
        src = build_dataset(str(split_folder), split)
        got = build_dataset(f"shards:{tmp_path / 's'}", split)
        assert_same_as_source(got, src, tmp_path / "s")
        assert idx["splits"][split]["class_counts"] == src.class_counts()
    assert len(build_dataset(str(tmp_path / "s"), "all")) == 14  # a bare shards folder is recognised


def test_a_carved_val_split_is_the_one_training_holds_out(tmp_path, image_folder):
    """Mixed modes (L, RGBA, P): the stored files decode to exactly what the source gives."""
    build_shards(f"folder:{image_folder}", tmp_path / "s", val_split=0.25, seed=3, progress=False)
    for split in ("train", "val"):
        src = build_dataset(f"folder:{image_folder}", split, val_split=0.25, seed=3)
        assert_same_as_source(build_dataset(f"shards:{tmp_path / 's'}", split), src, tmp_path / "s")


def test_in_memory_grey_digits_keep_one_channel_and_exact_pixels(tmp_path):
    build_shards("digits", tmp_path / "d", shard_mb=0.2, seed=5, progress=False)
    got = build_dataset(f"shards:{tmp_path / 'd'}", "val")
    assert got.load(0).shape == (1, 8, 8)
    assert_same_as_source(got, build_dataset("digits", "val", seed=5), tmp_path / "d")


def test_webdataset_reads_our_shards(tmp_path, split_folder):
    wds = pytest.importorskip("webdataset")
    idx = build_shards(str(split_folder), tmp_path / "s", shard_mb=0.004, progress=False)
    urls = [str(tmp_path / "s" / e["name"]) for e in idx["splits"]["train"]["shards"]]
    got = [(s["__key__"], int(s["cls"]), s["jpg"].size) for s in
           wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode("pil")]
    ours = build_dataset(f"shards:{tmp_path / 's'}", "train")
    assert [(k, t) for k, t, _ in got] == [(ours.key(i), ours.targets[i]) for i in range(len(ours))]
    assert all(size == (20, 16) for _, _, size in got)


# ----------------------------------------------------------------------------- ranks, workers, resume

@pytest.fixture(scope="module")
def numbered(tmp_path_factory):
    """Shards of 48 4×4 PNGs whose first pixel spells the image's number (3 classes), ~8 shards."""
    root = tmp_path_factory.mktemp("numbered")
    for n in range(48):
        arr = np.zeros((4, 4, 3), np.uint8)
        arr[0, 0] = (n, 7, 0)
        os.makedirs(root / "src" / f"c{n % 3}", exist_ok=True)
        Image.fromarray(arr).save(root / "src" / f"c{n % 3}" / f"{n}.png")
    build_shards(f"folder:{root / 'src'}", root / "s", val_split=0, shard_mb=0.014, progress=False)
    return f"shards:{root / 's'}"


def numbers(batch) -> list[int]:
    return batch.images[:, 0, 0, 0].tolist()


def epoch_numbers(spec, *, world: int, workers: int, epoch: int, start: int = 0, stop: int | None = None,
                  batch: int = 4) -> list[list[int]]:
    """The numbers each rank's training loader yields in ``epoch`` (from sample ``start`` on, at
    most ``stop`` batches)."""
    out = []
    for rank in range(world):
        loader = build_loader(build_dataset(spec, "train"), batch_size=batch, train=True, workers=workers,
                              seed=11, rank=rank, world_size=world)
        loader.sampler.set_epoch(epoch)
        loader.sampler.start_at(start)
        got = []
        for b, x in enumerate(loader):
            if stop is not None and b >= stop:
                break
            got += numbers(x)
        out.append(got)
    return out


def test_two_ranks_two_workers_see_every_image_once_an_epoch_and_resume_exactly(numbered):
    assert len(ShardDataset(numbered.split(":", 1)[1]).shards) >= 6
    full = epoch_numbers(numbered, world=2, workers=2, epoch=1)
    assert sorted(full[0] + full[1]) == list(range(48))  # disjoint, complete
    assert epoch_numbers(numbered, world=2, workers=0, epoch=1) == full  # workers change nothing
    assert epoch_numbers(numbered, world=2, workers=2, epoch=2) != full  # a new order each epoch
    # killed after 2 batches per rank; resumed at sample 8 of the epoch: the rest, exactly once
    head = epoch_numbers(numbered, world=2, workers=2, epoch=1, stop=2)
    tail = epoch_numbers(numbered, world=2, workers=2, epoch=1, start=8)
    assert [h + t for h, t in zip(head, tail)] == full
    assert sorted(sum(head + tail, [])) == list(range(48))


def test_the_epoch_order_reads_shard_by_shard(numbered):
    ds = build_dataset(numbered, "train")
    order = ds.epoch_order(11, 1)
    assert sorted(order) == list(range(len(ds))) and order == ds.epoch_order(11, 1) != ds.epoch_order(12, 1)
    shard_of = [ds.locate(i)[0] for i in order]
    runs = 1 + sum(a != b for a, b in zip(shard_of, shard_of[1:]))
    assert runs == len(ds.shards)  # each shard's samples come together
    assert shard_of != sorted(shard_of)  # in a shuffled shard order
    loader = build_loader(ds, batch_size=4, train=True, seed=11, rank=1, world_size=2)
    loader.sampler.set_epoch(1)
    assert loader.sampler.indices() == order[1::2]  # the loader deals this order out
    # whatever the number of processes, k steps of global batch 24 have seen the order's first 24·k
    for world in (1, 2, 3):
        seen = []
        for rank in range(world):
            sampler = build_loader(ds, batch_size=24 // world, train=True, seed=11, rank=rank,
                                   world_size=world).sampler
            sampler.set_epoch(1)
            seen += [i for i, _ in sampler][:24 // world]  # one step
        assert sorted(seen) == sorted(order[:24])


# ----------------------------------------------------------------------------- bad records

def spoil_one_record(root, split="train") -> str:
    """Overwrite one stored JPEG in a shard with garbage of the same length; returns its key."""
    name = json.load(open(root / "index.json"))["splits"][split]["shards"][0]["name"]
    with tarfile.open(root / name) as tar:
        m = next(m for m in tar if m.name.endswith(".jpg"))
    with open(root / name, "r+b") as f:
        f.seek(m.offset_data)
        f.write(b"\x00garbage" * (m.size // 8) + b"\x00" * (m.size % 8))
    return m.name.split(".")[0]


def test_a_corrupt_record_is_skipped_and_reported(tmp_path, split_folder, capsys):
    build_shards(str(split_folder), tmp_path / "s", progress=False)
    key = spoil_one_record(tmp_path / "s")
    spec = f"shards:{tmp_path / 's'}"
    train = build_loader(build_dataset(spec, "train"), batch_size=10, train=True)
    (batch,) = list(train)  # replaced by the next good one: the batch stays full
    assert len(batch.labels) == 10 and [p.split("#")[1] for p, _ in batch.bad] == [key]
    assert "not an image" in batch.bad[0].reason or "JPEG" in batch.bad[0].reason
    val = build_loader(build_dataset(spec, "train"), batch_size=10, train=False, substitute=False)
    assert sum(len(b.labels) for b in val) == 9  # evaluation leaves it out
    report = check_dataset(spec, progress=False)
    assert [p.split("#")[1] for p, _ in report.bad] == [key]
    assert [s.images for s in report.splits] == [10, 4]
    assert main(["data", "check", spec]) == 1
    assert f"#{key}:" in capsys.readouterr().out


def test_unreadable_source_images_are_skipped_and_listed(tmp_path, image_folder, capsys):
    (image_folder / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    assert main(["data", "shards", str(image_folder), "-o", str(tmp_path / "s"), "--val-split", "0"]) == 1  # bad files
    err = capsys.readouterr().err
    assert f"skipped: {image_folder / 'dog' / 'broken.jpg'}" in err
    idx = json.load(open(tmp_path / "s" / "index.json"))
    assert idx["splits"]["train"]["count"] == 12 and len(idx["bad"]) == 1


# ----------------------------------------------------------------------------- the command

def test_the_command_refuses_a_non_empty_folder_and_overwrites_only_shards(tmp_path, split_folder, capsys):
    out = tmp_path / "s"
    assert main(["data", "shards", str(split_folder), "-o", str(out)]) == 0
    assert "train 10 images in 1 shard, val 4 images in 1 shard, 2 classes" in capsys.readouterr().out
    assert main(["data", "shards", "digits", "-o", str(out)]) == 2
    assert "is not empty; give a new or empty folder, or --overwrite" in capsys.readouterr().err
    assert main(["data", "shards", "digits", "-o", str(out), "--overwrite"]) == 0
    assert len(build_dataset(f"shards:{out}", "all")) == 1797
    (out / "notes.txt").write_text("mine")
    assert main(["data", "shards", "digits", "-o", str(out), "--overwrite"]) == 2
    assert "holds files that are not shards (notes.txt)" in capsys.readouterr().err
    assert main(["data", "shards", f"shards:{out}", "-o", str(tmp_path / "t")]) == 2
    assert main(["data", "list", str(out)]) == 2
    assert "holds shards, not image folders" in capsys.readouterr().err
    assert main(["data", "list", f"shards:{out}"]) == 2  # the spec as training takes it
    assert "shards list themselves" in capsys.readouterr().err
    assert main(["data", "list", f"folder:{split_folder}", "-o", str(tmp_path / "l")]) == 0
    assert (tmp_path / "l" / "train.txt").is_file()


def test_an_interrupted_build_leaves_no_index_and_is_refused(tmp_path, split_folder, monkeypatch):
    import alexnet.data.shards_build as sb

    real = sb.atomic_write

    def killed(path, data):
        if str(path).endswith("index.json"):
            raise KeyboardInterrupt
        real(path, data)

    monkeypatch.setattr(sb, "atomic_write", killed)
    with pytest.raises(KeyboardInterrupt):
        build_shards(str(split_folder), tmp_path / "s", progress=False)
    assert not (tmp_path / "s" / "index.json").exists() and list((tmp_path / "s").glob("*.tar"))
    with pytest.raises(UserError, match="unfinished shards .* --overwrite"):
        build_dataset(f"shards:{tmp_path / 's'}", "train")


def test_no_val_split_is_said_in_one_line(tmp_path, split_folder):
    build_shards(f"folder:{split_folder / 'train'}", tmp_path / "s", val_split=0, progress=False)
    with pytest.raises(UserError, match="have no val split .* --val-split"):
        build_dataset(f"shards:{tmp_path / 's'}", "val")
    with pytest.raises(UserError, match="positive number of megabytes"):
        build_shards("digits", tmp_path / "t", shard_mb=0)


# ----------------------------------------------------------------------------- URLs

def test_urls_file_and_fsspec_and_a_missing_backend(tmp_path, split_folder):
    fsspec = pytest.importorskip("fsspec")
    build_shards(str(split_folder), tmp_path / "s", shard_mb=0.004, progress=False)
    local = build_dataset(f"shards:{tmp_path / 's'}", "train")
    assert len(build_dataset(f"shards:file://{tmp_path / 's'}", "train")) == 10
    mem = fsspec.filesystem("memory")
    for p in (tmp_path / "s").iterdir():
        mem.pipe(f"/shards-test/{p.name}", p.read_bytes())
    remote = build_dataset("shards:memory://shards-test", "val")
    assert remote.samples_path(0).startswith("memory://shards-test/val-")
    val = build_dataset(f"shards:{tmp_path / 's'}", "val")
    assert all(torch.equal(remote.load(i), val.load(i)) for i in range(len(val)))
    assert local.targets == build_dataset("shards:memory://shards-test", "train").targets
    mem.rm("/shards-test", recursive=True)
    try:
        import s3fs  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match=r"s3:// shards needs an fsspec backend: .*s3fs"):
            build_dataset("shards:s3://bucket/imagenet", "train")


def test_a_build_from_bad_files_only_says_so_and_suggests_no_training(tmp_path, capsys):
    for cls in ("a", "b"):
        (tmp_path / "bad" / cls).mkdir(parents=True)
        (tmp_path / "bad" / cls / "x.jpg").write_bytes(b"")
    for kind in ("shards", "cache"):
        assert main(["data", kind, str(tmp_path / "bad"), "-o", str(tmp_path / kind), "--val-split", "0"]) == 1
        cap = capsys.readouterr()
        assert "train with" not in cap.out and "error: not one image could be read" in cap.err


def test_an_index_with_a_label_beyond_its_classes_is_refused_before_training(tmp_path, split_folder, capsys):
    """index.json edited by hand (label 9 of two classes): data check and training refuse it in one line,
    as a damaged cache is; it had passed the check and crashed the loss with an IndexError."""
    import json

    from alexnet.cli import main

    build_shards(str(split_folder), tmp_path / "s", progress=False)
    index = json.loads((tmp_path / "s" / "index.json").read_text())
    index["splits"]["train"]["shards"][0]["labels"][0] = 9
    (tmp_path / "s" / "index.json").write_text(json.dumps(index))
    assert main(["data", "check", f"shards:{tmp_path / 's'}"]) == 2
    err = capsys.readouterr().err
    assert "lists label 9, which is not one of its 2 classes; the index is damaged: rebuild the shards" in err
