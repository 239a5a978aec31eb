"""The four claims tested as the paper states them (relu-vs-tanh, lrn, dropout, towers): their
summaries on hand-made runs where the right verdict and a wrong one differ, the rate grid's
choice of which runs to train, and the one-GPU net's half kernels."""

from __future__ import annotations

import json
import math

import pytest

from alexnet import experiments
from alexnet.experiments import dropout, grid, lrn, relu_vs_tanh, towers
from alexnet.experiments.runs import RunResult
from alexnet.experiments.verdict import ratio_interval
from alexnet.experiments.stats import verdict_word


def run(arm, seed, *, train=None, val=None, loss=None, extra=None, run_dir="/nonexistent"):
    """A finished run: per-epoch training errors ``train`` and validation errors ``val`` (%)."""
    n = len(train or val)
    train = train or [50.0] * n
    val = val or [50.0] * n
    loss = loss or [2.0 - 0.01 * i for i in range(n)]
    return RunResult(arm, seed, run_dir, [
        {"epoch": i + 1, "train_top1": 100 - train[i], "val_top1": 100 - val[i], "val_top5": 100 - val[i] / 3,
         "train_loss": loss[i], "time": 10.0, "img_per_s": 100.0} for i in range(n)], extra or {})


def reach(epoch: int, n: int = 12) -> list[float]:
    """Training errors that cross 25 % exactly at ``epoch`` (30 % before, 20 % from then on)."""
    return [30.0 + (epoch - 1 - i) if i < epoch - 1 else 20.0 for i in range(n)]


MODULES = {"relu-vs-tanh": relu_vs_tanh, "lrn": lrn, "dropout": dropout, "towers": towers}


def summary(name, results):
    """The module's own summarize: (rows, verdict, notes, comparisons)."""
    return MODULES[name].summarize(experiments.get(name), results)


# ------------------------------------------------------------------------------------------ relu-vs-tanh

def relu_tanh_runs(relu_best: float, *, relu_epochs=(3, 3, 4), tanh_epochs=(8, 9, 9)) -> list[RunResult]:
    """Seed 0 at rates 0.001, 0.002, 0.004 for each activation; seeds 1, 2 at the best rate.
    ReLU's fastest is ``relu_best``, tanh's 0.002."""
    out = []
    for act, best, eps in (("ReLU", relu_best, relu_epochs), ("tanh", 0.002, tanh_epochs)):
        for lr in (0.001, 0.002, 0.004):
            out.append(run(f"{act} lr {lr:g}", 0, train=reach(eps[0] if lr == best else eps[0] + 3)))
        out += [run(f"{act} lr {best:g}", s, train=reach(eps[s])) for s in (1, 2)]
    return out


def test_relu_vs_tanh_reproduces_with_the_ratio_and_its_interval():
    rows, verdict, notes, (c,) = summary("relu-vs-tanh", relu_tanh_runs(0.002))
    relu = [relu_vs_tanh.epochs_to(reach(e)) for e in (3, 3, 4)]
    tanh = [relu_vs_tanh.epochs_to(reach(e)) for e in (8, 9, 9)]
    ratio, lo, hi = ratio_interval(tanh, relu)
    assert lo > 1 and c.verdict == "reproduces" and c.n == (3, 3)
    # the paper's 6× above the interval: the direction reproduces, the size does not
    assert verdict.startswith("reproduces the direction, not the size: ReLU reached 25 % training error in "
                              "fewer epochs than tanh")
    assert verdict_word(verdict) == "reproduces the direction, not the size"
    assert f"tanh/ReLU = {ratio:.2f}× (95 % CI [{lo:.2f}, {hi:.2f}]×" in verdict
    assert hi < 6 and f"the paper's 6× is {6 / ratio:.1f} times ours, above the interval" in verdict
    assert [r["activation"] for r in rows] == ["ReLU", "tanh"] and rows[0]["seeds"] == 3
    assert rows[0]["runs that reached 25 %"] == "3 of 3"
    assert any(n.startswith("tanh, seed 0, epochs to 25 % by rate: 0.001: ") for n in notes)


def test_relu_vs_tanh_reproduces_outright_when_the_papers_six_is_inside_the_interval():
    _, verdict, _, (c,) = summary("relu-vs-tanh", relu_tanh_runs(0.002, relu_epochs=(1.2, 1.5, 1.8),
                                                                  tanh_epochs=(8, 9, 10)))
    assert c.verdict == "reproduces" and "the paper's 6× lies inside the interval" in verdict
    assert verdict.startswith("reproduces: ") and verdict_word(verdict) == "reproduces"


def test_relu_vs_tanh_best_rate_at_the_grid_edge_is_inconclusive():
    _, verdict, _, (c,) = summary("relu-vs-tanh", relu_tanh_runs(0.004))  # the largest rate tried
    assert c.verdict == "reproduces"  # the numbers alone would say so ...
    assert verdict.startswith("inconclusive: ReLU's fastest rate (0.004) is the largest one tried")  # ... not here


def test_relu_vs_tanh_says_when_no_rate_reached_the_target_not_that_one_was_fastest():
    """No rate got to 25 % (a short run): the rate kept is the lowest final error's, and the note says
    so, instead of naming it the fastest."""
    out = []
    for act in ("ReLU", "tanh"):
        for lr, final in ((0.001, 40.0), (0.002, 35.0), (0.004, 30.0)):
            out += [run(f"{act} lr {lr:g}", s, train=[60.0, 50.0, final]) for s in ((0, 1, 2) if lr == 0.004 else (0,))]
    _, verdict, _, _ = summary("relu-vs-tanh", out)
    assert "fastest rate" not in verdict
    assert "no rate of tanh's reached 25 % training error, and the one with the lowest final error (0.004)" in verdict


def test_relu_vs_tanh_leaves_out_a_diverged_run_and_one_that_never_got_there():
    results = relu_tanh_runs(0.002)
    bad = next(r for r in results if r.arm == "tanh lr 0.002" and r.seed == 2)
    bad.epochs[-1]["train_loss"] = math.nan  # diverged
    slow = next(r for r in results if r.arm == "ReLU lr 0.002" and r.seed == 1)
    for row in slow.epochs:
        row["train_top1"] = 100 - 40.0  # never reached 25 %
    rows, verdict, notes, (c,) = summary("relu-vs-tanh", results)
    assert c.n == (2, 2) and len(c.excluded) == 2
    assert c.excluded[0].startswith("ReLU lr 0.002, seed 1: did not reach 25 % training error in 12 epochs")
    assert c.excluded[1].startswith("tanh lr 0.002, seed 2: diverged")
    assert rows[1]["runs that reached 25 %"] == "2 of 3" and notes[-1].startswith("left out of the ratio")


def test_relu_vs_tanh_one_seed_has_no_interval():
    results = [r for r in relu_tanh_runs(0.002) if r.seed == 0]
    _, verdict, _, (c,) = summary("relu-vs-tanh", results)
    assert math.isnan(c.low) and verdict.startswith("inconclusive: fewer than two usable runs of ReLU and tanh")


def test_relu_vs_tanh_an_unstable_rate_is_not_chosen():
    by_rate = {0.001: run("ReLU lr 0.001", 0, train=reach(6)), 0.002: run("ReLU lr 0.002", 0, train=reach(4)),
               0.004: run("ReLU lr 0.004", 0, train=reach(2), loss=[2.0] + [2.5] * 11)}  # fastest, but unstable
    assert relu_vs_tanh.choose_rate(by_rate) == 0.002


def test_grid_trains_seed_0_everywhere_then_only_the_best_rates(monkeypatch, tmp_path):
    """Seeds after 0 train each activation's fastest seed-0 rate only (here ReLU 0.002, tanh 0.008)."""
    fastest = {"relu": 0.002, "tanh": 0.008}
    trained = []

    def fake_train(cfg, extras, say):
        trained.append((cfg.seed, cfg.lr))
        act = cfg.model_kwargs["act"]
        return {"epochs": run("x", 0, train=reach(2 if cfg.lr == fastest[act] else 5)).epochs, "extra": {}}, False

    monkeypatch.setattr(grid, "train_or_reuse", fake_train)
    exp = experiments.get("relu-vs-tanh")
    scale = exp.fast
    seed0 = exp.configs(scale, 0, "digits", tmp_path)
    assert len(seed0) == 2 * len(relu_vs_tanh.RATES) and not trained  # seed 0: the grid, nothing trained yet
    seed1 = exp.configs(scale, 1, "digits", tmp_path)
    assert [a.label for a, _ in seed1] == ["ReLU lr 0.002", "tanh lr 0.008"]
    assert all(cfg.seed == 1 for _, cfg in seed1)
    assert sorted(trained) == sorted((0, lr) for lr in relu_vs_tanh.RATES for _ in range(2))


def test_grid_rates_and_edges():
    arms = grid.rate_arms({"a": {"model_kwargs": {"x": 1}}}, {"a": (0.1, 0.2)})
    assert [a.label for a in arms] == ["a lr 0.1", "a lr 0.2"] and arms[0].fields["lr"] == 0.1
    assert grid.setting_of("tanh lr 0.004") == "tanh" and grid.rate_of("tanh lr 0.004") == 0.004
    assert grid.edge(0.1, [0.2, 0.1, 0.4]) == "smallest" and grid.edge(0.2, [0.2, 0.1, 0.4]) == ""
    assert grid.edge(0.4, [0.2, 0.1, 0.4]) == "largest"


# ------------------------------------------------------------------------------------------------- lrn

def lrn_runs(with_errs=(30.0, 31.0, 30.5), without_errs=(33.0, 33.5, 32.5)):
    return ([run("with LRN", s, val=[60.0, 40.0, 35.0, e]) for s, e in enumerate(with_errs)]
            + [run("without LRN", s, val=[60.0, 40.0, 36.0, e]) for s, e in enumerate(without_errs)])


def test_lrn_difference_paired_and_the_papers_figures_beside_it():
    rows, verdict, _, (c,) = summary("lrn", lrn_runs())
    assert c.paired and c.n == (3, 3) and c.diff == pytest.approx(2.5) and c.verdict == "reproduces"
    assert verdict.startswith("reproduces: LRN lowers the validation error (+2.50 points")
    assert "paper (CIFAR-10 test error): 13 % without LRN → 11 % with (2 points lower)" in verdict
    assert "ours (validation error): 33.00 % → 30.50 % (2.50 points lower)" in verdict  # in the same words
    assert rows[0]["paper (CIFAR-10 test error)"] == "11 %" and rows[0]["usable runs"] == "3 of 3"


def test_lrn_diverged_run_is_named_not_averaged_and_the_rate_called_unstable():
    results = lrn_runs(without_errs=(33.0, 90.0, 32.5))  # seed 1 without LRN: chance
    rows, verdict, _, (c,) = summary("lrn", results)
    assert verdict.startswith(f"inconclusive: lr {lrn.RATE:g} is not a rate at which both arms are stable")
    assert "without LRN, seed 1: did not learn" in verdict and c.n == (2, 2)  # at chance, its loss finite
    assert rows[1]["usable runs"] == "2 of 3" and rows[1]["validation top-1 error (%, 95 % CI)"].startswith("32.75 [")
    _, verdict, _, _ = summary("lrn", [run(arm, s, val=[90.0, 90.0]) for arm in ("with LRN", "without LRN")
                                       for s in range(2)])  # nothing learned (the --fast scale on hard data)
    assert verdict.startswith("inconclusive: no run learned: the runs are too short (more --epochs or images)")
    assert "ours (validation error): none to compare (without LRN and with LRN: no usable run)" in verdict
    assert "nan" not in verdict


def test_lrn_gain_without_four_epochs_is_a_dash_and_unpaired_means_are_said_to_be_so():
    rows, verdict, _, _ = summary("lrn", [run(arm, s, val=[60.0, e]) for arm, e in (("with LRN", 40.0),
                                                                                  ("without LRN", 45.0))
                                          for s in range(3)])
    assert rows[0]["gain over the last quarter (points)"] == "–" and "nan" not in str(rows)
    assert "ours (validation error): 45.00 % → 40.00 %" in verdict  # the same seeds on both sides
    runs = lrn_runs() + [run("with LRN", 3, val=[60.0, 40.0, 35.0, 20.0])]  # a fourth seed in one arm only
    _, verdict, _, (c,) = summary("lrn", runs)
    assert c.n == (3, 3) and "the means of all usable runs of each arm, not only the pairs above" in verdict


def test_the_classes_of_a_run_are_read_from_classes_json_as_training_writes_it(tmp_path):
    """classes.json is {"classes": [...], "class_ids": [...]}: three classes make chance 66.7 % error,
    so a run at 66.7 % is left out as one that learnt nothing (it had been judged against 90 %)."""
    from alexnet.experiments.runs import classes_of
    from alexnet.experiments.stats import usable

    (tmp_path / "classes.json").write_text(json.dumps({"classes": ["a", "b", "c"], "class_ids": ["a", "b", "c"]}))
    assert classes_of(tmp_path) == 3
    at_chance = run("without LRN", 2, val=[66.7, 66.7, 66.7])
    at_chance.num_classes = classes_of(tmp_path)
    kept, out = usable([at_chance])
    assert kept == [] and "did not learn" in out[0]


# --------------------------------------------------------------------------------------------- dropout

def dropout_runs(off_train_eval: float):
    """Dropout: converged (smoothed) at epoch 11; no dropout: at epoch 5 (seed 1, one epoch later
    throughout: 6), then rising (otherwise the seeds differ in their last epoch only)."""
    on = [40.0 - 1.5 * i for i in range(10)] + [26.6] * 6
    off = [38.0, 34.0, 31.0, 29.0, 27.0, 27.3, 28.0, 29.0, 30.0, 30.5, 31.0, 31.0, 31.5, 32.0, 32.0, 32.0]
    out = []
    for s, jitter in enumerate((0.0, 1.0, 0.5)):
        out.append(run(dropout.ON, s, val=on[:-1] + [on[-1] + jitter], extra={"train_eval_error": 22.0 + jitter}))
        later = [40.0] + off[:-1] if s == 1 else off
        out.append(run(dropout.OFF, s, val=later[:-1] + [off[-1] + 1.5 * jitter],  # the pairs' differences vary
                       extra={"train_eval_error": off_train_eval + jitter / 2}))
    return out


def test_dropout_three_statements_each_with_its_interval():
    rows, verdict, _, (gap, err, iters) = summary("dropout", dropout_runs(off_train_eval=10.0))
    assert gap.verdict == "reproduces" and verdict.startswith("(1) overfitting — reproduces: without dropout")
    assert err.verdict == "reproduces" and "(2) validation error — reproduces" in verdict
    assert iters.verdict == "reproduces" and iters.diff == pytest.approx(11 - 16 / 3)
    assert "(3) epochs to converge — reproduces" in verdict and "the paper's 2× inside that interval" in verdict
    assert [r["arm"] for r in rows] == [dropout.ON, dropout.OFF]
    assert rows[0]["epochs to converge"] == "11.0 [11.0, 11.0]" and rows[1]["epochs to converge"].startswith("5.3 [")
    assert rows[0]["still improving at the end"] == "0 of 3"


def test_dropout_without_visible_overfitting_is_not_tested():
    _, verdict, _, (gap, _, _) = summary("dropout", dropout_runs(off_train_eval=29.0))  # gap ≈ 2 points
    assert gap.verdict == "inconclusive"
    assert verdict.startswith("(1) overfitting — not tested: the net without dropout did not overfit visibly")


def test_epochs_to_converge_and_still_improving():
    # a plateau from epoch 6 with epoch-to-epoch noise of ±0.6 points and one lucky epoch (25.0) late:
    # converged where the smoothed curve meets the plateau (epoch 8, the window of 5 reaching back
    # into the descent), not at the lucky epoch (the raw minimum's rule would say 13)
    plateau = [27.0, 26.4, 27.2, 26.5, 27.1, 26.6, 26.9, 25.0, 27.0, 26.5, 27.1]
    r = run("a", 0, val=[50.0, 44.0, 38.0, 33.0, 29.0] + plateau + [26.8, 27.0, 26.6])
    assert dropout.epochs_to_converge(r) == 8.0 and not dropout.still_improving(r)
    assert dropout.smoothed([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) == [2.0, 2.5, 3.0, 4.0, 4.5, 5.0]
    late = run("a", 0, val=[50.0, 45.0, 40.0, 38.0, 36.0, 34.0, 32.0, 30.0])
    assert dropout.epochs_to_converge(late) == 8.0 and dropout.still_improving(late)


def test_dropout_still_improving_at_the_end_is_a_lower_bound():
    results = dropout_runs(off_train_eval=10.0)
    for i, row in enumerate(results[0].epochs):  # seed 0 with dropout: still falling at the end
        row["val_top1"] = 100 - (40.0 - i)
    rows, verdict, _, _ = summary("dropout", results)
    assert f"(not converged by the last epoch, so a lower bound: {dropout.ON}, seed 0)" in verdict
    assert rows[0]["still improving at the end"] == "1 of 3"


# ---------------------------------------------------------------------------------------------- towers

def test_the_one_gpu_arm_has_half_the_kernels(tmp_path):
    """conv1–conv4 halved, conv5 and the FC layers kept (the paper's footnote), one tower."""
    import torch.nn as nn

    from alexnet.models import build_model

    exp = experiments.get("towers")
    for scale in (exp.fast, exp.default):
        nets = {arm.label: build_model(cfg.model, num_classes=10, **cfg.model_kwargs)
                for arm, cfg in exp.configs(scale, 0, "digits", tmp_path)}
        convs = {k: [m for m in n.modules() if isinstance(m, nn.Conv2d)] for k, n in nets.items()}
        two, half, same = convs[towers.TWO], convs[towers.HALF], convs[towers.SAME]
        assert [c.out_channels for c in half[:4]] == [c.out_channels // 2 for c in two[:4]]
        assert half[4].out_channels == two[4].out_channels and [c.out_channels for c in same] == [
            c.out_channels for c in two]
        assert all(c.groups == 1 for c in half + same) and two[1].groups == 2
        fc = {k: n.classifier.fc6.out_features for k, n in nets.items()}
        assert fc[towers.HALF] == fc[towers.TWO]
    # the table's multiply-adds: the grouped net does about twice the half-kernel net's work per image
    # and less than the same-width one's (what a step's time on one device follows)
    work = {arm.label: float(towers.describe({"model": cfg.model, "model_kwargs": cfg.model_kwargs})[2].split()[0])
            for arm, cfg in exp.configs(exp.default, 0, "digits", tmp_path)}
    assert 1.8 < work[towers.TWO] / work[towers.HALF] < 2.2 and work[towers.TWO] < work[towers.SAME]


def towers_runs(two=(40.0, 40.5, 39.5), half=(42.5, 43.0, 42.0), same=(39.0, 39.5, 40.0)):
    return [run(arm, s, val=[60.0, e]) for arm, errs in ((towers.TWO, two), (towers.HALF, half), (towers.SAME, same))
            for s, e in enumerate(errs)]


def test_towers_main_comparison_is_the_half_kernel_net():
    rows, verdict, notes, (main, second) = summary("towers", towers_runs())
    assert not main.paired and main.diff == pytest.approx(2.5) and main.verdict == "reproduces"
    assert second.verdict == "inconclusive"  # the same-width net is no worse: a different question
    assert verdict.startswith("the paper's comparison (one tower, half the kernels): error — reproduces")
    assert "speed — speed not measured" in verdict  # hand-made runs have no configs to measure
    assert [r["arm"] for r in rows] == [towers.TWO, towers.HALF, towers.SAME]
    assert rows[1]["two towers lower by (points, 95 % CI)"].startswith("+2.50 [")


def test_step_speed_ratio_sees_a_bigger_net_is_slower_and_is_stored(tmp_path, monkeypatch):
    small = {"model": "alexnet-mini", "model_kwargs": {"width": 0.25, "fc_width": 64}, "batch_size": 8,
             "precision": "fp32", "device": "cpu"}
    big = {**small, "model_kwargs": {"width": 1.0, "fc_width": 512}}
    ratio, lo, hi = towers.step_speed_ratio(big, small, rounds=3, repeats=3)
    assert ratio > 1.5 and lo <= ratio <= hi  # the quarter-width net steps faster
    for name, cfg in (("two", small), ("half", big)):
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "config.json").write_text(json.dumps(cfg))
    calls = []
    monkeypatch.setattr(towers, "step_speed_ratios", lambda a, b: calls.append(1) or [1.19, 1.2, 1.21])
    two, half = run(towers.TWO, 0, val=[50.0], run_dir=str(tmp_path / "runs" / "two")), \
        run(towers.HALF, 0, val=[50.0], run_dir=str(tmp_path / "runs" / "half"))
    first = towers.measured_speed(two, half)
    assert first["ratio"] == pytest.approx(1.2) and towers.measured_speed(two, half) == first and calls == [1]
    assert first["ratios"] == [1.19, 1.2, 1.21]  # each repeat's ratio kept: the interval can be re-derived
    half_width = 4.302653 * 0.01 / math.sqrt(3)  # t(0.975, 2) × sd / √n
    assert (first["low"], first["high"]) == pytest.approx((1.2 - half_width, 1.2 + half_width), abs=1e-5)
    assert "reproduces: a training step of the two-tower net ran at 1.20× [1.18, 1.22]" in towers.speed_verdict(
        first, "one-GPU net")
    # the record carries it: the runs again without their folders (as `experiment report` reads a
    # committed record) still have the speed, and nothing is measured again
    assert two.extra[towers.speed_key(half)] == first
    gone = run(towers.TWO, 0, val=[50.0], run_dir="OUT/runs/two", extra=dict(two.extra))
    assert towers.measured_speed(gone, run(towers.HALF, 0, val=[50.0], run_dir="OUT/runs/half")) == first
    assert calls == [1]


def test_summaries_hand_their_comparisons_on():
    """summarize returns (rows, verdict, notes, comparisons): the record keeps the comparisons."""
    from alexnet.experiments.stats import as_summary

    exp = experiments.get("lrn")
    s = as_summary(exp.summarize(exp, lrn_runs()))
    assert s.comparisons and s.comparisons[0].verdict == "reproduces" and s.verdict.startswith("reproduces")


@pytest.mark.slow  # 14 runs on the digits (20 s on 2 cores); test_experiments.py runs it with one seed by default
def test_relu_vs_tanh_fast_with_two_seeds_trains_only_the_best_rates_again(tmp_path):
    """End to end on the digits: seed 0 at every rate, seed 1 at each activation's fastest only."""
    rec = experiments.run("relu-vs-tanh", fast=True, seeds=2, out=tmp_path, say=lambda s: None)
    seed1 = sorted(r["arm"] for r in rec["runs"] if r["seed"] == 1)
    assert len(rec["runs"]) == 2 * len(relu_vs_tanh.RATES) + 2 and len(seed1) == 2
    best = grid.best_rates([RunResult(r["arm"], r["seed"], r["run_dir"], r["epochs"]) for r in rec["runs"]],
                           relu_vs_tanh.choose_rate)
    assert seed1 == sorted(f"{act} lr {lr:g}" for act, lr in best.items())


def test_dropout_notes_say_when_each_run_memorised_the_training_set_and_when_it_was_best():
    # memorises at epoch 4 (training error 0.2 %), then climbs back; its best smoothed validation
    # error is the window around epoch 5 (25.0 over epochs 3-7), its last epoch 31 %
    memorising = run(dropout.OFF, 1, train=[30.0, 10.0, 2.0, 0.2, 0.1, 0.3, 1.5, 2.5],
                     val=[40.0, 30.0, 26.0, 25.0, 24.0, 25.0, 25.0, 31.0])
    never = run(dropout.OFF, 0, train=[30.0, 20.0, 10.0, 5.0, 3.0, 2.0, 1.0, 0.6], val=[40.0] * 7 + [39.0])
    assert dropout.course(memorising) == (4, 5, pytest.approx(25.0), 31.0)
    assert dropout.course(never)[0] is None
    runs = [never, memorising] + [run(dropout.ON, s, val=[40.0] * 8) for s in (0, 1)]
    for r in runs:
        r.extra["train_eval_error"] = 1.0
    _, _, notes, _ = summary("dropout", runs)
    line = next(n for n in notes if n.startswith(f"{dropout.OFF}, seeds 0, 1:"))
    assert "first under 0.5 %: never, epoch 4" in line and "25.00 % (5)" in line and line.endswith("39.00 %, 31.00 %")


def test_a_run_folder_holding_someone_elses_files_is_refused_not_emptied(tmp_path):
    """The folder of a run killed before its first checkpoint is started over; a folder there with
    other files in it (a person's notes) is said, and kept."""
    from alexnet.core.errors import UserError
    from alexnet.engine import make_config
    from alexnet.experiments.runs import train_or_reuse

    cfg = make_config("digits", output_dir=str(tmp_path), name="r", epochs=1, max_steps=1,
                      model_kwargs={"width": 0.125, "fc_width": 16})
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "notes.txt").write_text("mine")
    for name in ("config.json", "weights.safetensors", "events.out.tfevents.1.vm.2.0", ".config.json.x1.tmp"):
        (tmp_path / "r" / name).write_text("a run's")  # killed at an epoch's end, before its last.pt
    with pytest.raises(UserError, match=r"also holds notes\.txt, which training does not write: move it away"):
        train_or_reuse(cfg, (), print)
    assert (tmp_path / "r" / "notes.txt").read_text() == "mine"
    (tmp_path / "r" / "notes.txt").unlink()  # the run's own files only: started over
    result, cached = train_or_reuse(cfg, (), print)
    assert not cached and len(result["epochs"]) == 1
    (tmp_path / "r" / "result.json").unlink()  # as if killed before result.json, after last.pt became last.prev.pt
    (tmp_path / "r" / "checkpoints" / "last.pt").rename(tmp_path / "r" / "checkpoints" / "last.prev.pt")
    said = []
    result, cached = train_or_reuse(cfg, (), said.append)
    assert said == [f"    resuming the interrupted run {tmp_path / 'r'}"] and len(result["epochs"]) == 1


def test_finished_runs_of_further_seeds_are_named_not_silently_dropped(tmp_path, monkeypatch):
    """A run with fewer --seeds than an earlier one: its verdict is on the seeds asked for, and it
    says that every arm of the next seed is finished on disk and how to take it in."""
    from alexnet.experiments import runs as runs_mod
    from alexnet.experiments.runs import Scale, run_experiment

    exp = experiments.get("lrn")
    scale = Scale(epochs=2, train_subset=0, seeds=1)
    fake = {"config": {}, "epochs": [{"epoch": 1, "val_top1": 50.0}, {"epoch": 2, "val_top1": 60.0}], "extra": {}}
    monkeypatch.setattr(runs_mod, "train_or_reuse", lambda cfg, extras, say: (fake, True))
    over = {"precision": "fp32"}
    for _, cfg in exp.configs(scale, 1, "digits", tmp_path, **over):  # seed 1 of every arm finished before
        (tmp_path / "runs" / cfg.name).mkdir(parents=True)
        (tmp_path / "runs" / cfg.name / "result.json").write_text(json.dumps(fake))
    said = []
    run_experiment(exp, data="digits", out=tmp_path, scale=scale, say=said.append, **over)
    assert said[-1] == (f"[lrn] note: {tmp_path}/runs also holds every arm of 1 more seed, finished before and not "
                        f"in this verdict: --seeds 2 takes it in without training")
    one_arm = exp.configs(scale, 1, "digits", tmp_path, **over)[0][1]
    (tmp_path / "runs" / one_arm.name / "result.json").unlink()  # one arm of seed 1 missing: nothing to take in
    said.clear()
    run_experiment(exp, data="digits", out=tmp_path, scale=scale, say=said.append, **over)
    assert not any("more seed" in s for s in said)
