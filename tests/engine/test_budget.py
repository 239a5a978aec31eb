"""The arithmetic of ``--time-budget`` (engine/budget.py), apart from any timing: durations, the
plan (the most steps that fit, and no more), the one-line minimum, the one re-plan, the schedule's
stretch after it, and what a resumed run may not change."""

from __future__ import annotations

import math

import pytest

from alexnet.core.errors import UserError
from alexnet.engine.budget import (CLOSE_S, Costs, check_resume_flags, format_duration, make_plan, parse_duration,
                                   replan, replan_due, target)
from alexnet.engine.config import make_config
from alexnet.engine.schedule import LRSchedule


def run_seconds(steps: int, spe: int, c: Costs) -> float:
    """What a run of ``steps`` takes under costs ``c``: setup, its steps, one validation per epoch
    (a cut-short last epoch validates too), the final evaluation."""
    return c.setup + steps * c.step + math.ceil(steps / spe) * c.epoch + c.final


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("15m", 900), ("2h", 7200), ("1h30m", 5400),
                                           ("1.5h", 5400), ("2m30s", 150), (" 10M ", 600),
                                           ("90m", 5400), ("720h", 30 * 86400), ("1h59m59s", 7199)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["90", "", "15 minutes", "1h1h", "m", "0s", "-5m", "30s15m",
                                  "5h99m", "1m60s", "2h0m75s", "720h1s", "100000h"])
def test_a_bad_duration_is_one_line(text):
    with pytest.raises(UserError) as e:
        parse_duration(text)
    assert "\n" not in str(e.value) and "--time-budget" in str(e.value)


COSTS = [Costs(setup=3.0, step=0.01, epoch=0.1, final=0.5),  # the digits: many short epochs
         Costs(setup=40.0, step=0.42, epoch=6.0, final=12.0),  # cifar10-fast-like: 88 steps an epoch
         Costs(setup=5.0, step=2.0, epoch=30.0, final=0.0)]  # long epochs: the last one cut short


@pytest.mark.parametrize("costs", COSTS)
@pytest.mark.parametrize("budget", ["20s", "15m", "2h"])
def test_the_plan_is_the_most_steps_that_fit(costs, budget):
    spe = 88
    try:
        p = make_plan(budget, costs, spe, "bf16")
    except UserError:
        assert run_seconds(spe, spe, costs) > target(parse_duration(budget))  # not even one epoch fits
        return
    aim = target(p.seconds)
    assert run_seconds(p.steps, spe, costs) <= aim + 1e-6 < run_seconds(p.steps + 1, spe, costs)
    assert p.epochs == math.ceil(p.steps / spe) >= 1 and p.steps >= spe
    assert aim < p.seconds - CLOSE_S  # aimed short of the budget: the exit and a reserve
    assert budget in p.reason and f"{p.epochs} epoch" in p.reason and "bf16" in p.reason


def test_a_budget_too_short_for_one_epoch_says_the_least_that_would_do():
    c = Costs(setup=40.0, step=0.42, epoch=6.0, final=12.0)  # one epoch of 88 steps: 43 s
    with pytest.raises(UserError) as e:
        make_plan("90s", c, 88)
    msg = str(e.value)
    assert "\n" not in msg and "too short for one epoch" in msg
    least = msg.rsplit("--time-budget ", 1)[1]
    assert make_plan(least, c, 88).epochs == 1  # the minimum it names is enough …
    with pytest.raises(UserError):
        make_plan(format_duration(parse_duration(least) - 2), c, 88)  # … and not much more than needed


def test_drift_re_plans_the_rest_once():
    spe, first = 50, Costs(setup=10.0, step=0.1, epoch=2.0, final=4.0)
    p = make_plan("10m", first, spe)
    slower = Costs(setup=10.0, step=0.15, epoch=3.0, final=6.0)  # the first epoch ran 1.5× slower
    elapsed = first.setup + spe * slower.step + slower.epoch
    q = replan(p, spe, elapsed, slower)
    assert q is not None and q.steps < p.steps and q.stretch_at == spe and q.stretch_from == p.steps
    assert "re-planned after epoch 1" in q.replan
    # the rest now fits the budget under the measured costs, and is the most that does
    rest = lambda n: elapsed + n * slower.step + math.ceil(n / spe) * slower.epoch + slower.final  # noqa: E731
    assert rest(q.steps - spe) <= target(p.seconds) + 1e-6 < rest(q.steps - spe + 1)
    assert replan(q, 2 * spe, elapsed + 20, Costs(10.0, 0.3, 6.0, 12.0)) is None  # only once
    # costs as planned: no re-plan
    assert replan(p, spe, first.setup + spe * first.step + first.epoch, first) is None


@pytest.mark.parametrize("budget_s, epoch_s, first_due", [
    (1200, 95.0, 3),  # a slow CPU's 20 minutes: the second epoch alone (190 s, past 10 %) is not enough, the third is
    (1200, 46.0, 3),  # a faster one's: 10 % (120 s) and two epochs after the first come together, at the third
    (20, 0.1, 20),  # short epochs: 10 % of the budget first
    (1200, 240.0, 2),  # epochs of 20 % of the budget: not three of them, 30 % gone after the second
    (7200, 2400.0, 1),  # a third of the budget per epoch: the first, alone
])
def test_the_re_plan_waits_for_two_epochs_after_the_first_or_30_percent(budget_s, epoch_s, first_due):
    due = [n for n in range(1, 40) if replan_due(n * epoch_s, n, budget_s)]
    assert due[0] == first_due and not replan_due(0.0, 0, budget_s)


def test_a_run_running_late_by_more_than_half_the_reserve_is_re_planned_early_by_less_is_not():
    from alexnet.engine.budget import DRIFT, LATE, RESERVE

    assert LATE <= RESERVE / 2 < DRIFT  # late: re-planned while the reserve still covers it
    spe, c = 87, Costs(setup=20.0, step=0.5, epoch=1.5, final=3.0)
    p = make_plan("20m", c, spe)
    on_plan = c.setup + spe * c.step + c.epoch  # elapsed after epoch 1 when it went as planned
    end = lambda elapsed, step: elapsed + (p.steps - spe) * step + (p.epochs - 1) * c.epoch + c.final  # noqa: E731
    aim = target(p.seconds)
    # a step 2 % slower than planned: about 1.9 % of the budget late, inside DRIFT but past LATE
    slow = Costs(c.setup, c.step * 1.02, c.epoch, c.final)
    late = end(on_plan, slow.step) - aim
    assert LATE * p.seconds < late < DRIFT * p.seconds
    q = replan(p, spe, on_plan, slow)
    assert q is not None and q.steps < p.steps and end(on_plan, slow.step) > aim
    rest = lambda n: on_plan + n * slow.step + math.ceil(n / spe) * c.epoch + c.final  # noqa: E731
    assert rest(q.steps - spe) <= aim + 1e-6  # the re-planned run ends by the aim again
    # the same drift the other way (2 % faster): early by less than DRIFT, the plan stands
    fast = Costs(c.setup, c.step * 0.98, c.epoch, c.final)
    assert 0 < aim - end(on_plan, fast.step) < DRIFT * p.seconds and replan(p, spe, on_plan, fast) is None


def test_a_re_plan_with_no_time_left_stops_after_the_epoch_done():
    spe, c = 50, Costs(setup=10.0, step=0.1, epoch=2.0, final=4.0)
    p = make_plan("2m", c, spe)
    q = replan(p, spe, 115.0, c)  # the first epoch took nearly the whole budget
    assert q.steps == spe and q.epochs == 1 and "stops after epoch 1" in q.replan


@pytest.mark.parametrize("kind, warmup", [("onecycle", 0), ("linear", 0), ("cosine", 100)])
def test_a_re_planned_schedule_keeps_the_steps_taken_and_its_shape(kind, warmup):
    before = LRSchedule(kind, 0.1, total_steps=1000, steps_per_epoch=50, warmup_steps=warmup)
    after = LRSchedule(kind, 0.1, total_steps=600, steps_per_epoch=50, warmup_steps=warmup, stretch_at=50,
                       stretch_from=1000)
    assert all(after.lr(s) == before.lr(s) for s in range(51))  # the steps already taken, and the next one
    assert after.lr(599) == pytest.approx(before.lr(999), abs=2e-4)  # it ends where the first plan ended
    peak = max(range(600), key=after.lr)  # the warm-up ends in proportion
    assert peak == pytest.approx(50 + (max(range(1000), key=before.lr) - 50) * 550 / 950, abs=2)
    jumps = max(abs(after.lr(s + 1) - after.lr(s)) for s in range(599))
    assert jumps < 0.1 * 0.02  # continuous: no step changes the rate by more than 2 % of the peak


def test_a_step_schedule_is_not_stretched():
    s = LRSchedule("step", 0.1, total_steps=600, steps_per_epoch=50, step_size=3, stretch_at=50, stretch_from=1000)
    assert s.lr(149) == 0.1 and s.lr(150) == pytest.approx(0.01)  # its drops are in epochs


def test_a_resumed_budget_run_keeps_its_plan():
    saved = {"time_budget": "15m", "budget_plan": {"steps": 100}}
    check_resume_flags(saved, {"time_budget": "15m", "lr": 0.1})  # the same budget: fine
    for given in ({"epochs": 30}, {"time_budget": "30m"}):
        with pytest.raises(UserError, match="keeps that plan"):
            check_resume_flags(saved, given)
    with pytest.raises(UserError, match="cannot be added to a resumed run"):
        check_resume_flags({"time_budget": ""}, {"time_budget": "15m"})


def test_the_config_takes_a_budget_and_refuses_it_with_epochs():
    assert make_config("digits", time_budget="1h30m").time_budget == "1h30m"
    with pytest.raises(UserError, match="not both"):
        make_config("digits", time_budget="10m", epochs=3)
    with pytest.raises(UserError, match="--time-budget takes a duration"):
        make_config("cifar10-fast", time_budget="15")
