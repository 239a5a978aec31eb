"""`alexnet experiment all` at its documented scale: the whole training split, resident, 3 seeds; the
plan it prints first (unique runs, shared baselines once, cached and interrupted ones, hours per
experiment from the measured epoch times); and resuming after a kill without training a finished
run again."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from alexnet import experiments
from alexnet.experiments import budget as plan_mod
from alexnet.experiments import setups

ROOT = Path(__file__).resolve().parents[2]
BUDGET = ROOT / "docs" / "experiments" / "budget.json"
MINI_BASELINE = ("depth", "pca-lighting", "ten-crop", "towers")  # share alexnet-mini's baseline


def test_the_default_scale_is_the_whole_split_less_a_fixed_hold_out_resident_three_seeds():
    for base, scale in ((setups.CIFAR4, setups.CIFAR4_SCALE), (setups.MINI, setups.MINI_SCALE)):
        assert base["resident"] is True and base["val_split"] == 0.1
        assert scale.train_subset == 0 and scale.seeds >= 3 and scale.epochs >= 20
    assert setups.FAST_SCALE.train_subset and setups.FAST_SCALE.seeds == 1  # --fast stays seconds


def test_the_plan_counts_a_shared_baseline_once_and_says_who_reuses_it(tmp_path):
    p = experiments.plan(fast=True, out=tmp_path)
    assert sum(p.used.values()) > len(p.runs) == len({r.key for r in p.runs})
    base = [r for r in p.runs if r.experiment == "depth" and r.arm == "all five conv layers"]
    assert len(base) == 1 and set(base[0].shared_with) == set(MINI_BASELINE[1:])
    rows = {r["experiment"]: r for r in p.table()}
    assert rows["ten-crop"]["trained here"] == 0 and rows["ten-crop"]["reused"] == rows["ten-crop"]["runs"] == 1
    assert all(r.state == "new" for r in p.runs)
    lines = p.lines()
    assert lines[0].startswith(f"plan: 8 experiments, {sum(p.used.values())} runs, {len(p.runs)} unique")
    assert any(line.split()[0] == "ten-crop" and "0 trained here, 1 reused" in line for line in lines[2:])


def test_all_prints_the_plan_before_it_starts(tmp_path, monkeypatch):
    said: list[str] = []
    monkeypatch.setattr(experiments, "run", lambda name, **kw: said.append(f"ran {name}") or {})
    monkeypatch.setattr(experiments, "write_index", lambda out, names: tmp_path / "experiments.md")
    experiments.run_all(fast=True, out=tmp_path, say=said.append)
    assert said[0].startswith("plan: 8 experiments") and said[1].startswith("estimated ")
    assert said.index("ran relu-vs-tanh") == 2 + len(experiments.EXPERIMENTS)  # a line per experiment first


def test_the_committed_budget_is_what_the_code_estimates_from(tmp_path):
    budget = json.loads(BUDGET.read_text())
    measured = {(m["model"], m["width"]): m for m in budget["epochs"]}
    for key, seconds in setups.EPOCH_SECONDS.items():
        m = measured[key]
        assert m["epoch_s"] == seconds and m["train_images"] >= 44_000 and m["precision"] in ("fp32", "bf16")
    assert setups.RUN_OVERHEAD_SECONDS == max(measured[k]["overhead_s"] for k in setups.EPOCH_SECONDS)
    p = experiments.plan(data="cifar10:/nonexistent", out=tmp_path)  # nothing cached: the whole cost
    assert budget["plan"]["rows"] == p.table() and budget["plan"]["total_hours"] == round(p.hours, 1)


def _metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow  # an experiment killed and run again (16 s on 2 cores)
def test_a_killed_experiment_resumes_its_run_and_trains_no_finished_or_shared_run_again(tmp_path, monkeypatch):
    out = tmp_path / "out"
    first = experiments.run("pca-lighting", fast=True, seeds=1, amp="off", out=out, say=lambda s: None)
    base = next(r["run_dir"] for r in first["runs"] if r["arm"] == first["runs"][0]["arm"])
    # depth's "all five conv layers" is pca-lighting's baseline: reused; its next run is killed in its second epoch
    from alexnet.experiments.setups import FAST_SCALE

    steps = FAST_SCALE.train_subset // FAST_SCALE.batch_size  # an epoch's steps: killed in the second epoch
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "ALEXNET_DEBUG_KILL_AT_STEP": str(steps + 2),
           "PYTHONUNBUFFERED": "1"}
    killed = subprocess.run([sys.executable, "-m", "alexnet", "experiment", "depth", "--fast", "--amp", "off",
                             "--seeds", "1", "--out", str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert "4 runs: 1 cached, 0 interrupted (resume), 3 new" in killed.stdout
    stopped = [d for d in (out / "runs").iterdir() if d.is_dir() and not (d / "result.json").exists()]
    assert len(stopped) == 1 and len(_metrics(stopped[0])) == 1  # one epoch done, checkpointed
    # the killed process's epoch, made long: the resumed run's wall time must count it
    text = (stopped[0] / "metrics.csv").read_text()
    head, row = text.splitlines()[:2]
    cells = row.split(",")
    cells[head.split(",").index("time")] = "1000.0"
    (stopped[0] / "metrics.csv").write_text(head + "\n" + ",".join(cells) + "\n")
    epoch1 = _metrics(stopped[0])[0]

    from alexnet import engine

    real_fit, fitted = engine.fit, []
    monkeypatch.setattr(engine, "fit", lambda cfg: fitted.append((cfg.name, bool(cfg.resume))) or real_fit(cfg))
    lines: list[str] = []
    rec = experiments.run("depth", fast=True, seeds=1, amp="off", out=out, say=lines.append)
    assert "1 cached, 1 interrupted (resume), 2 new" in lines[0]
    assert fitted[0] == (stopped[0].name, True) and len(fitted) == 3  # resumed once, two new; the shared one never
    assert base not in {str(out / "runs" / name) for name, _ in fitted}
    assert any("(cached)" in s and base in s for s in lines)
    assert _metrics(stopped[0])[0] == epoch1 and len(_metrics(stopped[0])) == FAST_SCALE.epochs  # continued
    result = json.loads((stopped[0] / "result.json").read_text())
    assert result["resumed"] is True and result["wall_s"] > 1000.0 and result["machine"]  # both parts
    for r in rec["runs"]:
        assert r["run_dir"] != str(stopped[0]) or (len(r["epochs"]) == FAST_SCALE.epochs and r["resumed"])


def test_an_epoch_estimate_scales_with_images_and_the_networks_multiply_adds(monkeypatch):
    monkeypatch.setattr(plan_mod, "EPOCH_SECONDS", {("alexnet-mini", 0.5): 100.0})
    exp = experiments.get("depth")

    def estimates(name, width):
        e = experiments.get(name)
        scale = e.default.__class__(epochs=1, train_subset=4500, seeds=1, width=width)
        return {arm.label: plan_mod.epoch_seconds(cfg) for arm, cfg in e.configs(scale, 0, "cifar10:x", Path("."))}

    half = estimates("depth", 0.5)
    assert half["all five conv layers"] == pytest.approx(10.0)  # the network measured, on a tenth of the images
    assert all(s < 10.0 for arm, s in half.items() if arm.startswith("without"))  # a layer fewer costs less
    assert 3.0 < estimates("depth", 1.0)["all five conv layers"] / 10.0 < 4.2  # about width²
    wide = estimates("dropout", 0.5)  # fully connected layers of 2,048 cost more than the measured 256
    assert all(s > 10.0 for s in wide.values())
    assert exp.default.width == 0.5


def test_an_epoch_estimate_counts_the_datas_own_images_where_that_is_cheap(tmp_path, monkeypatch):
    """200 photos are not the 45,000 images the epochs were measured on: the plan says so (it said
    hours for seconds of training). CIFAR-10's batches are the reference's split; a list is not counted."""
    monkeypatch.setattr(plan_mod, "EPOCH_SECONDS", {("alexnet-mini", 0.5): 100.0})
    for c in ("cat", "dog"):
        (tmp_path / "few" / "train" / c).mkdir(parents=True)
        for i in range(100):
            (tmp_path / "few" / "train" / c / f"{i}.jpg").write_bytes(b"")  # counted, not read
    (tmp_path / "batches").mkdir()
    (tmp_path / "batches" / "data_batch_1").write_bytes(b"")
    e = experiments.get("depth")
    scale = e.default.__class__(epochs=1, train_subset=0, seeds=1, width=0.5)

    def estimate(data):
        plan_mod.data_images.cache_clear()
        return next(plan_mod.epoch_seconds(cfg) for arm, cfg in e.configs(scale, 0, data, Path(".")))

    assert estimate(f"cifar10:{tmp_path / 'few'}") == pytest.approx(100.0 * 180 / 45_000)  # 200 less the 10 %
    assert estimate(f"folder:{tmp_path / 'few' / 'train'}") == pytest.approx(100.0 * 180 / 45_000)
    (tmp_path / "few" / "val" / "cat").mkdir(parents=True)  # a validation part of its own: --val-split leaves
    (tmp_path / "few" / "val" / "cat" / "0.jpg").write_bytes(b"")  # the 200 training images whole
    assert estimate(f"cifar10:{tmp_path / 'few'}") == pytest.approx(100.0 * 200 / 45_000)
    assert estimate(f"cifar10:{tmp_path / 'batches'}") == pytest.approx(100.0)  # 50,000 or more: the reference
    assert estimate("cifar10:/nonexistent") == pytest.approx(100.0)


def _budget_tool(monkeypatch):
    """tools/experiment_budget.py, imported as the other tools' tests import theirs."""
    import importlib

    monkeypatch.syspath_prepend(str(ROOT / "tools"))
    return importlib.import_module("experiment_budget")


def test_measured_hours_count_a_shared_run_once_and_a_later_extra_evaluation_where_it_was_made(tmp_path, monkeypatch):
    def record(name, runs):
        (tmp_path / f"{name}.json").write_text(json.dumps(
            {"experiment": name, "fast": False, "scale": {"train_subset": 0}, "machine": "M",
             "runs": [{"run_dir": f"OUT/runs/{k}", "wall_s": w, "precision": "fp32"} for k, w in runs]}))

    record("depth", [("base", 3600.0), ("no-conv2", 1800.0)])
    record("ten-crop", [("base", 3960.0)])  # depth's baseline, reused; its ten-crop evaluation took 6 minutes
    record("towers", [("base", 3960.0), ("one-tower", 900.0)])
    m = _budget_tool(monkeypatch).measured(tmp_path, {"rows": [{"experiment": "depth", "hours": 2.0}], "total_hours": 2.0})
    rows = {r["experiment"]: r for r in m["rows"]}
    assert [r["experiment"] for r in m["rows"]] == ["depth", "ten-crop", "towers"]  # the plan's order
    assert rows["depth"]["measured hours"] == 1.5 and rows["depth"]["planned hours"] == 2.0
    assert rows["ten-crop"]["measured hours"] == 0.1 and rows["ten-crop"]["runs trained"] == 0
    assert rows["towers"]["measured hours"] == 0.25 and rows["towers"]["runs trained"] == 1
    assert m["total_hours"] == 1.9 and m["complete"] and m["machines"] == ["M"]


def test_the_committed_measured_hours_are_those_of_the_committed_records(monkeypatch):
    budget = json.loads(BUDGET.read_text())
    assert budget["measured"] == _budget_tool(monkeypatch).measured(BUDGET.parent, budget["plan"])


def test_a_resumed_runs_time_is_at_least_its_epochs():
    """Records made before a resume counted the part done ahead of it kept only the resumed part's
    wall time: such a run counts at least its epochs' times; any other run its recorded time."""
    from alexnet.experiments.output import run_wall_s
    from alexnet.experiments.runs import RunResult

    epochs = [{"time": 300.0}, {"time": 300.0}]
    assert run_wall_s(RunResult("a", 0, "d", epochs, wall_s=200.0, resumed=True)) == 600.0
    assert run_wall_s(RunResult("a", 0, "d", epochs, wall_s=700.0, resumed=True)) == 700.0
    assert run_wall_s(RunResult("a", 0, "d", epochs, wall_s=200.0)) == 200.0


def test_a_result_json_cut_short_is_not_a_finished_run(tmp_path):
    """A finished run is one whose result.json reads: one cut short (a kill as it was written) makes
    the run resume, and the plan and the run's line say that, not "cached"."""
    from alexnet.engine import make_config
    from alexnet.experiments.budget import run_seconds
    from alexnet.experiments.runs import read_result

    cfg = make_config("digits", output_dir=str(tmp_path), name="r", epochs=2)
    run = tmp_path / "r"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"x")
    (run / "result.json").write_text('{"config": {"epo')
    assert read_result(run) is None and run_seconds(cfg, run, ())[0] == "interrupted"
    (run / "result.json").write_text('{"config": {}, "epochs": [], "extra": {}}')
    assert read_result(run) == {"config": {}, "epochs": [], "extra": {}} and run_seconds(cfg, run, ())[0] == "cached"
