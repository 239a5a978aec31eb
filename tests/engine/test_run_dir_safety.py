"""A run directory is never overwritten or lost: an existing run is refused without --resume (one that
stopped before it trained anything is replaced, saying so), an
--output-dir that is a file or not writable is one line before any data is read, and a corrupt
last.pt set aside on fallback keeps last.prev.pt safe from the next rotation."""

from __future__ import annotations

import os

import pytest

import alexnet.engine.rundir as rundir_mod
from alexnet.cli import main
from alexnet.core.errors import UserError
from alexnet.core.io import safe_torch_load
from alexnet.engine import make_config
from alexnet.engine.config import resume_config
from alexnet.engine.train import fit

TINY = {"width": 0.125, "fc_width": 16}


def run(tmp_path, name: str, **kw):
    kw = {"epochs": 1, "batch_size": 256, "amp": "off", "model_kwargs": TINY, **kw}
    return fit(make_config("digits", output_dir=str(tmp_path), name=name, **kw))


def no_data(monkeypatch):
    """Any attempt to open the data fails the test: the checks come first."""
    def boom(*a, **k):
        raise AssertionError("data was loaded before the check")

    monkeypatch.setattr("alexnet.engine.train.open_training_data", boom)


def test_after_a_fallback_the_next_save_keeps_the_good_previous_checkpoint(tmp_path, capsys):
    d = run(tmp_path, "t", epochs=3, checkpoint_every=3, max_steps=8).run_dir
    ck = d / "checkpoints"
    good = safe_torch_load(ck / "last.prev.pt")["global_step"]
    data = (ck / "last.pt").read_bytes()
    (ck / "last.pt").write_bytes(data[: len(data) // 2])
    capsys.readouterr()
    fit(resume_config(str(d), max_steps=7))  # resumes from last.prev.pt (step 6), saves once (step 7)
    out = capsys.readouterr().out
    assert "resuming from the previous checkpoint" in out and "last.pt.corrupt" in out
    assert (ck / "last.pt.corrupt").read_bytes() == data[: len(data) // 2]  # kept for inspection
    assert safe_torch_load(ck / "last.pt")["global_step"] == 7
    # the checkpoint it resumed from survives the save (before: the corrupt file rotated onto it)
    assert safe_torch_load(ck / "last.prev.pt")["global_step"] == good


def test_an_existing_run_is_refused_without_resume(tmp_path, capsys, monkeypatch):
    d = run(tmp_path, "r").run_dir
    before = (d / "weights.safetensors").read_bytes()
    no_data(monkeypatch)
    assert main(["train", "--output-dir", str(tmp_path), "--name", "r", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{d} already holds a run" in err and f"--resume {d}" in err, err
    assert (d / "weights.safetensors").read_bytes() == before


@pytest.mark.parametrize("what", ["config.json", "checkpoints", "weights.safetensors"])
def test_any_trace_of_a_run_that_trained_or_of_another_tool_counts(tmp_path, monkeypatch, what):
    """A config.json alone (another tool's folder, a model's) is refused as before; only a run of ours
    that never trained is replaced (below)."""
    d = tmp_path / "x"
    (d / what).mkdir(parents=True) if what == "checkpoints" else (d.mkdir(), (d / what).write_text("{}"))
    (d / "classes.json").write_text("{}")
    no_data(monkeypatch)
    with pytest.raises(UserError, match="already holds a run"):
        run(tmp_path, "x")


def test_an_empty_folder_of_that_name_is_fine(tmp_path):
    (tmp_path / "e").mkdir()
    assert run(tmp_path, "e", max_steps=1).run_dir == tmp_path / "e"


def test_output_dir_that_is_a_file_is_one_line_before_the_data(tmp_path, capsys, monkeypatch):
    f = tmp_path / "notes.txt"
    f.write_text("x")
    no_data(monkeypatch)
    assert main(["train", "--output-dir", str(f), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--output-dir {f}: {f} is a file, not a folder" in err, err
    assert main(["train", "--output-dir", str(f / "deeper"), "--epochs", "1"]) == 2
    assert f"{f} is a file" in capsys.readouterr().err


def test_output_dir_not_writable_is_one_line_before_the_data(tmp_path, capsys, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(rundir_mod.os, "access", lambda p, mode: False if str(p) == str(ro) else real(p, mode))
    no_data(monkeypatch)
    assert main(["train", "--output-dir", str(ro / "runs"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot write in {ro} (permission denied)" in err, err


def test_a_folder_that_cannot_be_made_is_one_line(tmp_path, monkeypatch):
    from alexnet.engine.distributed import World

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(rundir_mod.Path, "mkdir", refuse)
    with pytest.raises(UserError, match="cannot make .*checkpoints: Permission denied"):
        rundir_mod.RunDir(tmp_path / "r", World()).write_run_files(make_config("digits"), ["a", "b"], ["a", "b"])


def test_a_run_that_stopped_before_it_trained_anything_is_started_again_in_its_place(tmp_path, capsys):
    """Data none of whose images reads: the run stops at its first batch with config.json written. The
    same command, once the images are mended, starts in that folder (it held nothing worth keeping)
    instead of being sent to a --resume that has no checkpoint to continue; --resume says how."""
    from PIL import Image

    data = tmp_path / "photos"
    for c in ("cat", "dog"):
        (data / c).mkdir(parents=True)
        for i in range(5):
            (data / c / f"{i}.jpg").write_text("not an image")
    args = ["train", "--data", str(data), "--model", "alexnet", "--model-arg", "width=0.125", "--model-arg",
            "fc_width=16", "--max-steps", "2", "-b", "2", "--amp", "off", "--output-dir", str(tmp_path), "--name", "r"]
    assert main(args) == 2 and "none of the 8 files of its train split is a readable image" in capsys.readouterr().err
    assert (tmp_path / "r" / "config.json").is_file() and not (tmp_path / "r" / "checkpoints" / "last.pt").exists()
    assert main(["train", "--resume", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip().endswith(
        f"(the run stopped before it trained anything: start it again with `alexnet train --config {tmp_path / 'r'} "
        f"--output-dir {tmp_path} --name r`)")
    from alexnet.core.errors import UserError
    from alexnet.engine.distributed import World
    from alexnet.engine.rundir import RunDir

    with pytest.raises(UserError, match=r"start it again with `torchrun --nproc-per-node 2 -m alexnet train --config"):
        RunDir(tmp_path / "r", World(rank=1, world_size=2)).open_last()  # under torchrun: the same launcher
    for c, colour in (("cat", (200, 0, 0)), ("dog", (0, 0, 200))):
        for i in range(5):
            Image.new("RGB", (32, 32), colour).save(data / c / f"{i}.jpg")
    assert main(args) == 0
    assert f"{tmp_path / 'r'} holds a run that stopped before it trained anything: this run starts in its place" \
        in capsys.readouterr().out
    assert safe_torch_load(tmp_path / "r" / "checkpoints" / "last.pt")["global_step"] == 2
    with pytest.raises(UserError, match="already holds a run"):  # a run that trained is never replaced
        fit(make_config("digits", output_dir=str(tmp_path), name="r", max_steps=1, amp="off", model_kwargs=TINY))


@pytest.mark.parametrize("data, named", [("list:/h/pets/train.txt", "pets"), ("/h/pets/val.txt", "pets"),
                                         ("folder:/h/pets", "pets"), ("digits", "digits"),
                                         ("shards:s3://bucket/imagenet", "imagenet")])
def test_a_runs_default_name_says_which_data(data, named):
    from alexnet.engine.config import make_config
    from alexnet.engine.distributed import World
    from alexnet.engine.rundir import run_dir_path

    name = run_dir_path(make_config("digits", data=data), World()).name
    assert name.startswith(f"alexnet-mnist-{named}-"), name  # a list file is named by its folder, not "train.txt"
