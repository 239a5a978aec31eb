"""What ``alexnet experiment all`` (or one experiment) will train, and about how long it will take.

Every arm × seed of every experiment is a run named by its config (`run_key`); a run that two
experiments share (the same baseline) is trained once, by the first experiment that needs it, and
the later ones reuse it (`Plan`). What is left of each run is estimated from the measured epoch
times of the base networks on the reference machine (`setups.EPOCH_SECONDS`, measured by
tools/experiment_budget.py; docs/experiments-budget.md): a finished run (``result.json``) costs
nothing, an interrupted one only its remaining epochs, and each extra evaluation
(`runs.EXTRAS`) about half an epoch.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import UserError
from .runs import EXTRA_KEYS, Experiment, Scale, read_metrics, read_result
from .setups import EPOCH_SECONDS, REFERENCE_IMAGES, REFERENCE_MACHINE, RUN_OVERHEAD_SECONDS

# The part of an epoch that grows with the network's multiply-adds; the rest (the data, the
# element-wise layers, the optimiser) does not. Fitted to two measured epochs, each in the precision
# `--amp auto` took for it (AMD EPYC, 2 cores): `alexnet-mini` at half width, 11.7 s (fp32); the same
# with 2,048-wide fully connected layers (dropout's), 1.61× the multiply-adds, 14.5 s (bf16, 1.2× fp32
# there): (14.5 / 11.7 − 1) / 0.61 ≈ 0.4. An estimate, not a model of the machine.
MAC_SHARE = 0.4
EXTRA_EPOCHS = 0.5  # an extra evaluation (training images in eval mode, ten-crop) ≈ half an epoch


@dataclass(frozen=True)
class PlannedRun:
    """One unique run: the experiment that trains it (the first that needs it), its arm and seed,
    its directory's name, how far it got, the experiments that reuse it, and the seconds left."""

    experiment: str
    arm: str
    seed: int
    key: str
    state: str  # "new", "interrupted" (resumes from its last checkpoint) or "cached" (finished)
    seconds: float  # estimated, on the reference machine (nan: no measured epoch time for this model)
    shared_with: tuple[str, ...] = ()


@dataclass
class Plan:
    """The unique runs of some experiments (`plan_runs`) and, per experiment, how many runs it
    uses, how many it trains itself and the estimated seconds of what it adds."""

    runs: list[PlannedRun]
    used: dict[str, int] = field(default_factory=dict)  # experiment → its arm × seed runs
    seconds: dict[str, float] = field(default_factory=dict)  # experiment → estimated seconds it adds

    @property
    def hours(self) -> float:
        return sum(self.seconds.values()) / 3600

    def table(self) -> list[dict[str, Any]]:
        """One row per experiment: its runs, those it trains, those it reuses, and hours."""
        rows = []
        for name, used in self.used.items():
            own = [r for r in self.runs if r.experiment == name]
            rows.append({"experiment": name, "runs": used, "trained here": len(own), "reused": used - len(own),
                         "cached": sum(r.state == "cached" for r in own),
                         "hours": round(self.seconds[name] / 3600, 2)})
        return rows

    def summary(self) -> str:
        """One line: the unique runs by state and the estimated time left."""
        states = {k: sum(r.state == k for r in self.runs) for k in ("cached", "interrupted", "new")}
        return (f"{len(self.runs)} runs: {states['cached']} cached, {states['interrupted']} interrupted (resume), "
                f"{states['new']} new; about {_hours(self.hours * 3600)} on the reference machine ({REFERENCE_MACHINE}; "
                f"this one's time differs)")

    def lines(self) -> list[str]:
        """The plan as printed before `alexnet experiment all` starts."""
        total = sum(self.used.values())
        cached = sum(r.state == "cached" for r in self.runs)
        stopped = sum(r.state == "interrupted" for r in self.runs)
        out = [f"plan: {len(self.used)} experiment{'s' * (len(self.used) != 1)}, {total} runs, {len(self.runs)} "
               f"unique ({total - len(self.runs)} shared between experiments); {cached} finished before (cached), "
               f"{stopped} interrupted (resume), {len(self.runs) - cached - stopped} new",
               f"estimated {_hours(self.hours * 3600)} of training left on {REFERENCE_MACHINE} (measured epoch "
               f"times; docs/experiments-budget.md):"]
        width = max(len(n) for n in self.used)
        for row in self.table():
            reused = f", {row['reused']} reused" if row["reused"] else ""
            out.append(f"  {row['experiment']:<{width}}  {row['runs']:>3} runs ({row['trained here']} trained here"
                       f"{reused}, {row['cached']} cached)  {_hours(self.seconds[row['experiment']])}")
        return out


def _hours(seconds: float) -> str:
    if math.isnan(seconds):
        return "? h (no measured epoch time for this model)"
    return f"{seconds / 3600:.1f} h" if seconds >= 360 else f"{seconds / 60:.1f} min"


def epoch_seconds(cfg) -> float:
    """Estimated seconds of one epoch of ``cfg`` on the reference machine: the measured epoch of its
    model at the nearest width measured, scaled by width² (the layers' cost), by its variant's
    multiply-adds against the plain network's at that width (`macs`: a layer removed, wider fully
    connected layers; only the part `MAC_SHARE` of an epoch follows them), and by its number of
    training images (the data's own where they are cheap to count, `data_images`, less the validation
    share; else the whole split: `REFERENCE_IMAGES`). nan for a model never measured."""
    width = float(cfg.model_kwargs.get("width", 1.0))
    known = {w: s for (m, w), s in EPOCH_SECONDS.items() if m == cfg.model and s > 0}
    if not known:
        return float("nan")
    ref = width if width in known else min(known, key=lambda w: abs(w - width))
    images = min(cfg.train_subset, REFERENCE_IMAGES) if cfg.train_subset else REFERENCE_IMAGES
    held = data_images(cfg.data)  # fewer images than the reference split: shorter epochs
    if held is not None:
        count, own_val = held
        images = min(images, max(1, round(count * (1 if own_val else 1 - cfg.val_split))))
    plain = {"width": width} if "width" in cfg.model_kwargs else {}
    variant = macs(cfg.model, json.dumps(cfg.model_kwargs, sort_keys=True)) / macs(cfg.model, json.dumps(plain))
    cost = (width / ref) ** 2 * (1 - MAC_SHARE + MAC_SHARE * variant)
    return known[ref] * cost * images / REFERENCE_IMAGES


@functools.lru_cache(maxsize=None)
def data_images(spec: str) -> tuple[int, bool] | None:
    """(images of data ``spec``'s training part, whether the data has a validation part of its own,
    which ``--val-split`` then leaves whole), where counting is cheap: nothing is read, and the count
    stops past the reference split (more cost no more). CIFAR-10's python batches: 50,000 and a
    test batch; a folder of class folders: its image files (``train/``'s where it has one). None
    otherwise (a list, shards, …): the plan then assumes the reference split."""
    from ..data.builtin import find_cifar_batches
    from ..data.folders import folder_splits, image_files

    path = os.path.expanduser(spec.partition(":")[2] if ":" in spec else spec)
    if not os.path.isdir(path):
        return None
    batches = find_cifar_batches(path)
    if batches is not None:
        return (50_000, True) if os.path.isfile(os.path.join(batches, "data_batch_1")) else None
    try:
        train, val = folder_splits(path)
        count = sum(1 for _ in itertools.islice(image_files(train), 2 * REFERENCE_IMAGES)) if train else 0
    except (OSError, UserError):
        return None
    return (count, val is not None) if count else None


@functools.lru_cache(maxsize=None)
def macs(model: str, kwargs_json: str) -> int:
    """Multiply-adds per image of ``model`` built with the keyword arguments ``kwargs_json``
    (`alexnet.models.summarize`; a forward pass of one image)."""
    from ..models import build_model, model_cfg, summarize

    return summarize(build_model(model, num_classes=10, **json.loads(kwargs_json)), model_cfg(model).input_size).total_macs


def run_seconds(cfg, run_dir: Path, extras: tuple[str, ...]) -> tuple[str, float]:
    """(state, estimated seconds left) of the run ``cfg`` in ``run_dir`` with ``extras`` to evaluate."""
    epoch = epoch_seconds(cfg)
    result = read_result(run_dir)
    if result is not None:
        have = result.get("extra", {})
        todo = [e for e in extras if not all(k in have for k in EXTRA_KEYS[e])]
        return "cached", EXTRA_EPOCHS * epoch * len(todo)
    done = 0
    stopped = any((run_dir / "checkpoints" / f).is_file() for f in ("last.pt", "last.prev.pt"))  # it resumes
    if stopped:
        try:
            done = len(read_metrics(run_dir))
        except OSError:
            done = 0
    state = "interrupted" if stopped else "new"
    return state, RUN_OVERHEAD_SECONDS + epoch * (max(0, cfg.epochs - done) + EXTRA_EPOCHS * len(extras))


def plan_runs(jobs: list[tuple[Experiment, Scale]], *, data: str, out: Path, **over: Any) -> Plan:
    """The plan of running ``jobs`` (each an experiment at a scale) in order into ``out``: each
    unique run once, owned by the first experiment that needs it; an extra evaluation a later
    experiment asks of a shared run is counted in that experiment's time."""
    owner: dict[str, int] = {}
    runs: list[PlannedRun] = []
    extras_of: dict[str, set[str]] = {}
    plan = Plan(runs)
    for exp, scale in jobs:
        plan.used[exp.name], plan.seconds[exp.name] = 0, 0.0
        for seed in range(scale.seeds):
            for arm, cfg in exp.plan_configs(scale, seed, data, out, **over):
                plan.used[exp.name] += 1
                run_dir, key = out / "runs" / cfg.name, cfg.name
                if key not in owner:
                    state, secs = run_seconds(cfg, run_dir, exp.extras)
                    owner[key], extras_of[key] = len(runs), set(exp.extras)
                    runs.append(PlannedRun(exp.name, arm.label, seed, key, state, secs))
                    plan.seconds[exp.name] += secs
                    continue
                i = owner[key]
                runs[i] = PlannedRun(**{**runs[i].__dict__, "shared_with": runs[i].shared_with + (exp.name,)})
                new = [e for e in exp.extras if e not in extras_of[key]]
                extras_of[key].update(new)
                if new and runs[i].state != "cached":
                    plan.seconds[exp.name] += EXTRA_EPOCHS * epoch_seconds(cfg) * len(new)
                elif new:
                    plan.seconds[exp.name] += run_seconds(cfg, run_dir, tuple(new))[1]
    return plan


__all__ = ["Plan", "PlannedRun", "plan_runs", "epoch_seconds", "run_seconds", "EXTRA_EPOCHS"]
