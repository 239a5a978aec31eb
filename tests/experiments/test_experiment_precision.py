"""`alexnet experiment` decides the precision once and every arm trains in it (its JSON says which)."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

import alexnet.core.device as dev
import alexnet.engine.precision as prec
from alexnet import experiments


def _bf16_cpu_and_two_classes(tmp_path, monkeypatch):
    """A folder of two classes of random images, on a CPU that says it has fast bf16."""
    rng = np.random.default_rng(0)
    for c in range(2):
        (tmp_path / "data" / f"c{c}").mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "data" / f"c{c}" / f"{i}.png")
    monkeypatch.delenv("ALEXNET_CPU_BF16", raising=False)
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(dev, "cpu_bf16_speedup", lambda: 6.0)


def test_every_arm_trains_in_the_precision_decided_at_the_start(tmp_path, monkeypatch):
    _bf16_cpu_and_two_classes(tmp_path, monkeypatch)
    answers = iter([3.0, 0.5, 0.5, 0.5])  # a probe that would flip between arms
    calls: list[float] = []
    monkeypatch.setattr(prec, "model_bf16_speedup", lambda *a, **k: calls.append(next(answers)) or calls[-1])
    lines: list[str] = []
    rec = experiments.run("lrn", data=f"folder:{tmp_path / 'data'}", fast=True, epochs=1, out=tmp_path / "out",
                          say=lines.append)
    assert calls == [3.0]  # measured once, for the whole experiment
    assert len(rec["runs"]) == 2 and {r["precision"] for r in rec["runs"]} == {"bf16"}
    assert json.loads((tmp_path / "out" / "lrn.json").read_text())["runs"][1]["precision"] == "bf16"
    assert any("every arm trains in bf16" in s for s in lines)
    for r in rec["runs"]:
        assert "pinned for every arm of experiment lrn" in json.loads(
            (tmp_path / "out" / "runs" / r["run_dir"].rsplit("/", 1)[-1] / "config.json").read_text())["precision_reason"]


def test_amp_given_to_the_experiment_is_every_arms_precision_without_a_probe(tmp_path, monkeypatch):
    _bf16_cpu_and_two_classes(tmp_path, monkeypatch)
    calls: list[int] = []
    monkeypatch.setattr(prec, "model_bf16_speedup", lambda *a, **k: calls.append(1) or 3.0)
    rec = experiments.run("lrn", data=f"folder:{tmp_path / 'data'}", fast=True, epochs=1, out=tmp_path / "out",
                          amp="off", say=lambda s: None)
    assert calls == [] and {r["precision"] for r in rec["runs"]} == {"fp32"}


def test_an_unknown_amp_is_one_line(tmp_path):
    import pytest

    from alexnet.core.errors import UserError

    with pytest.raises(UserError, match="--amp must be one of"):
        experiments.run("lrn", fast=True, out=tmp_path, amp="fp8")


def _probe_answering(tmp_path, monkeypatch, answers: list[float]):
    """The bf16 CPU and data above, a probe that gives ``answers`` in turn (the calls it got, to
    check), and the keyword arguments of a fast `lrn` run into ``tmp_path/out``."""
    _bf16_cpu_and_two_classes(tmp_path, monkeypatch)
    it, calls = iter(answers), []
    monkeypatch.setattr(prec, "model_bf16_speedup", lambda *a, **k: calls.append(next(it)) or calls[-1])
    return calls, dict(data=f"folder:{tmp_path / 'data'}", fast=True, epochs=1, out=tmp_path / "out",
                       say=lambda s: None)


def test_a_rerun_keeps_the_recorded_precision_without_measuring_again(tmp_path, monkeypatch):
    """The decision is written beside the runs: a re-run (or one resumed after a kill) whose probe
    would now answer fp32 keeps bf16 and does not probe; another --amp decides afresh."""
    calls, kw = _probe_answering(tmp_path, monkeypatch, [3.0, 0.5])
    experiments.run("lrn", **kw)
    record = json.loads((tmp_path / "out" / "runs" / "precision-lrn.json").read_text())
    assert record["precision"] == "bf16" and record["amp"] == "auto" and record["device"] == "cpu"
    for r in (tmp_path / "out" / "runs").iterdir():  # as if killed: the runs must train again
        if r.is_dir():
            import shutil
            shutil.rmtree(r)
    lines: list[str] = []
    rec = experiments.run("lrn", **{**kw, "say": lines.append})
    assert calls == [3.0] and {r["precision"] for r in rec["runs"]} == {"bf16"}
    assert any("as recorded in precision-lrn.json" in s for s in lines)
    rec = experiments.run("lrn", **kw, amp="bf16")  # a different --amp: its own decision, no probe
    assert calls == [3.0] and {r["precision"] for r in rec["runs"]} == {"bf16"}


def test_a_recorded_precision_is_for_its_network_and_batch(tmp_path, monkeypatch):
    """The record says what was probed; another width (--fast vs the default, say) probes again."""
    calls, kw = _probe_answering(tmp_path, monkeypatch, [3.0, 0.5])
    experiments.run("lrn", **kw)
    record = tmp_path / "out" / "runs" / "precision-lrn.json"
    assert json.loads(record.read_text())["model"] == "cifar4"
    rec = json.loads(record.read_text())
    rec["model_kwargs"] = {**rec["model_kwargs"], "width": 0.5}  # as if another width had been probed
    record.write_text(json.dumps(rec))
    experiments.run("lrn", **kw)  # (its finished runs are reused as they are: the cache keeps their own)
    assert calls == [3.0, 0.5] and json.loads(record.read_text())["precision"] == "fp32"
