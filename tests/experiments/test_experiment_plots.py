"""The experiments' figures: a title that names the experiment once, whole-number epoch ticks,
and a verdict at full scale with no --fast caveat."""

from __future__ import annotations

import pytest

from alexnet import experiments
from alexnet.experiments import output, runs


def _runs(arms, epochs=2):
    return [runs.RunResult(arm, 0, "/x", [{"epoch": e, "val_top1": 60.0 + e + i, "val_top5": 90.0, "train_top1": 50.0 + e,
                                           "train_loss": 1.0, "time": 1.0, "img_per_s": 1.0}
                                          for e in range(1, epochs + 1)], {"train_eval_error": 20.0})
            for i, arm in enumerate(arms)]


def _figure(name, results):
    from alexnet.viz.plotting import figure

    exp = experiments.get(name)
    fig = figure(1000, 420)
    exp.plot(exp, results, fig)
    fig.canvas.draw()
    return exp, fig


def _visible_ticks(ax) -> list[float]:
    lo, hi = ax.get_xlim()
    return [t for t in ax.get_xticks() if lo <= t <= hi]


def test_titles_name_the_experiment_once():
    exp, fig = _figure("depth", _runs([a.label for a in experiments.get("depth").arms]))
    assert fig.get_suptitle() == "depth: one middle conv layer fewer"
    assert output.heading(experiments.get("lrn")) == "lrn: local response normalisation"
    assert output.short_title(exp) == "one middle conv layer fewer"


@pytest.mark.parametrize("name", ["depth", "lrn", "relu-vs-tanh"])
def test_epoch_ticks_are_whole_numbers(name):
    exp = experiments.get(name)
    _, fig = _figure(name, _runs([a.label for a in exp.arms], epochs=2))
    for ax in fig.axes:
        ticks = _visible_ticks(ax)
        assert ticks and all(float(t).is_integer() for t in ticks), (ax.get_title(), ticks)


def test_full_scale_verdict_and_heading_carry_no_caveat(tmp_path):
    exp = experiments.get("depth")
    rec = output.write_outputs(exp, _runs([a.label for a in exp.arms]), out=tmp_path, scale=exp.default,
                               data="cifar10:x", command="alexnet experiment depth", machine="test")
    assert rec["fast"] is False and output.FAST_CAVEAT not in rec["verdict"]
    md = (tmp_path / "depth.md").read_text()
    assert md.startswith("## `depth` — one middle conv layer fewer\n") and "depth: depth" not in md
