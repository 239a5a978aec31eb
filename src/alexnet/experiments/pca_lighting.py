"""§4.1: PCA colour augmentation lowers top-1 error by over 1 point.

"This scheme approximately captures an important property of natural images, namely, that object
identity is invariant to changes in the intensity and color of the illumination. This scheme
reduces the top-1 error rate by over 1%." Here: ``alexnet-mini`` trained with random crops, flips
and PCA lighting (aug ``paper``), and with crops and flips only (aug ``light``).
"""

from __future__ import annotations

from .runs import Arm, Experiment, RunResult
from .setups import FAST_SCALE, MINI, MINI_SCALE, val_curves
from .stats import by_arm, error_rows, lower_error


def summarize(exp: Experiment, results: list[RunResult]):
    arms = by_arm(results)
    rows = error_rows(arms, lambda arm: "baseline" if "no PCA" in arm else "top-1 −1 point or more")
    verdict = lower_error(arms.get("crops + flips + PCA lighting", []), arms.get("crops + flips, no PCA lighting", []),
                          "PCA lighting lowered the error")
    return rows, verdict, []


EXPERIMENT = Experiment(
    name="pca-lighting", title="PCA colour augmentation", section="§4.1",
    claim="altering the intensities of the RGB channels along their principal components lowers top-1 error by over 1 point",
    base=MINI, arms=(Arm("crops + flips + PCA lighting", {}), Arm("crops + flips, no PCA lighting", {"aug": "light"})),
    default=MINI_SCALE, fast=FAST_SCALE, summarize=summarize, plot=val_curves,
    scale_note="PCA lighting uses ImageNet's eigenvalues and eigenvectors (CIFAR-10's are close: "
               "`alexnet data pca-stats`).")
