"""§7 (and §1): depth matters — removing any middle convolutional layer costs about 2 points.

"It is notable that our network's performance degrades if a single convolutional layer is
removed. For example, removing any of the middle layers results in a loss of about 2% for the
top-1 performance of the network." Here: ``alexnet-mini`` whole, and without conv2, conv3 or
conv4 (the layer and its ReLU go; its LRN and pooling stay). Beside the error, each arm's
overfitting gap (validation − training error, eval mode) and its change with each removal, with
their intervals: reported, not judged, as the paper claims nothing about it.
"""

from __future__ import annotations

from .runs import Arm, Experiment, RunResult
from .setups import FAST_SCALE, MINI, MINI_SCALE, val_curves
from .stats import GAP_NOT_MEASURED, Summary, by_seed, cell, diff_cell, gap_compare, overall, usable_by_arm
from .verdict import compare

FULL = "all five conv layers"
PAIRING = ("Unpaired (Welch): the arms of a seed share the order of the images, but not their initial "
           "weights — without a layer, the layers after it are drawn differently — so each removal is "
           "compared with the whole network as two independent groups of runs.")


def summarize(exp: Experiment, results: list[RunResult]) -> Summary:
    """One comparison per removed layer (unpaired, 95 % interval); the claim — *any* middle
    layer's removal costs points — reproduces only if every removal does (`stats.overall`)."""
    arms, excluded = usable_by_arm(results)
    full_runs = arms.get(FULL, [])
    full = by_seed(full_runs, lambda r: r.val_error)
    rows, comps, gaps = [], [], []
    for arm, runs in arms.items():
        change = gap_change = "–"
        layer = arm.removeprefix("without ")
        if arm != FULL:
            c = compare(full, by_seed(runs, lambda r: r.val_error), paired=False, excluded=tuple(excluded),
                        what=f"removing {layer} raises the top-1 error")
            comps.append(c)
            change = diff_cell(c)
            # the paper says nothing of overfitting here: the gap's change is reported, not judged
            g = gap_compare(runs, full_runs, paired=False, excluded=tuple(excluded),
                            what=f"removing {layer} lowers the overfitting gap")
            if g is not None:
                gap_change = diff_cell(g)
                gaps.append(f"{layer} {gap_change}")
        rows.append({"arm": arm, "validation top-1 error (%)": cell([r.val_error for r in runs]),
                     "top-5 error (%)": cell([r.val_error5 for r in runs]),
                     "change vs all five (points)": change,
                     "training error, eval mode (%)": cell([r.extra.get("train_eval_error") for r in runs]),
                     "overfitting gap (points)": cell([r.overfit_gap for r in runs], signed=True),
                     "gap lower by, vs all five (points)": gap_change,
                     "seeds": len(runs), "paper": "baseline" if arm == FULL else "about +2 top-1"})
    parts = [f"{c.what.split()[1]} {c.verdict} ({c.diff:+.2f} points, {c.interval})" for c in comps]
    runs_each = f"; {comps[0].design.split(', ', 1)[1]} each" if comps and len({c.n for c in comps}) == 1 else ""
    verdict = (f"{overall(comps)}: removing any middle conv layer raises the top-1 error — " + "; ".join(parts)
               + f" (each removal against all five layers, unpaired{runs_each})")
    gap_note = (("overfitting gap (validation − training error, eval mode) lower without the layer than with all "
                 "five, points with 95 % intervals, unpaired (the paper makes no claim here): " + "; ".join(gaps))
                if gaps else GAP_NOT_MEASURED)
    return Summary(rows, verdict, [PAIRING, gap_note], comps)


EXPERIMENT = Experiment(
    name="depth", title="depth: one middle conv layer fewer", section="§7",
    claim="removing any of the middle convolutional layers costs about 2 points of top-1",
    base=MINI, arms=(Arm(FULL, {}),) + tuple(
        Arm(f"without {c}", {"model_kwargs": {"drop_conv": c}}) for c in ("conv2", "conv3", "conv4")),
    default=MINI_SCALE, fast=FAST_SCALE, summarize=summarize, plot=val_curves, extras=("train_eval",))
