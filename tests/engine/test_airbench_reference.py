"""The cifar10-airbench reference recipe's parts (docs/cifar10.md, "The reference: airbench94's
choices"): alexnet-cifar-fast's ``act`` (GELU, ReLU by default with nothing else changed), airbench's
test-time augmentation (``--tta``) against a direct re-implementation of airbench94's ``infer``,
fractional epochs (``--train-epochs``), the recipe's values, and a tiny run with the recipe."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import statistics
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

from alexnet.core.errors import UserError
from alexnet.engine import make_config
from alexnet.engine.train import fit
from alexnet.engine.tta import TTA_VIEWS, AirbenchTTA, airbench_views
from alexnet.models import build_model
from conftest import write_colour_classes

TINY = {"widths": [8, 8, 8]}
TOOLS = Path(__file__).resolve().parents[2] / "tools"


# ----------------------------------------------------------------------------- the activation

def test_act_gelu_changes_only_the_activation_and_relu_stays_the_default():
    x = torch.randn(4, 3, 32, 32)
    nets = {}
    for name, kw in (("default", {}), ("relu", {"act": "relu"}), ("gelu", {"act": "gelu"})):
        torch.manual_seed(0)
        nets[name] = build_model("alexnet-cifar-fast", **TINY, **kw).eval()
    default, relu, gelu = nets["default"], nets["relu"], nets["gelu"]
    sd, sg = default.state_dict(), gelu.state_dict()
    assert list(sd) == list(relu.state_dict()) == list(sg)  # the same parameters and buffers ...
    assert all(torch.equal(sd[k], sg[k]) for k in sd)  # ... drawn the same: only the nonlinearity differs
    acts = lambda m, t: sum(isinstance(mod, t) for mod in m.modules())  # noqa: E731
    assert acts(default, nn.ReLU) == 7 and acts(default, nn.GELU) == 0
    assert acts(gelu, nn.GELU) == 7 and acts(gelu, nn.ReLU) == 0  # after the whitening and all six BNs
    with torch.no_grad():
        assert torch.equal(default(x), relu(x))
        assert not torch.allclose(default(x), gelu(x), atol=1e-4)
    with pytest.raises(UserError, match="act must be one of relu, gelu"):
        build_model("alexnet-cifar-fast", act="tanh")


# ----------------------------------------------------------------------------- airbench's TTA

def airbench_infer(inputs: torch.Tensor, net: nn.Module, level: int) -> torch.Tensor:
    """airbench94's ``infer`` (legacy/airbench94.py, l. 317-334), as tools/airbench94_cpu.py keeps it (its
    logits returned in fp32)."""
    spec = importlib.util.spec_from_file_location("airbench94_cpu", TOOLS / "airbench94_cpu.py")
    airbench94 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(airbench94)
    return airbench94.infer(net, SimpleNamespace(normalize=lambda x: x, images=inputs), level, amp="fp32")


def test_tta_views_and_weights_are_airbenchs():
    torch.manual_seed(0)
    # a net that sees position and side: flips and shifts change its logits
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 32 * 32, 10)).double().eval()
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        for level in (0, 1, 2):
            ours = AirbenchTTA(net, level)(x)
            ref = airbench_infer(x, net, level)
            assert torch.allclose(ours.float(), ref, atol=1e-6), level
            assert len(airbench_views(x, level)) == (TTA_VIEWS[level] or 1)  # 0: no extra pass
        # the six views differ from each other, and equal weights would give another answer
        views = airbench_views(x, 2)
        assert sum(w for w, _ in views) == 1.0
        assert all(not torch.equal(views[i][1], views[j][1]) for i in range(6) for j in range(i))
        uniform = torch.stack([net(v) for _, v in views]).mean(0)
        assert not torch.allclose(uniform.float(), airbench_infer(x, net, 2), atol=1e-5)
        # up-left: the pixel at (1, 1) of the view is the image's (0, 0); down-right the reverse
        assert torch.equal(views[2][1][..., 1:, 1:], x[..., :-1, :-1])
        assert torch.equal(views[4][1][..., :-1, :-1], x[..., 1:, 1:])


# ----------------------------------------------------------------------------- the recipe

def test_the_recipe_is_airbench94s_numbers():
    cfg = make_config("cifar10-airbench")
    assert cfg.model == "alexnet-cifar-fast" and cfg.model_kwargs == {"act": "gelu"}
    assert (cfg.epochs, cfg.train_epochs, cfg.batch_size) == (10, 9.9, 1024)
    kilostep = 1024 * (1 + 1 / (1 - 0.85))  # airbench94 l. 359-362, on a summed loss; ours is the mean
    assert cfg.lr == pytest.approx(11.5 / kilostep * 1024)
    assert cfg.weight_decay * cfg.lr == pytest.approx(0.0153 * 1024 / kilostep)  # decay per step
    assert cfg.bias_weight_decay * cfg.lr * cfg.bias_lr_mult == pytest.approx(0.0153 * 1024 / kilostep)
    assert (cfg.momentum, cfg.nesterov, cfg.bias_lr_mult, cfg.label_smoothing) == (0.85, True, 64.0, 0.2)
    assert (cfg.lr_scheduler, cfg.aug, cfg.translate, cfg.lookahead, cfg.tta) == ("linear", "flip-translate", 2, True, 2)
    m = build_model(cfg.model, **cfg.model_kwargs)
    assert (m.whiten_bias_epochs, m.classifier.scale.factor, m.features.norm1a.momentum) == (3, 1 / 9, 0.4)
    # cifar10-fast is untouched: no TTA, whole epochs, ReLU
    fast = make_config("cifar10-fast")
    assert (fast.tta, fast.train_epochs, fast.model_kwargs, fast.epochs) == (0, 0.0, {}, 16)


def test_fractional_epochs_give_way_to_epochs_and_budgets():
    assert make_config("cifar10-airbench", epochs=16).train_epochs == 0.0
    assert make_config("cifar10-airbench", epochs=16).epochs == 16
    assert make_config("cifar10-airbench", time_budget="10m").train_epochs == 0.0
    assert make_config("cifar10-fast", train_epochs=2.5).epochs == 3
    with pytest.raises(UserError, match="--train-epochs"):
        make_config("cifar10-fast", train_epochs=2.5, epochs=4)
    with pytest.raises(UserError, match="--tta must be 0"):
        make_config("cifar10-fast", tta=3)


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory):
    """10 classes × 10 32×32 PNGs, each class its own mean colour."""
    return write_colour_classes(tmp_path_factory.mktemp("colours"), "png", seed=1, noise=25)


def test_a_tiny_run_with_the_recipe_ends_at_the_fractional_step_and_scores_the_six_views(colour_folder, tmp_path,
                                                                                          capsys):
    cfg = make_config("cifar10-airbench", data=f"folder:{colour_folder}", batch_size=16, train_epochs=2.5,
                      model_kwargs={"act": "gelu", **TINY}, amp="off", workers=0, val_split=0.2,
                      output_dir=str(tmp_path), name="ab", report_at=[])
    res = fit(cfg)
    steps_per_epoch = 80 // 16
    assert res.steps_done == 13 == math.ceil(2.5 * steps_per_epoch)  # the third epoch cut short
    assert res.epochs_done == 3
    rows = list(csv.DictReader(open(tmp_path / "ab" / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [5, 10, 13]
    # the schedule was laid out over the 13 steps: its last step (12) at 1 − 0.93 · (12 − 2) / (13 − 2)
    assert float(rows[-1]["lr"]) == pytest.approx(cfg.lr * (1 - 0.93 * 10 / 11))
    final = json.loads((tmp_path / "ab" / "final.json").read_text())
    assert final["tta_level"] == 2 and final["tta"]["n"] == 20 and final["ten_crop"] is None
    assert "airbench's test-time augmentation (--tta 2, 6 views" in capsys.readouterr().out
    saved = json.loads((tmp_path / "ab" / "config.json").read_text())
    assert saved["train_epochs"] == 2.5 and saved["epochs"] == 3 and saved["model_kwargs"]["act"] == "gelu"


def _fake_runs(out, runs, tta: bool = True) -> None:
    """A run folder per (arm, seed, top-1): the final.json and metrics.csv the steps tool reads."""
    for name, seed, flip in runs:
        run = out / f"{name}-s{seed}"
        run.mkdir()
        score = {"top1": flip, "top5": 99.0, "loss": 0.3, "n": 5000}
        (run / "final.json").write_text(json.dumps({"centre": score, "ten_crop": score, "tta": score if tta else None}))
        (run / "metrics.csv").write_text("epoch,step,time\n1,43,50.5\n")


def test_the_steps_tool_pairs_each_arm_with_the_reference_by_seed(tmp_path, monkeypatch):
    import importlib
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "tools"))
    steps = importlib.import_module("airbench_steps")  # tools/airbench_steps.py (plain Python)
    arms = {a.name: a for a in steps.ARMS}
    assert arms["airbench"].command("D", "O", 1)[:4] == ["alexnet", "train", "--recipe", "cifar10-airbench"]
    _fake_runs(tmp_path, (("airbench", 0, 93.0), ("airbench", 1, 93.4), ("ab-relu", 0, 92.0), ("ab-relu", 1, 92.6)))
    out = steps.summarize(tmp_path, tmp_path / "r.json")
    diff = out["arms"]["ab-relu"]["flip_vs_reference"]
    assert diff["n"] == 2 and diff["mean"] == pytest.approx(-0.9)  # (92.0 − 93.0 + 92.6 − 93.4) / 2
    assert out["arms"]["airbench"]["tta_mean"] == pytest.approx(93.2)
    run = tmp_path / "airbench-s0"  # scored three ways apart: centre 89, flip-averaged 90, TTA 90.5
    final = json.loads((run / "final.json").read_text())
    for key, top1 in (("centre", 89.0), ("ten_crop", 90.0), ("tta", 90.5)):
        final[key] = {**final[key], "top1": top1}
    (run / "final.json").write_text(json.dumps(final))
    row = steps.summarize(tmp_path, tmp_path / "r.json")["arms"]["airbench"]
    assert (row["flip_gain"]["n"], row["tta_gain"]["n"]) == (2, 2)
    assert row["flip_gain"]["mean"] == pytest.approx(0.5) and row["tta_gain"]["mean"] == pytest.approx(0.25)


def test_the_steps_tool_pairs_each_arm_with_its_own_runs_elsewhere_by_seed(tmp_path, monkeypatch):
    """--against OTHER: the same arm × seed run on another CPU or code version, paired by seed, and only those."""
    import importlib
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "tools"))
    steps = importlib.import_module("airbench_steps")
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir(), there.mkdir()
    _fake_runs(here, (("r-nolookahead", 0, 82.8), ("r-nolookahead", 1, 82.5), ("r-nolookahead", 2, 82.7),
                      ("recipe", 0, 81.0)))
    _fake_runs(there, (("r-nolookahead", 0, 82.6), ("r-nolookahead", 1, 82.5), ("r-nolookahead", 3, 70.0)))
    for folder, wall, last_step in ((here / "r-nolookahead-s0", 1191.5, 1065),
                                    (there / "r-nolookahead-s0", 1184.0, 1030)):
        (folder / "run.json").write_text(json.dumps({"wall_s": wall}))
        (folder / "metrics.csv").write_text(f"epoch,step,time\n1,{last_step},90.0\n")
    reference, arms = steps.arm_set({"--set": "cifar10-recipe"})
    assert steps.main(["summarize", str(here), str(tmp_path / "r.json"), "--set", "cifar10-recipe",
                       "--against", str(there)]) == 0
    out = json.loads((tmp_path / "r.json").read_text())
    row = out["arms"]["r-nolookahead"]["vs_against"]
    assert out["against"] == there.as_posix()
    assert row["flip"]["by_seed"] == {"0": pytest.approx(0.2), "1": pytest.approx(0.0)}  # seeds 2 and 3 unpaired
    assert row["flip"]["mean"] == pytest.approx(0.1) and row["centre"]["n"] == 2
    assert row["wall_s"]["by_seed"] == {"0": pytest.approx(7.5)} and row["steps"]["by_seed"]["0"] == 35
    assert "vs_against" not in out["arms"]["recipe"]  # no runs of it there
    assert out["machines"] == []  # these runs' run.json name none
    (here / "recipe-s0" / "run.json").write_text(json.dumps({"wall_s": 1.0, "machine": {"cpu": "X", "cores": 2}}))
    mine = steps.summarize(here, tmp_path / "r3.json", reference, arms)
    assert mine["machines"] == [{"cores": 2, "cpu": "X"}] and "machine" not in mine["arms"]["recipe"]["seeds"][0]
    assert "vs_against" not in steps.summarize(here, tmp_path / "r2.json", reference, arms)["arms"]["r-nolookahead"]
    with pytest.raises(SystemExit, match="--against .*nope: no such folder of runs"):
        steps.main(["summarize", str(here), str(tmp_path / "r.json"), "--set", "cifar10-recipe",
                    "--against", str(tmp_path / "nope")])


def test_every_committed_steps_summary_names_the_machines_its_runs_ran_on():
    from pathlib import Path

    results = Path(__file__).resolve().parents[2] / "docs" / "results"
    summaries = [json.loads(p.read_text()) for p in sorted(results.glob("*.json"))]
    summaries = [s for s in summaries if "reference" in s and "arms" in s]
    assert len(summaries) >= 8 and all(s["machines"] and all(m.get("cpu") for m in s["machines"]) for s in summaries)


def test_the_steps_tool_has_the_cifar10_search_with_c1_as_its_reference(tmp_path, monkeypatch, capsys):
    import importlib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    monkeypatch.syspath_prepend(str(root / "tools"))
    steps = importlib.import_module("airbench_steps")
    reference, arms = steps.arm_set({"--set": "cifar10"})
    assert reference == "c1" and arms[0].name == "c1" and (root / arms[0].flags[1]).is_file()  # the committed config
    for a in arms:  # a --model-arg replaces the config's model arguments: each keeps batch norm
        if "--model-arg" in a.flags:
            assert "norm=batch" in a.flags, a.name
    _fake_runs(tmp_path, (("c1", 0, 85.5), ("c1", 1, 85.1), ("c1-24ep", 0, 86.5), ("c1-24ep", 1, 86.3)), tta=False)
    assert steps.main(["summarize", str(tmp_path), str(tmp_path / "r.json"), "--set", "cifar10"]) == 0
    out = json.loads((tmp_path / "r.json").read_text())
    assert out["reference"] == "c1" and out["arms"]["c1-24ep"]["flip_vs_reference"]["mean"] == pytest.approx(1.1)
    with pytest.raises(SystemExit, match="unknown set"):
        steps.main(["list", "--set", "nope"])
    with pytest.raises(SystemExit, match="run needs DATA OUT, got DIR"):
        steps.main(["run", "DIR", "--set", "cifar10"])


def test_the_steps_tool_has_the_cifar10_recipe_and_its_ablation_each_one_change_away(tmp_path, monkeypatch):
    import importlib
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "tools"))
    steps = importlib.import_module("airbench_steps")
    reference, arms = steps.arm_set({"--set": "cifar10-recipe"})
    base = ["alexnet", "train", "--recipe", "cifar10", "--time-budget", "20m"]
    assert reference == "recipe" and arms[0].command("D", "O", 0)[:6] == base
    for a in (a for a in arms[1:] if not a.replay):  # the recipe and its budget, then the one change
        if a.flags[3] != "20m":  # the one change is the budget: the recipe as it now stands, given longer
            assert list(a.flags) == [*base[2:5], a.flags[3]], a.name
            continue
        assert list(a.flags[:4]) == base[2:] and len(a.flags) > 4, a.name
        if "--model-arg" in a.flags:  # replaces the recipe's model arguments: batch norm stays
            assert "norm=batch" in a.flags, a.name
    _fake_runs(tmp_path, (("recipe", 0, 87.5), ("recipe", 1, 86.9), ("recipe", 2, 87.2), ("r-ls0", 0, 86.0)), tta=False)
    out = steps.summarize(tmp_path, tmp_path / "r.json", reference, arms)
    row = out["arms"]["recipe"]
    assert row["flip_median"] == pytest.approx(87.2) and row["flip_range"] == [86.9, 87.5]
    assert row["flip_mean"] == pytest.approx(87.2)  # the same here; the median differs below
    _fake_runs(tmp_path, (("recipe", 3, 80.0),), tta=False)
    row = steps.summarize(tmp_path, tmp_path / "r.json", reference, arms)["arms"]["recipe"]
    assert row["flip_median"] == pytest.approx((86.9 + 87.2) / 2) and row["flip_mean"] == pytest.approx(85.4)
    assert out["arms"]["r-ls0"]["flip_vs_reference"]["mean"] == pytest.approx(-1.5)
    assert out["arms"]["recipe"]["flip_gain"]["mean"] == 0  # the fake runs score centre = flip


def test_the_airbench95_arm_is_airbench95s_numbers_on_the_reference_with_the_same_decay_per_step(monkeypatch):
    """legacy/airbench95.py: widths 128-384-384, 'lr': 10.0 per 1024 decoupled, 'weight_decay': 0.0153 (the
    same as airbench94), GELU, 15 epochs, everything else the reference's."""
    import importlib
    from pathlib import Path

    from alexnet.cli import build_parser
    from alexnet.commands.train import config_from_args

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "tools"))
    steps = importlib.import_module("airbench_steps")
    arm = {a.name: a for a in steps.ARMS}["ab95"]
    argv = arm.command("DATA", "OUT", 0)[2:]  # after "alexnet train"
    cfg = config_from_args(build_parser().parse_args(["train", *argv]))
    ref = make_config("cifar10-airbench")
    kilostep = 1024 * (1 + 1 / (1 - 0.85))
    assert cfg.model == "alexnet-cifar-fast" and cfg.model_kwargs == {"act": "gelu", "widths": [128, 384, 384]}
    assert cfg.lr == pytest.approx(10.0 / kilostep * 1024)
    assert cfg.weight_decay * cfg.lr == pytest.approx(ref.weight_decay * ref.lr)  # decay per step unchanged
    assert cfg.bias_weight_decay * cfg.lr * cfg.bias_lr_mult == pytest.approx(
        ref.bias_weight_decay * ref.lr * ref.bias_lr_mult)
    assert (cfg.epochs, cfg.train_epochs, cfg.tta) == (15, 0.0, 2)
    for field in ("batch_size", "momentum", "nesterov", "bias_lr_mult", "label_smoothing", "lr_scheduler", "aug",
                  "translate", "lookahead", "amp"):
        assert getattr(cfg, field) == getattr(ref, field), field


def test_the_steps_tool_compares_the_reference_with_cifar10_fasts_own_seeds_unpaired(tmp_path, monkeypatch):
    import importlib
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "tools"))
    steps = importlib.import_module("airbench_steps")
    w = steps.welch([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])  # each variance 1/3 over 3: se √(2/3), 4 degrees of freedom
    assert w["mean"] == pytest.approx(-1.0) and w["df"] == pytest.approx(4.0)
    assert w["half_width"] == pytest.approx(2.7764451 * math.sqrt(2 / 3))  # t(0.975, 4)
    a, b = [1.0, 1.2, 3.0], [2.0, 2.0, 2.1]  # unequal spreads: about 2 degrees of freedom, not 4
    se = math.sqrt(statistics.variance(a) / 3 + statistics.variance(b) / 3)
    w = steps.welch(a, b)
    from scipy.stats import t

    assert 2 <= w["df"] < 3 and w["half_width"] == pytest.approx(t.ppf(0.975, w["df"]) * se)  # at its own df
    assert w["half_width"] > 4.0 * se  # far wider than 4 degrees of freedom's 2.78 · se
    runs = tmp_path / "runs"
    runs.mkdir()
    _fake_runs(runs, (("airbench", 0, 90.0), ("airbench", 1, 90.4), ("airbench", 2, 90.2)))
    fast = tmp_path / "fast.json"
    fast.write_text(json.dumps({"seeds": [{"seed": s, "flip_averaged": v} for s, v in enumerate((91.0, 90.9, 91.1))]}))
    out = steps.summarize(runs, tmp_path / "r.json", fast_seeds=fast)["reference_vs_cifar10_fast_seeds"]
    assert out["flip"]["mean"] == pytest.approx(-0.8) and out["flip"]["n"] == [3, 3]
    assert out["flip"]["high"] < 0  # 0.1–0.2 spread, 0.8 between: the interval excludes 0
    assert out["cifar10_fast_flip"] == [91.0, 90.9, 91.1] and out["reference_tta"] == [90.0, 90.4, 90.2]
    steps.summarize(runs, tmp_path / "r.json", fast_seeds=None)
    assert "reference_vs_cifar10_fast_seeds" not in json.loads((tmp_path / "r.json").read_text())


def test_every_arm_is_compared_with_cifar10_fasts_own_seeds_when_its_base_was_not_rerun(tmp_path, monkeypatch):
    """An arm of cifar10-fast (GELU) with three seeds and cifar10-fast itself at one: by seed it has one pair, so
    its interval comes from the committed seeds, unpaired."""
    import importlib
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "tools"))
    steps = importlib.import_module("airbench_steps")
    _fake_runs(tmp_path, (("airbench", 0, 90.0), ("fast", 0, 90.5), ("fast-gelu", 0, 91.0), ("fast-gelu", 1, 91.2),
                          ("fast-gelu", 2, 91.1)))
    fast = tmp_path / "fast.json"
    fast.write_text(json.dumps({"seeds": [{"seed": s, "flip_averaged": v} for s, v in enumerate((90.4, 90.6, 90.5))]}))
    arms = steps.summarize(tmp_path, tmp_path / "r.json", fast_seeds=fast)["arms"]
    got = arms["fast-gelu"]["flip_vs_cifar10_fast_seeds"]
    assert got["n"] == [3, 3] and got["mean"] == pytest.approx(0.6) and got["low"] > 0
    assert arms["fast-gelu"]["flip_vs_base"]["n"] == 1  # one shared seed: no interval by seed
    assert arms["fast-gelu"]["flip_vs_base"]["by_seed"] == {0: pytest.approx(0.5)}
    assert arms["fast-gelu"]["flip_vs_base_runs"]["n"] == [3, 1]  # all its seeds against the base's one run
    assert arms["fast-gelu"]["flip_vs_base_runs"]["mean"] == pytest.approx(0.6)
    assert arms["fast"]["flip_vs_cifar10_fast_seeds"]["n"] == [1, 3]  # one run: a difference, no interval
    assert math.isnan(arms["fast"]["flip_vs_cifar10_fast_seeds"]["half_width"])
    assert "flip_vs_cifar10_fast_seeds" not in steps.summarize(tmp_path, tmp_path / "r.json")["arms"]["fast-gelu"]


def test_cifar10_fasts_own_arms_are_also_compared_with_cifar10_fast_by_seed(tmp_path, monkeypatch):
    import importlib
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "tools"))
    steps = importlib.import_module("airbench_steps")
    _fake_runs(tmp_path, (("airbench", 0, 90.0), ("fast", 0, 90.6), ("fast-gelu", 0, 90.9), ("ab-relu", 0, 89.8)))
    out = steps.summarize(tmp_path, tmp_path / "r.json")["arms"]
    assert out["fast-gelu"]["base"] == "fast" and out["fast-gelu"]["flip_vs_base"]["mean"] == pytest.approx(0.3)
    assert out["fast-gelu"]["flip_vs_reference"]["mean"] == pytest.approx(0.9)
    assert "base" not in out["ab-relu"] and out["ab-relu"]["flip_vs_reference"]["mean"] == pytest.approx(-0.2)


def test_a_timed_runs_machine_record_tells_two_cpus_of_one_name_apart(monkeypatch):
    """run.json's machine: the CPU's family, model number and clock beside its name ("AMD EPYC" named two
    machines whose epochs took 46 s and 85 s)."""
    import importlib
    import re
    from pathlib import Path

    info = Path("/proc/cpuinfo")
    if not info.is_file() or "cpu family" not in info.read_text():
        pytest.skip("no /proc/cpuinfo with a cpu family (not Linux on x86)")
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "tools"))
    record = importlib.import_module("ema_measure").machine()
    text = info.read_text()
    family = re.search(r"^cpu family\s*:\s*(\S+)", text, re.M).group(1)
    model = re.search(r"^model\s*:\s*(\S+)", text, re.M).group(1)  # not "model name"
    assert record["cpu_id"] == f"family {family} model {model}"
    mhz = re.search(r"^cpu MHz\s*:\s*(\S+)", text, re.M)
    assert record["cpu_mhz"] == (round(float(mhz.group(1))) if mhz else 0)


def test_the_half_hour_arm_is_the_reference_planned_to_30_minutes_and_paired_with_16_epochs(tmp_path, monkeypatch):
    import importlib
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "tools"))
    steps = importlib.import_module("airbench_steps")
    arms = {a.name: a for a in steps.ARMS}
    assert arms["ab-30m"].flags == (*arms["airbench"].flags, "--time-budget", "30m")  # only the budget added
    assert arms["ab-30m"].common == arms["airbench"].common
    assert arms["ab-30m"].estimate_min() == pytest.approx(30.0)  # its estimate is the budget it is given
    _fake_runs(tmp_path, (("airbench", 0, 90.0), ("airbench", 1, 90.4), ("ab-16ep", 0, 91.4), ("ab-16ep", 1, 91.1),
                          ("ab-30m", 0, 91.2), ("ab-30m", 1, 91.4)))
    row = steps.summarize(tmp_path, tmp_path / "r.json")["arms"]["ab-30m"]
    assert row["base"] == "ab-16ep" and row["flip_vs_base"]["by_seed"] == {0: pytest.approx(-0.2), 1: pytest.approx(0.3)}
    assert row["flip_vs_reference"]["mean"] == pytest.approx(1.1)  # (1.2 + 1.0) / 2


def test_gelu_at_equal_time_is_two_arms_planned_to_15_minutes_and_paired_by_seed(tmp_path, monkeypatch):
    import importlib
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "tools"))
    steps = importlib.import_module("airbench_steps")
    arms = {a.name: a for a in steps.ARMS}
    assert arms["fast-15m"].flags == (*arms["fast"].flags, "--time-budget", "15m")
    assert arms["fast-gelu-15m"].flags == (*arms["fast-gelu"].flags, "--time-budget", "15m")  # GELU the one change
    assert arms["fast-15m"].estimate_min() == pytest.approx(15.0) == arms["fast-gelu-15m"].estimate_min()
    _fake_runs(tmp_path, (("fast-15m", 0, 90.0), ("fast-15m", 1, 90.4), ("fast-gelu-15m", 0, 90.5),
                          ("fast-gelu-15m", 1, 90.2)))
    row = steps.summarize(tmp_path, tmp_path / "r.json")["arms"]["fast-gelu-15m"]
    assert row["base"] == "fast-15m" and row["flip_vs_base"]["mean"] == pytest.approx(0.15)  # (0.5 − 0.2) / 2



def test_every_committed_result_is_json_any_parser_reads():
    """No bare NaN (one seed, no spread): null, which jq and every strict parser read."""
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "docs"
    bad = []
    for p in sorted(docs.rglob("*.json")):
        try:
            json.loads(p.read_text(), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
        except ValueError as e:
            bad.append(f"{p.relative_to(docs)}: {e}")
    assert not bad, bad
