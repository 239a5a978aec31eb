"""Values a person types are checked, and each mistake is one line: before torch is imported when
the value alone is wrong (`TrainConfig.check_values`, the train command's `check_flags`), once the
data is known when it takes the data (`TrainConfig.check_with_data`). The rules, as
docs/architecture.md's "Errors" convention asks:

- ``--max-steps 0``, ``--lr-step-size 0``, ``--lr-gamma`` outside (0, 1]: refused;
- ``--data X --data-path Y`` where X already names the data (digits, a path, KIND:PATH): refused;
- ``--pca FILE`` when nothing reads it (no PCA lighting, no ``--normalize pixelmean``): refused;
- ``-b`` larger than the training set: a one-line warning (a recipe's default batch may exceed a
  small folder; the epoch is then one step over every image);
- a figure's ``-o`` with a suffix other than ``.png``: refused (figures are PNG only);
- ``--weights`` that names a bad file is reported before a missing ``--data``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from alexnet.cli import main
from alexnet.core.errors import UserError

SRC = str(Path(__file__).resolve().parents[1] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def one_line_error(capsys, argv: list[str]) -> str:
    """Run the CLI in-process; assert exit 2 and exactly one ``error:`` line; return it."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


# -- answered before torch ---------------------------------------------------------------------

BAD_TRAIN_VALUES = [
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--lr-step-size", "0"], "--lr-step-size must be at least 1"),
    (["--lr-gamma", "0"], "--lr-gamma must be in (0, 1]"),
    (["--lr-gamma", "-0.5"], "--lr-gamma must be in (0, 1]"),
    (["--max-steps", "0"], "--max-steps must be at least 1"),
    (["--data", "digits", "--data-path", "somewhere"], "both name the data"),
    (["--aug", "light", "--pca", "pca.json"], "--aug light uses neither"),
    (["--model", "alexnet-owt", "--momentum", "1"], "--momentum must be in [0, 1)"),
    (["--weights", "no/such/run", "--lr", "0"], "--lr must be positive"),
    (["--resume", "auto"], "--resume auto needs --name NAME"),
    (["--time-budget", "15"], "--time-budget takes a duration such as 90s, 15m, 2h or 1h30m"),
    (["--time-budget", "-5m"], "--time-budget takes a duration such as 90s, 15m, 2h or 1h30m, not '-5m'"),  # a value, not a flag
    (["--pca-scale", "eigval", "--aug", "none"], "--pca-scale eigval is read only by PCA lighting (--aug paper); --aug none has none"),
    (["--time-budget", ""], "--time-budget is empty (an unset shell variable?): give a value, or leave "
                            "--time-budget out"),
    (["--data-path", ""], "--data-path is empty"),  # not a quiet run on the default digits
    (["--weights", " "], "--weights is empty"),  # not a quiet run from scratch
    (["--resume", ""], "--resume is empty"),
    (["--config", ""], "--config is empty"),
    (["--time-budget", "10m", "--epochs", "3"], "give --epochs or --time-budget"),
]


def test_bad_values_are_answered_before_torch_is_imported(tmp_path):
    """Each bad value: exit 2, one line, and ``torch`` not imported when the answer comes."""
    run = tmp_path / "run"  # a resumed run's own config is the base its flags are checked on
    run.mkdir()
    code = ("import sys, json\nfrom alexnet.cli import main\n"
            "for argv in json.loads(sys.argv[1]):\n"
            "    rc = main(argv)\n"
            "    print(json.dumps([rc, 'torch' in sys.modules]))\n")
    from alexnet.engine.config import TrainConfig

    (run / "config.json").write_text(TrainConfig().to_json())
    cases = BAD_TRAIN_VALUES + [(["--resume", str(run), "--epochs", "0"], "--epochs must be at least 1")]
    argvs = [["train", "--output-dir", str(tmp_path), *a] for a, _ in cases]
    r = subprocess.run([sys.executable, "-c", code, json.dumps(argvs)], capture_output=True, text=True,
                       env=ENV, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    results = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("[")]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(results) == len(cases) == len(errors), r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    for (argv, expect), (rc, torch_loaded), err in zip(cases, results, errors):
        assert rc == 2 and expect in err, (argv, err)
        assert not torch_loaded, f"{argv}: torch was imported before the value was checked"


def test_check_values_imports_no_torch():
    code = ("import sys\nfrom alexnet.engine.config import TrainConfig, config_values\n"
            "config_values('paper', epochs=2, lr_gamma=0.5).check_values()\n"
            "TrainConfig().check_values()\nprint('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


@pytest.mark.parametrize("over, expect", [
    (dict(lr_step_size=0), "--lr-step-size"), (dict(lr_step_size=-3), "--lr-step-size"),
    (dict(lr_gamma=0.0), "--lr-gamma"), (dict(lr_gamma=-1.0), "--lr-gamma"), (dict(lr_gamma=1.5), "--lr-gamma"),
    (dict(lr_patience=-1), "--lr-patience"), (dict(lr_max_drops=-1), "--lr-max-drops"),
    (dict(amp="fp8"), "--amp"), (dict(aug="small", pca="p.json"), "--pca p.json"),
    (dict(lr=float("inf")), "--lr must be a finite number"), (dict(clip_grad_norm=float("inf")), "--clip-grad-norm"),
    (dict(name="../elsewhere"), "--name '../elsewhere' must be one folder's name"), (dict(name="."), "--name '.'"),
    (dict(name="a/b"), "not a path"),
])
def test_config_refuses_each_bad_value(over, expect):
    from alexnet.engine.config import config_values

    with pytest.raises(UserError, match=expect.replace("-", r"\-")):
        config_values("digits", **over).check_values()


def test_pca_is_kept_when_something_reads_it():
    from alexnet.engine.config import config_values

    config_values("paper", pca="p.json").check_values()  # PCA lighting
    config_values("cifar10", pca="p.json", normalize="pixelmean").check_values()  # its mean pixel
    config_values("digits", lr_gamma=1.0, lr_step_size=1).check_values()  # the edges are allowed


def test_check_with_data_pca_unused_and_batch_over_the_training_set():
    from alexnet.engine.config import config_values

    cfg = config_values("digits", pca="p.json")  # aug auto: on 28×28 inputs that is "small", no lighting
    with pytest.raises(UserError, match="no PCA lighting"):
        cfg.check_with_data(lighting=False, train_images=100, batch_per_process=10)
    assert cfg.check_with_data(lighting=True, train_images=100, batch_per_process=10) == []
    plain = config_values("digits")
    [warning] = plain.check_with_data(lighting=False, train_images=1437, batch_per_process=100000)
    assert "batch 100000 is larger than the training set (1437 images)" in warning and "at most 1437" in warning
    [warning] = plain.check_with_data(lighting=False, train_images=101, batch_per_process=60, world_size=2)
    assert "(51 images per process)" in warning
    assert plain.check_with_data(lighting=False, train_images=1437, batch_per_process=1437) == []
    [warning] = config_values("cifar10").check_with_data(lighting=False, train_images=32, batch_per_process=512)
    assert warning.endswith("lower -b to at most 32, and --lr 0.0125 to keep lr 0.2's rate per image (it was set "
                            "for batch 512; SGD's step is per batch)")  # the recipe's SGD rate, 16× per image
    assert "--lr" not in plain.check_with_data(lighting=False, train_images=10, batch_per_process=20)[0]  # AdamW


def test_a_batch_larger_than_the_training_set_is_a_warning(tmp_path, capsys):
    assert main(["train", "-b", "5000", "--epochs", "1", "--max-steps", "1", "--output-dir", str(tmp_path),
                 "--name", "big", "--amp", "off", "--model-arg", "width=0.125", "--model-arg", "fc_width=16"]) == 0
    out = capsys.readouterr().out
    assert "warning: batch 5000 is larger than the training set (1438 images)" in out  # digits: 1,797 × 0.8


def test_data_path_alone_or_with_a_kind_still_works(tmp_path, image_folder):
    from alexnet.cli import build_parser
    from alexnet.commands.train import config_from_args

    args = build_parser().parse_args(["train", "--data", "folder", "--data-path", str(image_folder)])
    assert config_from_args(args).data == f"folder:{image_folder}"
    args = build_parser().parse_args(["train", "--data-path", str(image_folder)])
    assert config_from_args(args).data == str(image_folder)


def test_a_quoted_tilde_is_the_home_folder_in_every_command(tmp_path, image_folder, monkeypatch, capsys):
    """``--data '~/pets'`` (quoted, or from a config or a script) reads the home folder, as the shell
    would have made it unquoted; ``folder:~/…`` already did."""
    monkeypatch.setenv("HOME", str(image_folder.parent))
    assert main(["data", "list", "~/pets", "-o", "~/lists"]) == 0  # was "<cwd>/~/pets: no such folder"
    assert (tmp_path / "lists" / "train.txt").is_file()
    assert main(["data", "check", "~/pets"]) == 0
    capsys.readouterr()
    assert main(["train", "--data", "~/pets", "--model", "alexnet-cifar", "--model-arg", "width=0.0625",
                 "--max-steps", "1", "--amp", "off", "--output-dir", "~/runs", "--name", "t"]) == 0
    assert (tmp_path / "runs" / "t" / "weights.safetensors").is_file()
    assert not (Path.cwd() / "~").exists()
    from alexnet.cli import _expand_home
    from argparse import Namespace

    args = Namespace(name="~/x", labels=["~/a"], output="~/f.png")
    _expand_home(args)  # a run's name and legend labels are text, not paths
    assert (args.name, args.labels, args.output) == ("~/x", ["~/a"], str(tmp_path / "f.png"))


# -- --weights before --data -------------------------------------------------------------------

def test_weights_mistakes_are_reported_before_the_missing_data(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("my notes\n")
    (tmp_path / "random.pt").write_bytes(os.urandom(512))
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "checkpoints" / "last.pt").write_bytes(b"\x80\x04K\x01.")
    cases = [(tmp_path / "missing.pt", "no such file"), (tmp_path / "notes.txt", "notes.txt"),
             (tmp_path / "random.pt", "random.pt"),
             (run / "checkpoints" / "last.pt", f"give the run directory (--weights {run})")]
    for weights, expect in cases:
        err = one_line_error(capsys, ["train", "--weights", str(weights), "--output-dir", str(tmp_path)])
        assert expect in err and "needs a location" not in err, err


# -- figures are PNG ---------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["visualize", "kernels", "{t}/img.png", "-o", "{t}/out.jpg"],
    ["viz", "filters", "{t}/run", "-o", "{t}/out.JPG"],
    ["visualize", "curves", "{t}/run", "-o", "{t}/out.pdf"],
    ["index", "query", "{t}/ix", "{t}/img.png", "-o", "{t}/out.jpeg"],
])
def test_a_figure_other_than_png_is_refused_before_any_work(capsys, tmp_path, argv):
    err = one_line_error(capsys, [a.format(t=tmp_path) for a in argv])
    assert "figures are written as PNG" in err
    assert not list(tmp_path.iterdir())


def test_a_figure_name_without_a_suffix_gets_png(capsys, tmp_path, write_image):
    img = write_image(tmp_path / "x.png", size=(32, 32))
    assert main(["visualize", "kernels", img, "-o", str(tmp_path / "k")]) == 0
    assert (tmp_path / "k.png").is_file()


# -- data that holds no image ------------------------------------------------------------------

def test_training_on_a_folder_of_non_images_is_one_line(capsys, tmp_path):
    """Every file of the class folders fails to decode: one line naming the folder, also when the
    error comes back from a loader worker process."""
    for cls in ("a", "b"):
        (tmp_path / "junk" / cls).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "junk" / cls / f"{i}.jpg").write_text(f"not a picture {i}")
            (tmp_path / "junk" / cls / f"{i}.txt").write_text("notes")
    err = one_line_error(capsys, ["train", "--data", str(tmp_path / "junk"), "-j", "1", "--max-steps", "1",
                                  "--amp", "off", "--output-dir", str(tmp_path / "runs")])
    assert f"folder:{tmp_path / 'junk'}: none of the 4 files of its train split is a readable image" in err


# -- data cache -o FILE ------------------------------------------------------------------------

def test_data_cache_into_an_existing_file_is_one_line_before_any_work(capsys, tmp_path):
    out = tmp_path / "cache.bin"
    out.write_bytes(b"keep me")
    err = one_line_error(capsys, ["data", "cache", "no/such/data", "-o", str(out)])
    assert "an existing file" in err and str(out) in err  # the -o answer comes before the data is read
    assert out.read_bytes() == b"keep me"
    err = one_line_error(capsys, ["data", "cache", "digits", "-o", str(out / "sub")])
    assert "cannot create the cache folder" in err


def test_the_amp_names_are_one_list():
    from alexnet.core.device import AMP_CHOICES
    from alexnet.engine.config import AMP_MODES

    assert AMP_MODES == AMP_CHOICES


@pytest.mark.parametrize("argv, expect", [
    (["evaluate", ""], "WEIGHTS is empty (an unset shell variable?): give a value"),
    (["predict", "runs", "photo.jpg", ""], "IMAGE is empty"),
    (["recipes", "show", " "], "NAME is empty"),
    (["evaluate", "runs", "--data", ""], "--data is empty (an unset shell variable?): give a value, or leave --data out"),
])
def test_an_empty_value_from_an_unset_variable_is_one_line_in_every_command(capsys, argv, expect):
    assert expect in one_line_error(capsys, argv)


def test_a_flag_whose_own_type_reads_empty_keeps_reading_it():
    from alexnet.cli import build_parser

    args = build_parser().parse_args(["train", "--report-at", "", "--log", ""])  # "" is "none" for these two
    assert args.report_at == [] and args.log == []


def test_a_figure_into_a_folder_takes_its_default_name_there(capsys, tmp_path, write_image):
    img = write_image(tmp_path / "x.png", size=(32, 32))
    (tmp_path / "figs").mkdir()
    for out in (f"{tmp_path / 'figs'}/", str(tmp_path / "figs"), f"{tmp_path / 'new'}/"):
        assert main(["visualize", "kernels", img, "-o", out]) == 0
        assert Path(out.rstrip("/"), "kernels.png").is_file()
    assert not (tmp_path / "figs.png").exists()
