"""§3.2: two towers (the two-GPU split) against the one-GPU net with half the kernels.

"This scheme reduces our top-1 and top-5 error rates by 1.7% and 1.2%, respectively, as compared
with a net with half as many kernels in each convolutional layer trained on one GPU. The two-GPU
net takes slightly less time to train than the one-GPU net." (The paper's footnote: the one-GPU
net keeps the two-GPU net's final conv layer and fully connected layers, so that both have about
the same number of parameters.)

Here, ``alexnet-mini``:

- the main comparison, the paper's: two towers (conv2, conv4, conv5 grouped, LRN per tower)
  against one tower with half the kernels in conv1–conv4 (``groups=1, half_kernels=True``);
- a second comparison: one tower of the same width (every kernel sees every map below).

Errors: the difference with its 95 % interval, unpaired (Welch: the nets have different layers,
so a seed gives them different initial weights). Speed: not from the training logs (other jobs
share the machine while a run trains) but measured in one process: training steps of the two
models alternate on one random batch of the runs' size, precision and device, and the ratio of
their median step times (`core.device.median_speedup`) is taken `SPEED_REPEATS` times, giving a
mean ratio with its 95 % interval. The measurement is stored beside the runs
(``OUT/runs/speed-….json``) and reused, with the machine's load average when it was taken, and the
record keeps it in the two-tower run's extras (``step_speed_vs_<run key>``), so that a report
re-derived from the record alone still has it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from . import budget
from .grid import interval_text
from .runs import Arm, Experiment, RunResult
from .setups import FAST_SCALE, MINI, MINI_SCALE, val_curves
from .stats import by_arm, diff_cell, usable
from .verdict import compare, mean_interval

TWO = "two towers (grouped)"
HALF = "one tower, half the kernels (the paper's one-GPU net)"
SAME = "one tower, same width"
SPEED_ROUNDS = 10  # interleaved timed steps of each model per ratio
SPEED_REPEATS = 5  # ratios measured; their mean and 95 % interval are reported


def _config(r: RunResult) -> dict[str, Any] | None:
    try:
        return json.loads((Path(r.run_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return None


def _model(cfg: dict[str, Any]):
    from ..models import build_model

    return build_model(cfg["model"], num_classes=10, **cfg.get("model_kwargs", {}))


def describe(cfg: dict[str, Any] | None) -> tuple[str, str, str]:
    """The net's conv kernels per layer, its parameter count and its multiply-adds per image, as
    text ("?" without a config)."""
    import torch.nn as nn

    if cfg is None:
        return "?", "?", "?"
    m = _model(cfg)
    kernels = "-".join(str(c.out_channels) for c in m.modules() if isinstance(c, nn.Conv2d))
    macs = budget.macs(cfg["model"], json.dumps(cfg.get("model_kwargs", {}), sort_keys=True))
    return kernels, f"{sum(p.numel() for p in m.parameters()):,}", f"{macs / 1e6:.2f} M"


def step_speed_ratio(slow_cfg: dict[str, Any], fast_cfg: dict[str, Any], *, rounds: int = SPEED_ROUNDS,
                     repeats: int = SPEED_REPEATS) -> tuple[float, float, float]:
    """How many times faster a training step (forward, loss, backward, SGD step) of ``fast_cfg``'s
    net runs than one of ``slow_cfg``'s, in this process: the mean of `step_speed_ratios` and its
    95 % interval."""
    return mean_interval(step_speed_ratios(slow_cfg, fast_cfg, rounds=rounds, repeats=repeats))


def step_speed_ratios(slow_cfg: dict[str, Any], fast_cfg: dict[str, Any], *, rounds: int = SPEED_ROUNDS,
                      repeats: int = SPEED_REPEATS) -> list[float]:
    """``repeats`` ratios of median step times of ``slow_cfg``'s net over ``fast_cfg``'s, over
    ``rounds`` interleaved steps each (`median_speedup`), in this process."""
    import torch
    import torch.nn.functional as F

    from ..core.device import median_speedup, precision_named, resolve_device, use_channels_last
    from ..models import model_cfg

    dev = resolve_device(slow_cfg.get("device"))
    prec = precision_named(slow_cfg.get("precision") or "fp32", "as the runs trained")
    c, h, w = model_cfg(slow_cfg["model"]).input_size
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(slow_cfg.get("batch_size", 128), c, h, w, generator=gen).to(dev)
    y = torch.randint(0, 10, (x.shape[0],), generator=gen).to(dev)
    fmt = torch.channels_last if use_channels_last(dev) else torch.contiguous_format
    x = x.contiguous(memory_format=fmt)

    def stepper(cfg: dict[str, Any]):
        model = _model(cfg).to(dev, memory_format=fmt).train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

        def step() -> None:
            with prec.autocast(dev):
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
        return step

    slow, fast = stepper(slow_cfg), stepper(fast_cfg)
    return [median_speedup(slow, fast, rounds) for _ in range(repeats)]


def speed_key(other: RunResult) -> str:
    """Where the two-tower run's extras keep its speed against ``other``'s net."""
    return f"step_speed_vs_{Path(other.run_dir).name}"


def measured_speed(two: RunResult, other: RunResult) -> dict[str, Any] | None:
    """Two towers' training-step speed relative to ``other``'s net (>1: two towers faster),
    measured once, stored beside the runs and kept in the two-tower run's extras — so the
    experiment's record carries it and `alexnet experiment report` finds it there, without the
    runs' folders; None when it was never measured and the runs' configs cannot be read."""
    if speed_key(other) in two.extra:
        return two.extra[speed_key(other)]
    a, b = _config(other), _config(two)
    if a is None or b is None:
        return None
    path = Path(two.run_dir).parent / f"speed-{Path(other.run_dir).name}-{Path(two.run_dir).name}.json"
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        ratios = step_speed_ratios(a, b)
        ratio, lo, hi = mean_interval(ratios)
        rec = {"ratio": ratio, "low": None if math.isnan(lo) else lo, "high": None if math.isnan(hi) else hi,
               "ratios": ratios,  # each repeat's: the mean and interval above are re-derived from these
               "rounds": SPEED_ROUNDS, "repeats": SPEED_REPEATS,
               "batch_size": b.get("batch_size"), "precision": b.get("precision") or "fp32",
               "load_average": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
        from ..core.io import atomic_write_json

        atomic_write_json(path, rec)
    two.extra[speed_key(other)] = rec
    return rec


def speed_text(s: dict[str, Any] | None) -> str:
    if s is None:
        return "not measured"
    if s["low"] is None:
        return f"{s['ratio']:.2f}×"
    return f"{s['ratio']:.2f}× [{s['low']:.2f}, {s['high']:.2f}]"


def speed_verdict(s: dict[str, Any] | None, other: str) -> str:
    if s is None:
        return "speed not measured (the runs' configs could not be read)"
    word = ("reproduces" if s["low"] > 1 else "contradicts" if s["high"] < 1 else "inconclusive") \
        if s["low"] is not None else "inconclusive"
    return (f"{word}: a training step of the two-tower net ran at {speed_text(s)} the speed of the {other}'s "
            f"(95 % CI; {s['repeats']} × {s['rounds']} interleaved steps in one process, {s['precision']}, batch "
            f"{s['batch_size']}, load average {s['load_average']} on {s['cpus']} CPUs); the paper: slightly faster")


def summarize(exp: Experiment, results: list[RunResult]):
    """(rows, verdict, notes, comparisons): the paper's comparison (two towers against one tower
    with half the kernels) first, the same-width one second, each with errors and speed."""
    keep, left_out = usable(results)
    every, kept = by_arm(results), by_arm(keep)
    two = kept.get(TWO, [])
    errs = {arm: {r.seed: r.val_error for r in runs} for arm, runs in kept.items()}
    comps, speeds = {}, {}
    for arm, what in ((HALF, "one tower with half the kernels"), (SAME, "one tower of the same width")):
        comps[arm] = compare(errs.get(TWO, {}), errs.get(arm, {}), paired=False, excluded=tuple(left_out),
                             what=f"two towers have a lower validation error than {what}")
        speeds[arm] = measured_speed(every[TWO][0], every[arm][0]) if every.get(TWO) and every.get(arm) else None
    rows = []
    for arm, runs in every.items():
        kernels, params, macs = describe(_config(runs[0]))
        ok = kept.get(arm, [])
        c = comps.get(arm)
        rows.append({"arm": arm, "conv kernels": kernels, "parameters": params, "multiply-adds per image": macs,
                     "validation top-1 error (%, 95 % CI)": interval_text([r.val_error for r in ok]),
                     "top-5 error (%)": interval_text([r.val_error5 for r in ok]),
                     "two towers lower by (points, 95 % CI)": diff_cell(c),
                     "two towers' step speed (×, 95 % CI)": "–" if arm == TWO else speed_text(speeds.get(arm)),
                     "usable runs": f"{len(ok)} of {len(runs)}",
                     "paper": {TWO: "−1.7 / −1.2 vs the one-GPU net; slightly faster", HALF: "the paper's one-GPU net",
                               SAME: "(not in the paper)"}.get(arm, "")})
    verdict = (f"the paper's comparison (one tower, half the kernels): error — {comps[HALF].text}; speed — "
               f"{speed_verdict(speeds[HALF], 'one-GPU net')}. Same width: error — {comps[SAME].text}")
    notes = [f"{len(two)} usable two-tower run{'s' * (len(two) != 1)}" + (f"; left out (never averaged): {'; '.join(left_out)}" if left_out else ""),
             f"same width, speed — {speed_verdict(speeds[SAME], 'same-width net')}",
             "On one device the towers' reason in the paper — a net too big for one 3 GB GPU — does not arise; "
             "what remains is the grouped connectivity (fewer weights in conv2/4/5). Nor does the paper's speed: "
             "its two GPUs ran one tower each at the same time, while here one device runs both towers one "
             "after the other, so a step's time follows the net's multiply-adds (the table) — the speed "
             "comparison measures that arithmetic on this machine, not the two-GPU split."]
    return rows, verdict, notes, [comps[HALF], comps[SAME]]


EXPERIMENT = Experiment(
    name="towers", title="two towers vs one", section="§3.2",
    claim="the two-GPU net lowers top-1/top-5 error by 1.7/1.2 points against a one-GPU net with half the kernels, "
          "and trains slightly faster",
    base=MINI, arms=(Arm(TWO, {}), Arm(HALF, {"model_kwargs": {"groups": 1, "half_kernels": True}}),
                     Arm(SAME, {"model_kwargs": {"groups": 1}})),
    default=MINI_SCALE, fast=FAST_SCALE, summarize=summarize, plot=val_curves,
    scale_note="Error intervals: Welch's 95 % t-interval (different nets, so unpaired). Speed: measured in one "
               "process after training, alternating the two nets' training steps (see the verdict).")
