"""Measure what ``alexnet experiment all`` costs on this machine, into docs/experiments/budget.json.

    python tools/experiment_budget.py measure cifar4 --data cifar10:PATH          # one epoch, ~1-2 min
    python tools/experiment_budget.py measure alexnet-mini --data cifar10:PATH [--width 1.0]
    python tools/experiment_budget.py plan --data cifar10:PATH                    # hours, per experiment
    python tools/experiment_budget.py measured                                    # the hours the records took

``measure``: one epoch of a base network as the experiments train it — the first arm of ``lrn``
(cifar4) or ``depth`` (alexnet-mini) at its default scale: the whole training split less the
stratified 10 % hold-out, resident, in the precision ``--amp auto`` pins for that experiment. It
records the epoch's time (training and validation, from metrics.csv), the run's whole wall time
(decoding the set into memory included), the precision and the machine. ``plan``: the unique
runs of every experiment at its default scale and the hours each adds, from the epoch times in
``alexnet.experiments.setups.EPOCH_SECONDS`` (copied there from ``measure``; a test keeps the two
equal). ``measured``: the hours the committed records (docs/experiments/NAME.json) actually took,
beside the plan's, from each run's recorded wall time (training and its extra evaluations; for a
run resumed after an interruption at least its epochs' times, `alexnet.experiments.output.run_wall_s`,
so those hours are a lower bound by the start-up of the interrupted processes; a run
shared by several experiments counted once, at the first that trains it, as the plan counts it;
an extra evaluation a later experiment adds to it, at that experiment).
CIFAR-10 is not shipped: get it yourself (docs/cifar10.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

BUDGET = Path(__file__).resolve().parents[1] / "docs" / "experiments" / "budget.json"
BASE_OF = {"cifar4": "lrn", "alexnet-mini": "depth"}  # an experiment whose first arm is the base network


def measure(model: str, data: str, width: float | None) -> dict:
    from alexnet import experiments
    from alexnet.engine import fit
    from alexnet.engine.precision import experiment_precision, pinned_fields
    from alexnet.core.machine import machine_line
    from alexnet.experiments.runs import read_metrics

    exp = experiments.get(BASE_OF[model])
    scale = dataclasses.replace(exp.default, epochs=1, seeds=1, **({"width": width} if width else {}))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = exp.configs(scale, 0, data, Path(tmp))[0][1]
        p = experiment_precision(cfg)
        cfg = exp.configs(scale, 0, data, Path(tmp), **pinned_fields(p, f"pinned for experiment {exp.name}"))[0][1]
        t = time.perf_counter()
        fit(cfg)
        wall = time.perf_counter() - t
        row = read_metrics(Path(cfg.output_dir) / cfg.name)[-1]
    return {"model": model, "width": scale.width, "batch_size": scale.batch_size, "aug": cfg.aug,
            "val_split": cfg.val_split, "train_images": int(row["step"]) * scale.batch_size,
            "precision": p.name, "precision_reason": p.reason, "epoch_s": row["time"],
            "img_per_s": row["img_per_s"], "wall_s": round(wall, 1), "overhead_s": round(wall - row["time"], 1),
            "val_top1_after_1_epoch": round(row["val_top1"], 2), "machine": machine_line(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": f"python tools/experiment_budget.py measure {model} --data cifar10:PATH"
                       + (f" --width {width:g}" if width else "")}


def plan(data: str) -> dict:
    from alexnet import experiments
    from alexnet.experiments import setups

    with tempfile.TemporaryDirectory() as tmp:
        p = experiments.plan(data=data, out=tmp)
    scales = {n: dataclasses.asdict(e.default) for n, e in experiments.EXPERIMENTS.items()}
    return {"rows": p.table(), "total_hours": round(p.hours, 1), "runs": sum(p.used.values()),
            "unique_runs": len(p.runs), "scales": scales, "epoch_seconds_used": {
                f"{m} width {w:g}": s for (m, w), s in setups.EPOCH_SECONDS.items()},
            "run_overhead_s": setups.RUN_OVERHEAD_SECONDS,
            "command": "python tools/experiment_budget.py plan --data cifar10:PATH"}


def measured(records_dir: Path, planned: dict) -> dict:
    """The hours each committed record's runs took, beside the plan's (`plan`), in the plan's order."""
    from alexnet import experiments

    hours = {r["experiment"]: r["hours"] for r in planned.get("rows", [])}
    counted: dict[str, float] = {}  # run -> the seconds of it counted so far
    rows, machines, seconds = [], set(), 0.0
    for name in experiments.EXPERIMENTS:
        path = records_dir / f"{name}.json"
        if not path.is_file():
            continue
        rec = json.loads(path.read_text())
        own, added, timed, resumed = 0, 0.0, 0, 0
        for run in rec["runs"]:
            key, wall = Path(run["run_dir"]).name, run.get("wall_s")
            if key not in counted:
                own += 1
                timed += wall is not None
                resumed += bool(run.get("resumed"))
            if wall is not None and wall > counted.get(key, 0.0):  # new, or an extra evaluation since
                added += wall - counted.get(key, 0.0)
                counted[key] = wall
        seconds += added
        precisions = {str(run.get("precision") or "not recorded") for run in rec["runs"]}
        machines.add(rec.get("machine", ""))
        rows.append({"experiment": name, "planned hours": hours.get(name),
                     "measured hours": round(added / 3600, 2), "runs trained": own, "with a wall time": timed,
                     "resumed": resumed,
                     "precision": ", ".join(sorted(precisions)),
                     "scale": "default" if not rec.get("fast") and rec["scale"].get("train_subset") == 0 else "reduced"})
    return {"rows": rows, "total_hours": round(seconds / 3600, 1),
            "planned_total_hours": planned.get("total_hours"),
            "complete": all(r["with a wall time"] == r["runs trained"] and r["scale"] == "default" for r in rows),
            "machines": sorted(m for m in machines if m),
            "command": "python tools/experiment_budget.py measured"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("measure", "plan", "measured"))
    ap.add_argument("model", nargs="?", choices=tuple(BASE_OF))
    ap.add_argument("--data", help="CIFAR-10's training images, e.g. cifar10:~/data/cifar10")
    ap.add_argument("--width", type=float, help="measure at this width instead of the experiments' own")
    ap.add_argument("-o", "--out", type=Path, default=BUDGET)
    a = ap.parse_args(argv)
    budget = json.loads(a.out.read_text()) if a.out.is_file() else {}
    if a.what != "measured" and not a.data:
        ap.error(f"{a.what} needs --data cifar10:PATH (CIFAR-10's training images)")
    if a.what == "measured":
        budget["measured"] = measured(a.out.parent, budget.get("plan", {}))
        for r in budget["measured"]["rows"]:
            print(f"{r['experiment']:>13}: {r['measured hours']} h measured, {r['planned hours']} h planned")
        print(f"total {budget['measured']['total_hours']} h measured, {budget['measured']['planned_total_hours']} h planned")
    elif a.what == "measure":
        if not a.model:
            ap.error("measure needs a model: " + ", ".join(BASE_OF))
        m = measure(a.model, a.data, a.width)
        keep = [e for e in budget.get("epochs", []) if (e["model"], e["width"]) != (m["model"], m["width"])]
        budget["epochs"] = sorted(keep + [m], key=lambda e: (e["model"] != "cifar4", e["width"]))
        print(json.dumps(m, indent=1))
    else:
        budget["plan"] = plan(a.data)
        print(json.dumps(budget["plan"]["rows"], indent=1), f"\ntotal {budget['plan']['total_hours']} h")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(budget, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
