"""`--amp auto` is decided once per run: on rank 0, taken by every rank, recorded in config.json
and reused on resume; the probe leaves the random stream alone; the same command twice gives the
same weights (docs/architecture.md, engine/precision.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from subproc import spawn_ranks

import alexnet.core.device as dev
import alexnet.engine.precision as prec
from alexnet.cli import main
from alexnet.engine import make_config
from alexnet.engine.config import resume_config
from alexnet.engine.train import fit

TINY = {"width": 0.125, "fc_width": 16}


def fake_bf16_cpu(monkeypatch, step_speedups: list[float]) -> list[float]:
    """A CPU with native bf16 whose training-step probe answers ``step_speedups`` in turn (the
    last one from then on); returns the list of answers given so far."""
    monkeypatch.delenv("ALEXNET_CPU_BF16", raising=False)
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(dev, "cpu_bf16_speedup", lambda: 6.0)
    given: list[float] = []

    def probe(*args, **kwargs) -> float:
        given.append(step_speedups[min(len(given), len(step_speedups) - 1)])
        return given[-1]

    monkeypatch.setattr(prec, "model_bf16_speedup", probe)
    return given


def test_resume_keeps_the_recorded_precision_when_the_probe_now_says_otherwise(tmp_path, monkeypatch, capsys):
    given = fake_bf16_cpu(monkeypatch, [3.0, 0.5])
    cfg = make_config("digits", output_dir=str(tmp_path), name="p", epochs=2, batch_size=256, max_steps=3,
                      amp="auto", model_kwargs=TINY)
    d = fit(cfg).run_dir
    saved = json.loads((d / "config.json").read_text())
    assert saved["precision"] == "bf16" and "3.0× fp32" in saved["precision_reason"] and given == [3.0]
    capsys.readouterr()
    fit(resume_config(str(d)))  # the probe would now say 0.5× (fp32)
    out = capsys.readouterr().out
    assert given == [3.0]  # not measured again
    assert "bf16 autocast: native bf16, measured 3.0× fp32 this model's training step, as decided at the run's " \
           "start" in out
    assert json.loads((d / "config.json").read_text())["precision"] == "bf16"


def test_an_explicit_amp_needs_no_probe_and_is_recorded(tmp_path, monkeypatch):
    given = fake_bf16_cpu(monkeypatch, [3.0])
    d = fit(make_config("digits", output_dir=str(tmp_path), name="off", epochs=1, batch_size=256, max_steps=1,
                        amp="off", model_kwargs=TINY)).run_dir
    assert json.loads((d / "config.json").read_text())["precision"] == "fp32" and given == []


def test_the_probes_leave_the_global_random_stream_alone(monkeypatch):
    monkeypatch.delenv("ALEXNET_CPU_BF16", raising=False)
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: True)
    # small probes: a CPU without bf16 instructions emulates them, and the full one takes 15 s there
    monkeypatch.setattr(dev, "BF16_PROBE_SIZE", 64)
    torch.manual_seed(3)
    state = torch.get_rng_state()
    assert dev.cpu_bf16_speedup.__wrapped__() > 0  # the matmul probe, uncached
    assert torch.equal(torch.get_rng_state(), state)
    monkeypatch.setattr(dev, "cpu_bf16_speedup", dev.cpu_bf16_speedup.__wrapped__)  # nothing cached for later tests
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    model(torch.zeros(1, 1, 8, 8))
    state = torch.get_rng_state()
    p = prec.decide_precision("auto", torch.device("cpu"), model, (1, 8, 8), batch_size=4)
    assert p.name in ("fp32", "bf16") and torch.equal(torch.get_rng_state(), state)


def test_two_identical_deterministic_runs_give_identical_weights(tmp_path, monkeypatch, capsys):
    """--amp auto measures as it would for a user (the probe's side effects, on the RNG say, must
    not reach the run), but both runs take the first run's measurement: this tiny model's bf16 step
    timed 1.2× then 0.93× fp32 in the two runs of one full-suite run on a 2-core EPYC (0.7–0.8×
    alone), and the two runs decided differently — which is why a run records its decision
    (`alexnet train --config RUN/config.json` replays it)."""
    monkeypatch.delenv("ALEXNET_CPU_BF16", raising=False)
    real, first = prec.model_bf16_speedup, []

    def measured_once(*a, **k):
        speedup = real(*a, **k)
        first.append(speedup)
        return first[0]

    monkeypatch.setattr(prec, "model_bf16_speedup", measured_once)
    args = ["train", "--data", "digits", "--epochs", "1", "-b", "128", "--max-steps", "4", "--amp", "auto",
            "--deterministic", "--model-arg", "width=0.125", "--model-arg", "fc_width=16", "--output-dir",
            str(tmp_path)]
    assert main([*args, "--name", "a"]) == 0 and main([*args, "--name", "b"]) == 0
    a, b = load_file(str(tmp_path / "a" / "weights.safetensors")), load_file(str(tmp_path / "b" / "weights.safetensors"))
    pa, pb = (json.loads((tmp_path / n / "config.json").read_text())["precision"] for n in "ab")
    assert pa == pb and len(first) in (0, 2)  # 0: no native bf16, or its matmul already too slow
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- two processes
def _ddp_rank(rank: int, world: int, port: str, out: str) -> None:
    """One rank of a 2-process gloo run whose probes disagree: rank 0 measures bf16 fast, rank 1 slow."""
    import torch.distributed as dist

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    # A file store, as the other in-process gloo tests use: a TCP store hosted by rank 0 aborted
    # rank 1 now and then under pytest's output capture.
    dist.init_process_group("gloo", init_method=f"file://{port}", rank=rank, world_size=world)
    os.environ.pop("ALEXNET_CPU_BF16", None)
    from alexnet.engine.distributed import init_distributed, shutdown
    from alexnet.engine.train import Trainer

    dev.cpu_has_native_bf16 = lambda: True
    dev.cpu_bf16_speedup = lambda: (6.0, 0.5)[rank]
    measured: list[int] = []
    prec.model_bf16_speedup = lambda *a, **k: measured.append(rank) or (3.0, 0.5)[rank]
    cfg = make_config("digits", output_dir=out, name="ddp", epochs=1, batch_size=64, max_steps=2, amp="auto",
                      model_kwargs=TINY).validate()
    world_ = init_distributed("cpu")
    try:
        t = Trainer(cfg, world_, torch.device("cpu"))
        t.run()
        Path(out, f"rank{rank}.json").write_text(json.dumps({"precision": t.precision.name, "measured": measured}))
        del t  # as fit() does: the DDP model lets go of the process group before it is destroyed
    finally:
        shutdown()


def test_every_rank_uses_rank_0s_precision(tmp_path):
    spawn_ranks(_ddp_rank, 2, (2, str(tmp_path / "rdzv"), str(tmp_path)))
    got = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [g["precision"] for g in got] == ["bf16", "bf16"]
    assert got[0]["measured"] == [0] and got[1]["measured"] == []  # only rank 0 measured
    assert json.loads((tmp_path / "ddp" / "config.json").read_text())["precision"] == "bf16"


@pytest.mark.parametrize("name,device", [("fp16", "cpu")])
def test_a_recorded_precision_the_device_cannot_run_is_one_line(name, device):
    from alexnet.core.errors import UserError

    with pytest.raises(UserError, match="needs a GPU"):
        prec.check_fits(dev.precision_named(name, ""), torch.device(device))
