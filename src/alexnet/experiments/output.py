"""The output of an experiment: ``OUT/NAME.md`` (table and verdict), ``OUT/NAME.json`` and ``OUT/NAME.png``.

The JSON record (`build_record`) holds everything the page says and the runs it came from, so the
page can be written again from the record alone (`section_md`; `alexnet experiment report`
re-derives the verdicts of committed records without training).

The contract with an experiment's ``summarize(exp, results)``: it returns a `stats.Summary` (rows,
verdict line, notes and the `verdict.Comparison` objects behind the verdict, main claim first) or,
as before, a ``(rows, verdict, notes)`` tuple, optionally with the comparisons as a fourth element.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.io import atomic_write, atomic_write_json
from ..core.machine import machine_spec
from .runs import Experiment, RunResult, Scale
from .stats import CELL_NOTE, as_summary, unstable_runs, verdict_word


FAST_CAVEAT = "machinery check only — not evidence"  # what a --fast verdict says before anything else


def short_title(exp: Experiment) -> str:
    """The title without a leading repeat of the name (``depth: one middle conv layer fewer`` →
    ``one middle conv layer fewer``), for places that print the name beside it."""
    return title_without_name(exp.name, exp.title)


def title_without_name(name: str, title: str) -> str:
    """`short_title` for a name and title given apart (a JSON record's)."""
    head, sep, rest = title.partition(":")
    return rest.strip() if sep and head.strip().lower() == name.lower() else title


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


def run_wall_s(r: RunResult) -> float:
    """A run's wall time: its measured ``wall_s`` where the run recorded one, else the sum of its
    epochs' times (which leaves out start-up and evaluation). For a resumed run at least the sum of
    its epochs' times: runs recorded before the part done ahead of the interruption was added to
    ``wall_s`` recorded only the resumed part."""
    w = getattr(r, "wall_s", None) or r.extra.get("wall_s")
    if not w:
        return r.seconds
    return max(float(w), r.seconds) if r.resumed else float(w)


def precision_of(results: list[RunResult]) -> str | None:
    """The precision the runs trained in (one for all arms), ``"mixed: …"`` if they differ, None if
    no run recorded it."""
    found = sorted({r.precision for r in results if r.precision})
    return None if not found else found[0] if len(found) == 1 else "mixed: " + ", ".join(found)


def build_record(exp: Experiment, results: list[RunResult], *, scale: Scale, data: str, command: str,
                 machine: str, machine_spec: dict[str, Any] | None = None, fast: bool = False,
                 date: str | None = None) -> dict[str, Any]:
    """The JSON record of an experiment: what the paper says, the verdict and the comparisons it
    rests on (`verdict.Comparison.to_dict`), the runs left out, the table, and everything about how
    the runs were made (scale, precision, machine, wall times, date) beside each run's metrics.

    ``fast``: the runs are ``--fast``'s few seconds on a handful of images, so the verdict begins
    with `FAST_CAVEAT` (and the record says ``"fast": true``)."""
    s = as_summary(exp.summarize(exp, results))
    excluded = list(dict.fromkeys(x for c in s.comparisons for x in c.excluded))
    left_out = {x.split(":", 1)[0] for x in excluded}
    notes = s.notes + [n for n in unstable_runs(results) if n.split(":", 1)[0] not in left_out]
    interval_rule = bool(s.comparisons) or "95 % CI [" in s.verdict or "too few usable runs" in s.verdict
    verdict = f"{FAST_CAVEAT} (--fast): {s.verdict}" if fast else s.verdict
    walls = [round(run_wall_s(r), 1) for r in results]
    return {
        "experiment": exp.name, "title": exp.title, "section": exp.section, "claim": exp.claim,
        "fast": fast, "verdict": verdict, "verdict_word": verdict_word(s.verdict),
        "rule": "95 % interval" if interval_rule else "half-range over seeds (old)",
        "comparisons": [c.to_dict() for c in s.comparisons], "excluded": excluded,
        "rows": s.rows, "notes": notes, "data": data, "command": command, "machine": machine,
        "machine_spec": machine_spec, "precision": precision_of(results), "date": date,
        "wall_s": round(sum(walls), 1),
        "scale": {"epochs": scale.epochs, "train_subset": scale.train_subset, "seeds": scale.seeds,
                  "width": scale.width, "batch_size": scale.batch_size},
        "scale_note": exp.scale_note,
        "runs": [{**r.to_dict(), "wall_s": w} for r, w in zip(results, walls)],
    }


def write_outputs(exp: Experiment, results: list[RunResult], *, out: Path, scale: Scale, data: str,
                  command: str, machine: str, fast: bool = False) -> dict[str, Any]:
    """Write ``OUT/NAME.md``, ``OUT/NAME.json`` and ``OUT/NAME.png``; return the JSON record
    (`build_record`, with this machine's `machine_spec` and today's date)."""
    import datetime

    from ..viz.plotting import figure, save_png

    record = build_record(exp, results, scale=scale, data=data, command=command, machine=machine,
                          machine_spec=machine_spec(), fast=fast,
                          date=datetime.datetime.now(datetime.timezone.utc).date().isoformat())
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / f"{exp.name}.json", record)
    fig = figure(1000, 420)
    exp.plot(exp, results, fig)
    save_png(fig, out / f"{exp.name}.png")
    write_section(out, record)
    return record


def shared_runs(record: dict[str, Any], others: list[dict[str, Any]]) -> dict[str, int]:
    """``{experiment: runs}``: the other experiments that use some of this one's runs (the same run
    key: the same config, trained once), and how many."""
    mine = {Path(r["run_dir"]).name for r in record["runs"]}
    out = {}
    for o in others:
        n = len(mine & {Path(r["run_dir"]).name for r in o["runs"]})
        if n and o["experiment"] != record["experiment"]:
            out[o["experiment"]] = n
    return out


def write_section(out: Path, record: dict[str, Any]) -> None:
    """``OUT/NAME.md`` from the record, naming the experiments in ``out`` that share its runs."""
    import json

    others = []
    for p in sorted(out.glob("*.json")):
        try:
            others.append(json.loads(p.read_text()))
        except ValueError:
            continue
    others = [o for o in others if isinstance(o, dict) and "runs" in o and "experiment" in o]
    atomic_write(out / f"{record['experiment']}.md", section_md(record, shared_runs(record, others)))


def comparison_line(c: dict[str, Any]) -> str:
    """One comparison of the record as a bullet: verdict, claim, difference, interval, design, and
    the smallest detectable effect."""
    u = f" {c['unit']}" if c.get("unit") else ""
    if c["low"] is None:
        interval = "no interval (fewer than two usable runs on a side)"
    else:
        interval = f"95 % CI [{c['low']:+.2f}, {c['high']:+.2f}]"
    design = (f"paired by seed, {c['n'][0]} pair{'s' if c['n'][0] != 1 else ''}" if c["paired"] else
              f"unpaired (Welch), {c['n'][0]} and {c['n'][1]} runs")
    diff = "no difference" if c["diff"] is None else f"{c['diff']:+.2f}{u}"
    mde = f"; smallest detectable effect {c['mde']:.2f}{u}" if c["mde"] is not None else ""
    return f"- *{c['verdict']}* — {c['what']}: {diff}, {interval}; {design}{mde}"


def section_md(record: dict[str, Any], shared: dict[str, int] | None = None, image_prefix: str = "",
               in_index: bool = False) -> str:
    """An experiment's page from its JSON record alone: the paper's claim, the verdict and its
    comparisons, the table, the scale, the runs left out, the notes, the runs shared with other
    experiments (``shared``, from `shared_runs`: links to their pages, or to their sections when
    ``in_index``), the plot and how it was made."""
    name, sc = record["experiment"], record["scale"]
    title = title_without_name(name, record["title"])
    rows = record["rows"]
    cells = " ".join(str(v) for r in rows for v in r.values())
    train_imgs = f"up to {sc['train_subset']:,}" if sc["train_subset"] else "all"  # a subset of smaller data is all of it
    md = [f"## `{name}` — {title}", "", f"**Paper ({record['section']}):** {record['claim']}", "",
          f"**Ours:** {record['verdict']}", ""]
    if record.get("rule", "").endswith("(old)"):
        md += ["*(Judged by the old rule — a difference beyond the largest half-range over the seeds — "
               "which says so about a quarter of the time with no effect; not yet re-judged with a 95 % "
               "interval.)*", ""]
    comps = record.get("comparisons") or []
    if comps:
        md += [comparison_line(c) for c in comps] + [""]
    md += [markdown_table(rows)]
    if "[" in cells:
        md += [CELL_NOTE, ""]
    if " ± " in cells:
        md += ["± is half the range over the seeds.", ""]
    seeds = sc["seeds"]
    held = "" if sc["train_subset"] else (" (less the validation hold-out drawn from them, where the data has no "
                                          "validation split of its own)")
    md += [f"Scale: {sc['epochs']} epochs on {train_imgs} training images of `{record['data']}`{held}, {seeds} "
           f"seed{'s' if seeds != 1 else ''} per arm, width ×{sc['width']:g}, batch {sc['batch_size']}. "
           f"{record.get('scale_note', '')}".rstrip(), ""]
    md += [f"- left out, never averaged: {x}" for x in record.get("excluded") or []]
    md += [f"- {n}" for n in record["notes"]]
    if shared:
        md += ["", "Runs shared with: " + ", ".join(f"[`{k}`]({'#' + k if in_index else k + '.md'}) ({v} run{'s' if v != 1 else ''})"
                                                    for k, v in sorted(shared.items()))
               + " — the same configs, trained once, so these verdicts are not independent."]
    made = f"Made by: `{record['command']}` on {record['machine']}"
    made += f"; precision {record['precision']}" if record.get("precision") else "; precision not recorded"
    if record.get("wall_s") is not None:
        resumed = sum(1 for r in record["runs"] if r.get("resumed"))
        made += (f"; {'at least ' if resumed else ''}{record['wall_s'] / 60:.1f} min of training over "
                 f"{len(record['runs'])} runs" + (f" ({resumed} resumed after an interruption: the start-up of "
                                                  f"{'its' if resumed == 1 else 'their'} first process not counted)"
                                                  if resumed else ""))
    made += f"; {record['date']}." if record.get("date") else "."
    md += ["", f"![{name}]({image_prefix}{name}.png)", "", made, ""]
    return "\n".join(md)
