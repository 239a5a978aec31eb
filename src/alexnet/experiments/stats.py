"""The statistics of an experiment: the runs a verdict may use, table cells, and what a summary returns.

The verdict rule itself is `alexnet.experiments.verdict` (a 95 % interval of the difference,
paired by seed or Welch). Here: `usable` (diverged or unstable runs are left out and named, never
averaged), `cell` (a table cell: the mean and its 95 % interval), `Summary` (an experiment's
table, verdict line, notes and the `Comparison` objects behind the verdict) and `overall` (one
word for a claim made of several comparisons).

`direction`, `lower_error` and `noise_of` are the older rule (a difference beyond the largest
half-range over the seeds, which says "reproduces" about a quarter of the time with no effect); they
stay only until every experiment has moved to `verdict.compare`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from .runs import RunResult
from .verdict import VERDICTS, Comparison, compare, mean_interval

CELL_NOTE = ("Cells: the mean over the usable seeds with its 95 % confidence interval in brackets "
             "(Student t, cut at 0 for errors and times, which cannot be negative; one seed: the value alone).")


@dataclass
class Summary:
    """What an experiment's ``summarize`` returns: its table rows, the verdict line, notes, and the
    comparisons the verdict rests on (the main claim first).

    It unpacks as the older ``(rows, verdict, notes)`` tuple, and `as_summary` accepts that tuple
    (or a 4-tuple ending in the comparisons) from a ``summarize`` that still returns one."""

    rows: list[dict[str, Any]]
    verdict: str
    notes: list[str] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.rows, self.verdict, self.notes))


def as_summary(value: Any) -> Summary:
    """A `Summary` from what ``summarize`` returned: a `Summary`, ``(rows, verdict, notes)`` or
    ``(rows, verdict, notes, comparisons)``."""
    if isinstance(value, Summary):
        return value
    rows, verdict, notes, *rest = value
    return Summary(list(rows), verdict, list(notes), list(rest[0]) if rest else [])


def overall(comparisons: list[Comparison]) -> str:
    """One verdict word for a claim that must hold in every comparison ("removing *any* middle
    layer costs points"): reproduces only if all do, contradicts if any does, else inconclusive."""
    words = [c.verdict for c in comparisons]
    if words and all(w == "reproduces" for w in words):
        return "reproduces"
    return "contradicts" if "contradicts" in words else "inconclusive"


def verdict_word(verdict: str) -> str | None:
    """The verdict word a verdict line begins with (``"reproduces: …"``), with its qualifier where it
    has one (``"reproduces the direction, not the size: …"``), or None."""
    head = verdict.split(":", 1)[0].strip()
    return head if head.split(" ", 1)[0] in VERDICTS else None


def by_seed(runs: list[RunResult], key: Callable[[RunResult], float]) -> dict[int, float]:
    """``{seed: key(run)}``, the form `verdict.compare` takes."""
    return {r.seed: key(r) for r in runs}


def cell(xs: list[float], signed: bool = False) -> str:
    """A table cell: ``mean [low, high]``, the 95 % interval of the mean (`CELL_NOTE`). An error
    rate or a time cannot be below 0, so neither can its interval's low end (two seeds at 0.2 and
    1.4 % error: [0.00, 8.42], not [-6.82, 8.42]); ``signed``: a quantity that can be (a gap)."""
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    if not xs:
        return "–"
    m, lo, hi = mean_interval(xs)
    lo = lo if signed else max(0.0, lo)
    return f"{m:.2f}" if math.isnan(lo) else f"{m:.2f} [{lo:.2f}, {hi:.2f}]"


def usable_by_arm(results: list[RunResult]) -> tuple[dict[str, list[RunResult]], list[str]]:
    """`usable`, grouped by arm: every arm keeps its place (an arm whose runs were all left out
    has an empty list), and the labels of the runs left out."""
    kept, excluded = usable(results)
    ids = {id(r) for r in kept}
    return {arm: [r for r in rs if id(r) in ids] for arm, rs in by_arm(results).items()}, excluded


def by_arm(results: list[RunResult]) -> dict[str, list[RunResult]]:
    out: dict[str, list[RunResult]] = {}
    for r in results:
        out.setdefault(r.arm, []).append(r)
    return out


def mean(xs: list[float]) -> float:
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    return sum(xs) / len(xs) if xs else float("nan")


def spread(xs: list[float]) -> str:
    """``mean ± half-range (n)`` as text: with 2–3 seeds the range says more than a std."""
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    if not xs:
        return "–"
    m = sum(xs) / len(xs)
    if len(xs) == 1:
        return f"{m:.2f}"
    return f"{m:.2f} ± {(max(xs) - min(xs)) / 2:.2f}"


def half_range(xs: list[float]) -> float:
    """Half the range of ``xs``; nan with fewer than two values (one seed measures no spread)."""
    return (max(xs) - min(xs)) / 2 if len(xs) > 1 else float("nan")


def noise_of(*groups: list[float]) -> float:
    """The largest half-range over the groups that have two or more seeds; nan if none has."""
    spreads = [half_range(g) for g in groups if len(g) > 1]
    return max(spreads) if spreads else float("nan")


def direction(diff: float, noise: float, expected_sign: int, what: str) -> str:
    """A verdict: does ``diff`` (ours) have the paper's sign, and is it larger than the seeds' noise
    (``noise`` nan: one seed, so no spread to compare against)?"""
    if math.isnan(diff):
        return "inconclusive: no result"
    if diff * expected_sign <= 0:
        return f"does not reproduce: the paper's direction ({what}) was reversed here ({diff:+.2f} points)"
    if math.isnan(noise):
        return f"direction reproduces: {what} ({diff:+.2f} points), one seed, so not tested against seed-to-seed spread"
    if abs(diff) <= noise:
        return f"direction reproduces but within the seeds' spread ({diff:+.2f} vs ±{noise:.2f} points): inconclusive"
    return f"reproduces: {what} ({diff:+.2f} points, beyond the seeds' spread ±{noise:.2f})"


def unstable_runs(results: list[RunResult]) -> list[str]:
    """A note for every run whose training loss rose well above its first epoch's: a rate too high
    for that arm, which says more about the optimiser than about the ingredient."""
    notes = []
    for r in results:
        losses = [row.get("train_loss", float("nan")) for row in r.epochs]
        if len(losses) > 1 and max(losses[1:]) > 1.05 * losses[0]:
            e = max(range(1, len(losses)), key=lambda i: losses[i])
            notes.append(f"{r.arm}, seed {r.seed}: unstable — the training loss rose from {losses[0]:.2f} "
                         f"(epoch 1) to {losses[e]:.2f} (epoch {e + 1}) and ended at {losses[-1]:.2f}; "
                         f"this arm's error partly measures that instability")
    return notes


def diverged(r: RunResult, chance_error: float | None = None) -> bool:
    """A run that did not learn: a non-finite final loss, or a final validation error within 5
    points of chance (``chance_error``; by default the run's own, 90 % for ten classes)."""
    loss = r.last.get("train_loss", float("nan"))
    chance = r.chance_error if chance_error is None else chance_error
    return not math.isfinite(loss) or r.val_error >= chance - 5.0


def usable(results: list[RunResult], chance_error: float | None = None) -> tuple[list[RunResult], list[str]]:
    """The runs a verdict may average, and a label (``"arm, seed N: why"``) for each one left
    out: diverged (`diverged`) or unstable (its training loss rose well above its first epoch's,
    `unstable_runs`). Such a run is reported, never averaged into an error."""
    flagged = {(r.arm, r.seed) for r in results if len(r.epochs) > 1 and
               max(row.get("train_loss", float("nan")) for row in r.epochs[1:]) > 1.05 * r.epochs[0].get("train_loss", float("inf"))}
    keep, out = [], []
    for r in results:
        if diverged(r, chance_error):
            finite = math.isfinite(r.last.get("train_loss", float("nan")))
            why = (f"did not learn (final validation error {r.val_error:.1f} %, at chance)" if finite else
                   f"diverged (the loss became infinite or NaN; final validation error {r.val_error:.1f} %)")
            out.append(f"{r.arm}, seed {r.seed}: {why}")
        elif (r.arm, r.seed) in flagged:
            out.append(f"{r.arm}, seed {r.seed}: unstable (the training loss rose above its first epoch's)")
        else:
            keep.append(r)
    return keep, out


def lower_error(better: list[RunResult], worse: list[RunResult], what: str,
                key: Callable[[RunResult], float] = lambda r: r.val_error) -> str:
    """The verdict for "arm ``better`` has the lower ``key`` (validation error by default) than
    ``worse``", from the difference of their means and the seeds' spread."""
    diff = mean([key(r) for r in worse]) - mean([key(r) for r in better])
    return direction(diff, noise_of([key(r) for r in better], [key(r) for r in worse]), +1, what)


def overfitting_rows(arms: dict[str, list[RunResult]], paper: Callable[[str], str], *,
                     top5: bool = True) -> list[dict[str, Any]]:
    """Table rows: validation error (top-1, and top-5 if ``top5``), training error in eval mode and
    the gap between them (how much the arm overfits) per arm (`cell`: mean and 95 % interval). Needs
    the ``train_eval`` extra."""
    rows = []
    for arm, runs in arms.items():
        row = {"arm": arm, "validation top-1 error (%)": cell([r.val_error for r in runs])}
        if top5:
            row["top-5 error (%)"] = cell([r.val_error5 for r in runs])
        row.update({"training error, eval mode (%)": cell([r.extra.get("train_eval_error") for r in runs]),
                    "overfitting gap (points)": cell([r.overfit_gap for r in runs], signed=True), "seeds": len(runs),
                    "paper": paper(arm)})
        rows.append(row)
    return rows


GAP_NOT_MEASURED = "overfitting gap: not measured (these runs were recorded before the training images were evaluated)"


def diff_cell(c: Comparison | None) -> str:
    """A comparison's difference and 95 % interval as a table cell: ``+1.23 [+0.50, +1.96]``
    (``+1.23`` without an interval, ``–`` without a difference)."""
    if c is None or math.isnan(c.diff):
        return "–"
    return f"{c.diff:+.2f}" + ("" if math.isnan(c.low) else f" [{c.low:+.2f}, {c.high:+.2f}]")


def error_and_gap(rows: list[dict[str, Any]], err: Comparison, gap: Comparison | None, pairing: str) -> Summary:
    """The summary of an experiment judged on its error with its overfitting gap beside it
    (`gap_compare`; None: the gap was not measured, and the notes say so)."""
    if gap is None:
        return Summary(rows, err.text, [pairing, GAP_NOT_MEASURED], [err])
    return Summary(rows, f"{err.text}; overfitting: {gap.text}", [pairing], [err, gap])


def gap_compare(a: list[RunResult], b: list[RunResult], *, paired: bool, what: str,
                excluded: tuple[str, ...] = ()) -> Comparison | None:
    """Arm ``a``'s overfitting gap (validation − training error, eval mode) against ``b``'s: the
    difference b − a with its 95 % interval (`verdict.compare`; positive: ``a`` overfits less).
    None where a run has no ``train_eval`` extra (recorded before its experiment asked for it)."""
    if any("train_eval_error" not in r.extra for r in a + b):
        return None
    return compare(by_seed(a, lambda r: r.overfit_gap), by_seed(b, lambda r: r.overfit_gap), paired=paired,
                   what=what, excluded=excluded)
