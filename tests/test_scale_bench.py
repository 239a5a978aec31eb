"""``benchmarks/scale.py`` at a tiny size (20 classes × 5 images): the ImageNet-shaped tree it
generates is one the ``imagenet:`` kind reads, every step lands in the JSON, a rerun skips them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "scale.py"


@pytest.mark.slow  # the benchmark script end to end (14-23 s on 2 cores); pytest -m slow
@pytest.mark.skipif(not SCRIPT.is_file(), reason="benchmarks/ is not in this checkout")
def test_a_tiny_scale_run_generates_imagenet_and_measures_each_step(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH"))
                                                       if p), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "scale.json"
    cmd = [sys.executable, str(SCRIPT), "--sizes", "tiny", "--steps", "generate", "imagenet-val", "dataset", "cache",
           "loader_cache", "--root", str(tmp_path / "w"), "--out", str(out), "--lock", "", "--keep"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=200)
    assert r.returncode == 0, r.stderr[-3000:]
    tree = tmp_path / "w" / "tiny" / "imagenet"
    classes = sorted(p.name for p in (tree / "train").iterdir())
    assert len(classes) == 20 and all(re.fullmatch(r"n\d{8}", c) for c in classes)
    assert all(len(list((tree / "train" / c).glob("*.JPEG"))) == 5 for c in classes)
    assert (tree / "ILSVRC2012_devkit_t12.tar.gz").is_file()
    assert not list((tree / "val").glob("*.JPEG"))  # imagenet-val sorted the flat images into class folders
    steps = json.loads(out.read_text())["sizes"]["tiny"]["steps"]
    assert {k: v["status"] for k, v in steps.items()} == dict.fromkeys(
        ["generate", "imagenet-val", "dataset", "cache", "loader_cache"], "done")
    d = steps["dataset"]
    assert d["train_images"] == 100 and d["classes"] == 20 and d["val_images"] == 20
    assert 0 < d["file_list_bytes_per_image"] < 300
    assert steps["loader_cache"]["fast_path"] and steps["loader_cache"]["steady_img_per_s"] > 0
    assert all(v["peak_rss_mb"] > 0 and v["seconds_total"] > 0 for v in steps.values())
    assert "| dataset |" in out.with_suffix(".md").read_text()
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)  # all done: nothing runs
    assert again.returncode == 0 and "[scale]" not in again.stderr
    assert json.loads(out.read_text())["sizes"]["tiny"]["steps"] == steps
