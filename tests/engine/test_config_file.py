"""``alexnet train --config FILE``: a YAML file or a run's config.json as the starting fields, flags on
top; a re-run from config.json is exact; every mistake in the file is one line naming the key and
the file, answered before torch is imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from alexnet.cli import build_parser, main
from alexnet.commands.train import config_from_args
from alexnet.engine.config import TrainConfig, make_config

SRC = str(Path(__file__).resolve().parents[2] / "src")


def config_of(*argv: str) -> TrainConfig:
    return config_from_args(build_parser().parse_args(["train", *argv]))


def write(tmp_path: Path, text: str, name: str = "my.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# -- layers: recipe < file < flags -------------------------------------------------------------

def test_the_file_overrides_its_recipe_and_flags_override_the_file(tmp_path):
    f = write(tmp_path, "recipe: cifar10\nepochs: 3\nlr: 1e-2\nmodel_kwargs: {norm: none}\nreport_at: [50, 60]\n")
    cfg = config_of("--config", f, "--data-path", "/c10", "--seed", "4", "--epochs", "5")
    assert (cfg.recipe, cfg.model, cfg.optimizer, cfg.label_smoothing) == ("cifar10", "alexnet-cifar", "sgd", 0.2)
    assert (cfg.epochs, cfg.lr, cfg.seed, cfg.model_kwargs) == (5, 0.01, 4, {"norm": "none"})
    assert cfg.report_at == [50.0, 60.0] and cfg.data == "cifar10:/c10"
    assert cfg.config_file == str(Path(f).resolve())
    other = config_of("--config", write(tmp_path, "recipe: cifar10\nepochs: 3\n", "b.yaml"), "--recipe",
                      "cifar10-fast", "--data-path", "/c")  # --recipe wins over the file's recipe key
    assert (other.recipe, other.model, other.epochs) == ("cifar10-fast", "alexnet-cifar-fast", 3)


def test_without_a_recipe_key_the_recipe_suits_the_files_model(tmp_path, capsys):
    cfg = config_of("--config", write(tmp_path, "model: alexnet-cifar-fast\nepochs: 2\n"), "--data-path", "/c")
    assert (cfg.recipe, cfg.epochs, cfg.lookahead) == ("cifar10-fast", 2, True)
    assert "recipe cifar10-fast" in capsys.readouterr().out


def test_a_batch_in_the_file_is_per_process_as_with_b(tmp_path):
    f = write(tmp_path, "recipe: paper\nbatch_size: 64\n")
    assert (config_of("--config", f, "--data", "imagenet:/x").global_batch) == 0
    both = write(tmp_path, "recipe: paper\nbatch_size: 64\nglobal_batch: 256\n", "both.yaml")
    assert config_of("--config", both, "--data", "imagenet:/x").global_batch == 256


def test_a_runs_config_json_keeps_its_decisions_but_not_its_name(tmp_path):
    run = tmp_path / "old"
    run.mkdir()
    saved = make_config("digits", name="old", output_dir=str(tmp_path), seed=3, normalize="pixelmean")
    saved.precision, saved.precision_reason, saved.pixel_mean = "bf16", "measured", [0.5]
    saved.resume, saved.config_file = str(run), "/elsewhere/x.yaml"
    (run / "config.json").write_text(saved.to_json())
    for spec in (str(run / "config.json"), str(run)):  # the file, or the run directory
        cfg = config_of("--config", spec)
        assert (cfg.name, cfg.resume, cfg.output_dir, cfg.seed) == ("", "", str(tmp_path), 3)
        assert (cfg.precision, cfg.precision_reason, cfg.pixel_mean) == ("bf16", "measured", [0.5])
        assert cfg.config_file == str((run / "config.json").resolve())
    again = config_of("--config", str(run), "--amp", "off", "--data", "digits")
    assert (again.precision, again.pixel_mean, again.amp) == ("", None, "off")  # decided anew
    assert config_of("--config", str(run), "--name", "new").name == "new"


def test_a_budget_runs_config_json_keeps_its_plan_unless_a_flag_changes_what_it_was_timed_for(tmp_path):
    run = tmp_path / "b"
    run.mkdir()
    plan = {"budget": "30s", "seconds": 30.0, "steps_per_epoch": 7, "steps": 50, "epochs": 8}
    saved = make_config("digits", name="b", output_dir=str(tmp_path), time_budget="30s")
    saved.epochs, saved.budget_plan = 8, plan
    (run / "config.json").write_text(saved.to_json())
    cfg = config_of("--config", str(run), "--seed", "7")
    assert (cfg.time_budget, cfg.epochs, cfg.budget_plan, cfg.seed) == ("30s", 8, plan, 7)  # replayed
    for flags in (["--time-budget", "1m"], ["-b", "32"], ["--model-arg", "width=0.5"], ["--amp", "off"],
                  ["--val-split", "0.2"], ["--tta", "2"], ["--checkpoint-every", "5"]):
        again = config_of("--config", str(run), *flags)
        assert again.budget_plan == {} and again.time_budget in ("30s", "1m"), flags  # timed afresh
    # the data at another path: the plan stays (the run checks that they give its steps per epoch), and a
    # --data-path keeps the kind the run's data had
    (tmp_path / "elsewhere").mkdir()  # a folder that is there: one that is not is refused before anything
    moved = config_of("--config", str(run), "--data", f"folder:{tmp_path / 'elsewhere'}")
    assert (moved.budget_plan, moved.data) == (plan, f"folder:{tmp_path / 'elsewhere'}")
    saved.data = "cifar10:/old/place"
    (run / "config.json").write_text(saved.to_json())
    moved = config_of("--config", str(run), "--data-path", "/new/place")
    assert (moved.budget_plan, moved.data) == (plan, "cifar10:/new/place")
    saved.data = "/old/place/photos"  # a bare path (its kind found from the files), of another machine: replaced
    (run / "config.json").write_text(saved.to_json())
    assert config_of("--config", str(run), "--data-path", "/new/photos").data == "/new/photos"
    fixed = config_of("--config", str(run), "--epochs", "3")
    assert (fixed.epochs, fixed.time_budget, fixed.budget_plan) == (3, "", {})  # a length given replaces the budget


# -- mistakes: one line, the key and the file, exit 2 ---------------------------------------------

BAD = [
    ("epocs: 3\n", "unknown key 'epocs' (did you mean: epochs"),
    ("epochs: ten\n", "epochs must be a whole number, not 'ten'"),
    ("lr: [1]\n", "lr must be a number, not [1]"),
    ("nesterov: yes\n", "nesterov must be true or false, not 'yes'"),
    ("report_at: [80, x]\n", "report_at must be a list of numbers"),
    ("pca: 3\n", "pca must be a string or null, not 3"),
    ("epochs: 0\n", "epochs must be at least 1, not 0"),
    ("weight_decay: -1\n", "weight_decay: --wd must be non-negative"),
    ("resident: false\naug: flip-translate\n", "aug: --aug flip-translate augments whole batches held in memory: add --resident"),
    ("recipe: cifar\n", "recipe: 'cifar' is not a recipe (did you mean: cifar10"),
    ("resume: runs/x\n", "resume: a config file starts a new run"),
    ("epochs: 3\n  lr: : x\n", "not valid YAML at line 2"),
    ("- 1\n- 2\n", "expected KEY: VALUE lines"),
]


@pytest.mark.parametrize("text,expected", BAD)
def test_a_mistake_in_the_file_is_one_line_naming_key_and_file(tmp_path, capsys, text, expected):
    f = write(tmp_path, text)
    assert main(["train", "--config", f]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {f}: ") and expected in err, err


def test_a_missing_file_a_bad_json_and_config_with_resume(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert capsys.readouterr().err == f"error: --config {tmp_path / 'nope.yaml'}: no such file\n"
    assert main(["train", "--config", write(tmp_path, '{"epochs": 2,', "config.json")]) == 2
    assert "config.json: not valid JSON" in capsys.readouterr().err
    assert main(["train", "--config", write(tmp_path, "epochs: 2\n"), "--resume", str(tmp_path)]) == 2
    assert "give one of them" in capsys.readouterr().err


COMMITTED = str(Path(__file__).resolve().parents[2] / "docs/runs/cifar10-recipe-arms/recipe-s1/config.json")


def test_a_committed_runs_config_without_data_path_says_to_give_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no folder named DATA here
    assert json.loads(Path(COMMITTED).read_text())["data"] == "cifar10:DATA"
    assert main(["train", "--config", COMMITTED, "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'cifar10:DATA', the placeholder" in err and "add --data-path PATH" in err, err
    assert config_of("--config", COMMITTED, "--data-path", "/data/cifar").data == "cifar10:/data/cifar"
    assert config_of("--config", COMMITTED, "--data", f"folder:{tmp_path}").data == f"folder:{tmp_path}"
    assert not list(tmp_path.iterdir())  # nothing written


def test_mistakes_are_answered_before_torch_is_imported(tmp_path):
    files = [write(tmp_path, text, f"{i}.yaml") for i, (text, _) in enumerate(BAD)] + [COMMITTED]
    code = ("import sys\nfrom alexnet.cli import main\n"
            f"codes = [main(['train', '--config', f]) for f in {files!r}]\n"
            "print(set(codes), 'torch' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.stdout.strip().splitlines()[-1] == "{2} False", r.stdout + r.stderr


# -- a YAML recipe trains; its config.json re-runs it bit for bit ------------------------------------

def test_a_yaml_trains_and_its_config_json_reruns_it_exactly(tmp_path, monkeypatch, capsys):
    from safetensors.torch import load_file
    import torch

    monkeypatch.delenv("ALEXNET_CPU_BF16", raising=False)  # --amp auto decides, and the re-run keeps it
    assert main(["recipes", "show", "digits"]) == 0
    text = capsys.readouterr().out.replace("epochs: 8 ", "epochs: 1 ")
    text += "train_subset: 256\nbatch_size: 64\nmodel_kwargs: {width: 0.125, fc_width: 16}\ndeterministic: true\n"
    recipe = write(tmp_path, text, "tiny-digits.yaml")
    out = str(tmp_path / "runs")
    assert main(["train", "--config", recipe, "--output-dir", out, "--name", "a", "--seed", "5"]) == 0
    first = json.loads((tmp_path / "runs" / "a" / "config.json").read_text())
    assert (first["epochs"], first["optimizer"], first["config_file"]) == (1, "adamw", str(Path(recipe).resolve()))
    assert main(["train", "--config", str(tmp_path / "runs" / "a" / "config.json")]) == 0
    (second_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.name != "a"]
    second = json.loads((second_dir / "config.json").read_text())
    assert second["config_file"] == str(tmp_path / "runs" / "a" / "config.json")
    assert {k: v for k, v in second.items() if k not in ("name", "config_file")} == \
           {k: v for k, v in first.items() if k not in ("name", "config_file")}
    a, b = (load_file(str(d / "weights.safetensors")) for d in (tmp_path / "runs" / "a", second_dir))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_data_named_by_its_kind_brings_its_recipe_and_model(capsys):
    """``alexnet train --data cifar10:DIR`` trains alexnet-cifar under the cifar10 recipe and says
    why; a model given keeps its own recipe."""
    cfg = config_of("--data", "cifar10:/data/cifar10")
    assert (cfg.recipe, cfg.model, cfg.data) == ("cifar10", "alexnet-cifar", "cifar10:/data/cifar10")
    assert "recipe cifar10 (for cifar10 data; --recipe NAME to choose another)" in capsys.readouterr().out
    assert config_of("--data", "cifar10:/data/cifar10", "--model", "alexnet-mnist").recipe == "digits"
    assert config_of("--data", "imagenet:/datasets/ilsvrc2012").model == "alexnet"


def _images(root: Path, size: tuple[int, int], mode: str = "RGB", classes=("a", "b"), n: int = 2) -> Path:
    from PIL import Image

    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new(mode, size, 90).save(root / c / f"{i}.png")
    return root


def test_a_folder_without_model_or_recipe_is_told_by_its_first_image(tmp_path, capsys):
    """No --recipe, no --model: photos train alexnet-owt under `photos`, small colour images
    alexnet-cifar under `cifar10` (their folder kept as a folder, not taken for CIFAR-10's ten
    classes), small grey ones alexnet-mnist; the first line says why."""
    photos = _images(tmp_path / "photos", (400, 300))
    cfg = config_of("--data", str(photos))
    assert (cfg.recipe, cfg.model, cfg.data) == ("photos", "alexnet-owt", str(photos))
    assert "recipe photos (for photos: the data's first images are 400×300, colour;" in capsys.readouterr().out
    small = _images(tmp_path / "small" / "train", (32, 32), classes="abc").parent
    cfg = config_of("--data-path", str(small))
    assert (cfg.recipe, cfg.model, cfg.data) == ("cifar10", "alexnet-cifar", str(small))
    assert "for small colour images: the data's first images are 32×32, colour" in capsys.readouterr().out
    grey = _images(tmp_path / "grey", (28, 28), "L")
    assert (config_of("--data", f"folder:{grey}").recipe, config_of("--data", f"folder:{grey}").model) == \
           ("digits", "alexnet-mnist")
    assert config_of("--data", str(_images(tmp_path / "bigrey", (256, 200), "L"))).recipe == "photos"
    assert config_of("--data", str(_images(tmp_path / "tiny-in", (64, 64)))).recipe == "cifar10"  # 64: small
    assert config_of("--data", str(_images(tmp_path / "mid", (80, 65)))).recipe == "photos"
    # a list file: its first lines' images
    (tmp_path / "train.txt").write_text("# comment\nphotos/a/0.png 0\nphotos/b/0.png 1\n")
    assert config_of("--data", str(tmp_path / "train.txt")).recipe == "photos"
    # a cache and shards: the size the cache holds, the first image of the shards
    assert main(["data", "cache", f"folder:{small}", "-o", str(tmp_path / "small-cache")]) == 0
    assert main(["data", "shards", str(photos), "-o", str(tmp_path / "photo-shards")]) == 0
    capsys.readouterr()
    assert config_of("--data", f"cache:{tmp_path / 'small-cache'}").recipe == "cifar10"
    cfg = config_of("--data", str(tmp_path / "photo-shards"))
    assert cfg.recipe == "photos" and "the data's first images are 400×300" in capsys.readouterr().out
    # a model given keeps the recipe that suits it
    assert config_of("--data", str(photos), "--model", "alexnet-cifar").recipe == "cifar10"
    # a bare path recognised as a dataset kind brings that kind's recipe
    (tmp_path / "batches").mkdir()
    (tmp_path / "batches" / "data_batch_1").write_bytes(b"")
    assert config_of("--data", str(tmp_path / "batches")).recipe == "cifar10"
    (tmp_path / "ilsvrc").mkdir()
    (tmp_path / "ilsvrc" / "LOC_synset_mapping.txt").write_text("")
    assert config_of("--data-path", str(tmp_path / "ilsvrc")).model == "alexnet"


def test_the_first_image_that_opens_decides_and_none_keeps_the_default(tmp_path):
    """Unreadable files are passed over; a folder of which no file opens gets the default model's
    recipe (its errors are the data loader's to report)."""
    from alexnet.data.datasets import first_image

    root = _images(tmp_path / "d", (32, 32), classes="bc")
    (root / "a").mkdir()
    (root / "a" / "0.jpg").write_bytes(b"not an image")
    assert first_image(str(root)) == ("folder", str(root), (3, 32, 32))
    assert first_image(str(root), tries=1) == ("folder", str(root), None)
    # one small grey thumbnail sorted first does not make colour photos grey digits: colour if any is,
    # the median size
    photos = _images(tmp_path / "p", (300, 200), classes="bc")
    _images(photos, (20, 20), "L", classes="a", n=1)  # a/0.png: the first image of the first class
    assert first_image(str(photos)) == ("folder", str(photos), (3, 200, 300))
    assert config_of("--data", str(photos)).recipe == "photos"
    bad = tmp_path / "bad" / "x"
    bad.mkdir(parents=True)
    (bad / "0.png").write_bytes(b"")
    assert config_of("--data", str(bad.parent)).recipe == "digits"
    assert first_image("cifar10:/nowhere") == ("cifar10", "/nowhere", None)
    assert first_image(f"folder:{tmp_path / 'nowhere'}") == ("folder", str(tmp_path / "nowhere"), None)
