"""§7 (and §1): depth matters — removing any middle convolutional layer costs about 2 points.

"It is notable that our network's performance degrades if a single convolutional layer is
removed. For example, removing any of the middle layers results in a loss of about 2% for the
top-1 performance of the network." Here: ``alexnet-mini`` whole, and without conv2, conv3 or
conv4 (the layer and its ReLU go; its LRN and pooling stay).
"""

from __future__ import annotations

from .runs import Arm, Experiment, RunResult
from .setups import FAST_SCALE, MINI, MINI_SCALE, val_curves
from .stats import by_arm, direction, mean, noise_of, spread


def summarize(exp: Experiment, results: list[RunResult]):
    arms = by_arm(results)
    full = arms.get("all five conv layers", [])
    base = mean([r.val_error for r in full])
    rows, diffs, notes = [], [], []
    for arm, runs in arms.items():
        err = mean([r.val_error for r in runs])
        d = err - base
        if arm != "all five conv layers":
            diffs.append(d)
        rows.append({"arm": arm, "validation top-1 error (%)": spread([r.val_error for r in runs]),
                     "top-5 error (%)": spread([r.val_error5 for r in runs]),
                     "change vs all five (points)": "–" if arm == "all five conv layers" else f"{d:+.2f}",
                     "seeds": len(runs), "paper": "baseline" if arm == "all five conv layers" else "about +2 top-1"})
    noise = noise_of(*([r.val_error for r in runs] for runs in arms.values()))
    worse = sum(d > 0 for d in diffs)
    verdict = direction(mean(diffs), noise, +1, f"removing a middle conv layer raised the error ({worse} of "
                                               f"{len(diffs)} removals; mean change)")
    return rows, verdict, notes


EXPERIMENT = Experiment(
    name="depth", title="depth: one middle conv layer fewer", section="§7",
    claim="removing any of the middle convolutional layers costs about 2 points of top-1",
    base=MINI, arms=(Arm("all five conv layers", {}),) + tuple(
        Arm(f"without {c}", {"model_kwargs": {"drop_conv": c}}) for c in ("conv2", "conv3", "conv4")),
    default=MINI_SCALE, fast=FAST_SCALE, summarize=summarize, plot=val_curves)
