"""``alexnet data check`` names each split by what its images are: a test-only folder or list is
``test``, not the ``train`` role the loader gives a dataset that has only one part."""

from __future__ import annotations

import json

from alexnet.cli import main

from conftest import write_image


def _classes(root, n=2):
    for cls in "ab":
        for i in range(n):
            write_image(root / cls / f"{i}.png", seed=i + (10 if cls == "b" else 0))
    return root


def _check(capsys, spec) -> tuple[int, str, dict]:
    rc = main(["data", "check", str(spec)])
    out = capsys.readouterr().out
    assert main(["data", "check", str(spec), "--json"]) == rc
    return rc, out, json.loads(capsys.readouterr().out)


def test_the_test_folder_itself_and_a_test_list_are_called_test(tmp_path, capsys):
    root = _classes(tmp_path / "photos" / "test")
    rc, out, d = _check(capsys, root)
    assert rc == 0 and out.startswith("test: 4 images") and "train:" not in out
    (tmp_path / "test.txt").write_text("photos/test/a/0.png 0\nphotos/test/b/0.png 1\n")
    rc, out, d = _check(capsys, f"list:{tmp_path / 'test.txt'}")
    assert rc == 0 and out.startswith("test: 2 images") and [s["split"] for s in d["splits"]] == ["test"]


def test_train_and_test_parts_keep_their_names(tmp_path, capsys):
    _classes(tmp_path / "photos" / "train", n=3)
    _classes(tmp_path / "photos" / "test")
    rc, out, d = _check(capsys, tmp_path / "photos")
    assert rc == 0 and [s["split"] for s in d["splits"]] == ["train", "test"]
    rc, out, d = _check(capsys, tmp_path / "photos" / "train")  # a folder of classes: the training data
    assert rc == 0 and out.startswith("train: 6 images")
