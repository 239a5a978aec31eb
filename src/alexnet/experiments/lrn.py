"""§3.3: local response normalisation lowers the error.

"Response normalization reduces our top-1 and top-5 error rates by 1.4% and 1.2%, respectively.
We also verified the effectiveness of this scheme on the CIFAR-10 dataset: a four-layer CNN
achieved a 13% test error rate without normalization and 11% with normalization."

Here: ``cifar4`` with and without its two LRN layers, everything else equal, on the whole training
split (5,000 images held out for validation), both arms at one rate, `RATE`, chosen below the 0.05
at which the net without LRN diverged in earlier runs (one of two seeds), so that the comparison
measures LRN and not which arm tolerates the rate. That both arms are stable at it is checked on
every run (`stats.usable`): a run that diverged or was unstable is named and never averaged, and
then the verdict is inconclusive — the rate was not one at which both arms are stable. The
difference of validation errors is paired by seed (LRN has no weights, so the two arms start from
the same weights and see the same batches). Beside it, the paper's own CIFAR-10 figures (13 % →
11 % test error) against what ``cifar4`` reaches here once its one-cycle schedule has annealed the
rate to nothing; the gain over the last quarter of the epochs says how much the end still bought.
"""

from __future__ import annotations

import math

from .grid import interval_text
from .runs import Arm, Experiment, RunResult, Scale
from .setups import CIFAR4, FAST_SCALE, val_curves
from .stats import by_arm, mean, usable
from .verdict import compare

RATE = 0.02  # the one-cycle schedule's peak rate for both arms
PAPER_ERROR = {"with LRN": 11.0, "without LRN": 13.0}  # §3.3: CIFAR-10 test error (%)
# The whole training split less 5,000 held out; 30 epochs of one-cycle, annealed to almost nothing by the end.
SCALE = Scale(epochs=30, train_subset=0, seeds=3)
BASE = {**CIFAR4, "lr": RATE, "val_split": 0.1}


def late_gain(r: RunResult) -> float:
    """How many points the validation error fell over the run's last quarter of epochs."""
    n = len(r.epochs)
    if n < 4:
        return math.nan
    return r.epochs[-1]["val_top1"] - r.epochs[n - 1 - n // 4]["val_top1"]


def _gain_text(gains: list[float]) -> str:
    """The mean gain as table text; "–" where no run had the four epochs a quarter takes."""
    m = mean(gains)
    return "–" if math.isnan(m) else f"{m:.2f}"


def summarize(exp: Experiment, results: list[RunResult]):
    """(rows, verdict, notes, comparisons): the error difference with its paired interval, and
    the paper's CIFAR-10 figures beside ours (see the module docstring)."""
    keep, left_out = usable(results)
    arms, kept = by_arm(results), by_arm(keep)
    rows = []
    for arm, runs in arms.items():
        ok = kept.get(arm, [])
        rows.append({"arm": arm, "rate": f"{RATE:g}",
                     "validation top-1 error (%, 95 % CI)": interval_text([r.val_error for r in ok]),
                     "top-5 error (%)": interval_text([r.val_error5 for r in ok]),
                     "gain over the last quarter (points)": _gain_text([late_gain(r) for r in ok]),
                     "usable runs": f"{len(ok)} of {len(runs)}",
                     "paper (CIFAR-10 test error)": f"{PAPER_ERROR[arm]:g} %" if arm in PAPER_ERROR else ""})
    on = {r.seed: r.val_error for r in kept.get("with LRN", [])}
    off = {r.seed: r.val_error for r in kept.get("without LRN", [])}
    c = compare(on, off, paired=True, what="LRN lowers the validation error", excluded=tuple(left_out))
    paper = PAPER_ERROR["without LRN"] - PAPER_ERROR["with LRN"]
    beside = (f"paper (CIFAR-10 test error): {PAPER_ERROR['without LRN']:g} % without LRN → "
              f"{PAPER_ERROR['with LRN']:g} % with ({paper:g} points lower); ours (validation error"
              f"{'' if set(on) == set(off) else '; the means of all usable runs of each arm, not only the pairs above'}): ")
    if on and off:
        ours = mean(list(off.values())) - mean(list(on.values()))  # as the paper's: how much lower with LRN
        beside += (f"{mean(list(off.values())):.2f} % → {mean(list(on.values())):.2f} % "
                   f"({abs(ours):.2f} points {'lower' if ours >= 0 else 'higher'})")
    else:
        beside += "none to compare (" + " and ".join(a for a, d in (("without LRN", off), ("with LRN", on))
                                                      if not d) + ": no usable run)"
    if left_out:
        # no run learned and none diverged: too short a run, not too high a rate
        learn = not keep and all(": did not learn" in why for why in left_out)
        fix = "no run learned: the runs are too short (more --epochs or images)" if learn else \
            f"lr {RATE:g} is not a rate at which both arms are stable; lower the rate"
        verdict = (f"inconclusive: {fix} (" + "; ".join(left_out) + f"). Among the usable runs: {c.text}")
    else:
        verdict = c.text
    return rows, f"{verdict}; {beside}", [], [c]


EXPERIMENT = Experiment(
    name="lrn", title="local response normalisation", section="§3.3",
    claim="response normalisation lowers top-1/top-5 error by 1.4/1.2 points on ImageNet, and a four-layer CNN's "
          "CIFAR-10 test error from 13 % to 11 %",
    base=BASE, arms=(Arm("with LRN", {}), Arm("without LRN", {"model_kwargs": {"lrn": False}})),
    default=SCALE, fast=FAST_SCALE, summarize=summarize, plot=val_curves,
    scale_note=f"Both arms at the one-cycle peak rate {RATE:g}; ± intervals are 95 % t-intervals over the usable seeds.")
