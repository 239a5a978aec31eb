"""Runs that outlive their processes, under torchrun with 2 gloo processes on the embedded digits:
an elastic restart (``--max-restarts 1``, one worker SIGKILLed mid-epoch) resumes the same run
directory; a 2-process run stopped and resumed with 2 processes ends bit-identical to one never
stopped (with dropout: every rank's own RNG states are kept); another process count is refused;
two torchrun "nodes" on localhost equal one node with 2 processes. ``--resume auto`` in-process."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from alexnet.core.errors import UserError
from alexnet.core.io import safe_torch_load
from alexnet.engine import make_config
from alexnet.engine.train import fit
from subproc import run_logged

TINY = ["--model-arg", "width=0.25", "--model-arg", "fc_width=128"]  # dropout stays at the model's 0.5
# OMP_NUM_THREADS=1 on every process: one node and two nodes then run the same kernels (torchrun sets
# it to 1 only for more than one process per node)
ENV = {**os.environ, "ALEXNET_CPU_BF16": "0", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
# 1,438 training images, 64 per process and step: 11 steps an epoch, 22 in all
RUN = ["--epochs", "2", "-b", "64", "--deterministic", "--checkpoint-every", "5", "--amp", "off", *TINY]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(*args: str, launcher: tuple[str, ...] = (), env: dict | None = None,
             timeout: int = 240) -> subprocess.CompletedProcess:
    """``torchrun --nproc-per-node 2 [launcher flags] -m alexnet train ARGS`` (a port of its own)."""
    launch = list(launcher) or ["--nproc-per-node", "2", "--master-port", str(free_port())]
    return run_logged([sys.executable, "-m", "torch.distributed.run", *launch, "-m", "alexnet", "train", *args],
                      {**ENV, **(env or {})}, timeout=timeout)


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return safe_torch_load(run / "checkpoints" / "last.pt")["model"]


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = final_weights(a), final_weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{k}: max difference {(wa[k] - wb[k]).abs().max().item():.3g}"


def metric_rows(run: Path) -> list[dict[str, str]]:
    """metrics.csv without the timing columns (they differ between any two runs)."""
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    return [{k: v for k, v in r.items() if k not in ("time", "img_per_s")} for r in rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted 2-process run."""
    out = tmp_path_factory.mktemp("reference")
    res = torchrun(*RUN, "--output-dir", str(out), "--name", "ref")
    assert res.returncode == 0, res.stderr[-3000:]
    return out / "ref"


@pytest.mark.slow  # two torchrun runs (25 s on 2 cores); --resume auto stays in the default run, in one process
def test_elastic_restart_resumes_the_same_run_bit_identical(reference, tmp_path):
    # rank 1 dies at step 17 (epoch 2, step 6; the last checkpoint is at step 15) on the first
    # attempt only; torchrun restarts the group, which finds the checkpoint and resumes
    res = torchrun(*RUN, "--output-dir", str(tmp_path), "--resume", "auto", "--name", "run",
                   launcher=("--nproc-per-node", "2", "--max-restarts", "1", "--master-port", str(free_port())),
                   env={"ALEXNET_DEBUG_KILL_AT_STEP": "17", "ALEXNET_DEBUG_KILL_RANK": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert "--resume auto: " in res.stdout and "holds no checkpoint; starting the run" in res.stdout
    assert "torchrun restart 1: --resume auto: resuming" in res.stdout  # the same directory, resumed
    assert "at epoch 2, step 4 of 11 (15 steps done)" in res.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # one run directory
    assert_same_weights(reference, tmp_path / "run")
    # one row per epoch, and epoch 2's training sums are both ranks' own (restored, not rank 0's)
    assert metric_rows(tmp_path / "run") == metric_rows(reference)


@pytest.mark.slow  # torchrun twice, one process between (27 s on 2 cores); its refusal is also a unit test below
def test_two_processes_stopped_and_resumed_end_bit_identical(reference, tmp_path):
    run = tmp_path / "run"
    stopped = torchrun(*RUN, "--output-dir", str(tmp_path), "--name", "run", "--max-steps", "15")
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    ck = safe_torch_load(run / "checkpoints" / "last.pt")
    assert ck["global_step"] == 15 and ck["world_size"] == 2 and len(ck["ranks"]) == 2
    assert not torch.equal(ck["ranks"][0]["rng"]["torch"], ck["ranks"][1]["rng"]["torch"])
    # another number of processes: one line naming both counts, and nothing changed
    one = subprocess.run([sys.executable, "-m", "alexnet", "train", "--resume", str(run)], capture_output=True,
                         text=True, env=ENV, timeout=240)
    assert one.returncode == 2, one.stderr[-3000:]
    err = one.stderr.strip().splitlines()
    assert len(err) == 1 and "the run trained with 2 processes; resume it with 2 (torchrun --nproc-per-node 2" in err[0]
    assert "not 1" in err[0]
    assert safe_torch_load(run / "checkpoints" / "last.pt")["global_step"] == 15
    resumed = torchrun("--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_weights(reference, run)
    assert metric_rows(run) == metric_rows(reference)  # the stopped epoch's row replaced, sums exact


@pytest.mark.slow  # torchrun and its ranks (12-45 s on 2 cores); the default run keeps other torchrun tests
def test_two_nodes_equal_one_node_with_two_processes(reference, tmp_path):
    """Two torchrun agents (``--nnodes 2``, one process each) meeting through c10d on localhost."""
    port = free_port()
    launch = ["--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
              "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "two-nodes"]
    cmd = [sys.executable, "-m", "torch.distributed.run", *launch, "-m", "alexnet", "train", *RUN,
           "--output-dir", str(tmp_path), "--name", "run"]
    nodes = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
             for _ in range(2)]  # the same command on both "nodes": c10d assigns the ranks
    outs = [n.communicate(timeout=240) for n in nodes]
    for n, (_, err) in zip(nodes, outs):
        assert n.returncode == 0, err[-3000:]
    assert any("2 processes, batch 64 each" in out for out, _ in outs)
    assert_same_weights(reference, tmp_path / "run")


# -- --resume auto in one process ----------------------------------------------------------------
def auto_config(out: Path, **kw):
    return make_config("digits", epochs=1, batch_size=128, output_dir=str(out), name="run", resume="auto",
                       model_kwargs={"width": 0.25, "fc_width": 128}, amp="off", **kw)


def test_resume_auto_starts_then_resumes_and_plain_runs_are_still_refused(tmp_path, capsys):
    run = tmp_path / "run"
    # a first attempt that died before its first checkpoint: its config and a metrics row remain
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"model": "alexnet-mnist"}))
    (run / "metrics.csv").write_text("epoch,step\n1,999\n")
    with pytest.raises(UserError, match="already holds a run"):  # a plain run does not land on it
        fit(make_config("digits", epochs=1, output_dir=str(tmp_path), name="run", amp="off"))
    first = fit(auto_config(tmp_path, max_steps=3))
    assert "holds no checkpoint; starting the run" in capsys.readouterr().out
    assert first.run_dir == run and first.steps_done == 3
    assert [r["step"] for r in csv.DictReader((run / "metrics.csv").open())] == ["3"]  # the stale row is gone
    second = fit(auto_config(tmp_path))  # the same command again: it resumes
    out = capsys.readouterr().out
    assert "--resume auto: resuming" in out and "resumed" in out and "(3 steps done)" in out
    assert second.run_dir == run and second.steps_done == 11 and second.epochs_done == 1
    assert [r["epoch"] for r in csv.DictReader((run / "metrics.csv").open())] == ["1"]
    with pytest.raises(UserError, match="needs --name"):
        make_config("digits", resume="auto")


def test_a_run_under_max_restarts_without_resume_auto_is_warned(tmp_path, monkeypatch, capsys):
    from alexnet.engine.distributed import World
    from alexnet.engine.elastic import resolve_auto_resume

    cfg = make_config("digits", output_dir=str(tmp_path), name="run")
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "2")
    same, start_over = resolve_auto_resume(cfg, World())
    assert same == cfg and same is not cfg and not start_over
    assert "warning: torchrun --max-restarts 2: a restarted group starts this run again" in capsys.readouterr().out
    resolve_auto_resume(auto_config(tmp_path), World())
    assert "warning" not in capsys.readouterr().out  # --resume auto: nothing to warn about


def test_a_checkpoint_of_another_process_count_is_one_line_naming_both(tmp_path):
    """The unit under the slow torchrun test above: a run of 2 processes resumed by 1 (and back)."""
    from alexnet.engine.distributed import World
    from alexnet.engine.elastic import own_rank_state

    part = {"rng": {}, "epoch_stats": [], "bad_samples": {}}
    with pytest.raises(UserError) as e:
        own_rank_state({"ranks": [part, part]}, World(), tmp_path)
    assert "the run trained with 2 processes; resume it with 2 (torchrun --nproc-per-node 2" in str(e.value)
    assert "not 1" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UserError, match="the run trained with 1 process; resume it with 1 "):
        own_rank_state({"ranks": [part]}, World(0, 2, 0), tmp_path)
    assert own_rank_state({"ranks": [part, {**part, "epoch_stats": [1]}]}, World(1, 2, 1), tmp_path)["epoch_stats"] == [1]
