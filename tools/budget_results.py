"""What ``--time-budget`` runs reached: one row per run folder, written as one results JSON.

    python tools/budget_results.py docs/runs/budget docs/runs/budget/results.json

Each ``RUNS/<name>/`` holds a run's ``config.json`` (with its ``budget_plan``), ``metrics.csv``,
the console (``output.txt``), ``run.json`` (command, machine, wall time; tools/ema_measure.py
``run`` writes it) and, from runs made after it existed, ``final.json``. Per run: the budget, the
plan (epochs, steps, the line the run printed, any re-plan), the precision and the bf16 speed-up
``--amp auto`` measured, the last epoch's centre-crop top-1, the flip-averaged (ten-crop) top-1,
the times validation first reached each ``--report-at`` threshold, and the whole command's wall
time against the budget. Plain Python (no torch).
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path


def flip_averaged(folder: Path) -> float | None:
    """The final ten-crop top-1: from final.json, else from the console's closing line."""
    final = folder / "final.json"
    if final.is_file():
        ten = json.loads(final.read_text()).get("ten_crop")
        return ten["top1"] if ten else None
    m = re.search(r"^ten-crop \(§4\.1\): top-1 ([0-9.]+)%", (folder / "output.txt").read_text(), re.M)
    return float(m.group(1)) if m else None


def reached(folder: Path) -> dict[str, str]:
    """``--report-at`` threshold → the wall time the console gave for it (``m:ss``)."""
    text = (folder / "output.txt").read_text()
    return {m.group(1): m.group(3) for m in re.finditer(
        r"validation top-1 reached ([0-9.]+) % (with \S+ averaging )?after ([0-9:]+)", text)}


def row(folder: Path) -> dict:
    cfg = json.loads((folder / "config.json").read_text())
    run = json.loads((folder / "run.json").read_text())
    plan = cfg.get("budget_plan") or {}
    metrics = list(csv.DictReader((folder / "metrics.csv").open()))
    speed = re.search(r"measured ([0-9.]+)× fp32", cfg.get("precision_reason") or "")
    return {
        "run": folder.name, "command": run["command"], "machine": run["machine"], "date": run["date"],
        "budget": cfg["time_budget"], "budget_s": plan.get("seconds"), "wall_s": run["wall_s"],
        "wall_over_budget": round(run["wall_s"] / plan["seconds"], 3) if plan.get("seconds") else None,
        "epochs_planned": plan.get("epochs"), "steps_planned": plan.get("steps"), "plan": plan.get("reason"),
        "replan": plan.get("replan") or "", "epochs_run": len(metrics), "steps_run": int(metrics[-1]["step"]),
        "precision": cfg.get("precision"), "precision_reason": cfg.get("precision_reason"),
        "bf16_speedup": float(speed.group(1)) if speed else None,
        "centre_top1": float(metrics[-1]["val_top1"]), "flip_averaged_top1": flip_averaged(folder),
        "reached": reached(folder),
    }


def table_row(r: dict) -> dict:
    """One row of docs/cifar10.md's table, formatted."""
    def mmss(s: float) -> str:
        return f"{int(s // 60)}:{int(round(s % 60)):02d}"

    return {"budget": r["budget"], "epochs planned": r["epochs_planned"], "steps": f"{r['steps_run']:,}",
            "wall time": f"{mmss(r['wall_s'])} ({100 * r['wall_over_budget']:.1f} %)",
            "val top-1, centre": f"{r['centre_top1']:.2f} %",
            "flip-averaged": f"**{r['flip_averaged_top1']:.2f} %**",
            "80 / 85 / 90 % after": " / ".join(r["reached"].get(k, "–") for k in ("80", "85", "90")),
            "`--amp auto`": f"bf16, {r['bf16_speedup']}× fp32" if r["precision"] == "bf16" else r["precision"],
            "re-planned": "yes" if r["replan"] else "no"}


def main(runs: Path, dest: Path) -> dict:
    rows = [row(f) for f in sorted(runs.iterdir()) if (f / "config.json").is_file()]
    rows.sort(key=lambda r: r["budget_s"] or 0)
    out = {"what": "alexnet train --recipe cifar10-fast --time-budget B on the CIFAR-10 training JPEGs, "
                   "5,000 stratified held out (split seed 0), seed 0, one run at a time on an otherwise idle machine",
           "rows": rows, "by_budget": {r["budget"]: r for r in rows}, "table": [table_row(r) for r in rows]}
    dest.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    return out


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1].startswith("-"):
        sys.exit(__doc__)  # --help, or not RUNS RESULTS.json: the usage, exit 1
    result = main(Path(sys.argv[1]), Path(sys.argv[2]))
    for r in result["rows"]:
        print(f"{r['budget']:>4}: {r['epochs_run']} epochs, wall {r['wall_s']:.0f} s ({r['wall_over_budget']:.1%} of "
              f"the budget), centre {r['centre_top1']:.2f} %, flip-averaged {r['flip_averaged_top1']} %")
