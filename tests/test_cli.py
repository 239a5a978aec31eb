"""The command line: help, models, summary, errors and exit codes."""

import contextlib
import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from alexnet.cli import main


def test_help_lists_subcommands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for cmd in ("models", "summary"):
        assert cmd in out


def test_summary_json_totals_match_registry(capsys):
    assert main(["summary", "alexnet", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["total_params"] == 60_965_224
    assert d["input_size"] == [3, 227, 227]
    assert sum(r["params"] for r in d["rows"]) == d["total_params"]
    assert sum(r["macs"] for r in d["rows"]) == d["total_macs"] == 724_406_816


def test_summary_table_prints_paper_total(capsys):
    assert main(["summary", "alexnet"]) == 0
    assert "60,965,224" in capsys.readouterr().out


def test_summary_options(capsys):
    assert main(["summary", "alexnet-owt", "--input-size", "128", "160", "--num-classes", "5", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["input_size"] == [3, 128, 160] and d["rows"][-1]["output_shape"] == [5]


def test_summary_takes_model_arguments(capsys):
    """The paper's two separate towers: the same 60,965,224 parameters, tower by tower."""
    assert main(["summary", "alexnet", "--model-arg", "towers=2", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["total_params"] == 60_965_224 and any("tower2" in r["name"] for r in d["rows"])
    assert main(["summary", "alexnet", "--model-arg", "towers=3"]) == 2
    assert "--model-arg towers=3 for alexnet: choose from 1, 2" in capsys.readouterr().err


def test_unknown_model_exit_2_one_line():
    r = subprocess.run([sys.executable, "-m", "alexnet", "summary", "alexnett"], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.startswith("error: unknown model 'alexnett'")
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr


def test_too_small_input_is_user_error(capsys):
    assert main(["summary", "alexnet", "--input-size", "64", "64"]) == 2
    assert "too small" in capsys.readouterr().err
    assert main(["summary", "alexnet", "--input-size", "400", "400"]) == 2  # torch said "a and b must have …"
    err = capsys.readouterr().err
    assert "first linear layer takes the features of one input size" in err and err.count("\n") == 1


def test_models_lists_registry(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("alexnet", "alexnet-owt", "alexnet-cifar", "alexnet-mnist", "vgg16", "googlenet",
                 "resnet18", "resnet50", "resnext50_32x4d"):
        assert name in out


def test_readme_model_table_is_generated_from_registry():
    from pathlib import Path

    from alexnet.models.catalog import model_table

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = readme.split("<!-- models:begin -->\n", 1)[1].split("\n<!-- models:end -->", 1)[0]
    assert block == model_table(markdown=True), "README model table is stale: regenerate it"


def test_data_list_writes_list_files_and_data_index_still_works(image_folder, tmp_path, capsys):
    """`alexnet data list` (list files) is not `alexnet index` (a feature index); its old name, `data index`,
    still works but is left out of the help."""
    assert main(["data", "list", str(image_folder), "-o", str(tmp_path / "new"), "--val-split", "0.25"]) == 0
    assert "train.txt (9 images), test.txt (3 images), classes.txt (3 classes)" in capsys.readouterr().out
    assert main(["data", "index", str(image_folder), "-o", str(tmp_path / "old"), "--val-split", "0.25"]) == 0
    for name in ("train.txt", "test.txt", "classes.txt"):
        assert (tmp_path / "new" / name).read_text() != ""
        assert (tmp_path / "old" / name).read_text() != ""
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["data", "-h"])
    listed = [ln.split()[0] for ln in capsys.readouterr().out.splitlines() if ln.startswith("    ")]
    assert "list" in listed and "index" not in listed
    with pytest.raises(SystemExit):
        main(["data", "chek"])
    err = capsys.readouterr().err
    assert "did you mean check?" in err and "list," in err and "index" not in err  # nor in a typo's list


def test_the_console_script_exits_without_collecting_what_is_still_alive(monkeypatch):
    """`entry` (the console script and ``python -m alexnet``) returns main's exit code and freezes the
    objects still alive, so the interpreter's exit does not walk them; `main` itself freezes nothing."""
    from alexnet import cli

    gc.unfreeze()
    try:
        assert main(["models"]) == 0 and gc.get_freeze_count() == 0
        monkeypatch.setattr(cli, "main", lambda argv=None: 2)
        assert cli.entry() == 2 and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    scripts = [line.strip() for line in open(Path(__file__).parents[1] / "pyproject.toml") if "alexnet.cli:" in line]
    assert scripts == ['alexnet = "alexnet.cli:entry"']


@pytest.mark.parametrize("world,leaves", [("2", True), ("1", False), ("", False), ("x", False)])
def test_a_torchrun_rank_leaves_without_the_interpreters_teardown(monkeypatch, world, leaves):
    """Under torchrun (WORLD_SIZE > 1) the console script and ``python -m alexnet`` leave by
    ``os._exit`` with main's code, as a rank's teardown could abort a finished run; alone, they return."""
    from alexnet import cli

    left: list[int] = []
    monkeypatch.setattr(cli, "main", lambda argv=None: 3)
    monkeypatch.setattr(cli.os, "_exit", left.append)
    monkeypatch.setenv("WORLD_SIZE", world)
    try:
        assert cli.entry() == 3
    finally:
        gc.unfreeze()
    assert left == ([3] if leaves else [])


@pytest.mark.parametrize("make", [
    lambda f: ["index", "build", "RUN", "DATA", "-o", f"{f}/idx"],
    lambda f: ["index", "query", "IDX", "IMG", "-o", f"{f}/near.png"],
    lambda f: ["data", "list", "DATA", "-o", f],
    lambda f: ["experiment", "lrn", "--fast", "--out", f],
    lambda f: ["visualize", "filters", "RUN", "-o", f"{f}/filters.png"],
    lambda f: ["visualize", "kernels", "IMG", "-o", f"{f}/k.png"],
    lambda f: ["data", "pca-stats", "DATA", "-o", f"{f}/pca.json"],
    lambda f: ["experiment", "index", "--index", f"{f}/claims.md"],
    lambda f: ["train", "--output-dir", f"{f}/runs", "--epochs", "1"],
], ids=["index-build", "index-query", "data-list", "experiment", "visualize-filters", "visualize-kernels",
        "pca-stats", "experiment-index", "train"])
@pytest.mark.parametrize("where", ["a file", "/proc"])
def test_an_output_folder_that_cannot_be_is_one_line_from_the_arguments(tmp_path, capsys, monkeypatch, make, where):
    """-o/--out under a file, or on /proc (no disk: it "had 0 bytes free"), is one line naming why,
    before any model or data is read (the names RUN, DATA, IMG, IDX exist nowhere): no traceback."""
    if where == "/proc" and not os.path.isdir("/proc"):
        pytest.skip("no /proc here")
    f = tmp_path / "afile.txt"
    f.write_text("x")
    out = str(f) if where == "a file" else "/proc/alexnet-out"
    monkeypatch.chdir(tmp_path)
    assert main(make(out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    why = f"{f} is a file, not a folder" if where == "a file" else "/proc is not on a disk"
    assert why in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile.txt"]  # nothing made


def test_a_dangling_link_as_output_folder_is_named(tmp_path):
    """A link to a folder that is not there passed the check and failed later ("cannot make …:
    File exists"); now it is named with its target."""
    from alexnet.core.io import why_not_a_folder

    (tmp_path / "out").symlink_to(tmp_path / "gone")
    assert why_not_a_folder(tmp_path / "out" / "run") == f"{tmp_path / 'out'} is a link to {tmp_path / 'gone'}, which does not exist"
    assert why_not_a_folder(tmp_path / "new" / "run") is None


@pytest.mark.parametrize("argv", [["train", "--lr", "-1"], ["train", "--epochs", "x"], ["train", "--data", "/no/such"],
                                  ["train", "--data", ""]])
def test_under_torchrun_a_mistake_in_the_command_is_said_by_each_machines_first_process(argv, monkeypatch, capsys):
    """Every process of a machine reads the same flags and files: one line, not one per process. A
    command merely started from inside a torchrun job (LOCAL_RANK inherited, no WORLD_SIZE) speaks."""
    for world, local_rank, says in (("2", "0", True), ("2", "1", False), ("", "1", True)):
        monkeypatch.setenv("WORLD_SIZE", world)
        monkeypatch.setenv("LOCAL_RANK", local_rank)
        with pytest.raises(SystemExit) if argv[2] == "x" else contextlib.nullcontext():
            assert main(argv) == 2
        assert capsys.readouterr().err.startswith("error: ") is says
