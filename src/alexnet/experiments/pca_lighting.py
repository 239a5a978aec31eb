"""§4.1: PCA colour augmentation lowers top-1 error by over 1 point.

"This scheme approximately captures an important property of natural images, namely, that object
identity is invariant to changes in the intensity and color of the illumination. This scheme
reduces the top-1 error rate by over 1%." Here: ``alexnet-mini`` trained with random crops, flips
and PCA lighting (aug ``paper``), and with crops and flips only (aug ``light``). Beside the error,
the overfitting gap (validation − training error, eval mode) with its own interval: the paper
introduces augmentation (§4) as its first means against overfitting.
"""

from __future__ import annotations

from .runs import Arm, Experiment, RunResult
from .setups import FAST_SCALE, MINI, MINI_SCALE, val_curves
from .stats import Summary, by_seed, error_and_gap, gap_compare, overfitting_rows, usable_by_arm
from .verdict import compare

PCA, NO_PCA = "crops + flips + PCA lighting", "crops + flips, no PCA lighting"
PAIRING = ("Paired by seed: the two arms of a seed share their initial weights and the order of the "
           "images; the random crops and flips drawn during training may differ.")


def summarize(exp: Experiment, results: list[RunResult]) -> Summary:
    """The top-1 error difference with its 95 % interval, paired by seed; diverged or unstable
    runs left out."""
    arms, excluded = usable_by_arm(results)
    rows = overfitting_rows(arms, lambda arm: "baseline" if arm == NO_PCA else "top-1 −1 point or more")
    pca, plain = arms.get(PCA, []), arms.get(NO_PCA, [])
    err = compare(by_seed(pca, lambda r: r.val_error), by_seed(plain, lambda r: r.val_error),
                  paired=True, what="PCA lighting lowers the top-1 error", excluded=tuple(excluded))
    # §4: augmentation is the paper's first means against overfitting; its gap, with its own interval
    gap = gap_compare(pca, plain, paired=True, excluded=tuple(excluded),
                      what="PCA lighting overfits less (a smaller validation − training error gap)")
    return error_and_gap(rows, err, gap, PAIRING)


EXPERIMENT = Experiment(
    name="pca-lighting", title="PCA colour augmentation", section="§4.1",
    claim="altering the intensities of the RGB channels along their principal components lowers top-1 error by over 1 point",
    base=MINI, arms=(Arm(PCA, {}), Arm(NO_PCA, {"aug": "light"})),
    default=MINI_SCALE, fast=FAST_SCALE, summarize=summarize, plot=val_curves, extras=("train_eval",),
    scale_note="PCA lighting uses ImageNet's eigenvalues and eigenvectors (CIFAR-10's are close: "
               "`alexnet data pca-stats`).")
