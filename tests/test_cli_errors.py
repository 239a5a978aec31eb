"""Bad input on the command line is answered in one line: exit status 2, one ``error: …`` line on
stderr, no traceback, and a message that says what to do.

Beside them, the edge cases found while checking those answers: a failed index build can simply
be run again, ``--max-steps`` belongs to one invocation (not to a resume), a run says up front
how much it will write, and ``--val-split 0`` trains on every image.
"""

from __future__ import annotations

import json

import pytest

from alexnet.cli import main
from alexnet.core.errors import UserError


def one_line_error(capsys, argv: list[str]) -> str:
    """Run the CLI in-process; assert exit 2 and exactly one ``error:`` line; return it."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert "\x1b[" not in err, "no terminal escape codes in messages"
    return err


# -- --model-arg -------------------------------------------------------------------------------

@pytest.mark.parametrize("arg, expect", [
    ("width=abc", "expected a number"),
    ("dropout=2", "at least 0 and below 1"),
    ("dropout=-0.1", "at least 0 and below 1"),
    ("in_chans=3", "in_chans must be 1"),
    ("input_hw=20", "input_hw must be 28"),
    ("width=0", "must be positive"),
    ("width=-1", "must be positive"),
    ("widths=1,2", "give 5 positive channel counts"),
    ("norm=layer", "choose from none, batch"),
    ("init=xavier", "choose from paper, caffe, kaiming"),
    ("fc_width=0", "at least 1"),
    ("fc_width=0.5", "expected an integer"),
])
def test_bad_model_arg_is_one_line(capsys, tmp_path, arg, expect):
    err = one_line_error(capsys, ["train", "--model-arg", arg, "--output-dir", str(tmp_path)])
    assert expect in err and "alexnet-mnist" in err
    assert not any(tmp_path.iterdir()), "rejected before any run directory is made"


def test_init_choices_are_each_models_own(capsys, tmp_path):
    """Each model lists the initialisations it builds with, and every one listed builds."""
    from alexnet.models import build_model
    from alexnet.models.registry import _choices

    for model, listed in (("alexnet", "paper, caffe, kaiming"), ("cifar4", "lecun, kaiming, paper")):
        err = one_line_error(capsys, ["train", "--model", model, "--model-arg", "init=xavier",
                                      "--output-dir", str(tmp_path)])
        assert err.endswith(f"choose from {listed}")
        for init in _choices(model, "init"):
            build_model(model, num_classes=3, init=init, width=0.125)


def test_unknown_model_arg_lists_the_valid_keys(capsys, tmp_path):
    err = one_line_error(capsys, ["train", "--model", "alexnet-owt", "--model-arg", "width=0.5",
                                  "--output-dir", str(tmp_path)])
    assert "alexnet-owt has no model argument 'width'" in err and err.endswith("it accepts: dropout, in_chans")
    err = one_line_error(capsys, ["train", "--model-arg", "dropuot=0.3", "--output-dir", str(tmp_path)])
    assert "did you mean: dropout" in err and "fc_width" in err and "width" in err


def test_model_args_defaults_are_what_the_builder_gives_the_network():
    """The defaults said in errors and in torch.hub's help are those the model is built with: the
    builder's own values where it sets them (alexnet-mnist's 1 channel and fc 512, senet154's 64
    groups, torchvision's ResNeXt 32×4d), not the network class's signature's."""
    from alexnet.models import build_model
    from alexnet.models.registry import check_model_kwargs, model_args

    mnist = model_args("alexnet-mnist")
    assert (mnist["in_chans"], mnist["widths"], mnist["fc_width"], mnist["input_hw"]) == (1, (32, 64, 96, 96, 64),
                                                                                         512, 28)
    assert (model_args("senet154")["groups"], model_args("senet154")["depths"]) == (64, (3, 8, 36, 3))
    assert (model_args("resnext50_32x4d")["groups"], model_args("resnext50_32x4d")["width_per_group"]) == (32, 4)
    assert model_args("alexnet")["fc_width"] == 4096 and model_args("alexnet-cifar")["input_hw"] == 32
    with pytest.raises(UserError, match=r"expected an integer \(default 512\)"):
        check_model_kwargs("alexnet-mnist", {"fc_width": "abc"})
    with pytest.raises(UserError, match="like 32,64,96,96,64"):
        check_model_kwargs("alexnet-mnist", {"widths": [1, 2]})
    assert type(build_model("alexnet-mnist")).__name__ == "AlexNetSmall"  # the classes are back in place


def test_model_args_come_from_the_signatures():
    from alexnet.models.registry import check_model_kwargs, model_args

    assert set(model_args("alexnet")) >= {"towers", "in_chans", "dropout", "init", "width", "fc_width", "groups"}
    assert set(model_args("alexnet-owt")) == {"dropout", "in_chans"}
    assert "dropout" in model_args("vgg16") and "zero_init_residual" in model_args("resnet18")
    check_model_kwargs("alexnet-mnist", {"width": 0.5, "dropout": 0, "widths": [8, 8, 8, 8, 8], "norm": "batch"})
    with pytest.raises(UserError, match="towers=3"):
        check_model_kwargs("alexnet", {"towers": 3})
    with pytest.raises(UserError, match="groups"):
        check_model_kwargs("alexnet", {"groups": 4})


def test_valid_comma_list_model_arg_trains_the_narrow_network(capsys, tmp_path):
    assert main(["train", "--model-arg", "widths=4,4,4,4,4", "--model-arg", "fc_width=8", "--max-steps", "1",
                 "--output-dir", str(tmp_path), "--name", "w", "--amp", "off"]) == 0
    cfg = json.loads((tmp_path / "w" / "config.json").read_text())
    assert cfg["model_kwargs"] == {"widths": [4, 4, 4, 4, 4], "fc_width": 8}


# -- flags: one rule, the sub-command's usage ---------------------------------------------------

def test_misspelled_flag_is_one_line_naming_the_subcommand_and_a_suggestion(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--epocs", "3"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err == ("error: alexnet train: unrecognized arguments: --epocs 3 (did you mean --epochs?) "
                   "(alexnet train --help says more)\n")
    with pytest.raises(SystemExit):
        main(["index", "build", "w", "d", "-o", "x", "--limt", "3"])
    err = capsys.readouterr().err
    assert err.startswith("error: alexnet index build: ") and "(did you mean --limit?)" in err and err.count("\n") == 1


@pytest.mark.parametrize("argv, says", [
    (["trian"], "'trian' is not a command (did you mean train?): one of train, "),
    (["visualize", "filtres", "x"], "alexnet visualize: 'filtres' is not a command (did you mean filters?)"),
    (["predict", "R", "x.jpg", "--format", "xlm"], "'xlm' is not a choice of --format: one of table, csv, json"),
    (["predict", "R", "x.jpg", "--format", "jsn"], "'jsn' is not a choice of --format (did you mean json?)"),
    (["train", "--epoch", "1"], "unrecognized arguments: --epoch 1 (did you mean --epochs?)"),  # no prefixes
    (["export", "R"], "alexnet export: the following arguments are required: -o/--output"),
])
def test_every_argparse_mistake_is_one_line(capsys, argv, says):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and says in err and err.count("\n") == 1


@pytest.mark.parametrize("argv", [
    ["evaluate", "RUN", "-b", "0"], ["predict", "RUN", "x.jpg", "-b", "0"], ["train", "-b", "0"],
    ["index", "build", "RUN", "digits", "-o", "IX", "-b", "-1"], ["evaluate", "RUN", "-j", "-1"],
])
def test_one_batch_size_rule_for_every_command(capsys, argv):
    err = one_line_error(capsys, argv)
    assert ("--batch-size must be at least 1" in err) or ("--workers must be at least 0" in err)


# -- import torchvision -------------------------------------------------------------------------

def test_import_of_things_that_are_not_a_state_dict(capsys, tmp_path):
    import torch
    import torch.nn as nn

    (tmp_path / "notes.txt").write_text("hello, these are my notes\n")
    (tmp_path / "folder").mkdir()
    torch.save(nn.Sequential(nn.Linear(2, 2)), tmp_path / "whole.pth")  # a whole pickled model
    cases = {"notes.txt": "not a PyTorch file", "folder": "is a folder",
             "whole.pth": "pickled code (torch.nn.modules.container.Sequential)"}
    for name, expect in cases.items():
        err = one_line_error(capsys, ["import", "torchvision", str(tmp_path / name), "-o", str(tmp_path / "out")])
        assert expect in err, err
    assert "state_dict()" in err and "torch.save(torch.load('whole.pth', weights_only=False).state_dict()" in err
    assert not (tmp_path / "out").exists()


class _RunsACommand:
    def __reduce__(self):
        import os

        return (os.system, ("true",))


def test_a_pickled_command_gets_no_hint_to_load_it(capsys, tmp_path):
    """A file whose pickled code is os.system is not a model: the refusal must not suggest loading it
    with weights_only=False (the hint a pickled model class gets)."""
    import torch

    torch.save({"x": _RunsACommand()}, tmp_path / "evil.pth")
    err = one_line_error(capsys, ["import", "torchvision", str(tmp_path / "evil.pth"), "-o", str(tmp_path / "o")])
    assert "pickled code (posix.system)" in err and "not a model's class" in err
    assert "torch.load(" not in err


# -- data pca-stats -------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, expect", [(["--max-images", "0"], "--max-images must be at least 1, not 0"),
                                           (["--max-images", "-5"], "--max-images must be at least 1, not -5"),
                                           (["--size", "0"], "--size must be at least 1 pixel, not 0")])
def test_pca_stats_bad_counts(capsys, tmp_path, flags, expect):
    assert expect in one_line_error(capsys, ["data", "pca-stats", "digits", "-o", str(tmp_path / "p.json"), *flags])
    assert not (tmp_path / "p.json").exists()


def test_pca_stats_of_unreadable_images_is_one_line(capsys, tmp_path):
    for c in ("a", "b"):
        (tmp_path / "d" / c).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "d" / c / f"{i}.jpg").write_bytes(b"not a jpeg")
    err = one_line_error(capsys, ["data", "pca-stats", f"folder:{tmp_path / 'd'}", "-o", str(tmp_path / "p.json")])
    assert "could be read" in err or "readable image" in err
    assert not (tmp_path / "p.json").exists()


# -- index build ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    import torch

    from alexnet.models import build_model, make_meta, save_weights

    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("tiny")
    model = build_model("alexnet-mnist", num_classes=10, width=0.125, fc_width=16)
    save_weights(model, run, make_meta("alexnet-mnist", [str(i) for i in range(10)],
                                       model_kwargs={"width": 0.125, "fc_width": 16}))
    return run


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_index_limit_must_be_positive_and_leaves_nothing(capsys, tiny_weights, tmp_path, limit):
    out = tmp_path / "ix"
    err = one_line_error(capsys, ["index", "build", str(tiny_weights), "digits", "-o", str(out), "--limit", limit])
    assert f"--limit must be at least 1, not {limit}" in err
    assert not out.exists()


def test_index_build_default_is_every_image_and_split_chooses(tiny_weights, tmp_path):
    from alexnet.infer.retrieval import FeatureIndex, build_index

    every = build_index(tiny_weights, "digits", tmp_path / "all", workers=0, progress=False)
    assert len(every) == 1797 and every.meta["split"] == "all"  # scikit-learn's digits, train and val
    assert len(set(every.paths)) == 1797
    assert main(["index", "build", str(tiny_weights), "digits", "-o", str(tmp_path / "val"), "--split", "val",
                 "-j", "0"]) == 0
    val = FeatureIndex(tmp_path / "val")
    assert 300 < len(val) < 400 and set(val.paths) < set(every.paths)


def test_a_failed_index_build_can_simply_be_run_again(tiny_weights, tmp_path, monkeypatch):
    from alexnet.infer import retrieval
    from alexnet.infer.retrieval import FeatureIndex, build_index

    out = tmp_path / "ix"
    calls = {"n": 0}
    real = retrieval.IndexWriter.add

    def failing_add(self, *a, **k):
        calls["n"] += 1
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(retrieval.IndexWriter, "add", failing_add)
    with pytest.raises(RuntimeError):
        build_index(tiny_weights, "digits", out, workers=0, progress=False, limit=20)
    assert calls["n"] == 1 and not (out / "index.json").exists()
    monkeypatch.setattr(retrieval.IndexWriter, "add", real)
    assert len(build_index(tiny_weights, "digits", out, workers=0, progress=False, limit=20)) == 20
    # an empty "complete" index left by an older version neither blocks a rebuild nor crashes a query
    meta = json.loads((out / "index.json").read_text())
    (out / "index.json").write_text(json.dumps({**meta, "count": 0, "dim": None, "shards": []}))
    with pytest.raises(UserError, match="empty or unfinished index"):
        FeatureIndex(out)
    assert len(build_index(tiny_weights, "digits", out, workers=0, progress=False, limit=12)) == 12


# -- a run: --max-steps belongs to one invocation; what it writes is said up front ----------------

def test_max_steps_is_not_inherited_by_a_resume(tmp_path, capsys):
    from alexnet.core.io import safe_torch_load

    tiny = ["--model-arg", "width=0.125", "--model-arg", "fc_width=16", "--amp", "off", "-b", "256",
            "--output-dir", str(tmp_path), "--name", "r"]
    assert main(["train", "--epochs", "2", "--max-steps", "1", *tiny]) == 0
    run = tmp_path / "r"
    assert json.loads((run / "config.json").read_text())["max_steps"] == 0
    assert safe_torch_load(run / "checkpoints" / "last.pt")["global_step"] == 1
    assert main(["train", "--resume", str(run)]) == 0  # no --max-steps: trains both epochs to the end
    last = safe_torch_load(run / "checkpoints" / "last.pt")
    assert last["epoch"] == 2 and last["global_step"] == 2 * (1438 // 256)
    # an older run directory that stored the cap does not pass it on either
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "max_steps": 1, "test_only": True}))
    from alexnet.engine.config import resume_config

    again = resume_config(str(run))
    assert again.max_steps == 0 and again.test_only is False


def test_a_run_says_how_much_it_will_write(tmp_path, capsys):
    from alexnet.core.io import safe_torch_load

    assert main(["train", "--epochs", "1", "--max-steps", "1", "--amp", "off", "-b", "64", "--output-dir",
                 str(tmp_path), "--name", "r"]) == 0  # full width: 3 MB of weights, AdamW (2 state copies)
    out = capsys.readouterr().out
    run = tmp_path / "r"
    said = next(ln for ln in out.splitlines() if ln.startswith("this run writes about "))
    number, unit = said.split()[4:6]
    estimate = float(number) * {"kB": 1e3, "MB": 1e6, "GB": 1e9}[unit]
    best, last = (run / "checkpoints" / "best.pt").stat().st_size, (run / "checkpoints" / "last.pt").stat().st_size
    written = sum(f.stat().st_size for f in run.rglob("*") if f.is_file())  # one epoch: no last.prev.pt
    assert not (run / "checkpoints" / "last.prev.pt").exists() and "last.prev.pt" not in said
    assert abs(estimate - written) / written < 0.05, (said, written)
    weights = (run / "weights.safetensors").stat().st_size
    assert abs(best - weights) / weights < 0.01 and abs(last - 3 * weights) / weights < 0.03
    assert "optimizer" not in safe_torch_load(run / "checkpoints" / "best.pt")


def test_a_disk_too_full_for_the_run_is_said_before_it_trains(tmp_path, capsys, monkeypatch):
    """The estimate above against the disk's free space: a new run that cannot fit stops in one
    line before its first epoch and leaves nothing behind; one that fits, and a resume, go on."""
    import shutil
    from collections import namedtuple

    import alexnet.engine.rundir as rundir

    usage = namedtuple("usage", "total used free")
    real = shutil.disk_usage
    free = {"bytes": 2_000_000}  # the full-width digits model keeps about 15.5 MB (one epoch), 24.8 MB at most
    monkeypatch.setattr(rundir.shutil, "disk_usage", lambda p: usage(*real(p)[:2], free["bytes"]))
    args = ["train", "--epochs", "1", "--max-steps", "1", "--amp", "off", "-b", "64", "--output-dir", str(tmp_path)]
    err = one_line_error(capsys, [*args, "--name", "r"])
    assert f"{tmp_path / 'r'}: this run writes about 15.5 MB there" in err and "2 MB free" in err
    assert "24.8 MB at most while it replaces a checkpoint" in err
    assert "--output-dir on another disk" in err and not (tmp_path / "r").exists()
    free["bytes"] = 20_000_000  # room for every file it keeps, not for a checkpoint written beside them
    assert "24.8 MB at most" in one_line_error(capsys, [*args, "--name", "r"])
    free["bytes"] = 25_000_000
    assert main([*args, "--name", "r"]) == 0
    free["bytes"] = 0
    assert main(["train", "--resume", str(tmp_path / "r"), "--max-steps", "2"]) == 0


def test_val_split_0_trains_on_every_image(tmp_path, capsys):
    tiny = ["--model-arg", "width=0.125", "--model-arg", "fc_width=16", "--amp", "off", "-b", "256",
            "--epochs", "1", "--max-steps", "2", "--output-dir", str(tmp_path)]
    assert main(["train", "--val-split", "0", "--name", "all", *tiny]) == 0
    out = capsys.readouterr().out
    assert "data digits: 1,797 train / no val images" in out and "(no validation)" in out
    run = tmp_path / "all"
    assert json.loads((run / "config.json").read_text())["val_split"] == 0
    meta = json.loads((run / "weights.json").read_text())  # strict JSON: no NaN scores
    assert "val_top1" not in meta and (run / "weights.safetensors").is_file()
    err = one_line_error(capsys, ["train", "--val-split", "0", "--lr-scheduler", "plateau", "--name", "p", *tiny])
    assert "plateau schedule needs them" in err
    assert "--val-split must be in [0, 1), not 1.0" in one_line_error(capsys, ["train", "--val-split", "1", *tiny])


# -- MNIST: the CLI's words, and the t10k files alone -------------------------------------------

def test_mnist_with_only_its_t10k_files(capsys, mnist_root, tmp_path):
    raw = mnist_root / "MNIST" / "raw"
    for f in raw.glob("train-*"):
        f.unlink()
    assert main(["data", "check", f"mnist:{mnist_root}"]) == 0  # as evaluate does: the val split is there
    out = capsys.readouterr().out
    assert out.startswith("val: 5 images, 10 classes") and "no bad files" in out
    err = one_line_error(capsys, ["train", "--data", f"mnist:{mnist_root}", "--output-dir", str(tmp_path)])
    assert "add --download to fetch them" in err and "download=True" not in err
    for f in raw.glob("t10k-*"):
        f.unlink()
    err = one_line_error(capsys, ["data", "check", f"mnist:{mnist_root}"])
    assert "no train-images-idx3-ubyte" in err


def test_predict_says_what_it_takes(capsys, tiny_weights, tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07onnx-ish")
    err = one_line_error(capsys, ["predict", str(tmp_path / "model.onnx"), "x.jpg"])
    assert "is an ONNX export" in err and "takes a run directory or a weights.safetensors" in err
    ck = tmp_path / "run" / "checkpoints" / "best.pt"
    ck.parent.mkdir(parents=True)
    ck.write_bytes(b"PK")
    (tmp_path / "run" / "weights.safetensors").write_bytes(b"")
    err = one_line_error(capsys, ["predict", str(ck), "x.jpg"])
    assert "is a training checkpoint" in err and f"give the run directory {tmp_path / 'run'}" in err
    err = one_line_error(capsys, ["evaluate", str(tmp_path / "alexnet-owt-7be5be79.pth")])
    assert "alexnet import torchvision" in err


def test_resume_mistakes_are_one_line_each(capsys, tmp_path):
    assert "no such folder" in one_line_error(capsys, ["train", "--resume", str(tmp_path / "nope")])
    assert "--max-steps must be at least 1" in one_line_error(capsys, ["train", "--max-steps", "-1"])
    run = tmp_path / "r"
    assert main(["train", "--model-arg", "width=0.125", "--model-arg", "fc_width=16", "--max-steps", "1", "--amp",
                 "off", "--output-dir", str(tmp_path), "--name", "r"]) == 0
    capsys.readouterr()
    err = one_line_error(capsys, ["train", "--resume", str(run), "--name", "other"])
    assert "a resumed run keeps its own folder" in err
    assert main(["train", "--resume", str(run), "--name", "r", "--test-only"]) == 0  # its own name: fine
    assert "this run writes about" not in capsys.readouterr().out  # --test-only writes nothing


def test_the_closing_next_line_can_be_pasted_into_a_shell_with_spaces_in_the_path(tmp_path, capsys):
    import shlex

    out = tmp_path / "my runs"
    assert main(["train", "--model-arg", "width=0.125", "--model-arg", "fc_width=16", "--max-steps", "1", "--amp",
                 "off", "--output-dir", str(out), "--name", "r 1"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("next: "))
    evaluate = shlex.split(line[len("next: "):].split("   ·   ")[0])
    assert evaluate == ["alexnet", "evaluate", str(out / "r 1"), "--data", "digits"]


def test_import_refuses_class_names_given_twice(capsys, tmp_path):
    import torch
    import torchvision

    sd = torchvision.models.alexnet(weights=None, num_classes=3).state_dict()
    torch.save(sd, tmp_path / "tv3.pth")
    (tmp_path / "names.txt").write_text("cat\ncat\ndog\n")
    err = one_line_error(capsys, ["import", "torchvision", str(tmp_path / "tv3.pth"), "-o", str(tmp_path / "o"),
                                  "--classes", str(tmp_path / "names.txt")])
    assert "class names must differ; given more than once: cat" in err


def test_a_checkpoint_with_numpy_values_keeps_the_hint(tmp_path):
    """A training checkpoint holding a numpy number (best_acc1 as np.float64) is refused by
    weights_only, but it is data, not a command: it gets the hint, not the warning."""
    import numpy as np
    import torch

    from alexnet.core.errors import UserError
    from alexnet.core.io import safe_torch_load

    torch.save({"state_dict": {"w": torch.zeros(2)}, "best_acc1": np.float64(71.3)}, tmp_path / "ck.pth")
    with pytest.raises(UserError) as e:
        safe_torch_load(tmp_path / "ck.pth")
    assert "pickled code (numpy" in str(e.value) and "not a model's class" not in str(e.value)


@pytest.mark.parametrize("argv", [["predict", "nope-run", "x.png"], ["evaluate", "nope-run"],
                                  ["export", "nope-run", "-o", "m.onnx"], ["serve", "nope-run"]])
def test_a_run_that_is_not_there_is_said_before_torch_is_imported(argv, tmp_path):
    """A mistyped run directory is answered at once: the check comes before the commands import
    torch (seconds on a small machine)."""
    import subprocess
    import sys

    code = ("import sys; from alexnet.cli import main; rc = main(sys.argv[1:]); "
            "print(rc, 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.stdout.split() == ["2", "False"], r.stderr
    assert r.stderr.strip() == "error: nope-run: no such file (give a run directory or a weights.safetensors file)"


def test_weights_that_are_there_but_wrong_are_said_before_torch_is_imported(tmp_path):
    """A folder that is not a run, a checkpoint given for weights, a run without weights.json: each
    command that takes weights answers in one line before it imports torch."""
    import subprocess
    import sys

    (tmp_path / "photos").mkdir()  # a folder, not a run
    (tmp_path / "last.pt").write_bytes(b"PK\x03\x04 not really")  # a checkpoint, not weights
    (tmp_path / "w.safetensors").write_bytes(b"")  # its weights.json missing
    cases = [(["predict", "photos", "x.png"], "photos has no weights.safetensors"),
             (["evaluate", "last.pt"], "last.pt is a PyTorch checkpoint"),
             (["export", "w.safetensors", "-o", "m.onnx"], "w.json: missing"),
             (["serve", "photos"], "photos has no weights.safetensors"),
             (["index", "build", "photos", "digits", "-o", "ix"], "photos has no weights.safetensors"),
             (["visualize", "filters", "last.pt"], "last.pt is a PyTorch checkpoint"),
             (["visualize", "activations", "photos", "x.png"], "photos has no weights.safetensors"),
             (["evaluate", "w.safetensors", "--data", "fotos"], "w.json: missing")]
    code = ("import sys, json\nfrom alexnet.cli import main\n"
            "for argv in json.loads(sys.argv[1]):\n"
            "    print(json.dumps([main(argv), 'torch' in sys.modules]))\n")
    r = subprocess.run([sys.executable, "-c", code, json.dumps([a for a, _ in cases])], capture_output=True,
                       text=True, cwd=tmp_path, timeout=120)
    assert [json.loads(line) for line in r.stdout.splitlines()] == [[2, False]] * len(cases), r.stderr
    errors = r.stderr.splitlines()
    assert len(errors) == len(cases) and "Traceback" not in r.stderr, r.stderr
    for (argv, expect), err in zip(cases, errors):
        assert err.startswith("error: ") and expect in err, (argv, err)


def test_evaluate_data_that_is_not_there_is_said_before_torch(tmp_path):
    import subprocess
    import sys

    run = tmp_path / "run"
    run.mkdir()
    (run / "weights.safetensors").write_bytes(b"")
    (run / "weights.json").write_text('{"model": "alexnet-digits", "classes": ["a", "b"]}')
    code = "import sys; from alexnet.cli import main; rc = main(sys.argv[1:]); print(rc, 'torch' in sys.modules)"
    for argv in (["evaluate", "run", "--data", "fotos"], ["index", "build", "run", "foldr:x", "-o", "ix"]):
        r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=tmp_path,
                           timeout=120)
        assert r.stdout.split() == ["2", "False"], r.stderr
        assert r.stderr.startswith("error: ") and ("fotos: no such file or folder" in r.stderr
                                                   or "unknown dataset kind 'foldr'" in r.stderr), r.stderr


def test_the_early_run_check_expands_a_quoted_tilde(tmp_path, monkeypatch, capsys):
    """``"~/runs/x"`` passed quoted (by a script) is a path the commands expand: not refused as missing."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "runs" / "x").mkdir(parents=True)
    assert main(["evaluate", "~/runs/x"]) == 2
    err = capsys.readouterr().err
    assert "no such file (give a run directory" not in err and "has no weights.safetensors" in err


def test_a_run_still_in_its_first_epoch_says_so_not_just_that_weights_are_missing(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    err = one_line_error(capsys, ["predict", str(run), str(tmp_path / "x.png")])
    assert err == (f"error: {run} has no weights.safetensors yet: its run has not finished an epoch (the weights are "
                   f"written at the end of its best one; it has no checkpoint either: `alexnet train --config {run} "
                   f"--output-dir {tmp_path} --name run` starts it again)")
    (run / "checkpoints" / "last.pt").write_bytes(b"")
    assert one_line_error(capsys, ["predict", str(run), str(tmp_path / "x.png")]).endswith(
        f"best one; `alexnet train --resume {run}` goes on with it if it stopped)")
