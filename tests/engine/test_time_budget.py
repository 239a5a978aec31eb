"""``--time-budget`` end to end on the embedded digits with a tiny model: the whole command ends
within its budget, a resumed run keeps its plan (and measures nothing), and a budget too short for
one epoch is one line. The only time asserted is the budget itself: within 10 % once the machine's
change of pace after the plan is allowed for, and (a slow test) by the clock alone: inside the
budget, at most 10 % short."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time

import pytest

from alexnet.core.errors import UserError
from alexnet.engine import budget_run
from alexnet.engine.budget import REPLAN_EPOCHS, REPLAN_LATEST
from alexnet.engine.config import make_config, resume_config
from alexnet.engine.schedule import LRSchedule
from alexnet.engine.train import fit
from conftest import write_colour_classes

TINY = {"width": 0.25, "fc_width": 128}
ENV = {**os.environ, "ALEXNET_CPU_BF16": "0", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
BUDGET_S = 20


def run_budgeted(tmp_path, budget_s: int) -> tuple[float, dict, list[dict]]:
    """``alexnet train --time-budget`` on the digits, as a person runs it: the command's wall time, its
    config.json and its metrics.csv rows, once it checked that the run trained the plan it printed."""
    args = ["--time-budget", f"{budget_s}s", "--output-dir", str(tmp_path), "--name", "b"]
    args += [a for k, v in TINY.items() for a in ("--model-arg", f"{k}={v}")]
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "alexnet", "train", *args], capture_output=True, text=True, env=ENV,
                       timeout=10 * budget_s)
    wall = time.perf_counter() - t
    assert r.returncode == 0, r.stderr[-3000:]
    cfg = json.loads((tmp_path / "b" / "config.json").read_text())
    plan = cfg["budget_plan"]
    assert cfg["time_budget"] == f"{budget_s}s" and cfg["epochs"] == plan["epochs"] > 1
    assert plan["reason"] in r.stdout and f"time budget {budget_s}s: " in r.stdout
    rows = list(csv.DictReader((tmp_path / "b" / "metrics.csv").open()))
    assert len(rows) == plan["epochs"] and int(rows[-1]["step"]) == plan["steps"]  # it trained the plan
    return wall, plan, rows


def drift_after_plan(plan: dict, rows: list[dict]) -> float:
    """The seconds the epochs after the last plan took beyond what that plan expected of them (its
    seconds per step and per epoch of validation and checkpoints): the machine's own change of pace,
    which no plan made before it can foresee (negative when the machine got faster)."""
    since, done, drift = plan.get("stretch_at") or 0, 0, 0.0
    for row in rows:
        step = int(row["step"])
        if done >= since:
            drift += float(row["time"]) - ((step - done) * plan["step_s"] + plan["epoch_s"])
        done = step
    return drift


def test_a_budget_run_ends_within_its_budget(tmp_path):
    """The wall time of the whole command — the interpreter's start, torch's import, the data, the
    probes, every epoch with its validation, the exit — within 10 % of the budget, once the epochs
    after the last plan are counted at the pace that plan measured. That part is the machine's, not
    the plan's: on a shared machine (a CI runner) a 20-second run ended once at 22.1 s, and 2 s is a
    tenth of this budget. By the clock alone, on a quiet machine: the slow test below."""
    wall, plan, rows = run_budgeted(tmp_path, BUDGET_S)
    drift = drift_after_plan(plan, rows)
    assert 0.9 * BUDGET_S <= wall - drift <= 1.1 * BUDGET_S, (wall, drift, plan)


@pytest.mark.slow
def test_a_budget_run_ends_within_its_budget_by_the_clock(tmp_path):
    """On a quiet machine, by the clock alone: the command ends inside a one-minute budget and no more
    than 10 % short of it. Not closer: the digits' one-second epochs change pace by more than 10 %
    within that minute on a 2-core VM (measured: 1.05 s over epochs 2–6, where the re-plan looked,
    0.85–0.95 s over epochs 14–34, 1.0–1.2 s after), which a single re-plan cannot follow; such
    runs ended at 55–59 s, and once at 51.8 s: on a machine that noisy this test can still fail."""
    wall, plan, _ = run_budgeted(tmp_path, 60)
    assert 0.9 * 60 <= wall <= 60, (wall, plan)


def test_a_drift_re_plans_once_and_a_resumed_run_keeps_that_plan(tmp_path, monkeypatch, capsys):
    real = budget_run.probe_costs
    monkeypatch.setattr(budget_run, "probe_costs", lambda t: tuple(x / 3 for x in real(t)))  # 3× too fast
    # 20 s: even on a slow or busy CPU the re-planned run is longer than the 150 steps --max-steps stops it at (6 s
    # fitted 115 steps on a 2-core EPYC at 2.6 GHz); the resumed run trains the rest, about the budget's time
    cfg = make_config("digits", time_budget="20s", max_steps=150, output_dir=str(tmp_path), name="r",
                      model_kwargs=TINY, amp="off")
    asked = []  # (whole epochs so far, whether due, the budget's share trained) at each end of an epoch until due
    due = budget_run.replan_due
    monkeypatch.setattr(budget_run, "replan_due",
                        lambda s, n, b: asked.append((n, due(s, n, b), s / b)) or asked[-1][1])
    first = fit(cfg)  # re-plans after the third epoch, then --max-steps stops it in its fourth
    out = capsys.readouterr().out
    saved = json.loads((first.run_dir / "config.json").read_text())
    plan = saved["budget_plan"]
    assert out.count("time budget re-planned after epoch") == 1 and plan["replan"] in out
    # asked at the end of each whole epoch, by its number, until it was due; re-planned there, from the epochs so far
    assert [a[0] for a in asked] == list(range(1, len(asked) + 1)) and [a[1] for a in asked][-1:] == [True]
    assert not any(a[1] for a in asked[:-1]) and plan["stretch_at"] == len(asked) * plan["steps_per_epoch"]
    assert len(asked) >= 1 + REPLAN_EPOCHS or asked[-1][2] >= REPLAN_LATEST  # two after the first, or 30 % gone
    over = {1: "epoch 1", 2: "epoch 2"}.get(len(asked), f"epochs 2-{len(asked)}")  # the first left out, if others
    assert f"after epoch {len(asked)}: measured over {over} " in plan["replan"]
    assert 0 < plan["stretch_at"] < 150 < plan["steps"] < plan["stretch_from"]  # the first plan was too long
    assert first.steps_done == 150 and saved["epochs"] == plan["epochs"] > 3
    rows = list(csv.DictReader((first.run_dir / "metrics.csv").open()))
    stretched = LRSchedule("onecycle", cfg.lr, total_steps=plan["steps"], steps_per_epoch=plan["steps_per_epoch"],
                           stretch_at=plan["stretch_at"], stretch_from=plan["stretch_from"])
    assert float(rows[-1]["lr"]) == pytest.approx(stretched.lr(149), rel=1e-4)  # step 150 ran on the new plan

    def no_probe(*a, **k):
        raise AssertionError("a resumed run measured again")

    monkeypatch.setattr(budget_run, "probe_costs", no_probe)
    second = fit(resume_config(str(first.run_dir)))
    again = json.loads((first.run_dir / "config.json").read_text())
    assert again["budget_plan"] == plan and again["epochs"] == plan["epochs"]
    assert second.steps_done == plan["steps"] and second.epochs_done == plan["epochs"]  # the plan, to its step
    rows = list(csv.DictReader((first.run_dir / "metrics.csv").open()))
    assert float(rows[-1]["lr"]) < 0.01 * cfg.lr  # the one-cycle schedule ended with the plan
    out = capsys.readouterr().out
    assert "planned at the run's start and kept" in out and "re-planned" in out and out.count("re-planned") == 1

    # a new run from its config.json takes the same plan without timing anything (its first steps only: that a
    # run trains its plan to the step, the resume above showed)
    from alexnet.cli import main

    assert main(["train", "--config", str(first.run_dir), "--name", "again", "--max-steps", "3"]) == 0
    out = capsys.readouterr().out
    assert f"(the plan recorded in {first.run_dir / 'config.json'}, not timed again)" in out
    replay = json.loads((tmp_path / "again" / "config.json").read_text())
    assert replay["budget_plan"] == plan and replay["epochs"] == plan["epochs"]
    rows = list(csv.DictReader((tmp_path / "again" / "metrics.csv").open()))
    assert int(rows[-1]["step"]) == 3 and float(rows[-1]["lr"]) == pytest.approx(stretched.lr(2), rel=1e-4)

    # the data given again (on another machine: at another path) keep the plan while they give its steps per epoch;
    # data of another size are timed afresh, and the run says why
    assert main(["train", "--config", str(first.run_dir), "--data", "digits", "--name", "moved", "--max-steps", "2"]) == 0
    assert "not timed again" in capsys.readouterr().out
    assert json.loads((tmp_path / "moved" / "config.json").read_text())["budget_plan"] == plan
    monkeypatch.setattr(budget_run, "probe_costs", real)
    from alexnet.engine import budget  # in this process the command starts now, not at pytest's start

    monkeypatch.setattr(budget, "process_started", time.perf_counter)
    (tmp_path / "colours").mkdir()
    other = write_colour_classes(tmp_path / "colours", per_class=4)
    assert main(["train", "--config", str(first.run_dir), "--data", f"folder:{other}", "--name", "other",
                 "--max-steps", "2"]) == 0
    out = capsys.readouterr().out
    fresh = json.loads((tmp_path / "other" / "config.json").read_text())["budget_plan"]
    assert fresh["steps_per_epoch"] != plan["steps_per_epoch"] and fresh["reason"] in out
    assert (f"(the plan recorded in {first.run_dir / 'config.json'} was for {plan['steps_per_epoch']} steps per "
            f"epoch, these data give {fresh['steps_per_epoch']}: timed afresh)") in out


def test_a_budget_too_short_for_one_epoch_is_one_line_and_writes_nothing(tmp_path):
    cfg = make_config("digits", time_budget="1s", output_dir=str(tmp_path), name="short", model_kwargs=TINY,
                      amp="off")
    with pytest.raises(UserError) as e:
        fit(cfg)
    assert "too short for one epoch" in str(e.value) and "give at least --time-budget" in str(e.value)
    assert "\n" not in str(e.value) and not (tmp_path / "short" / "config.json").exists()


def test_resuming_a_budget_run_with_another_length_is_one_line(tmp_path, capsys):
    from alexnet.cli import main
    from alexnet.engine.config import TrainConfig

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(TrainConfig(time_budget="15m", budget_plan={"steps": 10}).to_json())
    for extra in (["--epochs", "30"], ["--time-budget", "30m"]):
        assert main(["train", "--resume", str(run), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: --resume: this run's length was planned for --time-budget 15m") and "\n" not in err


def test_under_torchrun_the_budget_counts_from_torchruns_start():
    """A rank's budget is the torchrun command's: it counts from its parent's start (torchrun's),
    which here started 1.5 s before the rank."""
    child = ("import time; from alexnet.engine.budget import process_started; "
             "print(time.perf_counter() - process_started())")
    parent = f"import os, subprocess, sys, time; time.sleep(1.5); subprocess.run([sys.executable, '-c', {child!r}])"
    ages = {}
    for name, env in (("torchrun", {"TORCHELASTIC_RUN_ID": "x"}), ("plain", {})):
        base = {k: v for k, v in os.environ.items() if k != "TORCHELASTIC_RUN_ID"}
        out = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True, env={**base, **env})
        ages[name] = float(out.stdout.strip())
    assert ages["torchrun"] >= 1.5 and ages["plain"] < ages["torchrun"] - 1.0, ages
