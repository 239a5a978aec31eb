"""The verdict rule (experiments.verdict): with no effect it rarely says "reproduces", with a real
effect it finds it, and its interval is the textbook one."""

from __future__ import annotations

import math
import random

import pytest

from alexnet.experiments.verdict import compare, mean_interval, ratio_interval

DRAWS = 4000


def simulate(effect: float, *, n: int, paired: bool, seed: int, sd: float = 1.0, seed_sd: float = 2.0) -> dict:
    """Run the rule on ``DRAWS`` simulated experiments: ``n`` seeds per arm, the paper's arm lower
    by ``effect`` (errors: lower is better), run-to-run noise ``sd``; paired draws share a per-seed
    term of spread ``seed_sd`` (the data order and initial weights they share)."""
    rng = random.Random(seed)
    counts = dict.fromkeys(("reproduces", "contradicts", "inconclusive"), 0)
    for _ in range(DRAWS):
        shared = [rng.gauss(0, seed_sd) if paired else 0.0 for _ in range(n)]
        paper = {s: 30.0 - effect + shared[s] + rng.gauss(0, sd) for s in range(n)}
        other = {s: 30.0 + shared[s] + rng.gauss(0, sd) for s in range(n)}
        counts[compare(paper, other, what="x", paired=paired).verdict] += 1
    return {k: v / DRAWS for k, v in counts.items()}


@pytest.mark.parametrize("n,paired", [(3, True), (3, False), (5, True), (5, False)])
def test_no_effect_rarely_reproduces(n, paired):
    rates = simulate(0.0, n=n, paired=paired, seed=n + paired)
    # the rule's own rate is 2.5 % each way; 4,000 draws put the estimate within about ±0.6
    assert rates["reproduces"] <= 0.05, rates
    assert rates["contradicts"] <= 0.05, rates


@pytest.mark.parametrize("n,paired", [(3, True), (5, False)])
def test_a_real_effect_is_found(n, paired):
    # an effect of 5 run-to-run standard deviations (3.5 of a paired difference's), above the
    # smallest effect 3 pairs can detect (4.4 here): found in over 80 % of experiments, never
    # called the other way
    rates = simulate(5.0, n=n, paired=paired, seed=7)
    assert rates["reproduces"] >= 0.8, rates
    assert rates["contradicts"] == 0.0, rates


def test_the_opposite_effect_contradicts():
    rates = simulate(-5.0, n=3, paired=True, seed=11)
    assert rates["contradicts"] >= 0.8 and rates["reproduces"] == 0.0, rates


def test_pairing_removes_the_shared_seed_term():
    # the per-seed term (spread 2) dwarfs the effect (1): paired, the effect shows; unpaired, not
    paired = simulate(1.5, n=5, paired=True, seed=3, sd=0.3, seed_sd=3.0)
    rng = random.Random(3)
    unpaired_hits = 0
    for _ in range(500):
        shared = [rng.gauss(0, 3.0) for _ in range(5)]
        paper = {s: 30 - 1.5 + shared[s] + rng.gauss(0, 0.3) for s in range(5)}
        other = {s: 30 + shared[s] + rng.gauss(0, 0.3) for s in range(5)}
        unpaired_hits += compare(paper, other, what="x", paired=False).verdict == "reproduces"
    assert paired["reproduces"] >= 0.9
    assert unpaired_hits / 500 < 0.3


def test_interval_matches_the_textbook():
    # paired: d = 1, 2, 3 → mean 2, sd 1, t(0.975, 2) = 4.303 → 2 ± 2.484
    c = compare({0: 10, 1: 10, 2: 10}, {0: 11, 1: 12, 2: 13}, what="x", paired=True)
    assert c.diff == pytest.approx(2.0)
    assert (c.low, c.high) == pytest.approx((2 - 4.3027 / math.sqrt(3), 2 + 4.3027 / math.sqrt(3)), abs=1e-3)
    assert c.verdict == "inconclusive" and c.mde > c.high - c.diff
    # Welch against scipy's own unequal-variance t-test: the interval excludes 0 exactly when p < 0.05
    from scipy.stats import ttest_ind

    a, b = [10.0, 10.5, 9.8, 10.1], [11.0, 12.4, 11.9]
    c = compare(dict(enumerate(a)), dict(enumerate(b)), what="x", paired=False)
    p = ttest_ind(b, a, equal_var=False).pvalue
    assert (c.low > 0) == (p < 0.05)
    assert c.verdict == "reproduces"
    # the sign: higher is better flips it
    c = compare({0: 80, 1: 81, 2: 82}, {0: 70, 1: 71.5, 2: 71}, what="x", paired=True, higher_is_better=True)
    assert c.verdict == "reproduces" and c.diff > 0


def test_too_few_runs_give_no_verdict():
    c = compare({0: 10.0}, {0: 20.0}, what="LRN lowers the error", paired=True, excluded=("without LRN, seed 1",))
    assert c.verdict == "inconclusive" and math.isnan(c.low)
    assert "too few usable runs" in c.text
    d = c.to_dict()
    assert d["low"] is None and d["excluded"] == ["without LRN, seed 1"]
    # a run left out (nan) does not count as a pair
    c = compare({0: 10.0, 1: math.nan, 2: 11.0}, {0: 12.0, 1: 13.0, 2: 12.5}, what="x", paired=True)
    assert c.n == (2, 2)


def test_mean_and_ratio_intervals():
    m, lo, hi = mean_interval([1.0, 2.0, 3.0])
    assert m == 2.0 and lo == pytest.approx(2 - 4.3027 / math.sqrt(3), abs=1e-3)
    r, lo, hi = ratio_interval([12.0, 14.0, 13.0], [2.0, 2.2, 2.1])
    assert 5.5 < r < 7.0 and lo < r < hi and lo > 4
    r, lo, hi = ratio_interval([12.0], [2.0, 2.2])
    assert r == pytest.approx(12 / math.sqrt(4.4)) and math.isnan(lo)


@pytest.mark.parametrize("paired", [True, False])
def test_runs_that_do_not_vary_give_no_interval_and_no_verdict(paired):
    """Two seeds with the very same difference (errors in coarse steps) make a zero-width interval:
    that is no evidence, not a reproduction."""
    c = compare({0: 30.0, 1: 30.0}, {0: 32.0, 1: 32.0}, what="X lowers the error", paired=paired)
    assert c.verdict == "inconclusive" and math.isnan(c.low)
    assert "the runs do not vary" in c.text and "no interval" in c.text


def test_the_same_difference_up_to_rounding_is_no_spread_either():
    """Three validation images: every paired difference is one image, 33.33 points, equal up to the
    last bits of a float; the interval must not collapse to a confident point."""
    third = 100.0 / 3
    c = compare({0: 100 - 2 * third, 1: 100 - 2 * third, 2: 100.0 - 2 * third},
                {0: 100.0, 1: 100 - 1e-13, 2: 100.0}, what="X lowers the error", paired=True)
    assert c.verdict == "inconclusive" and math.isnan(c.low) and "the runs do not vary" in c.text
    real = compare({0: 30.0, 1: 30.5, 2: 29.8}, {0: 33.0, 1: 33.4, 2: 32.9}, what="X", paired=True)
    assert real.verdict == "reproduces"  # a real spread still gives its interval


def test_an_error_cells_interval_does_not_go_below_zero_but_a_gaps_does():
    from alexnet.experiments.stats import cell

    assert cell([0.2, 1.4]) == "0.80 [0.00, 8.42]"  # Student t gives [-6.82, 8.42]: no error rate is negative
    assert cell([0.2, 1.4], signed=True) == "0.80 [-6.82, 8.42]"  # an overfitting gap can be
    assert cell([20.0, 22.0, 21.0]) == "21.00 [18.52, 23.48]"  # far from 0: as before
