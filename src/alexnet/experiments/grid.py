"""Experiments whose arms are settings × learning rates: one seed per rate, more at the best one.

Figure 1 ("the learning rates for each network were chosen independently to make training as fast
as possible") and §3.3 (each arm at its own best stable rate) need a rate grid per setting.
Training every rate with every seed would cost seeds × rates runs; here seed 0 trains every rate
of the grid, and seeds 1, 2, … train only each setting's best rate, chosen by the experiment's
``choose`` from the seed-0 runs (the seed-0 run at that rate counts among its seeds; the choice
favours a lucky seed 0 equally in every setting). The summary makes the same choice again from the
same runs, so the table and the runs trained cannot disagree.

An arm's label is ``"<setting> lr <rate>"`` (`rate_arms`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .runs import Arm, Experiment, RunResult, Scale, classes_of, read_result, train_or_reuse
from .verdict import mean_interval

SEP = " lr "


def setting_of(label: str) -> str:
    return label.rsplit(SEP, 1)[0]


def rate_of(label: str) -> float:
    return float(label.rsplit(SEP, 1)[1])


def rate_arms(settings: dict[str, dict[str, Any]], rates: dict[str, tuple[float, ...]]) -> tuple[Arm, ...]:
    """One arm per setting and rate: ``settings`` maps a setting's name to its config fields (its
    ``model_kwargs`` among them), ``rates`` the setting's name to its grid."""
    return tuple(Arm(f"{name}{SEP}{lr:g}", {**fields, "lr": lr})
                 for name, fields in settings.items() for lr in rates[name])


def grid_of(results: list[RunResult]) -> dict[str, dict[float, RunResult]]:
    """Each setting's seed-0 runs by rate (the grid as trained)."""
    out: dict[str, dict[float, RunResult]] = {}
    for r in results:
        if r.seed == 0:
            out.setdefault(setting_of(r.arm), {})[rate_of(r.arm)] = r
    return out


def best_rates(results: list[RunResult], choose: Callable[[dict[float, RunResult]], float]) -> dict[str, float]:
    """Each setting's best rate: ``choose`` applied to its seed-0 runs by rate."""
    return {setting: choose(by_rate) for setting, by_rate in grid_of(results).items()}


def at_best(results: list[RunResult], best: dict[str, float]) -> dict[str, list[RunResult]]:
    """Each setting's runs (every seed) at its best rate, in seed order."""
    out: dict[str, list[RunResult]] = {s: [] for s in best}
    for r in sorted(results, key=lambda r: r.seed):
        s = setting_of(r.arm)
        if s in best and rate_of(r.arm) == best[s]:
            out[s].append(r)
    return out


def edge(rate: float, rates: list[float]) -> str:
    """``"smallest"`` or ``"largest"`` when ``rate`` is at that end of the grid ``rates``, else ``""``."""
    rates = sorted(rates)
    if len(rates) < 2:
        return "only"
    return "smallest" if rate == rates[0] else "largest" if rate == rates[-1] else ""


def interval_text(values: list[float], fmt: str = ".2f") -> str:
    """``mean [low, high]`` (the 95 % t-interval) of the finite ``values``; one value: just it."""
    m, lo, hi = mean_interval(values)
    if math.isnan(m):
        return "–"
    return f"{m:{fmt}}" if math.isnan(lo) else f"{m:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


@dataclass(frozen=True)
class GridExperiment(Experiment):
    """An `Experiment` over settings × rates (see the module docstring). ``choose`` maps one
    setting's seed-0 runs by rate to its best rate."""

    choose: Callable[[dict[float, RunResult]], float] | None = None

    def configs(self, scale: Scale, seed: int, data: str, out: Path, **over: Any) -> list[tuple[Arm, Any]]:
        """Seed 0: every rate of every setting. A later seed: each setting's best rate only, chosen
        from the seed-0 runs — trained here first when they are not in the run cache yet."""
        every = super().configs(scale, seed, data, out, **over)
        if seed == 0:
            return every
        best = best_rates(self.seed0_results(scale, data, out, **over), self.choose)
        return [(arm, cfg) for arm, cfg in every if best.get(setting_of(arm.label)) == rate_of(arm.label)]

    def plan_configs(self, scale: Scale, seed: int, data: str, out: Path, **over: Any) -> list[tuple[Arm, Any]]:
        """`configs` without training anything, for a plan: a later seed's runs at the best rates
        when the seed-0 grid is in the run cache, else one stand-in per setting (its middle rate),
        so that the plan counts the right number of runs."""
        every = super().configs(scale, seed, data, out, **over)
        if seed == 0:
            return every
        grid = super().configs(scale, 0, data, out, **over)
        if all(read_result(Path(cfg.output_dir) / cfg.name) is not None for _, cfg in grid):
            return self.configs(scale, seed, data, out, **over)
        by_setting: dict[str, list[tuple[Arm, Any]]] = {}
        for arm, cfg in every:
            by_setting.setdefault(setting_of(arm.label), []).append((arm, cfg))
        return [runs[len(runs) // 2] for runs in by_setting.values()]

    def seed0_results(self, scale: Scale, data: str, out: Path, **over: Any) -> list[RunResult]:
        """The seed-0 runs of the whole grid, trained (or read from the run cache)."""
        results = []
        todo = super().configs(scale, 0, data, out, **over)
        for i, (arm, cfg) in enumerate(todo, start=1):
            run_dir = Path(cfg.output_dir) / cfg.name
            if read_result(run_dir) is None:
                print(f"[{self.name}] the grid first, to choose each setting's rate ({i}/{len(todo)}): {arm.label}, "
                      f"seed 0 → {run_dir}")
            result, _ = train_or_reuse(cfg, self.extras, print)
            results.append(RunResult(arm.label, 0, str(run_dir), result["epochs"], result["extra"],
                                     num_classes=classes_of(run_dir)))
        return results


__all__ = ["GridExperiment", "at_best", "best_rates", "edge", "grid_of", "interval_text", "rate_arms",
           "rate_of", "setting_of"]
