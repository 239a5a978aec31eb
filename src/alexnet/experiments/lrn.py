"""§3.3: local response normalisation lowers the error.

"Response normalization reduces our top-1 and top-5 error rates by 1.4% and 1.2%, respectively.
We also verified the effectiveness of this scheme on the CIFAR-10 dataset: a four-layer CNN
achieved a 13% test error rate without normalization and 11% with normalization."
Here: ``cifar4`` with and without its two LRN layers, everything else equal.
"""

from __future__ import annotations

from .runs import Arm, Experiment, RunResult
from .setups import CIFAR4, CIFAR4_SCALE, FAST_SCALE, val_curves
from .stats import by_arm, error_rows, lower_error


def summarize(exp: Experiment, results: list[RunResult]):
    arms = by_arm(results)
    paper = {"with LRN": "11 % test error (CIFAR-10); ImageNet top-1 −1.4, top-5 −1.2",
             "without LRN": "13 % test error (CIFAR-10)"}
    rows = error_rows(arms, lambda arm: paper.get(arm, ""))
    return rows, lower_error(arms.get("with LRN", []), arms.get("without LRN", []), "LRN lowered the error"), []


EXPERIMENT = Experiment(
    name="lrn", title="local response normalisation", section="§3.3",
    claim="response normalisation lowers top-1/top-5 error by 1.4/1.2 points on ImageNet, and a four-layer CNN's "
          "CIFAR-10 test error from 13 % to 11 %",
    base=CIFAR4, arms=(Arm("with LRN", {}), Arm("without LRN", {"model_kwargs": {"lrn": False}})),
    default=CIFAR4_SCALE, fast=FAST_SCALE, summarize=summarize, plot=val_curves)
