"""The verdict rule: a difference between two arms, its 95 % confidence interval, and what follows.

An experiment asks whether one arm (the paper's choice) does better than another by some measure
(validation error, overfitting gap, epochs to a target). With a few seeds per arm the rule is the
usual one, and nothing looser:

- the mean difference, signed so that positive is the paper's direction, with a 95 % Student-t
  interval: *paired* by seed (the differences of runs that share a seed, so the same data order
  and, where the arms have the same layers, the same initial weights) or, unpaired, Welch's
  interval for two groups of unequal spread;
- **reproduces** when the whole interval lies on the paper's side of 0, **contradicts** when it
  lies on the other side, **inconclusive** otherwise, with the smallest effect these seeds could
  have detected (80 % power at the 5 % level: ``(t₀.₉₇₅ + t₀.₈₀) × standard error``);
- a run that diverged or was unstable is never averaged in: the caller leaves it out and names it
  (`excluded`), and with fewer than two usable runs per arm there is no interval and no verdict;
- with fewer than three (seed pairs, or runs on a side) the interval is given but the verdict stays
  *inconclusive*: two seeds are not enough to call a difference.

With no real effect the rule says *reproduces* in 2.5 % of experiments (half of the 5 % outside
the interval); tests/experiments/test_verdict.py checks that by simulation, and that a real effect
is found.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Mapping

VERDICTS = ("reproduces", "contradicts", "inconclusive")
LEVEL = 0.95  # two-sided confidence of the interval
MIN_RUNS = 3  # per arm (paired: seed pairs) before an interval may give a verdict
POWER = 0.80  # of the smallest detectable effect


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (not necessarily whole)."""
    from scipy.stats import t

    return float(t.ppf(p, df))


@dataclass(frozen=True)
class Comparison:
    """One difference between two arms and the verdict it supports.

    ``diff`` is ``mean(other) − mean(paper)`` for a measure where lower is better (or the reverse,
    as the caller arranged it), so that a positive value is the paper's direction; ``low``/``high``
    bound its 95 % interval (nan with fewer than two usable runs on a side); ``mde`` is the
    smallest difference these runs could have detected; ``n`` the runs (paired: seed pairs) used."""

    what: str  # the paper's claim, as a clause: "LRN lowers the error"
    unit: str
    diff: float
    low: float
    high: float
    n: tuple[int, int]
    paired: bool
    df: float
    mde: float
    verdict: str
    excluded: tuple[str, ...] = field(default_factory=tuple)

    @property
    def interval(self) -> str:
        if math.isnan(self.low):
            return "no interval"
        return f"95 % CI [{self.low:+.2f}, {self.high:+.2f}]"

    @property
    def design(self) -> str:
        if self.paired:
            return f"paired by seed, {self.n[0]} pair{'s' if self.n[0] != 1 else ''}"
        return f"unpaired (Welch), {self.n[0]} and {self.n[1]} runs"

    @property
    def text(self) -> str:
        """The verdict as one line: the word, the claim, the difference and its interval."""
        u = f" {self.unit}" if self.unit else ""
        diff = "no difference to take" if math.isnan(self.diff) else f"{self.diff:+.2f}{u}"  # no usable run in an arm
        num = f"{diff}, {self.interval}; {self.design}"
        if self.verdict == "reproduces":
            return f"reproduces: {self.what} ({num})"
        if self.verdict == "contradicts":
            return f"contradicts: the opposite of \"{self.what}\" held here ({num})"
        if math.isnan(self.low) and min(self.n) >= 2:
            return (f"inconclusive: {self.what}? the runs do not vary (the same difference every time: a measure "
                    f"in coarse steps?), so no interval; more seeds or more validation images ({num})")
        if math.isnan(self.low):
            return f"inconclusive: {self.what}? too few usable runs for an interval ({num})"
        if min(self.n) < MIN_RUNS:
            return (f"inconclusive: {self.what}? ({num}); a verdict takes at least {MIN_RUNS} "
                    f"{'seed pairs' if self.paired else 'runs an arm'}")
        return (f"inconclusive: {self.what}? ({num}); the smallest effect these runs could detect is "
                f"{self.mde:.2f}{u}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["n"] = list(self.n)
        d["excluded"] = list(self.excluded)
        d["text"] = self.text
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def _var(xs: list[float]) -> float:
    m = _mean(xs)
    return sum((x - m) ** 2 for x in xs) / (len(xs) - 1)


def compare(paper: Mapping[int, float], other: Mapping[int, float], *, what: str, paired: bool,
            higher_is_better: bool = False, unit: str = "points", excluded: tuple[str, ...] = ()) -> Comparison:
    """The verdict on "the ``paper`` arm does better than the ``other`` arm".

    ``paper`` and ``other`` map seed → measure (runs already left out are absent; name them in
    ``excluded``). Lower is better unless ``higher_is_better``. ``paired``: the difference of runs
    with the same seed (only seeds present in both arms count); else Welch's two-group interval."""
    sign = -1.0 if higher_is_better else 1.0
    clean = {s: v for s, v in paper.items() if v is not None and math.isfinite(v)}
    clean_o = {s: v for s, v in other.items() if v is not None and math.isfinite(v)}
    if paired:
        seeds = sorted(set(clean) & set(clean_o))
        d = [sign * (clean_o[s] - clean[s]) for s in seeds]
        n = (len(d), len(d))
        diff = _mean(d)
        if len(d) >= 2:
            df = len(d) - 1.0
            se = math.sqrt(_var(d) / len(d))
        else:
            df, se = math.nan, math.nan
    else:
        a, b = list(clean.values()), list(clean_o.values())
        n = (len(a), len(b))
        diff = sign * (_mean(b) - _mean(a)) if a and b else math.nan
        if len(a) >= 2 and len(b) >= 2:
            va, vb = _var(a) / len(a), _var(b) / len(b)
            se = math.sqrt(va + vb)
            # Welch–Satterthwaite; with no spread at all on both sides, the smaller group's df
            df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if va + vb > 0 else min(n) - 1.0
        else:
            df, se = math.nan, math.nan
    if math.isnan(se) or se <= 1e-9 * max(1.0, abs(diff)):  # every run gave the same difference (coarse measures:
        # one validation image of three is 33.33 points), up to rounding: no evidence of spread
        return Comparison(what, unit, diff, math.nan, math.nan, n, paired, math.nan, math.nan, "inconclusive",
                          tuple(excluded))
    half = t_quantile(0.5 + LEVEL / 2, df) * se
    mde = (t_quantile(0.5 + LEVEL / 2, df) + t_quantile(POWER, df)) * se
    low, high = diff - half, diff + half
    verdict = "reproduces" if low > 0 else "contradicts" if high < 0 else "inconclusive"
    if min(n) < MIN_RUNS:
        verdict = "inconclusive"
    return Comparison(what, unit, diff, low, high, n, paired, df, mde, verdict, tuple(excluded))


def mean_interval(values: list[float]) -> tuple[float, float, float]:
    """The mean of ``values`` and its 95 % Student-t interval (nan bounds with fewer than two)."""
    xs = [v for v in values if v is not None and math.isfinite(v)]
    m = _mean(xs)
    if len(xs) < 2:
        return m, math.nan, math.nan
    h = t_quantile(0.5 + LEVEL / 2, len(xs) - 1) * math.sqrt(_var(xs) / len(xs))
    return m, m - h, m + h


def ratio_interval(num: Mapping[int, float] | list[float], den: Mapping[int, float] | list[float],
                   paired: bool = False) -> tuple[float, float, float]:
    """The ratio of two positive measures (e.g. one arm's epochs to a target error over
    another's) as the ratio of their geometric means, with a 95 % interval from the interval of the
    difference of their logarithms: paired by seed (``num`` and ``den`` map seed → measure, as the
    comparison beside it pairs them) or Welch's. nan bounds with fewer than two values on a side."""
    def logs(xs: Mapping[int, float] | list[float]) -> dict[int, float]:
        items = xs.items() if isinstance(xs, Mapping) else enumerate(xs)
        return {k: math.log(x) for k, x in items if x and x > 0 and math.isfinite(x)}

    c = compare(logs(den), logs(num), what="", paired=paired, unit="")  # diff = mean(log num) − mean(log den)
    est = math.exp(c.diff) if not math.isnan(c.diff) else math.nan
    if math.isnan(c.low):
        return est, math.nan, math.nan
    return est, math.exp(c.low), math.exp(c.high)
