"""`alexnet experiment`: every experiment runs with --fast on tiny generated data, writes a
well-formed table, JSON and PNG, and a second run trains nothing (the run cache)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alexnet import experiments
from alexnet.cli import main
from alexnet.core.errors import UserError
from alexnet.experiments import runs, stats
from alexnet.experiments.relu_vs_tanh import epochs_to


@pytest.fixture(scope="module")
def tiny_cifar(tmp_path_factory) -> Path:
    """4 classes × 10 RGB 32×32 PNGs, each class its own colour plus noise (learnable)."""
    root = tmp_path_factory.mktemp("tinycifar")
    rng = np.random.default_rng(0)
    colours = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40)]
    for c, col in enumerate(colours):
        d = root / f"class{c}"
        d.mkdir()
        for i in range(10):
            img = np.clip(np.array(col)[None, None, :] + rng.normal(0, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(d / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def all_runs(tiny_cifar, tmp_path_factory):
    """Every experiment once, --fast, sharing one output folder (so shared baselines are reused)."""
    out = tmp_path_factory.mktemp("exp")
    records = {name: experiments.run(name, data=f"folder:{tiny_cifar}", fast=True, out=out, say=lambda s: None)
               for name in experiments.EXPERIMENTS}
    return out, records


def test_list_names_all_eight(capsys):
    assert main(["experiment", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("relu-vs-tanh", "lrn", "overlap-pool", "depth", "dropout", "pca-lighting", "ten-crop", "towers"):
        assert name in out


@pytest.mark.parametrize("name", list(experiments.EXPERIMENTS))
def test_writes_table_json_and_plot(all_runs, name):
    out, records = all_runs
    exp = experiments.get(name)
    rec = json.loads((out / f"{name}.json").read_text())
    assert rec == json.loads(json.dumps(records[name]))  # the file is what run() returned
    assert rec["experiment"] == name and rec["claim"] == exp.claim and rec["verdict"]
    assert len(rec["runs"]) == len(exp.arms) * exp.fast.seeds
    assert {r["arm"] for r in rec["runs"]} == {a.label for a in exp.arms}
    for r in rec["runs"]:  # every run trained its epochs and its directory holds its weights
        assert len(r["epochs"]) == exp.fast.epochs
        assert (Path(r["run_dir"]) / "weights.safetensors").is_file()
    md = (out / f"{name}.md").read_text()
    assert f"**Paper ({exp.section}):** {exp.claim}" in md
    assert f"**Ours:** {rec['verdict']}" in md
    table = [line for line in md.splitlines() if line.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header == list(rec["rows"][0]) and table[1].startswith("|---")
    assert len(table) == 2 + len(rec["rows"])
    assert all(len(line.strip("|").split("|")) == len(header) for line in table)
    with Image.open(out / f"{name}.png") as im:
        assert im.size == (1000, 420)
        assert len(np.unique(np.asarray(im.convert("L")))) > 10  # something was drawn


def test_extras_are_real_numbers(all_runs):
    _, records = all_runs
    for r in records["dropout"]["runs"] + records["overlap-pool"]["runs"]:
        assert 0 <= r["extra"]["train_eval_error"] <= 100
    for r in records["ten-crop"]["runs"]:
        assert 0 <= r["extra"]["centre_error"] <= 100 and 0 <= r["extra"]["ten_crop_error"] <= 100


def test_baselines_are_shared_between_experiments(all_runs):
    _, records = all_runs
    dirs = {name: {r["run_dir"] for r in records[name]["runs"] if r["arm"] in (
        "all five conv layers", "crops + flips + PCA lighting", "alexnet-mini",
        "two towers (grouped)")} for name in ("depth", "pca-lighting", "ten-crop", "towers")}
    assert len(set.union(*dirs.values())) == 1, dirs


def test_second_run_trains_nothing(all_runs, tiny_cifar, monkeypatch):
    out, records = all_runs

    def no_training(cfg):
        raise AssertionError(f"trained again: {cfg.name}")

    monkeypatch.setattr("alexnet.engine.fit", no_training)
    lines: list[str] = []
    rec = experiments.run("lrn", data=f"folder:{tiny_cifar}", fast=True, out=out, say=lines.append)
    assert sum("(cached)" in s for s in lines) == len(rec["runs"]) == 2
    assert [r["epochs"] for r in rec["runs"]] == [r["epochs"] for r in records["lrn"]["runs"]]


def test_interrupted_run_resumes(tiny_cifar, tmp_path):
    """A run killed mid-way (last.pt but no result.json) is resumed, not started over."""
    from alexnet.engine import fit

    exp = experiments.get("lrn")
    scale = exp.fast
    arm, cfg = exp.configs(scale, 0, f"folder:{tiny_cifar}", tmp_path)[0]
    first = runs.run_key(cfg)
    cfg.max_steps = 1
    fit(cfg)  # stops after one step, like a killed run
    run_dir = tmp_path / "runs" / first
    saved = json.loads((run_dir / "config.json").read_text())
    saved["max_steps"] = 0  # the kill: the run itself was meant to finish
    (run_dir / "config.json").write_text(json.dumps(saved))
    assert not (run_dir / "result.json").exists()
    lines: list[str] = []
    rec = experiments.run("lrn", data=f"folder:{tiny_cifar}", fast=True, out=tmp_path, seeds=1, say=lines.append)
    assert any("resuming the interrupted run" in s and first in s for s in lines)
    run = next(r for r in rec["runs"] if r["run_dir"] == str(run_dir))
    assert [e["epoch"] for e in run["epochs"]] == list(range(1, scale.epochs + 1))


def test_a_stopped_experiment_says_to_run_the_experiment_again(tmp_path, monkeypatch, capsys):
    """SIGTERM in a run: the run saves and names the experiment's command, which continues every arm
    and writes the page (`alexnet train --resume` would resume that one run only); between runs: one
    line saying the same, not a silent exit 143."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "exp"
    cmd = [sys.executable, "-m", "alexnet", "experiment", "lrn", "--fast", "--out", str(out)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "ALEXNET_DEBUG_STEP_SLEEP": "0.3", "OMP_NUM_THREADS": "1"})
    for line in p.stdout:
        if "[lrn] run 1/" in line:
            break
    time.sleep(3)  # into its training, with slowed steps
    p.send_signal(signal.SIGTERM)
    rest, err = p.communicate(timeout=120)
    assert p.returncode == 143, err[-2000:]
    assert "continue with: alexnet experiment lrn --fast --out" in rest + err
    assert "finished runs are kept and this one resumes" in rest + err and "alexnet train --resume" not in rest + err

    def stopped(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("alexnet.experiments.run", stopped)
    assert main(["experiment", "lrn", "--fast", "--out", str(out)]) == 130
    assert "stopped between runs: run the same command again" in capsys.readouterr().err


def test_run_key_depends_on_what_is_computed_only(tiny_cifar, tmp_path):
    exp = experiments.get("lrn")
    (_, a), (_, b) = exp.configs(exp.fast, 0, "folder:x", tmp_path)
    (_, a2), _ = exp.configs(exp.fast, 0, "folder:x", tmp_path / "elsewhere", workers=3)
    (_, a_seed1), _ = exp.configs(exp.fast, 1, "folder:x", tmp_path)
    assert a.name != b.name  # with / without LRN
    assert a.name == a2.name  # output folder and workers do not change the result
    assert a.name != a_seed1.name


def test_epochs_to_target():
    assert epochs_to([50.0, 30.0, 20.0]) == pytest.approx(2.5)  # 30 → 20 crosses 25 half-way
    assert epochs_to([20.0]) == pytest.approx((90 - 25) / (90 - 20))  # from chance (90 %) in epoch 1
    assert math.isnan(epochs_to([60.0, 40.0, 26.0]))


def test_verdicts():
    assert stats.direction(1.5, 0.3, +1, "x").startswith("reproduces")
    assert stats.direction(0.2, 0.3, +1, "x").startswith("direction reproduces but within")
    assert stats.direction(-0.5, 0.3, +1, "x").startswith("does not reproduce")
    one_seed = stats.direction(1.5, stats.noise_of([30.0], [31.5]), +1, "x")
    assert one_seed.startswith("direction reproduces") and "one seed" in one_seed
    assert stats.noise_of([30.0, 31.0], [20.0, 23.0], [5.0]) == 1.5


def test_bad_input_is_one_line(capsys, tmp_path):
    assert main(["experiment", "relu-vs-tnah", "--fast", "--out", str(tmp_path)]) == 2
    assert "did you mean: relu-vs-tanh" in capsys.readouterr().err
    assert main(["experiment", "lrn", "--out", str(tmp_path)]) == 2  # CIFAR-10 needed without --fast
    assert "--data cifar10:PATH" in capsys.readouterr().err
    with pytest.raises(UserError, match="--seeds"):
        experiments.run("lrn", fast=True, seeds=0, out=tmp_path)


def test_missing_data_is_one_line_before_any_plan_or_probe(capsys, tmp_path):
    """A wrong CIFAR-10 path fails at once: no plan printed, no precision probed, nothing written."""
    out = tmp_path / "out"
    for spec in (str(tmp_path / "nowhere"), str(tmp_path)):  # absent, and a folder without CIFAR-10
        assert main(["experiment", "all", "--data", f"cifar10:{spec}", "--out", str(out)]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1
        assert captured.err.startswith(f"error: cifar10: no CIFAR-10 in {spec}") and "--download" not in captured.err
    assert not out.exists()
    assert main(["experiment", "lrn", "--data", f"folder:{tmp_path / 'nothere'}", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == f"error: {tmp_path / 'nothere'}: no such folder\n"
    assert not out.exists()  # no precision record, no plan: nothing


def test_flags_a_subcommand_does_not_read_are_refused(capsys, tmp_path):
    for argv, expect in ((["lrn", "--fast", "--index", "x.md"], "--index is read by `alexnet experiment index`"),
                         (["lrn", "--fast", "--runs", str(tmp_path)], "--runs is read by `alexnet experiment report` only"),
                         (["report", "--runs", str(tmp_path / "nothere")], "no such folder")):
        assert main(["experiment", *argv, "--out", str(tmp_path / "o")]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and expect in err and err.count("\n") == 1, (argv, err)
    assert not (tmp_path / "o").exists()


def test_index_summarises_every_experiment(all_runs, capsys):
    out, records = all_runs
    assert main(["experiment", "index", "--out", str(out)]) == 0
    text = (out / "experiments.md").read_text()
    for name, rec in records.items():
        assert f"| [`{name}`](#{name}) | {rec['section']} | {rec['claim']} | {rec['verdict']} |" in text
        assert f"![{name}]({name}.png)" in text
    assert main(["experiment", "index", "--out", str(out / "empty")]) == 2


def test_unstable_runs_are_named():
    def run(arm, losses):
        return runs.RunResult(arm, 1, "/x", [{"epoch": i + 1, "train_loss": v} for i, v in enumerate(losses)])

    notes = stats.unstable_runs([run("steady", [2.2, 2.0, 1.8]), run("wobbly", [2.16, 2.05, 2.77, 2.3])])
    assert len(notes) == 1 and notes[0].startswith("wobbly, seed 1: unstable") and "2.77 (epoch 3)" in notes[0]


def test_overlap_pool_table_keeps_its_columns():
    def run(arm, seed, val, val5, train_eval):
        return runs.RunResult(arm, seed, "/x", [{"epoch": 1, "train_loss": 1.0, "val_top1": 100 - val, "val_top5": 100 - val5}],
                              {"train_eval_error": train_eval})

    common = ["training error, eval mode (%)", "overfitting gap (points)", "seeds", "paper"]
    for name, top5 in (("overlap-pool", True),):
        exp = experiments.get(name)
        first, second = (a.label for a in exp.arms)
        results = [run(first, 0, 30.0, 10.0, 20.0), run(first, 1, 32.0, 12.0, 21.0), run(second, 0, 35.0, 14.0, 20.0)]
        rows, _, _ = exp.summarize(exp, results)
        assert list(rows[0]) == ["arm", "validation top-1 error (%)"] + ["top-5 error (%)"] * top5 + common
        assert [r["arm"] for r in rows] == [first, second]
        assert rows[0]["validation top-1 error (%)"] == "31.00 [18.29, 43.71]"  # mean, 95 % interval (t₁ = 12.71)
        assert rows[0]["overfitting gap (points)"] == "10.50 [4.15, 16.85]" and rows[1]["seeds"] == 1
        assert rows[1]["paper"] == ("substantial overfitting" if name == "dropout" else "baseline")
        assert ("top-5 error (%)" not in rows[0]) or rows[0]["top-5 error (%)"] == "11.00 [0.00, 23.71]"


def test_fast_verdicts_say_they_are_no_evidence(all_runs, tiny_cifar, capsys):
    """--fast trains for seconds on a handful of images: its verdict checks the machinery only."""
    from alexnet.experiments.output import FAST_CAVEAT

    out, records = all_runs
    for name, rec in records.items():
        assert rec["fast"] is True and rec["verdict"].startswith(f"{FAST_CAVEAT} (--fast): "), name
        assert f"**Ours:** {FAST_CAVEAT}" in (out / f"{name}.md").read_text()
    assert main(["experiment", "lrn", "--fast", "--data", f"folder:{tiny_cifar}", "--out", str(out)]) == 0
    said = capsys.readouterr().out.splitlines()
    verdict = [line for line in said if line.startswith("[lrn] machinery check only — not evidence (--fast): ")]
    assert len(verdict) == 1 and records["lrn"]["verdict"] in verdict[0], said


def test_report_on_fresh_records_changes_nothing(all_runs, tmp_path):
    """`alexnet experiment report` derives the verdicts again from the records' runs: on records just
    written, with the same rule, every record comes back the same."""
    import shutil

    out, records = all_runs
    for name in records:
        shutil.copy(out / f"{name}.json", tmp_path / f"{name}.json")
    assert main(["experiment", "report", "--out", str(tmp_path)]) == 0
    for name in records:  # the files as written (test_fast_verdicts writes lrn's again, from the CLI)
        assert json.loads((tmp_path / f"{name}.json").read_text()) == json.loads((out / f"{name}.json").read_text()), name
    assert (tmp_path / "experiments.md").is_file()
