"""Training and evaluating from ``--data shards:DIR``: a run stopped mid-epoch and resumed ends with the
weights of an uninterrupted run; evaluation reads the shards' own validation split."""

from __future__ import annotations

import os

import pytest
import torch

from alexnet.core.io import safe_torch_load
from alexnet.data.shards_build import build_shards
from alexnet.engine import make_config
from alexnet.engine.config import resume_config
from alexnet.engine.train import fit
from alexnet.infer.evaluation import evaluate_weights
from subproc import processes_with, run_logged

TINY = {"width": 0.125, "fc_width": 16}


@pytest.fixture(scope="module")
def digit_shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("digit-shards") / "s"
    build_shards("digits", out, shard_mb=0.1, progress=False)  # ~30 shards
    return f"shards:{out}"


def run(tmp_path, data: str, name: str, **kw):
    kw = {"epochs": 2, "batch_size": 128, "amp": "off", "model_kwargs": TINY, "deterministic": True, **kw}
    return fit(make_config("digits", data=data, output_dir=str(tmp_path), name=name, **kw))


def test_stopped_mid_epoch_and_resumed_equals_an_uninterrupted_run(tmp_path, digit_shards):
    ref = run(tmp_path, digit_shards, "ref")
    stopped = run(tmp_path, digit_shards, "stopped", max_steps=15).run_dir  # 11 steps an epoch: mid-epoch 2
    ck = safe_torch_load(stopped / "checkpoints" / "last.pt")
    assert ck["epoch"] == 1 and ck["step_in_epoch"] == 4  # 0-based: the second epoch
    fit(resume_config(str(stopped), max_steps=0))
    a = safe_torch_load(ref.run_dir / "checkpoints" / "last.pt")["model"]
    b = safe_torch_load(stopped / "checkpoints" / "last.pt")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    res = evaluate_weights(str(ref.run_dir), digit_shards, device="cpu", amp="off", announce=lambda m: None)
    assert res["split"] == "val" and res["centre"].n == 359  # the shards' val: the digits' 20 % hold-out
    assert res["centre"].top1 == pytest.approx(ref.last.top1)


@pytest.mark.slow  # torchrun and its ranks (12-45 s on 2 cores); the default run keeps other torchrun tests
def test_two_gloo_processes_with_two_workers_each_equal_one_process(tmp_path, digit_shards):
    """A real torchrun run: two processes (two loader workers each) from the same shards take, at
    every step, the two halves of what one process takes with the same global batch — so their
    weights agree (dropout off: each rank would draw its own masks). When torchrun returns, no
    process of the run is left: each rank ends its loader workers before it leaves."""
    import socket
    import sys

    from safetensors.torch import load_file

    env = {**os.environ, "ALEXNET_CPU_BF16": "0", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    common = ["train", "--data", digit_shards, "--max-steps", "6", "--amp", "off", "--output-dir", str(tmp_path),
              "--lr-scheduler", "constant", "--model-arg", "width=0.125", "--model-arg", "fc_width=16",
              "--model-arg", "dropout=0", "--deterministic", "--global-batch", "64"]
    one = run_logged([sys.executable, "-m", "alexnet", *common, "--name", "one"], env)
    assert one.returncode == 0, one.stderr[-3000:]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    two = run_logged([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
                      "-m", "alexnet", *common, "--workers", "2", "--name", "two"], env)
    assert two.returncode == 0, two.stderr[-3000:]
    left = processes_with(str(tmp_path))
    assert not left, f"{len(left)} processes of the torchrun run outlived it (orphaned loader workers?): {left}"
    a, b = (load_file(str(tmp_path / n / "weights.safetensors")) for n in ("one", "two"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
