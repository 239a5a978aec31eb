"""A useless model is always flagged: against the validation split's own largest class (not the
training split's), and when it gives one answer for nearly every image — in `train` and in
`evaluate`; a dataset of one class is an error at the start."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alexnet.core.device import resolve_device
from alexnet.core.errors import UserError
from alexnet.engine import make_config
from alexnet.engine.distributed import World
from alexnet.engine.evaluate import EvalResult, uselessness
from alexnet.engine.train import Trainer, fit
from alexnet.infer.evaluation import evaluate_weights

CIFAR_KW = {"width": 0.125, "fc_width": 32, "norm": "batch"}


def split_folder(root: Path, train: dict[str, int], val: dict[str, int], same: bool = True) -> Path:
    """``root/train/<class>`` and ``root/val/<class>``; every image identical when ``same``."""
    rng = np.random.default_rng(0)
    fixed = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    for split, counts in (("train", train), ("val", val)):
        for c, n in counts.items():
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = fixed if same else rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(arr).save(root / split / c / f"{i}.png")
    return root


def cfg_for(tmp_path, data, **kw):
    base = dict(model="alexnet-cifar", data=f"folder:{data}", model_kwargs=dict(CIFAR_KW), epochs=1, batch_size=4,
                amp="off", output_dir=str(tmp_path / "runs"), name="u", aug="none", workers=0)
    return make_config("cifar10", **{**base, **kw})


@pytest.fixture
def ants_train_bees_val(tmp_path) -> Path:
    # training majority 'ants' (8 of 12); validation majority 'bees' (6 of 8)
    return split_folder(tmp_path / "ab", {"ants": 8, "bees": 4}, {"ants": 2, "bees": 6})


def test_the_chance_level_is_the_validation_splits_largest_class(tmp_path, ants_train_bees_val, capsys):
    t = Trainer(cfg_for(tmp_path, ants_train_bees_val).validate(), World(), resolve_device("cpu"))
    t.report.chance_warning(75.0)  # always 'bees': 6 of 8 validation images
    out = capsys.readouterr().out
    assert "does not beat always guessing the largest class, 'bees' (75.00%)" in out
    t.report.chance_warning(87.5)
    assert "warning" not in capsys.readouterr().out


def test_one_answer_for_nearly_every_image_is_flagged_even_above_chance(tmp_path, ants_train_bees_val, capsys):
    t = Trainer(cfg_for(tmp_path, ants_train_bees_val).validate(), World(), resolve_device("cpu"))
    last = EvalResult(0.5, 80.0, 100.0, 20, pred_counts=[0, 20], label_counts=[4, 16])
    t.report.chance_warning(85.0, last)  # above the 80 % majority, but 'bees' for all 20
    out = capsys.readouterr().out
    assert "at the last epoch the model predicts 'bees' for 20 of 20 validation images (100.0%)" in out
    assert "does not beat" not in out and "learnt nothing useful" in out
    # the tip names the flags that start this model from ImageNet's weights: a model torchvision has no weights
    # for is told the network they fit; alexnet-owt is not told to be itself
    assert "start from pretrained weights (--weights IMAGENET1K_V1 --model alexnet-owt)" in out
    t.report.cfg = dataclasses.replace(t.report.cfg, model="alexnet-owt")
    t.report.chance_warning(85.0, last)
    assert "start from pretrained weights (--weights IMAGENET1K_V1);" in capsys.readouterr().out
    t.report.cfg = dataclasses.replace(t.report.cfg, model="alexnet-mnist")  # grey digits: ImageNet's colour
    t.report.chance_warning(85.0, last)                                      # weights are no start for them
    out = capsys.readouterr().out
    assert "learnt nothing useful. Try: train longer" in out and "IMAGENET1K_V1" not in out
    t.report.cfg = dataclasses.replace(t.report.cfg, model="cifar4", recipe="experiment")  # an arm tests its net
    t.report.chance_warning(85.0, last)
    assert "IMAGENET1K_V1" not in capsys.readouterr().out


def test_uselessness_rules():
    assert not uselessness(60.0, [5, 5], [5, 5], ["a", "b"])
    assert uselessness(50.0, [5, 5], [5, 5], ["a", "b"]).below_chance  # not above 50 %
    assert uselessness(60.0, [4, 6], [0, 10], ["a", "b"]).one_class == "predicts 'b' for 10 of 10 images (100.0%)"
    assert not uselessness(100.0, [0, 10], [0, 10], ["a", "b"]).one_class  # one class present: nothing to tell apart
    assert not uselessness(0.0, [0, 10], [10, 0], ["a", "b"])  # nor a chance level: its own class is all of it
    assert uselessness(96.0, [50, 50], [96, 4], ["a", "b"]).one_class  # 96 % one class
    assert not uselessness(96.0, [50, 50], [94, 6], ["a", "b"])


def test_train_and_evaluate_flag_a_constant_predictor(tmp_path, ants_train_bees_val, capsys):
    res = fit(cfg_for(tmp_path, ants_train_bees_val, epochs=2))  # identical images: one answer for all
    out = capsys.readouterr().out
    assert "warning:" in out and "learnt nothing useful" in out and "predicts" in out
    ev = evaluate_weights(str(res.run_dir), device="cpu", amp="off", workers=0)
    err = capsys.readouterr().err
    centre = ev["centre"]
    assert sum(centre.pred_counts) == centre.n == 8 and max(centre.pred_counts) == 8
    assert ev["warning"] and "the model predicts" in ev["warning"] and ev["warning"] in err
    assert centre.to_dict()["pred_counts"] == centre.pred_counts


def test_evaluate_of_a_model_that_learnt_something_says_nothing(tmp_path, capsys):
    from alexnet.engine.evaluate import uselessness as judge

    assert not judge(100.0, [3, 3], [3, 3], ["a", "b"])
    ev = EvalResult(0.1, 100.0, 100.0, 6, pred_counts=[3, 3], label_counts=[3, 3])
    from alexnet.infer.evaluation import useless_warning

    assert useless_warning(ev, ["a", "b"]) == ""


def test_one_class_is_an_error_at_the_start(tmp_path):
    data = split_folder(tmp_path / "one", {"ants": 6}, {"ants": 2})
    with pytest.raises(UserError, match=r"only one class \('ants'\); a classifier needs at least two"):
        fit(cfg_for(tmp_path, data))


def test_a_second_class_folder_without_images_is_still_one_class_and_writes_nothing(tmp_path):
    data = split_folder(tmp_path / "one", {"ants": 6, "bees": 0}, {"ants": 2, "bees": 0})  # bees/: empty folders
    with pytest.raises(UserError, match=r"only one class has images \('ants'; no images in 'bees'\); a classifier "
                                        r"needs at least two"):
        fit(cfg_for(tmp_path, data))
    assert not (tmp_path / "runs" / "u").exists()


def test_a_class_folder_without_images_is_named_in_a_warning(tmp_path, capsys):
    data = split_folder(tmp_path / "abw", {"ants": 4, "bees": 4, "wasps": 0}, {"ants": 2, "bees": 2, "wasps": 0})
    fit(cfg_for(tmp_path, data))
    out = capsys.readouterr().out
    assert "warning: 1 of 3 classes have no images in folder:" in out and "('wasps'): the model keeps an output" in out
    assert "ants" not in out.split("warning: 1 of 3")[1].split("\n")[0]  # only the empty class is named
