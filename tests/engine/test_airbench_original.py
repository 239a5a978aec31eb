"""airbench94's own code on the CPU (tools/airbench94_cpu.py) and the tool that runs it on the engine's
splits (tools/airbench_original.py; docs/cifar10.md, "airbench's own code on these JPEGs"): its network
is the engine's ``alexnet-cifar-fast`` with GELU, it trains on the engine's split, and the summary
compares it with the engine's reference seeds."""

from __future__ import annotations

import csv
import importlib
import json
from pathlib import Path

import pytest
import torch

from alexnet.data.datasets import build_dataset
from alexnet.models import build_model
from conftest import write_colour_classes

TOOLS = Path(__file__).resolve().parents[2] / "tools"


@pytest.fixture
def tools(monkeypatch):
    monkeypatch.syspath_prepend(str(TOOLS))
    return importlib.import_module("airbench94_cpu"), importlib.import_module("airbench_original")


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    """10 classes × 10 32×32 JPEGs, each class its own mean colour."""
    return write_colour_classes(tmp_path_factory.mktemp("colours"), "jpg", seed=3, noise=20)


def test_airbenchs_network_is_the_engines_with_gelu(tools):
    """The same weights give the same logits in airbench's network and in alexnet-cifar-fast with act=gelu, in
    training mode (batch statistics, then the running ones they leave) and in evaluation mode."""
    airbench94, _ = tools
    torch.manual_seed(0)
    theirs = airbench94.make_net()
    ours = build_model("alexnet-cifar-fast", act="gelu")
    a, b = theirs.state_dict(), ours.state_dict()
    assert [tuple(v.shape) for v in a.values()] == [tuple(v.shape) for v in b.values()]  # one to one, in order
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for (ka, va), kb in zip(a.items(), b):
            new = torch.randn(va.shape, generator=g) * 0.1 if va.is_floating_point() else va
            if "running_var" in ka:  # the first stage's first norm nearly constant: its ε (1e-12) tells
                new = new.abs() * 1e-6 + 1e-8 if ka == "2.norm1.running_var" else new.abs() + 0.5
            va.copy_(new)
            b[kb].copy_(new)
    x = torch.randn(8, 3, 32, 32, generator=g)
    for mode in ("eval", "train"):  # evaluation first: training mode moves the running statistics
        theirs.train(mode == "train")
        ours.train(mode == "train")
        with torch.no_grad():
            torch.testing.assert_close(ours(x), theirs(x), rtol=1e-4, atol=1e-5)
    # the engine's momentum 0.4 is airbench's 0.6 written the other way (PyTorch's convention)
    assert ours.features.norm1a.momentum == pytest.approx(theirs[2].norm1.momentum) == pytest.approx(0.4)


def test_the_whitening_filters_agree_up_to_sign(tools):
    """airbench's whitening init and the engine's (`init_from_data`) give the same 24 filters, each eigenvector
    up to its sign (the engine decomposes in float64)."""
    airbench94, _ = tools
    g = torch.Generator().manual_seed(2)
    base = torch.randn(64, 3, 8, 8, generator=g)  # smooth, coloured images: the 12 eigenvalues are apart
    images = torch.nn.functional.interpolate(base, size=32, mode="bilinear") * torch.tensor([1.0, 0.7, 0.4]).view(1, 3, 1, 1)
    theirs = airbench94.make_net()
    airbench94.init_whitening_conv(theirs[0], images)
    ours = build_model("alexnet-cifar-fast", act="gelu")
    ours.init_from_data(images)
    wa, wb = theirs[0].weight.detach(), ours.features.whiten.weight.detach()
    for i in range(12):
        sign = torch.sign((wa[i] * wb[i]).sum())
        torch.testing.assert_close(wb[i] * sign, wa[i], rtol=1e-3, atol=1e-3 * wa[i].abs().max().item())


def test_a_tiny_run_trains_on_the_engines_split_and_scores_three_ways(tools, colours, tmp_path, monkeypatch, capsys):
    _, tool = tools
    out = tmp_path / "one"
    cache = tmp_path / "decoded.pt"
    argv = ["one", str(colours), str(out), "--seed", "0", "--batch-size", "16", "--epochs", "2.5", "--amp", "fp32",
            "--cache", str(cache)]
    assert tool.main(argv) == 0
    res = json.loads((out / "result.json").read_text())
    val = build_dataset(f"cifar10:{colours}", "val", val_split=0.1)  # the engine's hold-out
    assert (res["train_images"], res["val_images"]) == (90, len(val)) == (90, 10)
    assert res["steps"] == 13  # 90 // 16 = 5 batches an epoch (the last partial one dropped), ceil(2.5 × 5)
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["steps"]) for r in rows] == [5, 10, 13]
    assert all(0 <= res[k] <= 100 for k in ("centre", "flip", "tta"))
    saved = torch.load(cache)
    assert torch.equal(saved["val_labels"], torch.tensor(val.targets))  # the hold-out's images, in its order
    assert "final centre" in capsys.readouterr().out
    # a second run reads the decoded splits back instead of decoding again
    monkeypatch.setattr("alexnet.data.resident.decode_all", lambda *a, **k: pytest.fail("decoded again"))
    assert tool.main([*argv[:2], str(tmp_path / "two"), *argv[3:]]) == 0


@pytest.mark.slow  # 8 s; the tiny run above trains the same code on the engine's split in the default run
def test_it_learns_the_colours(tools, colours):
    """airbench's code on CPU learns: on classes that differ in colour it ends far above chance (10 %)."""
    airbench94, tool = tools
    ds = build_dataset(f"cifar10:{colours}", "train", val_split=0.1)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = torch.tensor(ds.targets)
    _, scores, _ = airbench94.main(x, y, x, y, seed=0, amp="fp32", epochs=8, batch_size=16, log=lambda _: None)
    assert scores["centre"] >= 60  # scored on the training images themselves


def test_too_few_images_or_a_wrong_path_is_one_clear_line(tools, colours, tmp_path):
    _, tool = tools
    with pytest.raises(SystemExit, match="90 training images make no batch of 1024"):
        tool.main(["one", str(colours), str(tmp_path / "r"), "--seed", "0", "--cache", str(tmp_path / "d.pt")])
    with pytest.raises(SystemExit, match="^error: .*no-such-folder"):  # a wrong path: one line, no traceback
        tool.main(["one", str(tmp_path / "no-such-folder"), str(tmp_path / "r"), "--seed", "0", "--cache",
                   str(tmp_path / "d.pt")])


def _result(folder: Path, seed: int, centre: float, flip: float, tta: float, epoch: float = 80.0) -> None:
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps({"seed": seed, "centre": centre, "flip": flip, "tta": tta,
                                                    "steps": 426, "epoch_s_median": epoch, "amp": "bf16"}))
    (folder / "run.json").write_text(json.dumps({"wall_s": 900.0}))


def test_run_skips_finished_seeds_and_summarize_compares_with_the_engines_seeds(tools, tmp_path, monkeypatch):
    _, tool = tools
    _result(tmp_path / "orig-s0", 0, 89.0, 90.0, 90.5)
    calls = []
    monkeypatch.setattr(tool, "timed_run", lambda out, name, cmd: calls.append((name, cmd)) or 0)
    assert tool.run("DATA", tmp_path, [0, 1], "bf16", 9.9, 1024) == 0
    assert [c[0] for c in calls] == ["orig-s1"]  # seed 0 has its result
    assert calls[0][1][2:5] == ["one", "DATA", str(tmp_path / "orig-s1")] and "--seed" in calls[0][1]
    _result(tmp_path / "orig-s1", 1, 89.4, 90.4, 90.9, epoch=70.0)
    _result(tmp_path / "orig-s2", 2, 89.2, 90.8, 91.1, epoch=100.0)
    engine = tmp_path / "steps.json"
    ref = {str(s): {"centre": c, "flip": f, "tta": t} for s, c, f, t in ((0, 89.3, 90.36, 90.48), (1, 89.7, 90.48, 90.6),
                                                                      (2, 90.0, 90.68, 91.02))}
    engine.write_text(json.dumps({"arms": {"airbench": {"seeds": ref}}}))
    out = tool.summarize(tmp_path, tmp_path / "r.json", engine)
    assert out["flip_median"] == 90.4 and out["tta_range"] == [90.5, 91.1]
    assert out["epoch_s_median"] == 80.0  # the median of the seeds' medians
    diff = out["flip_vs_engine"]
    assert diff["n"] == [3, 3] and diff["mean"] == pytest.approx(90.4 - (90.36 + 90.48 + 90.68) / 3)
    assert diff["low"] < diff["mean"] < diff["high"]
    assert json.loads((tmp_path / "r.json").read_text())["seeds"]["2"]["wall_s"] == 900.0
