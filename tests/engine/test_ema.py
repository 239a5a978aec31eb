"""--ema: the average's arithmetic (timm's warm-up, batch-norm buffers), exact resume of the average,
the better side kept as the run's weights, metrics.csv's EMA columns, and the value checks.

Runs are in-process and tiny (digits, width 0.125 with batch norm: 5 steps an epoch at batch 256)."""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest
import torch
import torch.nn as nn
from safetensors.torch import load_file

import alexnet.engine.train as train_mod
from alexnet.cli import main
from alexnet.core.errors import UserError
from alexnet.core.io import safe_torch_load
from alexnet.engine import make_config
from alexnet.engine.config import resume_config
from alexnet.engine.ema import ModelEma, ema_decay
from alexnet.engine.train import fit
from subproc import run_logged

TINY = {"width": 0.125, "fc_width": 16, "norm": "batch"}


def run(tmp_path, name: str, **kw):
    kw = {"epochs": 1, "batch_size": 256, "amp": "off", "model_kwargs": TINY, "ema": 0.9, **kw}
    return fit(make_config("digits", output_dir=str(tmp_path), name=name, **kw))


def rows(run_dir) -> list[dict]:
    return list(csv.DictReader((run_dir / "metrics.csv").open()))


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- the average itself

def test_decay_warms_up_as_timm_model_ema_v3():
    assert ema_decay(1, 0.999) == 0.0  # the first update copies the weights
    assert ema_decay(2, 0.999) == pytest.approx(1 - 2 ** (-2 / 3))  # timm: 1 - (1 + (t - 1))^(-2/3)
    assert ema_decay(100, 0.999) == pytest.approx(1 - 100 ** (-2 / 3))  # a window of ~21 steps
    assert ema_decay(10 ** 6, 0.999) == 0.999  # capped at --ema


def test_update_averages_weights_and_batch_norm_statistics_and_copies_counters():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ema = ModelEma(model, 0.5)
    seen = []
    for _ in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model.train()(torch.randn(8, 3))  # moves the running statistics, counts a batch
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        ema.update(model)
    out = ema.module.state_dict()
    for k, v in out.items():
        if not v.is_floating_point():
            assert torch.equal(v, seen[-1][k]), k  # num_batches_tracked: copied
            continue
        want = seen[0][k]  # update 1: a copy; then lerp with 1 - decay_t
        for t, s in ((2, seen[1]), (3, seen[2])):
            want = want + (1 - min(0.5, ema_decay(t, 0.5))) * (s[k] - want)
        torch.testing.assert_close(v, want, rtol=0, atol=1e-6, msg=k)
    assert "1.running_mean" in out and not torch.equal(out["1.running_mean"], seen[-1]["1.running_mean"])
    assert all(not p.requires_grad for p in ema.module.parameters()) and not ema.module.training
    assert ema.updates == 3


# ----------------------------------------------------------------------------- in a run

def test_exact_resume_keeps_weights_and_average_bit_identical(tmp_path, capsys):
    ref = run(tmp_path, "ref", epochs=2, deterministic=True).run_dir
    capsys.readouterr()
    d = run(tmp_path, "cut", epochs=2, deterministic=True, max_steps=3).run_dir  # stopped mid-epoch 1
    assert f"stopped at step 3 (--max-steps 3), in epoch 1 of 2: continue with alexnet train --resume {d}" in \
        capsys.readouterr().out
    assert safe_torch_load(d / "checkpoints" / "last.pt")["ema"]["updates"] == 3
    fit(resume_config(str(d), max_steps=0))
    a, b = (safe_torch_load(r / "checkpoints" / "last.pt") for r in (ref, d))
    assert same_tensors(a["model"], b["model"])
    assert same_tensors(a["ema"]["module"], b["ema"]["module"]) and a["ema"]["updates"] == b["ema"]["updates"] == 10
    assert not same_tensors(a["model"], a["ema"]["module"])  # the average is not the weights
    # metrics.csv: the EMA columns after the usual ones, one row per epoch, the same numbers
    ra, rb = rows(ref), rows(d)
    assert list(ra[0])[-3:] == ["val_loss_ema", "val_top1_ema", "val_top5_ema"]
    assert [(r["epoch"], r["val_top1_ema"]) for r in ra] == [(r["epoch"], r["val_top1_ema"]) for r in rb]


def score_side(monkeypatch, ema_wins: bool):
    """Make one side win validation by a wide margin: the EMA's scores ±50 points."""
    real = train_mod.evaluate

    def fake(model, *a, **kw):
        res = real(model, *a, **kw)
        if getattr(model, "_is_ema", False):
            res = dataclasses.replace(res, top1=res.top1 + (50.0 if ema_wins else -50.0))
        return res

    monkeypatch.setattr(train_mod, "evaluate", fake)
    real_init = ModelEma.__init__

    def mark(self, model, decay):
        real_init(self, model, decay)
        self.module._is_ema = True

    monkeypatch.setattr(ModelEma, "__init__", mark)


@pytest.mark.parametrize("ema_wins", [True, False])
def test_the_better_side_becomes_the_weights(tmp_path, monkeypatch, capsys, ema_wins):
    score_side(monkeypatch, ema_wins)
    res = run(tmp_path, "w")
    d = res.run_dir
    last, best = (safe_torch_load(d / "checkpoints" / f) for f in ("last.pt", "best.pt"))
    side = last["ema"]["module"] if ema_wins else last["model"]  # one epoch: the best is the last
    other = last["model"] if ema_wins else last["ema"]["module"]
    weights = load_file(str(d / "weights.safetensors"))
    assert same_tensors(weights, side) and not same_tensors(weights, other)
    assert same_tensors(best["model"], side)
    meta = json.loads((d / "weights.json").read_text())
    src = "ema" if ema_wins else "raw"
    assert meta["weights_from"] == best["weights_from"] == last["ema"]["best_from"] == src
    assert meta["ema_decay"] == 0.9
    row = rows(d)[-1]
    top1 = float(row["val_top1_ema"] if ema_wins else row["val_top1"])
    assert meta["val_top1"] == pytest.approx(top1, abs=1e-3) and best["best_top1"] == pytest.approx(top1, abs=1e-3)
    assert res.best_top1 == pytest.approx(top1, abs=1e-3)
    out = capsys.readouterr().out
    assert f"weights.safetensors holds {'the EMA of the weights' if ema_wins else 'the raw weights'}" in out
    assert ("the EMA is better" if ema_wins else "the raw weights are better") in out
    assert "EMA loss" in out  # the epoch line shows both


def test_a_finished_run_missing_its_weights_gets_the_kept_side_back(tmp_path, monkeypatch):
    score_side(monkeypatch, ema_wins=True)
    d = run(tmp_path, "m").run_dir
    want = load_file(str(d / "weights.safetensors"))
    (d / "weights.safetensors").unlink()
    (d / "weights.json").unlink()
    fit(resume_config(str(d)))
    assert same_tensors(load_file(str(d / "weights.safetensors")), want)
    assert json.loads((d / "weights.json").read_text())["weights_from"] == "ema"


def test_resident_path_averages_too(tmp_path):
    d = run(tmp_path, "r", resident=True, aug="flip").run_dir
    ck = safe_torch_load(d / "checkpoints" / "last.pt")
    assert ck["ema"]["updates"] == ck["global_step"] > 0
    assert float(rows(d)[-1]["val_top1_ema"]) >= 0


def test_without_ema_nothing_changes(tmp_path):
    d = run(tmp_path, "n", ema=0.0).run_dir
    assert "ema" not in safe_torch_load(d / "checkpoints" / "last.pt")
    assert list(rows(d)[0])[-1] == "img_per_s"
    assert "weights_from" not in json.loads((d / "weights.json").read_text())


# ----------------------------------------------------------------------------- values

@pytest.mark.parametrize("value", ["1", "-0.1", "1.5"])
def test_ema_out_of_range_is_one_line(value, capsys):
    assert main(["train", "--ema", value]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--ema must be in [0, 1)" in err and value in err


def test_switching_ema_on_or_off_for_a_resume_is_refused(tmp_path):
    d = run(tmp_path, "s", ema=0.0, max_steps=1).run_dir
    with pytest.raises(UserError, match="trained without an EMA.*cannot start it"):
        resume_config(str(d), ema=0.99)
    e = run(tmp_path, "t", max_steps=1).run_dir
    with pytest.raises(UserError, match="trained with an EMA.*cannot drop it"):
        resume_config(str(e), ema=0.0)
    resume_config(str(e), ema=0.99)  # another decay continues the same average


# ----------------------------------------------------------------------------- DDP, compile (slow)

@pytest.mark.slow
def test_two_gloo_processes_keep_the_average_of_one_process(tmp_path):
    """Under torchrun the average is of the unwrapped model: two processes with half the batch each
    end with the average that one process with the whole batch ends with (float tolerance)."""
    import os
    import socket
    import subprocess
    import sys

    env = {**os.environ, "ALEXNET_CPU_BF16": "0", "OMP_NUM_THREADS": "1"}
    common = ["--max-steps", "5", "--amp", "off", "--output-dir", str(tmp_path), "--lr-scheduler", "constant",
              "--model-arg", "width=0.25", "--model-arg", "fc_width=128", "--model-arg", "dropout=0",
              "--deterministic", "--global-batch", "64", "--ema", "0.9"]
    one = subprocess.run([sys.executable, "-m", "alexnet", "train", *common, "--name", "one"], capture_output=True,
                         text=True, env=env, timeout=240)
    assert one.returncode == 0, one.stderr
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    two = run_logged([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
                      "-m", "alexnet", "train", *common, "--name", "two"], env)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = (safe_torch_load(tmp_path / n / "checkpoints" / "last.pt")["ema"] for n in ("one", "two"))
    assert a["updates"] == b["updates"] == 5
    for k in a["module"]:
        torch.testing.assert_close(a["module"][k], b["module"][k], rtol=1e-4, atol=1e-5, msg=k)
    assert "EMA loss" in two.stdout


@pytest.mark.slow
def test_compiled_training_keeps_the_average_of_the_original_module(tmp_path):
    """--compile: the average follows the original module (the compiled wrapper shares its weights),
    so it matches an eager run's within float tolerance."""
    kw = dict(epochs=1, max_steps=4, batch_size=64, model_kwargs={"width": 0.25, "fc_width": 64, "dropout": 0.0})
    eager, compiled = run(tmp_path, "eager", **kw), run(tmp_path, "c", compile=True, **kw)
    a, b = (safe_torch_load(r.run_dir / "checkpoints" / "last.pt")["ema"] for r in (eager, compiled))
    assert a["updates"] == b["updates"] == 4
    for k in a["module"]:
        torch.testing.assert_close(a["module"][k], b["module"][k], rtol=1e-3, atol=1e-4, msg=k)
