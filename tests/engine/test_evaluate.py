"""Evaluation: ten-crop averaging, exact counts, the evaluate command; schedules and precision."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from alexnet.cli import main
from alexnet.core.device import Precision, resolve_precision
from alexnet.core.errors import UserError
from alexnet.engine import make_config
from alexnet.engine.evaluate import evaluate, predict_batch
from alexnet.engine.schedule import LRSchedule
from alexnet.models import build_model


class Identity(torch.nn.Module):
    def forward(self, x):
        return x.float() / 255


def test_ten_crop_is_mean_of_ten_single_crop_softmaxes():
    torch.manual_seed(0)
    model = build_model("alexnet-mnist", num_classes=4, width=0.25, fc_width=32).eval()
    stacks = torch.randint(0, 256, (3, 10, 1, 28, 28), dtype=torch.uint8)
    fp32 = Precision(None, False, "test")
    with torch.no_grad():
        got = predict_batch(model, stacks, Identity(), fp32, torch.device("cpu"))
        for b in range(3):
            singles = torch.stack([F.softmax(model(stacks[b, i:i + 1].float() / 255), 1)[0] for i in range(10)])
            torch.testing.assert_close(got[b], singles.mean(0), rtol=1e-5, atol=1e-6)


def test_evaluate_counts_every_sample_once():
    model = build_model("alexnet-mnist", num_classes=3, width=0.25, fc_width=32)
    images = torch.randint(0, 256, (10, 1, 28, 28), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    loader = [(images[:4], labels[:4], []), (images[4:], labels[4:], [("x.jpg", "empty file")])]
    res = evaluate(model, loader, Identity(), Precision(None, False, ""), torch.device("cpu"))
    assert res.n == 10 and res.bad == 1
    with torch.no_grad():
        probs = F.softmax(model.eval()(images.float() / 255), 1)
    assert res.top1 == pytest.approx(100 * (probs.argmax(1) == labels).float().mean().item())
    assert res.top5 == 100.0  # 3 classes: top-5 always hits
    assert res.top1_error == pytest.approx(100 - res.top1)


def test_evaluate_command_centre_and_ten_crop(tmp_path, capsys):
    from alexnet.engine.train import fit

    run = fit(make_config("digits", epochs=1, batch_size=128, output_dir=str(tmp_path), name="r",
                          model_kwargs={"width": 0.25, "fc_width": 64}, amp="off")).run_dir
    capsys.readouterr()
    assert main(["evaluate", str(run), "--ten-crop", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["centre_crop"]["n"] == d["ten_crop"]["n"] > 300
    assert 0 <= d["centre_crop"]["top1"] <= 100 and d["ten_crop"]["top1_error"] == pytest.approx(100 - d["ten_crop"]["top1"])
    assert main(["evaluate", str(tmp_path / "nope")]) == 2
    assert main(["evaluate", str(run), "--report", str(tmp_path / "report")]) == 0
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    confusion = (tmp_path / "report" / "confusion.csv").read_text().splitlines()
    cells = [int(x) for line in confusion[1:] for x in line.split(",")[1:] if x.strip().isdigit()]
    assert sum(cells) == d["centre_crop"]["n"]
    assert metrics["top1"] == pytest.approx(d["centre_crop"]["top1"], abs=1e-3)
    assert (tmp_path / "report" / "confusion.png").stat().st_size > 1000


def test_plateau_divides_by_ten_at_most_three_times():
    s = LRSchedule("plateau", 0.01, total_steps=1000, steps_per_epoch=10, patience=2, max_drops=3)
    drops = sum(s.epoch_end(50.0) for _ in range(30))
    assert drops == 3 and s.lr(500) == pytest.approx(0.01 * 1e-3)
    s2 = LRSchedule("plateau", 0.01, total_steps=1000, steps_per_epoch=10, patience=2)
    assert not any(s2.epoch_end(50.0 - i) for i in range(10))  # always improving: no drop


def test_onecycle_and_cosine_shapes():
    s = LRSchedule("onecycle", 0.1, total_steps=100, steps_per_epoch=10)
    lrs = [s.lr(i) for i in range(100)]
    assert lrs[0] == pytest.approx(0.1 / 25) and max(lrs) == pytest.approx(0.1, rel=0.05) and lrs[-1] < 1e-3
    c = LRSchedule("cosine", 0.1, total_steps=100, steps_per_epoch=10, warmup_steps=10)
    assert c.lr(0) == pytest.approx(0.01) and c.lr(50) < c.lr(20) and c.lr(99) < 0.001
    st = LRSchedule("step", 0.1, total_steps=100, steps_per_epoch=10, step_size=3, gamma=0.1)
    assert st.lr(29) == pytest.approx(0.1) and st.lr(30) == pytest.approx(0.01)


def test_recipes_and_validation():
    paper = make_config("paper")
    assert (paper.model, paper.batch_size, paper.lr, paper.momentum, paper.weight_decay) == ("alexnet", 128, 0.01, 0.9, 5e-4)
    assert paper.lr_scheduler == "plateau" and paper.lr_max_drops == 3 and paper.aug == "paper" and paper.ten_crop
    assert make_config("digits", lr_scheduler="cosineannealinglr").lr_scheduler == "cosine"
    with pytest.raises(UserError, match="unknown recipe"):
        make_config("nope")
    with pytest.raises(UserError, match="momentum"):
        make_config("digits", momentum=1.5)


def test_precision_choices():
    cpu = torch.device("cpu")
    assert resolve_precision("off", cpu).dtype is None
    assert resolve_precision("bf16", cpu).dtype == torch.bfloat16
    with pytest.raises(UserError):
        resolve_precision("fp16", cpu)
    with pytest.raises(UserError):
        resolve_precision("fp8", cpu)
    auto = resolve_precision("auto", cpu)
    assert auto.dtype in (None, torch.bfloat16) and auto.reason
    assert not math.isnan(0.0)
