"""``alexnet data check|index|imagenet-val|pca-stats``: outputs and exit codes."""

from __future__ import annotations

import json
import os

import pytest
from PIL import Image

from alexnet.cli import main
from alexnet.data import build_dataset


def test_check_clean_folder_exit_0(image_folder, capsys):
    assert main(["data", "check", str(image_folder)]) == 0
    out = capsys.readouterr().out
    assert "train: 12 images, 3 classes" in out and "no bad files" in out
    assert "cat" in out and "       4" in out  # class counts
    assert "size: width 20…20…20" in out and "height 16…16…16" in out
    assert "formats: JPEG 6, PNG 6" in out
    assert "modes other than RGB (converted):" in out and "RGBA 3" in out


def test_check_reports_bad_files_exit_1(image_folder, capsys):
    (image_folder / "cat" / "broken.jpg").write_bytes(b"")
    (image_folder / "dog" / "page.jpg").write_text("<html>")
    Image.new("RGB", (9, 9)).save(image_folder / "dog" / "real.jpg", format="PNG")
    assert main(["data", "check", f"folder:{image_folder}", "-j", "2"]) == 1
    out = capsys.readouterr().out
    assert f"bad: {image_folder / 'cat' / 'broken.jpg'}: empty file" in out
    assert f"bad: {image_folder / 'dog' / 'page.jpg'}: not an image" in out
    assert f"note: {image_folder / 'dog' / 'real.jpg'} is a PNG file (read fine)" in out
    assert "2 bad files: 1 empty file, 1 not an image" in out or "2 bad files: 1 not an image, 1 empty file" in out


def test_check_tells_the_files_it_does_not_read(image_folder, capsys):
    """Phone photos in a format not read (.HEIC, .avif) or with no extension are not images to the
    dataset; they are counted, not left out without a word. Hidden files and Thumbs.db are not."""
    for name in ("IMG_0001.HEIC", "IMG_0002.HEIC", "scan.avif", "noext", "Thumbs.db", ".DS_Store"):
        (image_folder / "cat" / name).write_bytes(b"x")
    assert main(["data", "check", str(image_folder)]) == 0  # nothing read is bad
    out = capsys.readouterr().out
    assert "not read: 4 files whose name is not an image's (.heic 2, no extension 1, .avif 1)" in out
    assert main(["data", "check", str(image_folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ignored"] == {".heic": 2, ".avif": 1, "": 1}


def test_check_tells_images_beside_the_class_folders_and_of_every_part(split_folder, write_image, capsys):
    """Images lying directly in a folder whose sub-folders are the classes have no label and are not
    read: data check says so, for the training part and for val/ and test/ alike; and files not
    read for their name in test/ are counted too."""
    write_image(split_folder / "train" / "stray.jpg")
    write_image(split_folder / "train" / "stray2.png")
    for c in "ab":
        write_image(split_folder / "test" / c / "t.jpg")
    write_image(split_folder / "test" / "lost.jpg")
    write_image(split_folder / "loose.jpg")  # beside train/ and val/: in no part
    (split_folder / "test" / "a" / "IMG_1.HEIC").write_bytes(b"x")
    assert main(["data", "check", str(split_folder)]) == 0
    out = capsys.readouterr().out
    assert (f"not read: 2 images directly in {split_folder / 'train'}, beside its class folders (in no class, so "
            f"with no label): move them into a class folder") in out
    assert f"not read: 1 image directly in {split_folder / 'test'}" in out and "move it into" in out
    assert str(split_folder / "val") + "," not in out  # val/ has none
    assert "not read: 1 file whose name is not an image's (.heic 1)" in out
    assert main(["data", "check", str(split_folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["outside_classes"] == {str(split_folder / "train"): 2,
                                                                      str(split_folder / "test"): 1,
                                                                      str(split_folder): 1}


def test_check_tells_one_file_under_two_names(split_folder, capsys):
    """Links: one picture in two classes (two labels), twice in one class, and a validation image that
    is a training file (scored as unseen). Nothing of the kind in a plain folder."""
    assert main(["data", "check", str(split_folder)]) == 0
    assert "links to one file" not in capsys.readouterr().out
    (split_folder / "train" / "b" / "linked.jpg").symlink_to(split_folder / "train" / "a" / "0.jpg")
    (split_folder / "train" / "b" / "again.jpg").symlink_to("1.jpg")
    os.link(split_folder / "train" / "a" / "3.jpg", split_folder / "val" / "a" / "leak.jpg")  # a hard link
    assert main(["data", "check", str(split_folder), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    train = next(s for s in report["splits"] if s["split"] == "train")
    assert any("1 file is in two classes at once" in n and "linked.jpg" in n for n in train["notes"])
    assert any("counted twice within a class" in n and "again.jpg" in n and "'b'" in n for n in train["notes"])
    assert "1 validation image is also in the training part" in report["shared_with_training"]
    assert "leak.jpg" in report["shared_with_training"]


def test_check_says_one_class_is_not_enough_to_train(tmp_path, write_image, capsys):
    for i in range(3):
        write_image(tmp_path / "photos" / "cat" / f"{i}.jpg", seed=i)
    assert main(["data", "check", str(tmp_path / "photos")]) == 0
    assert "note: one class: a classifier needs at least two, and training refuses this" in capsys.readouterr().out
    (tmp_path / "photos" / "dog").mkdir()
    (tmp_path / "photos" / "fox").mkdir()
    assert main(["data", "check", str(tmp_path / "photos")]) == 0
    assert "note: only one class has images: a classifier needs at least two" in capsys.readouterr().out
    write_image(tmp_path / "photos" / "dog" / "d.jpg")
    assert main(["data", "check", str(tmp_path / "photos")]) == 0
    out = capsys.readouterr().out
    assert "note: no images in 1 class: fox" in out and "needs at least two" not in out


def test_check_json_and_split_layouts(split_folder, capsys):
    assert main(["data", "check", str(split_folder), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert [s["split"] for s in d["splits"]] == ["train", "val"] and d["bad"] == 0
    assert d["splits"][1]["class_counts"] == {"a": 2, "b": 2}


def test_check_in_memory_dataset(capsys):
    assert main(["data", "check", "digits"]) == 0
    out = capsys.readouterr().out
    assert "train: 1797 images, 10 classes" in out and "in memory 1797" in out


def test_check_bad_spec_is_a_user_error(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no such file or folder" in err and len(err.splitlines()) == 1


def test_index_round_trips_through_list(image_folder, tmp_path, capsys):
    assert main(["data", "index", str(image_folder), "--val-split", "0.25"]) == 0
    assert "train.txt (9 images), test.txt (3 images), classes.txt (3 classes)" in capsys.readouterr().out
    assert (image_folder / "classes.txt").read_text() == "cat\ndog\nfox\n"
    first = (image_folder / "train.txt").read_text().splitlines()[0]
    assert not os.path.isabs(first.rsplit(" ", 1)[0])  # relative: the tree can move
    tr = build_dataset(f"list:{image_folder / 'train.txt'}", "train")
    va = build_dataset(f"list:{image_folder / 'train.txt'}", "val")  # finds test.txt beside it
    folder_tr = build_dataset(f"folder:{image_folder}", "train", val_split=0.25)
    folder_va = build_dataset(f"folder:{image_folder}", "val", val_split=0.25)
    assert tr.samples == folder_tr.samples and va.samples == folder_va.samples
    assert tr.classes == folder_tr.classes == ["cat", "dog", "fox"]
    # elsewhere, with the tree's own val/ folder
    out = tmp_path / "lists"
    assert main(["data", "index", str(image_folder), "-o", str(out), "--val-split", "0"]) == 0
    assert not (out / "test.txt").exists()
    assert len(build_dataset(str(out / "train.txt"), "train", val_split=0)) == 12


def test_lists_already_there_are_replaced_only_when_asked_and_a_stale_hold_out_goes(image_folder, capsys):
    (image_folder / "train.txt").write_text("a list of the person's own\n")
    assert main(["data", "list", str(image_folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {image_folder} already holds train.txt: give --overwrite to replace it, or -o DIR to " \
                  "write the lists elsewhere"
    assert (image_folder / "train.txt").read_text() == "a list of the person's own\n"  # untouched
    assert main(["data", "list", str(image_folder), "--overwrite", "--val-split", "0.25"]) == 0
    assert (image_folder / "test.txt").is_file()
    capsys.readouterr()
    # listed again holding nothing out: the first listing's test.txt would be read as this one's hold-out
    assert main(["data", "list", str(image_folder), "--overwrite", "--val-split", "0"]) == 0
    out = capsys.readouterr().out
    assert "train.txt (12 images), classes.txt (3 classes)" in out and "removed the earlier" in out
    assert not (image_folder / "test.txt").exists()
    assert len(build_dataset(str(image_folder / "train.txt"), "train", val_split=0)) == 12


def test_names_with_line_breaks_are_counted_out_or_refused(image_folder, capsys):
    (image_folder / "cat" / "two\nlines.png").write_bytes((image_folder / "dog" / os.listdir(image_folder / "dog")[0])
                                                          .read_bytes())
    assert main(["data", "list", str(image_folder), "--val-split", "0"]) == 0
    out, err = capsys.readouterr()
    assert "train.txt (12 images)" in out and "warning: skipped (a line break in its name)" in err
    assert len((image_folder / "train.txt").read_text().splitlines()) == 12  # the count is what was written
    for name in ("f\nox", "f\u2028ox"):  # any break str.splitlines() splits at, as reading classes.txt does
        os.rename(image_folder / ("fox" if name == "f\nox" else "f\nox"), image_folder / name)
        assert main(["data", "list", str(image_folder), "--overwrite"]) == 2
        assert f"class folder {name!r} has a line break in its name" in capsys.readouterr().err


def test_a_class_named_with_a_hash_survives_the_list(image_folder, tmp_path):
    os.rename(image_folder / "fox", image_folder / "#1 fox")  # a line starting with # is a comment
    assert main(["data", "list", str(image_folder), "--val-split", "0"]) == 0  # paths relative to the tree
    ds = build_dataset(str(image_folder / "train.txt"), "train", val_split=0)
    assert len(ds) == 12 and ds.classes == ["#1 fox", "cat", "dog"] and sorted(set(ds.targets)) == [0, 1, 2]


def test_index_split_folder_uses_its_val(split_folder):
    assert main(["data", "index", str(split_folder)]) == 0
    va = build_dataset(str(split_folder / "train.txt"), "val")
    assert va.samples == build_dataset(f"folder:{split_folder}", "val").samples


def test_imagenet_val_command_is_idempotent(fake_imagenet, capsys):
    args = ["data", "imagenet-val", str(fake_imagenet["val"]), "--devkit", str(fake_imagenet["devkit"])]
    assert main(args + ["--dry-run"]) == 0
    assert "dry run: 6 moved, 0 already in place" in capsys.readouterr().out
    assert len(os.listdir(fake_imagenet["val"])) == 6  # nothing moved
    assert main(args) == 0
    assert "6 moved, 0 already in place" in capsys.readouterr().out
    assert main(args) == 0
    assert "0 moved, 6 already in place" in capsys.readouterr().out
    assert len(build_dataset(f"imagenet:{fake_imagenet['root']}", "val")) == 6


def test_imagenet_val_unpacked_devkit_folder(fake_imagenet, tmp_path):
    import tarfile

    with tarfile.open(fake_imagenet["devkit"]) as tar:
        tar.extractall(tmp_path / "kit", filter="data")
    assert main(["data", "imagenet-val", str(fake_imagenet["val"]), "--devkit", str(tmp_path / "kit")]) == 0
    assert sorted(os.listdir(fake_imagenet["val"])) == sorted(set(fake_imagenet["truth"]))


def test_pca_stats_command(image_folder, tmp_path, capsys):
    out = tmp_path / "pca.json"
    assert main(["data", "pca-stats", str(image_folder), "-o", str(out), "--size", "16"]) == 0
    d = json.loads(out.read_text())
    assert len(d["eigval"]) == 3 and d["eigval"][0] >= d["eigval"][1] >= d["eigval"][2] >= 0
    assert len(d["eigvec"]) == 3 and d["images"] == 12 and d["source"] == str(image_folder)
    assert "eigval" in capsys.readouterr().out
    from types import SimpleNamespace

    from alexnet.data import PCALighting, build_transforms

    c = SimpleNamespace(input_size=(3, 16, 16), resize=16, mean=(0.5,) * 3, std=(0.5,) * 3)
    t = build_transforms(c, train=True, aug="paper", pca=str(out))
    assert [s for s in t.steps if isinstance(s, PCALighting)][0].eigval.tolist() == pytest.approx(d["eigval"])


def test_pca_stats_of_bad_files_only_names_the_dataset_and_its_split(tmp_path, capsys):
    for cls in ("a", "b"):
        (tmp_path / "bad" / cls).mkdir(parents=True)
        (tmp_path / "bad" / cls / "x.jpg").write_bytes(b"")
    assert main(["data", "pca-stats", str(tmp_path / "bad"), "-o", str(tmp_path / "p.json"), "--size", "16"]) == 2
    err = capsys.readouterr().err
    assert f"error: folder:{tmp_path / 'bad'}: none of the 2 files of its train split is a readable image" in err


@pytest.mark.parametrize("value", ["0", "-1"])
def test_data_check_max_pixels_must_be_a_count(image_folder, capsys, value):
    assert main(["data", "check", str(image_folder), "--max-pixels", value]) == 2
    assert "--max-pixels must be at least 1" in capsys.readouterr().err


def test_check_a_fifo_in_a_class_folder_is_a_bad_file_not_a_hang(image_folder, capsys):
    os.mkfifo(image_folder / "cat" / "x.png")  # nothing ever writes to it
    assert main(["data", "check", str(image_folder), "-j", "1"]) == 1
    assert f"bad: {image_folder / 'cat' / 'x.png'}: unreadable: a named pipe that nothing writes to" in capsys.readouterr().out


def test_check_refuses_a_part_that_is_there_but_broken(cifar10_root, mnist_root, split_folder, capsys):
    """`data check` must not say "no bad files" (exit 0) of data that training refuses: a missing
    test_batch, a truncated MNIST train file, a validation folder of a class training lacks. A part
    that is simply absent (no validation folder; MNIST with only t10k) is still fine."""
    (cifar10_root / "cifar-10-batches-py" / "test_batch").unlink()
    assert main(["data", "check", f"cifar10:{cifar10_root}"]) == 2
    assert "test_batch is missing" in capsys.readouterr().err
    raw = mnist_root / "MNIST" / "raw"
    import gzip

    img = raw / "train-images-idx3-ubyte.gz"
    img.write_bytes(gzip.compress(gzip.decompress(img.read_bytes())[:-100]))
    assert main(["data", "check", f"mnist:{mnist_root}"]) == 2
    assert "not an idx file" in capsys.readouterr().err
    img.unlink()
    (raw / "train-labels-idx1-ubyte.gz").unlink()
    assert main(["data", "check", f"mnist:{mnist_root}"]) == 0  # t10k only: checked alone
    (split_folder / "val" / "zebra").mkdir()
    Image.new("RGB", (9, 9)).save(split_folder / "val" / "zebra" / "z.png")
    assert main(["data", "check", str(split_folder)]) == 2
    capsys.readouterr()


def test_check_data_without_a_validation_part_is_fine(tmp_path, capsys):
    """A folder of one image per class, and a cache built with --val-split 0: no validation part, so
    the training split alone is checked (the part a hold-out fraction would carve cannot be)."""
    for c in ("a", "b"):
        (tmp_path / "one" / c).mkdir(parents=True)
        Image.new("RGB", (20, 20)).save(tmp_path / "one" / c / "1.png")
    assert main(["data", "check", str(tmp_path / "one")]) == 0
    assert main(["data", "cache", f"folder:{tmp_path / 'one'}", "-o", str(tmp_path / "c"), "--val-split", "0"]) == 0
    assert main(["data", "check", f"cache:{tmp_path / 'c'}"]) == 0
    assert "no bad files" in capsys.readouterr().out


def test_class_names_in_wide_characters_keep_the_table_aligned(tmp_path, capsys):
    """A CJK class name takes two terminal columns a character: the counts still line up."""
    from alexnet.core.text import cells

    for name in ("日本 ship", "cat"):
        (tmp_path / name).mkdir()
        for i in range(2):
            Image.new("RGB", (12, 12), (40 * i, 0, 0)).save(tmp_path / name / f"{i}.png")
    assert main(["data", "check", str(tmp_path)]) == 0
    rows = [ln for ln in capsys.readouterr().out.splitlines() if ln.rstrip().endswith("       2")]
    assert len(rows) == 2 and len({cells(r) for r in rows}) == 1  # the same display width
    assert cells("日本 ship") == 9 and cells("e\u0301") == 1


def test_check_reads_a_test_folder_beside_val(tmp_path, capsys):
    """`evaluate --split test` reads test/ where val/ is there too: check reads it as well."""
    for part in ("train", "val", "test"):
        for c in ("cat", "dog"):
            (tmp_path / part / c).mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (12, 12), (90 * i, 40, 200)).save(tmp_path / part / c / f"{i}.png")
    (tmp_path / "test" / "cat" / "bad.jpg").write_text("not an image")
    assert main(["data", "check", str(tmp_path), "--json"]) == 1
    rep = json.loads(capsys.readouterr().out)
    assert [s["split"] for s in rep["splits"]] == ["train", "val", "test"]
    assert [s["images"] for s in rep["splits"]] == [4, 4, 5] and rep["bad"] == 1


def test_list_of_a_layout_without_its_training_part_is_one_line(tmp_path, write_image, capsys):
    for c in "ab":
        write_image(tmp_path / "only" / "testing" / c / "0.jpg")
    assert main(["data", "list", str(tmp_path / "only"), "-o", str(tmp_path / "lists")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'only'} holds only testing/: a train/val layout without its "
                          f"training split") and err.count("\n") == 1


def test_check_leaves_imagenets_unlabelled_test_images_alone(tmp_path, write_image, capsys):
    """A test/ of flat images (ILSVRC's, unlabelled on purpose) is no class folder's neighbour."""
    for part in ("train", "val"):
        for c in ("n01", "n02"):
            write_image(tmp_path / "r" / part / c / "0.jpg")
    write_image(tmp_path / "r" / "test" / "ILSVRC2012_test_00000001.JPEG")
    assert main(["data", "check", f"folder:{tmp_path / 'r'}"]) == 0
    assert "directly in" not in capsys.readouterr().out


def test_list_says_what_it_leaves_out(image_folder, write_image, capsys):
    """Loose images beside the class folders, a .HEIC photo and an empty class: the lists leave them out
    (or name a class with no line), and `data list` says so, as `data check` would."""
    write_image(image_folder / "loose.jpg")
    (image_folder / "cat" / "IMG_1.HEIC").write_bytes(b"x")
    (image_folder / "owl").mkdir()
    assert main(["data", "list", str(image_folder)]) == 0
    err = capsys.readouterr().err
    assert f"note: not listed: 1 image directly in {image_folder}, in no class folder" in err
    assert "note: not listed: 1 file whose name is not an image's (.heic photos, say)" in err
    assert "note: no images in owl: classes.txt names it, and training gives it an output" in err
