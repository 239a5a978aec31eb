"""§4.2: without dropout the network overfits substantially.

"Without dropout, our network exhibits substantial overfitting. Dropout roughly doubles the
number of iterations required to converge." Here: ``alexnet-mini`` with dropout 0.5 on the
outputs of fc6 and fc7, and without; overfitting = validation error − training error (eval mode).
"""

from __future__ import annotations

from .runs import Arm, Experiment, RunResult
from .setups import FAST_SCALE, MINI, MINI_SCALE, val_curves
from .stats import by_arm, lower_error, mean, overfitting_rows


def summarize(exp: Experiment, results: list[RunResult]):
    arms = by_arm(results)
    rows = overfitting_rows(arms, lambda arm: "baseline" if arm.startswith("dropout") else "substantial overfitting",
                            top5=False)
    on, off = arms.get("dropout 0.5 (fc6, fc7)", []), arms.get("no dropout", [])
    verdict = lower_error(on, off, "without dropout the train/validation gap grew", key=lambda r: r.overfit_gap)
    verdict += (f"; validation error {mean([r.val_error for r in on]):.2f} % with dropout, "
                f"{mean([r.val_error for r in off]):.2f} % without")
    return rows, verdict, []


EXPERIMENT = Experiment(
    name="dropout", title="dropout", section="§4.2",
    claim="without dropout the network overfits substantially (dropout roughly doubles the iterations to converge)",
    base=MINI, arms=(Arm("dropout 0.5 (fc6, fc7)", {}), Arm("no dropout", {"model_kwargs": {"dropout": 0.0}})),
    default=MINI_SCALE, fast=FAST_SCALE, summarize=summarize, plot=val_curves, extras=("train_eval",))
