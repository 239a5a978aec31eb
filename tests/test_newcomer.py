"""Issue 15: every bad input a newcomer tried is answered in one line; start-up stays light.

Each bad input named in the issue is a case here: exit status 2, one line ``error: …`` on stderr,
no traceback, and the message says what to do.
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


def test_unknown_model_arg_lists_the_valid_keys(capsys, tmp_path):
    err = one_line_error(capsys, ["train", "--model", "alexnet-owt", "--model-arg", "width=0.5",
                                  "--output-dir", str(tmp_path)])
    assert "alexnet-owt has no model argument 'width'" in err and err.endswith("it accepts: dropout, in_chans")
    err = one_line_error(capsys, ["train", "--model-arg", "dropuot=0.3", "--output-dir", str(tmp_path)])
    assert "did you mean: dropout" in err and "fc_width" in err and "width" in err


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


# -- the models table --------------------------------------------------------------------------

def test_cached_model_table_equals_a_fresh_computation():
    from alexnet.models import list_models
    from alexnet.models.catalog import model_rows

    cached, fresh = model_rows(), model_rows(use_cache=False)
    assert [r["model"] for r in cached] == list_models()
    assert cached == fresh, "catalog.json is stale: python -m alexnet.models.catalog"


@pytest.mark.parametrize("name", ["alexnet-mnist", "alexnet-cifar", "alexnet-owt"])
def test_meta_device_summary_equals_a_real_forward_pass(name):
    from alexnet.models import build_model, model_cfg, summarize
    from alexnet.models.catalog import meta_summary

    meta = meta_summary(name)
    real = summarize(build_model(name), model_cfg(name).input_size, name)
    assert meta.to_dict() == real.to_dict()


# -- start-up ----------------------------------------------------------------------------------

def test_version_and_help_do_not_import_torch():
    code = ("import sys\nfrom alexnet.cli import main\n"
            "for argv in (['--help'], ['train', '--help'], ['export', '--help'], ['serve', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "heavy = [m for m in ('torch', 'torchvision', 'matplotlib', 'fastapi', 'onnx', 'numpy') if m in sys.modules]\n"
            "print(heavy)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_models_command_does_not_import_torchvision_or_matplotlib():
    code = ("import sys\nfrom alexnet.cli import main\nmain(['models'])\n"
            "print([m for m in ('torchvision', 'matplotlib', 'fastapi', 'onnx') if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "alexnet-owt" in r.stdout and r.stdout.strip().splitlines()[-1] == "[]"
