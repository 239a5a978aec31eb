"""The output of an experiment: ``OUT/NAME.md`` (table and verdict), ``OUT/NAME.json`` and ``OUT/NAME.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.io import atomic_write, atomic_write_json
from .runs import Experiment, RunResult, Scale
from .stats import unstable_runs


FAST_CAVEAT = "machinery check only — not evidence"  # what a --fast verdict says before anything else


def short_title(exp: Experiment) -> str:
    """The title without a leading repeat of the name (``depth: one middle conv layer fewer`` →
    ``one middle conv layer fewer``), for places that print the name beside it."""
    head, sep, rest = exp.title.partition(":")
    return rest.strip() if sep and head.strip().lower() == exp.name.lower() else exp.title


def heading(exp: Experiment) -> str:
    """``name: title``, the name said once (the plots' super-title)."""
    return f"{exp.name}: {short_title(exp)}"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no rows)\n"
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "|".join("---" for _ in keys) + "|"]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_outputs(exp: Experiment, results: list[RunResult], *, out: Path, scale: Scale, data: str,
                  command: str, machine: str, fast: bool = False) -> dict[str, Any]:
    """Write ``OUT/NAME.md``, ``OUT/NAME.json`` and ``OUT/NAME.png``; return the JSON record.

    ``fast``: the runs are ``--fast``'s few seconds on a handful of images, so the verdict begins
    with `FAST_CAVEAT` (and the record says ``"fast": true``): it checks that the machinery runs,
    and says nothing about the paper's claim."""
    from ..viz.plotting import figure, save_png

    rows, verdict, notes = exp.summarize(exp, results)
    notes = notes + unstable_runs(results)
    if fast:
        verdict = f"{FAST_CAVEAT} (--fast): {verdict}"
    record = {
        "experiment": exp.name, "title": exp.title, "section": exp.section, "claim": exp.claim,
        "fast": fast, "verdict": verdict, "rows": rows, "notes": notes, "data": data, "command": command, "machine": machine,
        "scale": {"epochs": scale.epochs, "train_subset": scale.train_subset, "seeds": scale.seeds,
                  "width": scale.width, "batch_size": scale.batch_size},
        "runs": [r.to_dict() for r in results],
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / f"{exp.name}.json", record)
    fig = figure(1000, 420)
    exp.plot(exp, results, fig)
    save_png(fig, out / f"{exp.name}.png")
    train_imgs = f"{scale.train_subset:,}" if scale.train_subset else "all"
    md = [f"## `{exp.name}` — {short_title(exp)}", "",
          f"**Paper ({exp.section}):** {exp.claim}", "",
          f"**Ours:** {verdict}", "",
          markdown_table(rows),
          f"Scale: {scale.epochs} epochs on {train_imgs} training images of `{data}`, "
          f"{scale.seeds} seed{'s' if scale.seeds != 1 else ''} per arm (± is half the range over seeds), "
          f"width ×{scale.width:g}, batch {scale.batch_size}. {exp.scale_note}".rstrip(), ""]
    md += [f"- {n}" for n in notes]
    md += ["", f"![{exp.name}]({exp.name}.png)", "", f"Made by: `{command}` on {machine}.", ""]
    atomic_write(out / f"{exp.name}.md", "\n".join(md))
    return record


def machine_line() -> str:
    """CPU model / GPU, core count and torch version, for the record."""
    import os
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{cpu} ({os.cpu_count()} cores{gpu}), torch {torch.__version__.split('+')[0]}"
