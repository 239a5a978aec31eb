"""The named recipes as YAML files in the package: the same values as before they moved there, a
description and each number's source in every file, and ``alexnet recipes [show NAME]``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from alexnet.cli import main
from alexnet.engine.config import RECIPES, TrainConfig, make_config
from alexnet.engine.recipes import RECIPE_DIR, load_recipe, recipe_names, yaml_load

# The values of every recipe as the dict in engine/config.py held them before the recipes became
# files, written as they were written there: a recipe file must give exactly these.
BEFORE = {
    "paper": dict(model="alexnet", epochs=90, batch_size=128, global_batch=128, optimizer="sgd-paper",
                  lr=0.01, momentum=0.9, nesterov=False, weight_decay=5e-4, bias_lr_mult=2.0,
                  bias_weight_decay=0.0, lr_scheduler="plateau", lr_gamma=0.1,
                  lr_patience=3, lr_max_drops=3, aug="paper", pca_scale="sqrt", normalize="pixelmean",
                  ten_crop=True, label_smoothing=0.0),
    # moved onto the fast engine (docs/cifar10.md); its values before are docs/runs/cifar10-recipe/previous.yaml
    "cifar10": dict(model="alexnet-cifar", data="cifar10",
                    model_kwargs={"norm": "batch", "fc_width": 1024, "widths": [64, 128, 256, 256, 256]},
                    epochs=25, batch_size=512, optimizer="sgd", amp="auto", lr=0.2, momentum=0.9, nesterov=True,
                    weight_decay=5e-4, lr_scheduler="onecycle", label_smoothing=0.2, aug="flip-translate",
                    translate=2, resident=True, lookahead=False, ten_crop=True, val_split=0.1, workers=2,
                    report_at=[80.0, 85.0, 87.0]),
    "cifar10-fast": dict(model="alexnet-cifar-fast", data="cifar10", epochs=16, batch_size=512, optimizer="sgd",
                         amp="auto", lr=0.75, momentum=0.85, nesterov=True, weight_decay=1.33e-3, bias_lr_mult=64.0,
                         bias_weight_decay=1.33e-3 / 64, lr_scheduler="linear", label_smoothing=0.2,
                         aug="flip-translate", translate=2, resident=True, lookahead=True, ten_crop=True,
                         val_split=0.1, workers=2, report_at=[80.0, 85.0, 90.0]),
    # added as a file (airbench94's own choices, the reference for cifar10-fast; docs/cifar10.md)
    "cifar10-airbench": dict(model="alexnet-cifar-fast", model_kwargs={"act": "gelu"}, data="cifar10", epochs=10,
                             train_epochs=9.9, batch_size=1024, optimizer="sgd", amp="auto", lr=1.5, momentum=0.85,
                             nesterov=True, weight_decay=0.0153 / 11.5, bias_lr_mult=64.0,
                             bias_weight_decay=0.0153 / 11.5 / 64, lr_scheduler="linear", label_smoothing=0.2,
                             aug="flip-translate", translate=2, resident=True, lookahead=True, tta=2, val_split=0.1,
                             workers=2, report_at=[80.0, 85.0, 90.0, 93.0, 94.0]),
    "digits": dict(model="alexnet-mnist", data="digits", epochs=8, batch_size=32, optimizer="adamw",
                   lr=2e-3, weight_decay=0.01, lr_scheduler="onecycle", aug="auto", label_smoothing=0.0,
                   val_split=0.2),
    "photos": dict(model="alexnet-owt", data="folder", epochs=30, batch_size=64, optimizer="sgd", lr=0.01,
                   momentum=0.9, nesterov=False, weight_decay=5e-4, lr_scheduler="cosine", lr_warmup_epochs=1.0,
                   aug="light", label_smoothing=0.0, val_split=0.2),
    "finetune": dict(model="alexnet-owt", data="folder", epochs=15, batch_size=32, optimizer="sgd", lr=0.01,
                     momentum=0.9, nesterov=False, weight_decay=1e-4, lr_scheduler="cosine",
                     lr_warmup_epochs=1.0, lr_backbone_scale=0.1, aug="light", label_smoothing=0.0,
                     val_split=0.2),
}


def test_every_recipe_keeps_its_values_exactly():
    assert sorted(RECIPES) == sorted(BEFORE) == list(recipe_names())
    for name, before in BEFORE.items():
        now = RECIPES[name]
        assert list(now) == list(before), name  # the same fields, in the same order
        for k, v in before.items():
            assert now[k] == v and type(now[k]) is type(v), f"{name}.{k}: {now[k]!r} in the file, {v!r} before"
    assert RECIPES["cifar10-fast"]["bias_weight_decay"] == 1.33e-3 / 64  # bit for bit, not merely close
    assert RECIPES["paper"]["weight_decay"] == 5e-4 and RECIPES["digits"]["lr"] == 2e-3


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_make_config_gives_what_it_gave_before(name):
    expected = TrainConfig.from_dict({**BEFORE[name], "recipe": name}).validate()
    assert make_config(name) == expected
    assert make_config(name, epochs=3).epochs == 3  # flags still override


# The cifar10 recipe as it was (the 2.2-hour run of docs/cifar10.md), kept as a config file
PREVIOUS_CIFAR10 = dict(model="alexnet-cifar", data="cifar10", model_kwargs={"norm": "batch", "dropout_at": "torchvision"},
                        epochs=24, batch_size=128, optimizer="sgd", lr=0.05, momentum=0.9, nesterov=True,
                        weight_decay=5e-4, lr_scheduler="onecycle", label_smoothing=0.1, aug="small", val_split=0.1,
                        workers=1)


def test_the_previous_cifar10_recipe_file_gives_its_values_exactly():
    from alexnet.cli import build_parser
    from alexnet.commands.train import config_from_args

    path = Path(__file__).resolve().parents[2] / "docs/runs/cifar10-recipe/previous.yaml"
    cfg = config_from_args(build_parser().parse_args(["train", "--config", str(path), "--data-path", "/c10"]))
    cfg = dataclasses.replace(cfg, config_file="", data="cifar10")
    assert cfg == TrainConfig.from_dict({**PREVIOUS_CIFAR10, "recipe": "cifar10"}).validate()
    assert make_config("cifar10") != cfg  # the recipe itself has moved on


def test_a_lookup_is_a_copy():
    RECIPES["cifar10"]["model_kwargs"]["norm"] = "none"
    RECIPES["cifar10-fast"]["report_at"].append(99.0)
    assert RECIPES["cifar10"]["model_kwargs"]["norm"] == "batch"
    assert make_config("cifar10-fast").report_at == [80.0, 85.0, 90.0]
    assert "nope" not in RECIPES and "../recipes/paper" not in RECIPES


def test_each_file_names_itself_describes_itself_and_cites_its_numbers():
    for path in sorted(RECIPE_DIR.glob("*.yaml")):
        r = load_recipe(path.stem)
        data = yaml_load(path.read_text(encoding="utf-8"))
        assert data["recipe"] == path.stem and r.description == data["description"]
        assert 20 < len(r.description) <= 130 and "\n" not in r.description
        assert r.text.startswith("# ") and r.text.count("# ") >= 5, f"{path.name}: its sources as comments"
    assert "§5" in load_recipe("paper").text and "epsB 0.02" in load_recipe("paper").text
    assert "1.33e-3 / 64" in load_recipe("cifar10-fast").text


def test_yaml_is_read_as_yaml_1_2():
    d = yaml_load("lr: 1e-3\nwd: 5E-4\nn: 12\nchannels_last: off\nx: on\nnesterov: true\nc: False\n")
    assert d == {"lr": 1e-3, "wd": 5e-4, "n": 12, "channels_last": "off", "x": "on", "nesterov": True, "c": False}
    assert type(d["n"]) is int


def test_recipes_command_lists_each_with_its_description(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for name in BEFORE:
        r = load_recipe(name)
        assert any(line.split()[:2] == [name, r.values["model"]] and line.endswith(r.description)
                   for line in out.splitlines()), name


def test_recipes_show_prints_the_file_ready_to_train_from(capsys, tmp_path):
    from alexnet.commands.train import config_from_args
    from alexnet.cli import build_parser

    assert main(["recipes", "show", "paper"]) == 0
    text = capsys.readouterr().out
    assert text == (RECIPE_DIR / "paper.yaml").read_text(encoding="utf-8")
    copy = tmp_path / "mine.yaml"
    copy.write_text(text.replace("epochs: 90 ", "epochs: 45 "))
    cfg = config_from_args(build_parser().parse_args(["train", "--config", str(copy), "--data", "imagenet:/x"]))
    assert dataclasses.replace(cfg, epochs=90, config_file="", data="") == make_config("paper", data="")
    assert cfg.epochs == 45 and cfg.config_file == str(copy.resolve())


def test_recipes_show_an_unknown_name_is_one_line(capsys):
    assert main(["recipes", "show", "cifar"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'cifar'" in err and "did you mean: cifar10" in err
