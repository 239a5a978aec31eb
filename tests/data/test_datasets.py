"""build_dataset: every spec, its counts, labels, class names, dtype and shapes, and its errors."""

from __future__ import annotations

import os
import re
import shutil
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet.core.errors import UserError
from alexnet.data import build_dataset, parse_spec, split_indices
from alexnet.data.imagenet import imagenet_val_relayout, read_devkit

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
IMAGENET_WNIDS = ["n01440764", "n01443537", "n01484850"]  # as in conftest's fake_imagenet


def _check_items(ds, channels, shape=None):
    for i in range(len(ds)):
        img, label = ds[i]
        assert img.dtype == torch.uint8 and img.dim() == 3 and img.shape[0] == channels
        if shape:
            assert tuple(img.shape) == shape
        assert isinstance(label, int) and 0 <= label < len(ds.classes)
        assert isinstance(ds.samples_path(i), str)
    assert len(ds.class_ids) == len(ds.classes)


def test_digits_offline_fixed_stratified_split():
    tr, va = build_dataset("digits", "train"), build_dataset("digits", "val")
    assert len(tr) + len(va) == 1797 and len(va) == pytest.approx(0.2 * 1797, abs=6)
    assert tr.classes == [str(i) for i in range(10)] == tr.class_ids
    img, label = tr[0]
    assert img.shape == (1, 8, 8) and img.dtype == torch.uint8 and int(img.max()) <= 255
    assert int(tr.images.max()) == 255  # 16 → 255
    counts = np.bincount(va.targets, minlength=10)
    assert counts.min() >= 33 and counts.max() <= 38  # stratified: ~20 % of each class
    again = build_dataset("digits", "val")
    assert torch.equal(again.images, va.images) and again.targets == va.targets  # fixed
    assert not torch.equal(build_dataset("digits", "val", seed=1).images, va.images)
    assert len(build_dataset("digits", "test")) == len(va)  # alias
    assert len(build_dataset("digits", "train", val_split=0.5)) == pytest.approx(1797 / 2, abs=6)


def test_split_indices_is_stratified_disjoint_and_stable():
    targets = [0] * 10 + [1] * 3 + [2]
    tr, va = split_indices(targets, 0.2, seed=0)
    assert sorted(tr + va) == list(range(14)) and not set(tr) & set(va)
    assert [targets[i] for i in va].count(0) == 2 and [targets[i] for i in va].count(1) == 1
    assert 13 in tr  # a one-image class stays in training
    assert split_indices(targets, 0.2, seed=0) == (tr, va)


def test_folder_without_val_is_split_by_seed(image_folder):
    tr = build_dataset(f"folder:{image_folder}", "train", val_split=0.25)
    va = build_dataset(f"folder:{image_folder}", "val", val_split=0.25)
    assert tr.classes == ["cat", "dog", "fox"] and len(tr) == 9 and len(va) == 3
    assert not {p for p, _ in tr.samples} & {p for p, _ in va.samples}
    assert sorted(va.targets) == [0, 1, 2]
    _check_items(tr, 3, (3, 16, 20))
    bare = build_dataset(str(image_folder), "train", val_split=0.25)  # a bare path is a folder
    assert bare.samples == tr.samples
    assert len(build_dataset(str(image_folder), "train", val_split=0)) == 12
    with pytest.raises(UserError, match="no validation"):
        build_dataset(str(image_folder), "val", val_split=0)


def test_folder_with_train_and_val(split_folder, write_image):
    tr, va = build_dataset(f"folder:{split_folder}", "train"), build_dataset(str(split_folder), "test")
    assert (len(tr), len(va)) == (10, 4) and tr.classes == va.classes == ["a", "b"]
    assert all("/val/" in p for p, _ in va.samples) and all("/train/" in p for p, _ in tr.samples)
    assert va.targets == [0, 0, 1, 1]
    os.makedirs(split_folder / "val" / "zzz")
    write_image(split_folder / "val" / "zzz" / "x.jpg")
    with pytest.raises(UserError, match="zzz"):
        build_dataset(str(split_folder), "val")


def test_folder_ignores_hidden_folders_and_non_images(image_folder, write_image):
    os.makedirs(image_folder / ".ipynb_checkpoints")
    (image_folder / "cat" / "notes.txt").write_text("hi")
    (image_folder / "cat" / "._cat0.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS's twin of a photo
    write_image(image_folder / "dog" / ".thumbnails" / "dog0.jpg")  # a viewer's cache inside a class
    ds = build_dataset(str(image_folder), "train", val_split=0)
    assert ds.classes == ["cat", "dog", "fox"] and len(ds) == 12
    assert not any("/." in p for p, _ in ds.samples)


def test_a_link_back_up_the_tree_is_not_followed_in_a_loop(image_folder):
    (image_folder / "cat" / "up").symlink_to("..")  # cat/up/dog/… would be dog's images again, as cat
    (image_folder / "fox" / "self").symlink_to(".")
    ds = build_dataset(str(image_folder), "train", val_split=0)
    assert len(ds) == 12 and sorted(ds.targets) == [0] * 4 + [1] * 4 + [2] * 4


def test_a_class_folder_linking_to_another_class_does_not_list_its_images_twice(image_folder, tmp_path, write_image):
    (image_folder / "dog" / "cats").symlink_to(image_folder / "cat")  # would list cat's 4 images as dog too
    write_image(tmp_path / "elsewhere" / "d.png")
    (image_folder / "dog" / "more").symlink_to(tmp_path / "elsewhere")  # outside the tree: dog's
    write_image(image_folder / ".store" / "f" / "s.png")
    (image_folder / "fox" / "stored").symlink_to(image_folder / ".store" / "f")  # inside it, in no class: fox's
    ds = build_dataset(str(image_folder), "train", val_split=0)
    assert sorted(ds.targets) == [0] * 4 + [1] * 5 + [2] * 5
    assert str(image_folder / "dog" / "more" / "d.png") in [p for p, _ in ds.samples]


def test_a_class_folder_that_cannot_be_listed_is_one_line_not_an_empty_class(image_folder, monkeypatch):
    """os.walk passes over a folder it cannot list (no permission): the class would train with no
    images and nothing said. (As root a chmod 000 is read anyway: the refusal is made here.)"""
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path) == str(image_folder / "dog"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(UserError, match=f"{re.escape(str(image_folder / 'dog'))}: cannot list the folder "
                                        r"\(Permission denied\); its images would be left out"):
        build_dataset(str(image_folder), "train", val_split=0)


def test_jpeg_extensions_jpe_and_jfif_are_images(image_folder, write_image):
    write_image(image_folder / "cat" / "a.jfif", fmt="JPEG")
    write_image(image_folder / "cat" / "b.JPE", fmt="JPEG")
    ds = build_dataset(str(image_folder), "train", val_split=0)
    assert len(ds) == 14
    assert ds[[p for p, _ in ds.samples].index(str(image_folder / "cat" / "a.jfif"))][0].shape == (3, 16, 20)


def test_split_test_scores_a_test_folder_beside_val(split_folder, write_image):
    for c in "ab":
        write_image(split_folder / "test" / c / "t.jpg", seed=7)
    val, test = build_dataset(str(split_folder), "val"), build_dataset(str(split_folder), "test")
    assert len(val) == 4 and all("/val/" in p for p, _ in val.samples)  # val/ validates
    assert len(test) == 2 and all("/test/" in p for p, _ in test.samples)
    assert len(build_dataset(str(split_folder), "validation")) == 4


@pytest.mark.parametrize("train, val", [("training", "testing"), ("Training_Set", "Test_Set"),
                                        ("train-images", "validation-set")])
def test_parts_named_otherwise_are_train_and_validation_not_two_classes(split_folder, train, val, write_image):
    """MNIST-as-PNG's training/ and testing/, Kaggle's training_set/ and test_set/: the parts, not
    two classes named after them (each would have held every image of its part)."""
    os.rename(split_folder / "train", split_folder / train)
    os.rename(split_folder / "val", split_folder / val)
    tr, va = build_dataset(str(split_folder), "train"), build_dataset(str(split_folder), "val")
    assert tr.classes == va.classes == ["a", "b"] and (len(tr), len(va)) == (10, 4)
    assert all(f"/{val}/" in p for p, _ in va.samples) and all(f"/{train}/" in p for p, _ in tr.samples)
    assert len(build_dataset(str(split_folder), "test")) == 4


def test_a_class_named_like_a_part_stays_a_class(image_folder, write_image):
    """A class folder called ``training`` holding its own images (no class folders inside) is a class."""
    for i in range(3):
        write_image(image_folder / "training" / f"t{i}.jpg", seed=i)
        write_image(image_folder / "testing" / f"s{i}.jpg", seed=i)
    ds = build_dataset(str(image_folder), "train", val_split=0)
    assert ds.classes == ["cat", "dog", "fox", "testing", "training"] and len(ds) == 18


def test_list_file_with_classes_txt_and_sibling(tmp_path, image_folder):
    (tmp_path / "imgs").symlink_to(image_folder)
    (tmp_path / "train.txt").write_text("# comment\nimgs/cat/cat0.jpg 0\n\nimgs/dog/dog1.jpg 1\n")
    (tmp_path / "test.txt").write_text(f"{image_folder}/fox/fox2.png 2\n")
    (tmp_path / "classes.txt").write_text("cat\ndog\nfox\n")
    tr = build_dataset(f"list:{tmp_path / 'train.txt'}", "train")
    va = build_dataset(str(tmp_path / "train.txt"), "val")  # a bare file is a list
    assert tr.classes == ["cat", "dog", "fox"] and tr.targets == [0, 1] and va.targets == [2]
    assert tr.samples_path(0) == str(tmp_path / "imgs" / "cat" / "cat0.jpg")
    _check_items(tr, 3)


def test_classes_txt_mistakes_are_one_line_naming_the_file_and_line(tmp_path, image_folder):
    (tmp_path / "train.txt").write_text(f"{image_folder}/cat/cat0.jpg 0\n{image_folder}/dog/dog1.jpg 1\n")
    (tmp_path / "val.txt").write_text(f"{image_folder}/fox/fox2.png 1\n")
    spec = str(tmp_path / "train.txt")
    for text, said in (("cat\n\ndog\n", "classes.txt:2: a blank line; line i names label i - 1"),  # dog was label 1
                       ("cat\ncat\n", "classes.txt:2: 'cat' again (line 1 names it): name each class once")):
        (tmp_path / "classes.txt").write_text(text)
        with pytest.raises(UserError, match=re.escape(said)):
            build_dataset(spec, "train")
    (tmp_path / "classes.txt").write_text("cat\ndog\n\n\n")  # blank lines at the end name nothing
    assert build_dataset(spec, "train").classes == ["cat", "dog"]
    (tmp_path / "val.txt").write_text(f"{image_folder}/fox/fox2.png 5\n")  # the label is the validation list's
    with pytest.raises(UserError, match=re.escape(f"{tmp_path / 'val.txt'} uses label 5, but {tmp_path / 'classes.txt'} "
                                                  "names 2 classes (labels 0–1)")):
        build_dataset(spec, "val")


def test_list_file_paths_with_spaces_and_numeric_classes(tmp_path, write_image):
    write_image(tmp_path / "my photos" / "a b.png")
    (tmp_path / "all.txt").write_text("my photos/a b.png 3\n" * 4)
    ds = build_dataset(str(tmp_path / "all.txt"), "train", val_split=0)
    assert ds.classes == ["0", "1", "2", "3"] and ds[0][1] == 3 and ds[0][0].shape == (3, 16, 20)
    (tmp_path / "bad.txt").write_text("nolabel.png\n")
    with pytest.raises(UserError, match=r"bad.txt:1: expected 'path label'"):
        build_dataset(str(tmp_path / "bad.txt"))


def test_list_files_with_a_byte_order_mark_read_as_text(tmp_path, image_folder):
    (tmp_path / "train.txt").write_text(f"\ufeff{image_folder}/cat/cat0.jpg 0\n{image_folder}/dog/dog1.jpg 1\n")
    (tmp_path / "classes.txt").write_text("\ufeffcat\ndog\n")  # as Windows' Notepad saves UTF-8
    ds = build_dataset(str(tmp_path / "train.txt"), "train", val_split=0)
    assert ds.classes == ["cat", "dog"] and ds.samples_path(0) == f"{image_folder}/cat/cat0.jpg"


def test_a_validation_list_with_a_label_the_training_list_never_uses_is_one_line(tmp_path, image_folder):
    (tmp_path / "train.txt").write_text(f"{image_folder}/cat/cat0.jpg 0\n{image_folder}/dog/dog1.jpg 1\n")
    (tmp_path / "val.txt").write_text(f"{image_folder}/fox/fox2.png 2\n")
    for split in ("train", "val"):  # both sides: the model's outputs come from the training side
        with pytest.raises(UserError, match=r"val.txt uses label 2, which train.txt never reaches \(its labels are 0–1\)"):
            build_dataset(str(tmp_path / "train.txt"), split)


def test_cifar10_official_batches(cifar10_root):
    tr, va = build_dataset(f"cifar10:{cifar10_root}", "train"), build_dataset(f"cifar10:{cifar10_root}", "test")
    assert (len(tr), len(va)) == (20, 6) and tr.classes == CIFAR_CLASSES
    assert va.targets == [0, 1, 2, 3, 4, 5] and tr.targets[:4] == [1, 2, 3, 4]
    _check_items(va, 3, (3, 32, 32))
    import pickle

    raw = pickle.load(open(cifar10_root / "cifar-10-batches-py" / "test_batch", "rb"), encoding="latin1")
    first = raw["data"][0]
    assert va[0][0].reshape(-1).tolist() == first.tolist()  # R, G, B planes, row-major
    same = build_dataset(f"cifar10:{cifar10_root / 'cifar-10-batches-py'}", "val")  # the batches folder itself
    assert torch.equal(same.images, va.images)
    assert parse_spec(str(cifar10_root))[0] == "cifar10"


def test_cifar10_from_archive_and_refuses_pickled_code(cifar10_root, tmp_path):
    arch = tmp_path / "arch"
    arch.mkdir()
    with tarfile.open(arch / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(cifar10_root / "cifar-10-batches-py", "cifar-10-batches-py")
    assert len(build_dataset(f"cifar10:{arch}", "val")) == 6

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    import pickle

    with open(cifar10_root / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({"data": Evil(), "labels": []}, f)
    with pytest.raises(UserError, match="refused to unpickle"):
        build_dataset(f"cifar10:{cifar10_root}", "val")


def _rewrite_batch(root, name, **change):
    import pickle

    path = root / "cifar-10-batches-py" / name
    d = pickle.load(open(path, "rb"), encoding="latin1")
    d.update(change)
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=2)
    return d


@pytest.mark.parametrize("change, expect", [
    (lambda d: {"labels": d["labels"][:-1]}, "4 images but 3 labels"),  # every later label would shift
    (lambda d: {"labels": [255] + d["labels"][1:]}, "label 255 is not one of the 10 classes"),
    (lambda d: {"labels": [-1] + d["labels"][1:]}, "label -1 is not one of the 10 classes"),
    (lambda d: {"data": d["data"][:, :3000]}, "not uint8 rows of 3,072 values"),
    (lambda d: {"data": d["data"].astype("float32") * 2}, "not uint8 rows"),
])
def test_a_damaged_cifar10_batch_is_one_line_not_shifted_labels(cifar10_root, change, expect):
    import pickle

    path = cifar10_root / "cifar-10-batches-py" / "data_batch_2"
    d = pickle.load(open(path, "rb"), encoding="latin1")
    _rewrite_batch(cifar10_root, "data_batch_2", **change(d))
    with pytest.raises(UserError, match=expect):
        build_dataset(f"cifar10:{cifar10_root}", "train")


def test_a_cifar10_archive_cut_short_leaves_nothing_behind(cifar10_root, tmp_path):
    """A truncated download is one line and unpacks nothing; the complete archive then works."""
    arch = tmp_path / "arch"
    arch.mkdir()
    good = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(good, "w:gz") as tar:
        tar.add(cifar10_root / "cifar-10-batches-py", "cifar-10-batches-py")
    (arch / good.name).write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(UserError, match="cannot be unpacked .*download it again"):
        build_dataset(f"cifar10:{arch}", "val")
    assert sorted(p.name for p in arch.iterdir()) == ["cifar-10-python.tar.gz"]  # no half folder
    (arch / good.name).write_bytes(good.read_bytes())
    (arch / "cifar-10-batches-py").mkdir()  # what an older unpacking cut short could leave
    (arch / "cifar-10-batches-py" / "data_batch_4").write_bytes(b"part")
    assert len(build_dataset(f"cifar10:{arch}", "val")) == 6


def test_cifar10_binary_and_cifar100_are_named(tmp_path):
    for name in ("cifar-10-batches-bin", "cifar-100-python"):
        (tmp_path / name / "x").mkdir(parents=True)
        with pytest.raises(UserError, match=f"holds {name}/.*use the python version"):
            build_dataset(f"cifar10:{tmp_path}", "train")
        (tmp_path / name / "x").rmdir()
        (tmp_path / name).rmdir()


def test_cifar10_as_image_folders(split_folder, tmp_path):
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    for i, name in enumerate(names):
        (tmp_path / "c10" / "train" / name).mkdir(parents=True)
        Image.new("RGB", (32, 32), (i * 20, 0, 0)).save(tmp_path / "c10" / "train" / name / "0.png")
    ds = build_dataset(f"cifar10:{tmp_path / 'c10'}", "train", val_split=0)
    assert len(ds) == 10 and ds.classes == names
    # two class folders are not CIFAR-10 (a wrong folder, say the home folder, is not taken for it)
    with pytest.raises(UserError, match=r"has 2 class folders \(a, b\), CIFAR-10 has 10: .* or use folder:"):
        build_dataset(f"cifar10:{split_folder}", "val")
    assert build_dataset(f"folder:{split_folder}", "val").classes == ["a", "b"]


def test_mnist_labels_beyond_9_are_one_line(mnist_root):
    import gzip
    import struct

    raw = mnist_root / "MNIST" / "raw"
    labels = bytes([10] + [1] * 11)  # idx: magic 0x00000801, the count, the bytes
    (raw / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(struct.pack(">BBBBI", 0, 0, 8, 1, 12) + labels))
    with pytest.raises(UserError, match="has label 10; MNIST's labels are 0–9"):
        build_dataset(f"mnist:{mnist_root}", "train")


def test_mnist_idx_gz_and_plain(mnist_root):
    tr, va = build_dataset(f"mnist:{mnist_root}", "train"), build_dataset(f"mnist:{mnist_root}", "val")
    assert (len(tr), len(va)) == (12, 5) and tr.classes == [str(i) for i in range(10)]
    assert tr.targets == [i % 10 for i in range(12)]
    _check_items(tr, 1, (1, 28, 28))
    raw = mnist_root / "MNIST" / "raw"
    import gzip

    for f in raw.iterdir():  # the un-gzipped files directly in the root work too
        (mnist_root / f.name[:-3]).write_bytes(gzip.decompress(f.read_bytes()))
    shutil.rmtree(mnist_root / "MNIST")
    plain = build_dataset(str(mnist_root), "test")  # recognised from the files
    assert torch.equal(plain.images, va.images)


def test_missing_datasets_say_what_to_do(tmp_path):
    with pytest.raises(UserError, match=r"cifar-10-python.tar.gz .* add --download"):
        build_dataset(f"cifar10:{tmp_path}")
    with pytest.raises(UserError, match="put the four MNIST idx files there"):
        build_dataset(f"mnist:{tmp_path}")
    with pytest.raises(UserError, match="ILSVRC2012_devkit_t12.tar.gz"):
        build_dataset(f"imagenet:{tmp_path}")
    with pytest.raises(UserError, match="no such file or folder"):
        build_dataset(str(tmp_path / "nope"))
    with pytest.raises(UserError, match="unknown dataset kind 'imagnet'"):
        build_dataset("imagnet:/x")
    with pytest.raises(UserError, match=r"a location is needed \(cifar10:/path"):
        build_dataset("cifar10")
    with pytest.raises(UserError, match="unknown split"):
        build_dataset("digits", "training")
    with pytest.raises(UserError, match="no class folders"):
        build_dataset(f"folder:{tmp_path}")


def test_failed_download_is_one_line(tmp_path, monkeypatch):
    import urllib.error

    import torchvision.datasets

    def offline(root, *a, **k):  # as torchvision does: its folders first, then the network fails
        os.makedirs(os.path.join(root, "MNIST", "raw"), exist_ok=True)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(UserError, match=r"cifar10: download to .* failed \(<urlopen error"):
        build_dataset(f"cifar10:{tmp_path / 'new' / 'c'}", download=True)
    with pytest.raises(UserError, match=r"mnist: download to .* failed .*put the four"):
        build_dataset(f"mnist:{tmp_path / 'new' / 'm'}", download=True)
    assert not (tmp_path / "new").exists()  # nothing half-made is left for the next try to find, parents included
    (tmp_path / "mine" / "MNIST").mkdir(parents=True)
    with pytest.raises(UserError, match=r"mnist: download to .* failed"):
        build_dataset(f"mnist:{tmp_path / 'mine'}", download=True)
    assert sorted(os.listdir(tmp_path / "mine")) == ["MNIST"]  # what was there stays (raw/ it made goes)
    assert os.listdir(tmp_path / "mine" / "MNIST") == []


def test_devkit_parsing(fake_imagenet):
    kit = read_devkit(fake_imagenet["devkit"])
    assert sorted(kit.words) == IMAGENET_WNIDS  # leaves only
    assert kit.words["n01440764"] == ("tench", "Tinca tinca")
    assert kit.val_wnids == fake_imagenet["truth"]


def test_imagenet_val_relayout_is_idempotent_and_loses_nothing(fake_imagenet):
    val, truth = fake_imagenet["val"], fake_imagenet["truth"]
    (val / "README.txt").write_text("not an image of the challenge")
    before = sorted(p.name for p in val.rglob("*") if p.is_file())
    rep = imagenet_val_relayout(val, fake_imagenet["devkit"])
    assert rep.moved == 6 and rep.in_place == 0 and rep.unknown == [str(val / "README.txt")]
    for n, w in enumerate(truth, 1):
        assert (val / w / f"ILSVRC2012_val_{n:08d}.JPEG").is_file()
    rep2 = imagenet_val_relayout(val, fake_imagenet["devkit"])
    assert rep2.moved == 0 and rep2.in_place == 6
    # a file in the wrong class folder is moved; one whose target exists is left alone
    wrong = val / truth[1] / "ILSVRC2012_val_00000001.JPEG"
    os.rename(val / truth[0] / "ILSVRC2012_val_00000001.JPEG", wrong)
    shutil.copy(val / truth[1] / "ILSVRC2012_val_00000002.JPEG", val / "ILSVRC2012_val_00000002.JPEG")
    rep3 = imagenet_val_relayout(val, fake_imagenet["devkit"])
    assert rep3.moved == 1 and rep3.conflicts == [str(val / "ILSVRC2012_val_00000002.JPEG")]
    after = sorted(p.name for p in val.rglob("*") if p.is_file())
    assert after == sorted(before + ["ILSVRC2012_val_00000002.JPEG"])  # nothing lost, nothing deleted


def test_imagenet_prepared_layout_with_names(fake_imagenet):
    root = fake_imagenet["root"]
    with pytest.raises(UserError, match="6 validation images outside class folders.*alexnet data imagenet-val"):
        build_dataset(f"imagenet:{root}", "val")  # still flat
    imagenet_val_relayout(fake_imagenet["val"], fake_imagenet["devkit"])
    tr, va = build_dataset(f"imagenet:{root}", "train"), build_dataset(f"imagenet:{root}", "val")
    assert tr.class_ids == IMAGENET_WNIDS and tr.classes == ["tench", "goldfish", "great white shark"]
    assert (len(tr), len(va)) == (6, 6) and tr.targets == [0, 0, 1, 1, 2, 2]
    assert va.targets == [IMAGENET_WNIDS.index(w) for w in sorted(fake_imagenet["truth"])]
    _check_items(va, 3, (3, 16, 20))
    assert parse_spec(str(root))[0] == "imagenet"


def test_imagenet_names_from_synset_mapping(tmp_path, write_image):
    root = tmp_path / "in"
    for w in IMAGENET_WNIDS:
        write_image(root / "train" / w / "a.JPEG", fmt="JPEG")
    ds = build_dataset(f"imagenet:{root}", "train")
    assert ds.classes == ds.class_ids == IMAGENET_WNIDS  # no names anywhere: the wnids
    (root / "LOC_synset_mapping.txt").write_text("n01440764 tench, Tinca tinca\nn01443537 goldfish\n"
                                                 "n01484850 great white shark, white shark\n")
    assert build_dataset(f"imagenet:{root}", "train").classes == ["tench", "goldfish", "great white shark"]
    text = (root / "LOC_synset_mapping.txt").read_text()
    (root / "LOC_synset_mapping.txt").write_text("\ufeff" + text, encoding="utf-8")  # saved by a Windows editor
    assert build_dataset(f"imagenet:{root}", "train").classes == ["tench", "goldfish", "great white shark"]
    # Kaggle's download: the mapping three levels above ILSVRC/Data/CLS-LOC/, and the validation images flat
    kaggle = root / "ILSVRC" / "Data" / "CLS-LOC"
    kaggle.parent.mkdir(parents=True)
    (root / "train").rename(kaggle)
    (kaggle / "train").mkdir()
    for w in IMAGENET_WNIDS:
        (kaggle / w).rename(kaggle / "train" / w)
    assert build_dataset(f"imagenet:{kaggle}", "train").classes == ["tench", "goldfish", "great white shark"]
    subset = root / "sub" / "two"  # another folder below the mapping: its own classes, not the mapping's three
    for w in IMAGENET_WNIDS[:2]:
        write_image(subset / "train" / w / "a.JPEG", fmt="JPEG")
    assert build_dataset(f"imagenet:{subset}", "train").class_ids == IMAGENET_WNIDS[:2]
    write_image(kaggle / "val" / "ILSVRC2012_val_00000001.JPEG", fmt="JPEG")
    (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n")
    with pytest.raises(UserError, match="--devkit .*LOC_val_solution.csv"):
        build_dataset(f"imagenet:{kaggle}", "val")


def _torchvision_archives(tmp_path, fake_imagenet):
    """``tmp_path/tv``: the devkit and ILSVRC2012_img_{train,val}.tar made from ``fake_imagenet``."""
    src, root = fake_imagenet["root"], tmp_path / "tv"
    root.mkdir()
    shutil.copy(fake_imagenet["devkit"], root)
    with tarfile.open(root / "ILSVRC2012_img_val.tar", "w") as tar:
        for p in sorted(fake_imagenet["val"].iterdir()):
            tar.add(p, p.name)
    inner = tmp_path / "inner"
    inner.mkdir()
    with tarfile.open(root / "ILSVRC2012_img_train.tar", "w") as outer:
        for w in IMAGENET_WNIDS:
            with tarfile.open(inner / f"{w}.tar", "w") as t:
                for p in sorted((src / "train" / w).iterdir()):
                    t.add(p, p.name)
            outer.add(inner / f"{w}.tar", f"{w}.tar")
    return root


def test_imagenet_from_torchvision_archives(tmp_path, fake_imagenet):
    """torchvision's root: devkit + ILSVRC2012_img_{train,val}.tar, unpacked on first use."""
    root = _torchvision_archives(tmp_path, fake_imagenet)
    va = build_dataset(f"imagenet:{root}", "val")
    tr = build_dataset(f"imagenet:{root}", "train")
    assert (len(tr), len(va)) == (6, 6) and tr.classes[0] == "tench"
    assert sorted(os.listdir(root / "val")) == IMAGENET_WNIDS
    assert not (root / "val.partial").exists() and not (root / "train.partial").exists()
    assert va.targets == [IMAGENET_WNIDS.index(w) for w in sorted(fake_imagenet["truth"])]


def test_an_archive_cut_short_is_one_line_and_leaves_nothing_half_unpacked(tmp_path, fake_imagenet):
    """A download of the 138 GB train archive that stopped early: one line naming it, no traceback,
    and no train.partial/ left behind; the val archive likewise."""
    root = _torchvision_archives(tmp_path, fake_imagenet)
    for name, split in (("ILSVRC2012_img_train.tar", "train"), ("ILSVRC2012_img_val.tar", "val")):
        data = (root / name).read_bytes()
        (root / name).write_bytes(data[: len(data) * 2 // 3])
        with pytest.raises(UserError, match=f"imagenet: {re.escape(str(root / name))} is damaged or cut short "
                                            r"\(.*\): download it again"):
            build_dataset(f"imagenet:{root}", split)
        assert not (root / f"{split}.partial").exists() and not (root / split).exists()


def test_the_archives_are_unpacked_by_one_process_while_the_others_wait(tmp_path, fake_imagenet):
    """Every rank of a torchrun job builds the dataset: one unpacks, the others wait for it and then
    find ``train/`` there, instead of unpacking into the same ``train.partial/`` at once."""
    import fcntl
    import subprocess
    import sys
    import time

    from alexnet.data.imagenet import _extract_train

    root = _torchvision_archives(tmp_path, fake_imagenet)
    fd = os.open(root / ".unpack-train.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # this process is the one unpacking
    code = f"from alexnet.data import build_dataset; print(len(build_dataset('imagenet:{root}', 'train')))"
    other = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = other.stderr.readline()  # blocks until the other process says something, or ends
        assert "waiting: another process holds" in first, (first, other.communicate())
        time.sleep(0.5)
        assert other.poll() is None  # still waiting
        _extract_train(str(root))
    finally:
        os.close(fd)
    out, err = other.communicate(timeout=120)
    assert other.returncode == 0, err
    assert out.strip() == "6" and "unpacking" not in err  # it found train/ unpacked, and read it
    assert not (root / "train.partial").exists()


def test_one_at_a_time_lets_one_holder_in_and_leaves_no_lock_file(tmp_path):
    """Holders take turns (here threads, each with its own open file, as processes have), a waiter
    is told why it waits, and the lock file is gone once the last one is done, even though each
    holder removes the file others may be waiting on."""
    import threading
    import time

    from alexnet.core.io import one_at_a_time

    inside, most, said, entered = [0], [0], [], [0]
    guard, others_waiting = threading.Lock(), threading.Event()

    def work():
        with one_at_a_time(tmp_path, "unpack-x", said.append):
            with guard:
                inside[0] += 1
                entered[0] += 1
                first = entered[0] == 1
                most[0] = max(most[0], inside[0])
            if first:
                others_waiting.wait(30)  # the first holder stays until others are at the lock
            time.sleep(0.05)
            with guard:
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for i, t in enumerate(threads):  # staggered: later ones arrive after earlier holders removed the file
        t.start()
        time.sleep(0.03)
        if i == 2:
            while len(said) < 2:  # two of them told they wait
                time.sleep(0.01)
            others_waiting.set()
    for t in threads:
        t.join(timeout=30)
    assert most[0] == 1 and not any(t.is_alive() for t in threads)
    assert said and all("waiting: another process holds" in m and "unpack-x" in m for m in said)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- the default split to score

def test_default_eval_split_scores_what_has_no_validation_part_whole(tmp_path, image_folder, split_folder,
                                                                       cifar10_root):
    from alexnet.data import default_eval_split

    assert default_eval_split(f"folder:{image_folder}") == "all"  # class folders, no val/: every image
    assert default_eval_split(str(image_folder)) == "all"
    assert default_eval_split(f"folder:{split_folder}") == "val"  # train/ + val/
    assert default_eval_split("digits") == "val"
    assert default_eval_split(f"cifar10:{cifar10_root}") == "val"
    lists = tmp_path / "lists"
    lists.mkdir()
    for name in ("train.txt", "test.txt", "photos.txt", "my_val.txt"):
        (lists / name).write_text("a.jpg 0\n")
    assert default_eval_split(str(lists / "train.txt")) == "val"  # test.txt beside it
    assert default_eval_split(f"list:{lists / 'photos.txt'}") == "all"  # a plain list: scored whole
    assert default_eval_split(str(lists / "my_val.txt")) == "val"  # named like a validation list
    (lists / "test.txt").unlink()
    assert default_eval_split(str(lists / "train.txt")) == "all"  # no sibling left


# -- files that are not datasets, folders without a readable image ------------------------------

def test_a_bare_file_is_a_list_only_when_it_reads_like_one(tmp_path, write_image):
    write_image(tmp_path / "a.png")
    (tmp_path / "good.txt").write_text("# images\na.png 0\n")
    assert parse_spec(str(tmp_path / "good.txt")) == ("list", str(tmp_path / "good.txt"))
    (tmp_path / "paths.txt").write_text("a.png\n")  # a list without labels: read_list says which line
    assert parse_spec(str(tmp_path / "paths.txt"))[0] == "list"
    (tmp_path / "notes.txt").write_text("remember to buy milk\n")
    (tmp_path / "empty.txt").write_text("\n# nothing\n")
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07\x12\x07pytorch")
    (tmp_path / "w.safetensors").write_bytes(b"{}")
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)))
    for name, expect in [("notes.txt", "a text file, not a list file (line 1: 'remember to buy milk'"),
                         ("empty.txt", "an empty text file"), ("model.onnx", "an ONNX model, not a dataset"),
                         ("w.safetensors", "a weights file, not a dataset"), ("a.png", "an image, not a dataset"),
                         ("blob.bin", "a binary file, not a dataset")]:
        with pytest.raises(UserError, match=re.escape(expect)):
            build_dataset(str(tmp_path / name))
    with pytest.raises(UserError, match=r"notes.txt:1: expected 'path label'"):  # list: says it is a list
        build_dataset(f"list:{tmp_path / 'notes.txt'}")


def test_a_folder_of_files_that_are_not_images_is_one_line(tmp_path):
    from alexnet.data import build_loader

    for cls in ("a", "b"):
        (tmp_path / "junk" / cls).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "junk" / cls / f"{i}.jpg").write_text(f"not a picture {i}")
    ds = build_dataset(str(tmp_path / "junk"), "train", val_split=0)
    with pytest.raises(UserError, match=rf"folder:{re.escape(str(tmp_path / 'junk'))}: none of the 6 files of its "
                                        r"train split is a readable image \(first: .*\.jpg: not an image\)"):
        next(iter(build_loader(ds, batch_size=2, train=True)))


def test_a_failed_mnist_download_is_one_line(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*a, **k):  # torchvision tries every mirror and lists them all
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://a/, got:\n"
                           "<urlopen error [Errno -2] Name or service not known>\n")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(UserError) as e:
        build_dataset(f"mnist:{tmp_path}", "train", download=True)
    assert "\n" not in str(e.value) and "(<urlopen error [Errno -2] Name or service not known>)" in str(e.value)


def test_a_class_named_train_beside_other_class_folders_is_a_class(tmp_path, write_image):
    root = tmp_path / "vehicles"
    for cls in ("bus", "car"):
        for i in range(3):
            write_image(root / cls / f"{i}.jpg", seed=i)
    for kind in ("steam", "electric"):  # train/ has sub-folders of its own, as a split's classes would
        for i in range(3):
            write_image(root / "train" / kind / f"{i}.jpg", seed=10 + i)
    ds = build_dataset(str(root), "train", val_split=0)
    assert ds.classes == ["bus", "car", "train"] and len(ds) == 12


def test_one_mistyped_label_in_a_list_does_not_make_a_million_classes(tmp_path, image_folder):
    (tmp_path / "all.txt").write_text(f"{image_folder}/cat/cat0.jpg 0\n{image_folder}/dog/dog1.jpg 999999\n")
    with pytest.raises(UserError, match=r"labels go up to 999999 but only 2 different ones are used"):
        build_dataset(str(tmp_path / "all.txt"), "train", val_split=0)
    (tmp_path / "classes.txt").write_text("".join(f"c{i}\n" for i in range(1000000)))  # meant: then it is so
    assert len(build_dataset(str(tmp_path / "all.txt"), "train", val_split=0).classes) == 1000000


def test_an_empty_folder_is_the_error_before_any_recipe_is_chosen(tmp_path, capsys):
    from alexnet.cli import main

    (tmp_path / "empty").mkdir()
    assert main(["train", "--data", str(tmp_path / "empty")]) == 2
    cap = capsys.readouterr()
    assert "no class folders" in cap.err and "recipe" not in cap.out  # not "recipe digits (for the default model …)"


def test_other_part_names_only_where_every_folder_is_a_part(tmp_path, write_image):
    """Kaggle's training_set/training_set/<class>/ is the part inside; a plain validation/ wins over
    an other name for it; two folders for one part are an error, not one dropped in silence."""
    def tree(root, *parts):
        for part in parts:
            for c in "ab":
                write_image(root / part / c / "0.jpg")
        return root

    kaggle = tree(tmp_path / "k", "training_set/training_set", "test_set/test_set")
    tr, va = build_dataset(str(kaggle), "train"), build_dataset(str(kaggle), "val")
    assert tr.classes == ["a", "b"] and all("/training_set/training_set/" in p for p, _ in tr.samples)
    assert all("/test_set/test_set/" in p for p, _ in va.samples)
    plain = tree(tmp_path / "p", "train", "validation", "val_images")
    assert all("/validation/" in p for p, _ in build_dataset(str(plain), "val").samples)
    two = tree(tmp_path / "two", "training", "training_set", "testing")
    with pytest.raises(UserError, match="holds training/ and training_set/, each named like the train part"):
        build_dataset(str(two), "train")
