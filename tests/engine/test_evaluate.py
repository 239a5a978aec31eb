"""Evaluation: ten-crop averaging, exact counts, the evaluate command; schedules and precision."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from subproc import spawn_ranks
from torch import nn

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
    assert main(["evaluate", str(run), "--ten-crop", "--json", "--amp", "off"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["centre_crop"]["n"] == d["ten_crop"]["n"] == 359
    assert 0 <= d["centre_crop"]["top1"] <= 100 and d["ten_crop"]["top1_error"] == pytest.approx(100 - d["ten_crop"]["top1"])
    assert main(["evaluate", str(tmp_path / "nope")]) == 2
    assert main(["evaluate", str(run), "--report", str(tmp_path / "report")]) == 0
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    confusion = (tmp_path / "report" / "confusion.csv").read_text().splitlines()
    cells = [int(x) for line in confusion[1:] for x in line.split(",")[1:] if x.strip().isdigit()]
    assert sum(cells) == d["centre_crop"]["n"]
    assert metrics["top1"] == pytest.approx(d["centre_crop"]["top1"], abs=1e-3)
    from PIL import Image

    with Image.open(tmp_path / "report" / "confusion.png") as im:  # a real picture, not an empty canvas
        px = torch.frombuffer(bytearray(im.convert("L").tobytes()), dtype=torch.uint8).float()
    assert im.format == "PNG" and min(im.size) > 200 and px.std() > 10


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


def _tiny_weights(tmp_path, classes):
    from alexnet.models import make_meta, save_weights

    torch.manual_seed(0)
    model = build_model("alexnet-cifar", num_classes=len(classes), width=0.125)
    save_weights(model, tmp_path / "w", make_meta("alexnet-cifar", classes, model_kwargs={"width": 0.125}))
    return model, tmp_path / "w"


def test_bad_files_are_left_out_of_the_scores(tmp_path, write_image, capsys):
    """12 good and 8 unreadable images: n is 12 (the images scored), bad_samples 8 (distinct files),
    the scores are those of the 12 good images alone, and the command exits 1 naming them."""
    model, weights = _tiny_weights(tmp_path, ["a", "b"])
    root = tmp_path / "data"
    for c, cls in enumerate("ab"):
        for i in range(10):
            p = root / "val" / cls / f"{i}.png"
            if i < 6:
                write_image(p, size=(40, 40), seed=10 * c + i)
            else:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"cut short" * i)
        write_image(root / "train" / cls / "0.png", size=(40, 40))
    for batch in ("3", "64"):
        assert main(["evaluate", str(weights), "--data", f"folder:{root}", "--json", "-b", batch, "--ten-crop",
                     "--amp", "off"]) == 1
        out, err = capsys.readouterr()
        d = json.loads(out)
        for key in ("centre_crop", "ten_crop"):
            assert (d[key]["n"], d[key]["bad_samples"]) == (12, 8), (batch, key, d[key])
        # after the note that ten-crop of 32×32 on a 32×32 network is the centre crop and its mirror
        assert err.splitlines()[-1].startswith("warning: 8 files could not be read and were left out of the scores: ")
    from alexnet.data import BadImageError, build_dataset, build_transforms, normalizer_for
    from alexnet.models import load_weights, meta_cfg

    m, meta = load_weights(weights)
    ds = build_dataset(f"folder:{root}", "val", build_transforms(meta_cfg(meta), train=False))
    xs, ys, good_paths = [], [], set()
    for i in range(len(ds)):
        try:
            x, c = ds[i]
        except BadImageError:
            continue
        xs.append(x)
        ys.append(c)
        good_paths.add(ds.samples_path(i))
    x, y = torch.stack(xs), torch.tensor(ys)
    assert len(y) == 12
    probs = predict_batch(m, x, normalizer_for(meta_cfg(meta)), Precision(None, False, ""), torch.device("cpu"))
    assert d["centre_crop"]["loss"] == pytest.approx(F.nll_loss(torch.log(probs), y).item(), rel=1e-5)
    assert d["centre_crop"]["top1"] == pytest.approx(100 * (probs.argmax(1) == y).float().mean().item())
    # --ten-crop really scores the ten crops (40×40 images, 32×32 crops: the crops differ)
    ds10 = build_dataset(f"folder:{root}", "val", build_transforms(meta_cfg(meta), train=False, ten_crop=True,
                                                                   mirror=d.get("mirror", True)))
    stacks = torch.stack([ds10[i][0] for i in range(len(ds)) if ds10.samples_path(i) in good_paths])
    assert stacks.shape[1] == (10 if d.get("mirror", True) else 5)
    p10 = predict_batch(m, stacks, normalizer_for(meta_cfg(meta)), Precision(None, False, ""), torch.device("cpu"))
    want = F.nll_loss(torch.log(p10), y).item()
    assert d["ten_crop"]["loss"] == pytest.approx(want, rel=1e-5)
    assert abs(d["centre_crop"]["loss"] - want) > 100 * 1e-5 * want  # centre-crop scores would not pass


def _gloo_evaluate(rank: int, world: int, init: str, shards: list, out: str) -> None:
    import torch.distributed as dist

    from alexnet.engine.distributed import shutdown

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model = build_model("alexnet-mnist", num_classes=3, width=0.25, fc_width=32)
        images, labels, bad = shards[rank]
        res = evaluate(model, [(images, labels, bad)], Identity(), Precision(None, False, ""), torch.device("cpu"))
        torch.save(res.to_dict(), f"{out}.{rank}")
    finally:
        shutdown()


def test_distributed_evaluation_sums_shards_that_differ(tmp_path):
    """Two gloo processes evaluate different shards (different sizes, images, labels and bad
    files): every process reports the whole set's numbers, equal to one process evaluating it all."""
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (13, 1, 28, 28), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 3, (13,), generator=g)
    shards = [(images[:9], labels[:9], [("x.jpg", "empty file"), ("x.jpg", "empty file")]),
              (images[9:], labels[9:], [("y.jpg", "not an image"), ("z.jpg", "truncated JPEG")])]
    out = str(tmp_path / "res")
    spawn_ranks(_gloo_evaluate, 2, (2, f"file://{tmp_path / 'rdzv'}", shards, out))
    torch.manual_seed(0)
    model = build_model("alexnet-mnist", num_classes=3, width=0.25, fc_width=32)
    one = evaluate(model, [(images, labels, [])], Identity(), Precision(None, False, ""), torch.device("cpu")).to_dict()
    parts = [evaluate(model, [(images[s], labels[s], [])], Identity(), Precision(None, False, ""),
                      torch.device("cpu")).to_dict() for s in (slice(0, 9), slice(9, 13))]
    assert parts[0]["loss"] != pytest.approx(one["loss"], rel=1e-3)  # the shards really differ
    for rank in range(2):
        got = torch.load(f"{out}.{rank}", weights_only=True)
        assert got["n"] == 13 and got["bad_samples"] == 3
        for k in ("loss", "top1", "top5"):
            assert got[k] == pytest.approx(one[k], rel=1e-6), (rank, k)  # batch sizes differ: float rounding


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


@pytest.mark.parametrize("flag,dtype", [("0", None), ("1", torch.bfloat16)])
def test_cpu_precision_follows_alexnet_cpu_bf16(monkeypatch, flag, dtype):
    monkeypatch.setenv("ALEXNET_CPU_BF16", flag)
    p = resolve_precision("auto", torch.device("cpu"))
    assert p.dtype is dtype and not p.use_scaler and f"ALEXNET_CPU_BF16={flag}" in p.reason
    assert resolve_precision("off", torch.device("cpu")).dtype is None  # off wins over the variable


def test_auto_precision_times_the_models_step_not_a_matmul(monkeypatch):
    """--amp auto on a bf16 CPU: a fast bf16 matmul is not enough; the model's own step decides."""
    import alexnet.core.device as dev

    monkeypatch.delenv("ALEXNET_CPU_BF16", raising=False)
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(dev, "cpu_bf16_speedup", lambda: 6.0)
    cpu = torch.device("cpu")
    slow = resolve_precision("auto", cpu, step_speedup=lambda: 0.8)
    assert slow.dtype is None and "training step" in slow.reason and "0.80" in slow.reason
    fast = resolve_precision("auto", cpu, step_speedup=lambda: 3.0)
    assert fast.dtype == torch.bfloat16 and "3.0× fp32 this model's training step" in fast.reason
    assert resolve_precision("auto", cpu).dtype == torch.bfloat16  # no probe given: the matmul decides
    assert resolve_precision("off", cpu, step_speedup=lambda: 3.0).dtype is None


def test_step_probe_leaves_the_model_and_the_rng_alone():
    from alexnet.core.device import model_bf16_speedup

    torch.manual_seed(5)
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5), nn.Flatten(),
                      nn.LazyLinear(2))
    m(torch.randn(2, 3, 8, 8))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    state = torch.get_rng_state()
    r = model_bf16_speedup(m, (3, 8, 8), batch_size=4, rounds=1)
    assert r > 0 and torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())  # BN statistics too
    assert all(p.grad is None for p in m.parameters())


def test_evaluate_weights_lives_with_the_other_uses_of_a_trained_model():
    """`evaluate_weights` is in `alexnet.infer` (exported from `alexnet` too); it uses engine's evaluation
    loop, and engine never imports infer, so the two stay free of an import circle."""
    import ast
    from pathlib import Path

    import alexnet
    import alexnet.infer
    from alexnet.infer.evaluation import evaluate_weights

    assert alexnet.evaluate_weights is alexnet.infer.evaluate_weights is evaluate_weights
    engine = Path(alexnet.__file__).parent / "engine"
    for path in engine.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                mod = "." * node.level + (node.module or "")
                assert not (mod.startswith("..infer") or mod.startswith("alexnet.infer")), f"{path.name} imports {mod}"


def test_a_report_folder_that_cannot_be_written_is_one_line_before_or_after_evaluating(tmp_path, capsys, monkeypatch):
    import errno

    import alexnet.infer.evaluation as evaluation
    import alexnet.infer.report as report
    from alexnet.engine.train import fit

    run = fit(make_config("digits", epochs=1, batch_size=256, output_dir=str(tmp_path), name="r",
                          model_kwargs={"width": 0.125, "fc_width": 16}, amp="off")).run_dir
    (tmp_path / "afile").write_text("x")
    real = evaluation.evaluate_weights
    monkeypatch.setattr(evaluation, "evaluate_weights", lambda *a, **k: pytest.fail("evaluated before refusing"))
    capsys.readouterr()
    for bad, why in (("afile", "is a file"), ("afile/sub", "cannot make the folder")):
        assert main(["evaluate", str(run), "--report", str(tmp_path / bad)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --report") and why in err and "Traceback" not in err
    monkeypatch.setattr(evaluation, "evaluate_weights", real)

    def read_only(out, *a, **k):
        raise OSError(errno.EROFS, "Read-only file system", str(out) + "/metrics.json")

    monkeypatch.setattr(report, "write_report", read_only)
    assert main(["evaluate", str(run), "--report", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert "error: cannot write" in err and "the file system is read-only" in err and "Traceback" not in err


def test_a_runs_weights_file_is_scored_on_the_runs_own_hold_out(tmp_path, capsys):
    import shutil

    from alexnet.engine.train import fit

    run = fit(make_config("digits", epochs=1, batch_size=256, output_dir=str(tmp_path), name="r", val_split=0.05,
                          model_kwargs={"width": 0.125, "fc_width": 16}, amp="off")).run_dir
    capsys.readouterr()
    for weights in (run, run / "weights.safetensors"):  # the file finds its run's config.json beside it
        assert main(["evaluate", str(weights), "--data", "digits", "--json", "--amp", "off"]) == 0
        assert json.loads(capsys.readouterr().out)["centre_crop"]["n"] == 90  # 5 % of 1,797, not 10 %
    (tmp_path / "lone").mkdir()
    shutil.copy(run / "weights.safetensors", tmp_path / "lone")
    shutil.copy(run / "weights.json", tmp_path / "lone")
    assert main(["evaluate", str(tmp_path / "lone" / "weights.safetensors"), "--data", "digits", "--amp", "off"]) == 0
    assert "its own hold-out is unknown, so these may be images it trained on" in capsys.readouterr().err


def test_evaluate_scores_a_run_in_the_precision_it_chose_and_validated_in(tmp_path, monkeypatch):
    import csv

    from alexnet.engine.train import fit
    from alexnet.infer.evaluation import _run_amp, evaluate_weights

    cpu = torch.device("cpu")
    assert _run_amp("auto", {"precision": "fp32"}, cpu) == "off" and _run_amp("auto", {"precision": "bf16"}, cpu) == "bf16"
    assert _run_amp("auto", {"precision": "fp16"}, cpu) == "auto" and _run_amp("auto", {}, cpu) == "auto"
    assert _run_amp("bf16", {"precision": "fp32"}, cpu) == "bf16"  # asked for: as asked
    run = fit(make_config("digits", epochs=1, batch_size=256, output_dir=str(tmp_path), name="r", amp="off",
                          model_kwargs={"width": 0.125, "fc_width": 16})).run_dir
    assert json.loads((run / "config.json").read_text())["precision"] == "fp32"
    monkeypatch.setenv("ALEXNET_CPU_BF16", "1")  # --amp auto would pick bf16 on this CPU now
    last = list(csv.DictReader((run / "metrics.csv").open()))[-1]
    res = evaluate_weights(str(run), device="cpu")  # amp auto: the run's fp32
    assert res["centre"].top1 == pytest.approx(float(last["val_top1"]), abs=1e-3)
    assert res["centre"].loss == pytest.approx(float(last["val_loss"]), abs=1e-4)


class _Flat(nn.Module):
    """Every class scored alike: top-1 is decided by how ties are broken."""

    def __init__(self, classes: int):
        super().__init__()
        self.classes = classes
        self.p = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.zeros(x.shape[0], self.classes) + 0 * self.p


@pytest.mark.parametrize("label", [0, 4, 8])
def test_the_predicted_class_counts_are_the_top_1_that_is_scored(label):
    """On ties (a model that learnt nothing) the per-class prediction counts behind the "predicts
    one class for every image" warning name the class that top-1 scored, not another."""
    images = torch.zeros(6, 1, 28, 28, dtype=torch.uint8)
    labels = torch.full((6,), label)
    r = evaluate(_Flat(10), [(images, labels, [])], Identity(), Precision(None, False, ""), torch.device("cpu"))
    predicted = max(range(10), key=lambda i: r.pred_counts[i])
    assert r.pred_counts[predicted] == 6
    assert r.top1 == (100.0 if predicted == label else 0.0)


def test_a_run_that_held_nothing_out_says_so_and_its_zero_binds_no_other_data(tmp_path, write_image, capsys):
    """A run trained with --val-split 0: `evaluate RUN` says none were held out and what to do (it
    told the user to set a --val-split that evaluate does not take); its 0 does not stop other
    data's --split all (digits said "--val-split 0 leaves no validation images"), nor does
    `folder:` without a path make ": cannot list"."""
    _, weights = _tiny_weights(tmp_path, [str(i) for i in range(10)])
    for c in "ab":
        write_image(tmp_path / "data" / c / "0.png", size=(40, 40), seed=ord(c))
    (weights / "config.json").write_text(json.dumps({"data": f"folder:{tmp_path / 'data'}", "val_split": 0.0}))
    assert main(["evaluate", str(weights)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(--val-split 0), so none were held out" in err and "--split all" in err, err
    assert main(["evaluate", str(weights), "--data", "digits", "--split", "all", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["centre_crop"]["n"] == 1797
    assert main(["evaluate", str(weights), "--data", "folder:"]) == 2
    assert "folder: a path is needed" in capsys.readouterr().err


def test_val_split_0_on_data_with_its_own_validation_part_still_evaluates(tmp_path, write_image, capsys):
    """--val-split 0 only says what to do where the data has no validation part: a run on a folder
    with train/ and val/ validated on val/, and `evaluate RUN` scores val/; digits' `--split test`
    (an alias of val) gets the held-nothing-out line too."""
    _, weights = _tiny_weights(tmp_path, ["a", "b"])
    for part in ("train", "val"):
        for c in "ab":
            write_image(tmp_path / "data" / part / c / "0.png", size=(40, 40), seed=ord(c))
    (weights / "config.json").write_text(json.dumps({"data": f"folder:{tmp_path / 'data'}", "val_split": 0.0}))
    assert main(["evaluate", str(weights), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["centre_crop"]["n"] == 2  # val/'s two
    _, digits = _tiny_weights(tmp_path / "d", [str(i) for i in range(10)])
    (digits / "config.json").write_text(json.dumps({"data": "digits", "val_split": 0.0}))
    assert main(["evaluate", str(digits), "--split", "test"]) == 2
    assert "so none were held out" in capsys.readouterr().err
