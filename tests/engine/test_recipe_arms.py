"""The cifar10 recipe's arms in tools/airbench_steps.py (``--set cifar10-recipe``) against the runs they made,
committed in docs/runs/cifar10-recipe-arms: each arm's command gives the settings its runs recorded, and a replay arm
trains a recipe seed's own plan with one flag changed."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from alexnet.cli import build_parser
from alexnet.commands.train import config_from_args

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "docs/runs/cifar10-recipe-arms"
# what a run's config.json records of the recipe and the one change: each must be the arm's command's
SETTINGS = ("recipe", "model", "model_kwargs", "batch_size", "lr", "label_smoothing", "lookahead", "aug", "translate",
            "amp", "time_budget", "ten_crop", "weight_decay", "nesterov", "lr_scheduler")


def tool(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tools"))
    monkeypatch.chdir(ROOT)  # the committed runs, as the tool runs from the repository's root
    return importlib.import_module("airbench_steps")


def config_of(cmd: list[str]):
    return config_from_args(build_parser().parse_args(cmd[1:]))


def test_each_recipe_arms_command_gives_the_settings_its_committed_runs_recorded(monkeypatch):
    steps = tool(monkeypatch)
    arms = [a for a in steps.arm_set({"--set": "cifar10-recipe"})[1] if not a.replay]
    checked: dict[str, int] = {}
    for a in arms:  # in docs/runs/cifar10-recipe-arms and the folders of arms run on another machine or budget
        for folder in sorted(RUNS.parent.glob(f"cifar10-recipe*/{a.name}-s[0-9]")):
            recorded = json.loads((folder / "config.json").read_text())
            cfg = config_of(a.command("DATA", "OUT", recorded["seed"]))
            assert {k: getattr(cfg, k) for k in SETTINGS} == {k: recorded[k] for k in SETTINGS}, folder.name
            checked[a.name] = checked.get(a.name, 0) + 1
    assert set(checked) == {a.name for a in arms} and checked["recipe"] >= 3  # every arm has a run, the recipe three
    assert checked["r-now-40m"] == 3  # an arm committed in a folder of its own


def test_a_replay_arm_trains_on_the_recipe_seeds_own_plan_with_one_flag_changed(tmp_path, monkeypatch):
    steps = tool(monkeypatch)
    replays = {a.name: a for a in steps.arm_set({"--set": "cifar10-recipe"})[1] if a.replay}
    assert set(replays) == {"r-ls0-replay", "r-nolookahead-replay", "r-nolookahead-ls0-replay", "recipe-replay"}
    changed = {"r-ls0-replay": {"label_smoothing": 0.0}, "r-nolookahead-replay": {"lookahead": False},
               "r-nolookahead-ls0-replay": {"lookahead": False, "label_smoothing": 0.0}, "recipe-replay": {}}
    for (name, arm), seed in ((a, s) for a in replays.items() for s in (0, 1, 2, 3, 4)):
        # seeds after the recipe's three replay their plans in turn: seed 3 trains seed 0's steps at seed 3
        assert arm.replayed(seed) == Path(f"docs/runs/cifar10-recipe-arms/recipe-s{seed % 3}")
        recorded = json.loads((arm.replayed(seed) / "config.json").read_text())
        written = arm.write_replay("/data/cifar", tmp_path, seed)
        assert json.loads(written.read_text()) == {**recorded, "data": "cifar10:/data/cifar"}
        cmd = arm.command("/data/cifar", str(tmp_path), seed)
        assert cmd[:4] == ["alexnet", "train", "--config", str(written)] and "--data-path" not in cmd
        cfg = config_of(cmd)
        # the recorded plan is kept (not timed again on this machine): the same steps, schedule and epochs
        assert cfg.budget_plan == recorded["budget_plan"] and cfg.epochs == recorded["epochs"] > 20
        assert cfg.seed == seed and (seed < 3) == (recorded["seed"] == seed)
        same = ("lookahead", "label_smoothing", "lr", "batch_size", "aug", "model_kwargs")
        for key, value in changed[name].items():  # the one change (and lookahead's, for the arm on top of it)
            assert getattr(cfg, key) == value and recorded[key] != value
        same = tuple(k for k in same if k not in changed[name])
        assert {k: getattr(cfg, k) for k in same} == {k: recorded[k] for k in same}
        assert cfg.data == "cifar10:/data/cifar"
    bad = tmp_path / "bad"
    (bad / "x-s0").mkdir(parents=True)
    (bad / "x-s0" / "config.json").write_text(json.dumps({"data": "/home/me/cifar"}))
    wrong = steps.Arm("x", (), "", "relu", 512, 1, (), replay=str(bad / "x-s{plan}"))
    with pytest.raises(SystemExit, match="not a committed run's"):
        wrong.write_replay("/data", tmp_path, 0)
    with pytest.raises(SystemExit, match="not found"):
        wrong.write_replay("/data", tmp_path, 1)


def test_a_replay_arm_pairs_with_the_recipe_and_past_its_seeds_with_the_recipe_replayed(tmp_path, monkeypatch):
    steps = tool(monkeypatch)
    reference, arms = steps.arm_set({"--set": "cifar10-recipe"})
    for name, seed, flip in (("recipe", 0, 87.0), ("recipe", 1, 87.4), ("recipe", 2, 87.2),
                             ("recipe-replay", 3, 86.0), ("recipe-replay", 0, 50.0),  # s0: the recipe's own counts
                             ("r-ls0-replay", 0, 88.0), ("r-ls0-replay", 1, 88.0), ("r-ls0-replay", 2, 88.0),
                             ("r-ls0-replay", 3, 88.0), ("r-ls0-replay", 4, 88.0)):  # s4: nothing to pair with
        run = tmp_path / f"{name}-s{seed}"
        run.mkdir()
        score = {"top1": flip, "top5": 99.0, "loss": 0.3, "n": 5000}
        (run / "final.json").write_text(json.dumps({"centre": score, "ten_crop": score, "tta": None}))
        (run / "metrics.csv").write_text("epoch,step,time\n1,87,95.0\n")
    out = steps.summarize(tmp_path, tmp_path / "r.json", reference, arms)["arms"]
    by_seed = out["r-ls0-replay"]["flip_vs_reference"]["by_seed"]
    assert by_seed == pytest.approx({0: 1.0, 1: 0.6, 2: 0.8, 3: 2.0}) and out["r-ls0-replay"]["flip_vs_reference"]["n"] == 4
    # the recipe's own medians are its three seeds', not the replays'
    assert out["recipe"]["flip_median"] == pytest.approx(87.2) and "flip_vs_reference" not in out["recipe"]
    assert out["recipe-replay"]["flip_vs_reference"]["by_seed"] == {0: pytest.approx(-37.0)}


def test_an_arm_given_another_budget_elsewhere_pairs_by_seed_with_the_arm_it_names_there(tmp_path, monkeypatch):
    steps = tool(monkeypatch)
    reference, arms = steps.arm_set({"--set": "cifar10-recipe"})
    here, there = tmp_path / "here", tmp_path / "there"
    for out, name, seed, flip, wall in ((here, "r-now-40m", 0, 88.0, 2300.0), (here, "r-now-40m", 1, 88.5, 2310.0),
                                        (here, "r-now-40m", 2, 87.5, 2320.0), (there, "r-nolookahead-replay", 0, 87.5,
                                                                               1190.0),
                                        (there, "r-nolookahead-replay", 1, 88.0, 1200.0),
                                        (there, "r-now-40m", 0, 10.0, 1.0)):  # a run of the same name is not the pair
        run = out / f"{name}-s{seed}"
        run.mkdir(parents=True)
        score = {"top1": flip, "top5": 99.0, "loss": 0.3, "n": 5000}
        (run / "final.json").write_text(json.dumps({"centre": score, "ten_crop": score, "tta": None}))
        (run / "metrics.csv").write_text("epoch,step,time\n1,87,95.0\n")
        (run / "run.json").write_text(json.dumps({"wall_s": wall}))
    row = steps.summarize(here, tmp_path / "r.json", reference, arms, against=there)["arms"]["r-now-40m"]
    assert row["against_arm"] == "r-nolookahead-replay"
    assert row["vs_against"]["flip"]["by_seed"] == pytest.approx({0: 0.5, 1: 0.5})  # seed 2 has no pair there
    assert row["vs_against"]["wall_s"]["by_seed"] == pytest.approx({0: 1110.0, 1: 1110.0})
