"""Start-up stays light: ``--help`` and ``alexnet models`` import neither torch nor the plotting,
serving or export libraries; the models table they print comes from a cached catalogue that must
equal a fresh computation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


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


def test_data_or_a_run_that_is_not_there_is_answered_before_torch_loads(tmp_path):
    """A mistyped folder or kind, a cifar10 recipe without its location, a run to resume that is not
    there: one line each, exit 2, torch never imported (it takes seconds; the line should not)."""
    code = ("import sys\nfrom alexnet.cli import main\n"
            f"codes = [main(['train', '--output-dir', {str(tmp_path)!r}, *a]) for a in "
            f"(['--data', {str(tmp_path / 'photoz')!r}], ['--data', 'foldr:x'], ['--recipe', 'cifar10'], "
            f"['--resume', {str(tmp_path / 'gone')!r}])]\n"
            "print(codes, 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert r.stdout.strip().splitlines()[-1] == "[2, 2, 2, 2] False", r.stderr
    assert r.stderr.splitlines() == [
        f"error: {tmp_path / 'photoz'}: no such file or folder (a dataset is digits, a folder, a list file, or "
        "kind:path with kind in digits, cifar10, mnist, imagenet, folder, list, cache, shards)",
        "error: unknown dataset kind 'foldr' in 'foldr:x'; use one of digits, cifar10, mnist, imagenet, folder, "
        "list, cache, shards (e.g. folder:/path)",
        "error: dataset 'cifar10' needs a location: --data-path PATH (or --data cifar10:PATH)",
        f"error: --resume {tmp_path / 'gone'}: no such folder (give a run directory, e.g. runs/<name>)"]
    assert list(tmp_path.iterdir()) == []  # no run folder begun


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


def test_a_mistyped_model_is_answered_before_torch_loads():
    """`--model alexnett`: the built-in names are read from the model catalog, without torch; the
    same words as the registry's."""
    code = ("import sys\nfrom alexnet.cli import main\n"
            "rc = main(['train', '--model', 'alexnett'])\n"
            "print(rc, 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert r.stdout.strip().splitlines()[-1] == "2 False", r.stderr
    assert r.stderr.startswith("error: unknown model 'alexnett' (did you mean: alexnet") and r.stderr.count("\n") == 1
    import alexnet.models  # noqa: F401 (the registry, loaded)
    from alexnet.commands.models import unknown_model

    assert unknown_model("alexnett") is None  # the registry is loaded in this process: it checks, with its own


def test_the_catalog_names_every_registered_model():
    import json
    from pathlib import Path

    import alexnet
    from alexnet.models import list_models

    catalog = json.loads((Path(alexnet.__file__).parent / "models" / "catalog.json").read_text())
    assert sorted(k.split()[0] for k in catalog) == sorted(list_models())
