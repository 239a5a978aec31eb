"""What a run's folder holds, read by the experiments: its ``result.json`` (finished), ``metrics.csv``,
its classes and precision, and the names in it that no run writes (a person's files, which starting
the run over must not delete). Plain file reading; `alexnet.experiments.runs` trains and caches.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any


def run_precision_of(run_dir: Path) -> str:
    """The precision a run trained in, from its config.json ("" when it does not say)."""
    try:
        return str(json.loads((run_dir / "config.json").read_text()).get("precision") or "")
    except (OSError, ValueError):
        return ""


# What training (and `runs`) writes in a run's folder; hidden files are its temps and lock.
RUN_ENTRIES = frozenset({"config.json", "classes.json", "metrics.csv", "final.json", "weights.json",
                         "weights.safetensors", "checkpoints", "figures", "bad_samples.txt", "mlflow.json",
                         "result.json"})


def foreign_entries(run_dir: Path) -> list[str]:
    """The names in ``run_dir`` that no run writes (a person's notes): what starting it over would lose."""
    return sorted(e.name for e in Path(run_dir).iterdir() if e.name not in RUN_ENTRIES
                  and not e.name.startswith((".", "events.out.tfevents.")))


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """The finished run's ``result.json`` in ``run_dir``; None where there is none or it cannot be
    read (a write cut short): such a run is not finished, it resumes."""
    try:
        result = json.loads((Path(run_dir) / "result.json").read_text())
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) else None


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def classes_of(run_dir: Path) -> int:
    """How many classes the run in ``run_dir`` learned (its classes.json; 10 where it is unreadable)."""
    try:
        classes = json.loads((Path(run_dir) / "classes.json").read_text())
        if isinstance(classes, dict):  # {"classes": [...], "class_ids": [...]}, as training writes it
            classes = classes.get("classes")
        return len(classes) if isinstance(classes, list) and classes else 10
    except (OSError, ValueError):
        return 10
