"""Training and evaluating from ``--data shards:DIR``: a run stopped mid-epoch and resumed ends with the
weights of an uninterrupted run; evaluation reads the shards' own validation split."""

from __future__ import annotations

import pytest
import torch

from alexnet.core.io import safe_torch_load
from alexnet.data.shards_build import build_shards
from alexnet.engine import make_config
from alexnet.engine.config import resume_config
from alexnet.engine.train import fit
from alexnet.infer.evaluation import evaluate_weights

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
