"""``python -m benchmarks --quick``: every comparison runs and lands in results.md and results.json
with numbers (tiny inputs, one repeat; no timing is asserted)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # the benchmark script end to end (14-23 s on 2 cores); pytest -m slow
@pytest.mark.skipif(not (ROOT / "benchmarks" / "__main__.py").is_file(), reason="benchmarks/ is not in this checkout")
def test_quick_suite_writes_every_comparison(tmp_path):
    pytest.importorskip("fastapi")  # serving is one of the comparisons
    out = tmp_path / "results.md"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH"))
                                                       if p), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "-o", str(out)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=280)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.with_suffix(".json").read_text())
    assert res["quick"] is True and res["errors"] == {}
    sections = {row["section"] for row in res["rows"]}
    assert sections == {"gemm", "data", "train", "inference", "epoch", "retrieval", "serving", "paper"}
    for row in res["rows"]:
        for k in ("ours", "baseline", "ratio"):
            assert isinstance(row[k], float) and math.isfinite(row[k]) and row[k] > 0, (row["name"], k, row[k])
        assert math.isclose(row["ratio"], row["ours"] / row["baseline"], rel_tol=1e-9)
    data = [row["name"] for row in res["rows"] if row["section"] == "data"]
    assert any("JPEG folder" in n for n in data) and any("raw cache" in n for n in data)
    for row in res["rows"]:
        if row["section"] in ("train", "inference"):
            assert row["limit"] > 0 and row["ours_pct_of_limit"] > 0 and row["baseline_pct_of_limit"] > 0
    m = res["machine"]
    assert m["cpu"] and m["torch"] and m["gpu"] and isinstance(m["cpu_flags"], list)
    md = out.read_text()
    for title in ("GEMM limit", "Data pipeline per core", "Training step", "Inference", "One epoch end to end",
                  "Retrieval", "Serving", "The paper's network vs torchvision's layout"):
        assert f"## {title}" in md
    assert "| comparison | ours | baseline | unit | ratio | limit |" in md and m["torch"] in md


@pytest.mark.slow  # the benchmark script end to end (14-23 s on 2 cores); pytest -m slow
@pytest.mark.skipif(not (ROOT / "benchmarks" / "cifar_fast_step.py").is_file(), reason="benchmarks/ is not in this checkout")
def test_cifar_fast_step_benchmark_prints_a_row_per_width_with_ratios():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cifar_fast_step.py"), "--quick", "--modes", "fp32",
                        "bf16"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [line for line in r.stdout.splitlines() if line.startswith("| 8-8-8 |")]
    assert len(rows) == 1 and rows[0].count("img/s") == 2 and "×)" in rows[0]


@pytest.mark.slow  # the benchmark script end to end (14-23 s on 2 cores); pytest -m slow
@pytest.mark.skipif(not (ROOT / "benchmarks" / "cifar_recipe_step.py").is_file(), reason="benchmarks/ is not in this checkout")
def test_cifar_recipe_step_benchmark_writes_a_row_per_network_with_its_update_share(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cifar_recipe_step.py"), "--quick", "-o",
                        str(tmp_path / "crs")], env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "crs.json").read_text())
    assert [row["label"] for row in res["rows"]] == ["cifar10-fast's network", "alexnet-cifar, batch norm, fc 4096",
                                                     "alexnet-cifar, batch norm, fc 2048", "alexnet-cifar, batch norm, fc 1024"]
    params = [row["params"] for row in res["rows"][1:]]
    assert params == sorted(params, reverse=True)  # narrower fully connected layers, fewer parameters
    for row in res["rows"]:
        assert row["fp32"] > 0 and row["bf16"] > 0 and row["update_s"] > 0
        assert row["bf16_over_fp32"] == pytest.approx(row["bf16"] / row["fp32"])
    assert "| its share of a bf16 step |" in (tmp_path / "crs.md").read_text() and res["allocator"]
