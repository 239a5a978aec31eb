"""`alexnet evaluate` on data whose classes are the model's in another order, some of them, or not
the model's: labels follow the model's classes by name, or the command says why it cannot score."""

from __future__ import annotations

import shutil

import pytest

from alexnet.core.errors import UserError
from alexnet.infer.evaluation import evaluate_weights

CLASSES = ["red", "green", "blue"]  # the tiny run's classes, as in conftest.py


def test_a_folder_in_another_order_is_scored_by_class_name(tiny_run, image_root, predictor, capsys):
    # the model's classes are red, green, blue; a folder's are sorted: blue, green, red
    res = evaluate_weights(str(tiny_run), f"folder:{image_root}", device="cpu", amp="off")
    assert "matched to the model's 3 by name" in capsys.readouterr().err
    files = sorted(p for p in image_root.rglob("*.*"))
    right = sum(top[0][0] == p.parent.name for p, top in zip(files, predictor.predict([str(p) for p in files], k=1)))
    assert right > len(files) / 3 + 2  # the model tells the colours apart, so index matching would score lower
    assert res["centre"].top1 == pytest.approx(100.0 * right / len(files))
    assert res["centre"].label_counts == [6, 6, 6]


def test_a_folder_with_some_of_the_classes_is_scored_against_the_models_outputs(tiny_run, image_root, predictor,
                                                                                 tmp_path, capsys):
    shutil.copytree(image_root / "blue", tmp_path / "part" / "blue")
    res = evaluate_weights(str(tiny_run), f"folder:{tmp_path / 'part'}", device="cpu", amp="off")
    assert "(the others have no images here)" in capsys.readouterr().err
    assert res["centre"].label_counts == [0, 0, 6]  # blue is the model's third class, not the folder's first
    files = sorted((tmp_path / "part" / "blue").iterdir())
    right = sum(top[0][0] == "blue" for top in predictor.predict([str(p) for p in files], k=1))
    assert res["centre"].top1 == pytest.approx(100.0 * right / len(files))
    assert CLASSES.index("blue") == 2


def test_classes_the_model_does_not_know_are_a_one_line_error(tiny_run, image_root, tmp_path):
    shutil.copytree(image_root / "blue", tmp_path / "other" / "blue")
    shutil.copytree(image_root / "red", tmp_path / "other" / "purple")
    with pytest.raises(UserError, match=r"2 classes, 1 of them not among the 3 the model was trained on \('purple'\)"):
        evaluate_weights(str(tiny_run), f"folder:{tmp_path / 'other'}", device="cpu", amp="off")


def test_as_many_classes_with_some_names_shared_are_matched_by_name_not_position(tiny_run, image_root, tmp_path):
    # as many classes as the model, two of them its own: the names are meant, so the third is an error
    # (scored by position, blue's images would be counted as red, green's as green, purple's as blue)
    for src, dst in (("blue", "blue"), ("green", "green"), ("red", "purple")):
        shutil.copytree(image_root / src, tmp_path / "same-count" / dst)
    with pytest.raises(UserError, match=r"3 classes, 1 of them not among the 3 .*\('purple'\)"):
        evaluate_weights(str(tiny_run), f"folder:{tmp_path / 'same-count'}", device="cpu", amp="off")


def test_as_many_classes_under_other_names_only_are_scored_by_position(tiny_run, image_root, tmp_path, capsys):
    for src, dst in zip(CLASSES, ("n01", "n02", "n03")):  # e.g. WordNet ids for the model's words
        shutil.copytree(image_root / src, tmp_path / "ids" / dst)
    res = evaluate_weights(str(tiny_run), f"folder:{tmp_path / 'ids'}", device="cpu", amp="off")
    err = capsys.readouterr().err
    assert "labels are matched by position (sorted names)" in err
    assert all(f"'{d}' → '{c}'" in err for d, c in zip(("n01", "n02", "n03"), CLASSES))  # the whole pairing, shown
    assert res["centre"].label_counts == [6, 6, 6]


def test_the_runs_own_data_handed_over_again_is_scored_on_its_hold_out(tiny_run, image_root, tmp_path, capsys):
    import json

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "config.json").write_text(json.dumps({"data": f"folder:{image_root}", "val_split": 0.5}))
    own = evaluate_weights(str(run), str(image_root), device="cpu", amp="off")  # as train's next: line says
    assert own["split"] == "val" and own["centre"].n == 9  # the hold-out, not the 9 images it trained on too
    assert "validation slice held out" in capsys.readouterr().err
    shutil.copytree(image_root, tmp_path / "copy")
    other = evaluate_weights(str(run), str(tmp_path / "copy"), device="cpu", amp="off")
    assert other["split"] == "all" and other["centre"].n == 18


def test_the_runs_own_data_typed_relative_and_evaluated_from_elsewhere_says_so(tiny_run, tmp_path, monkeypatch):
    """config.json keeps --data as typed; `evaluate RUN` from another folder says where a relative path
    is read from, as --resume does, not "no such file" as if the person had mistyped it."""
    import json

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "config.json").write_text(json.dumps({"data": "photos", "model": "alexnet-cifar"}))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"^evaluate .*run: the run's data 'photos' \(as config.json records it\) is "
                                        r"not found from .*; a relative path is read from the folder the run was "
                                        r"started in: run it from there, or give --data"):
        evaluate_weights(str(run), None)
