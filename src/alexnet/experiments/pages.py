"""Experiment pages written again from their JSON records, without training: ``alexnet experiment report``.

Each record (``OUT/NAME.json``) holds every run's metrics rows and extra evaluations, so its
verdict can be derived again with the current rule (`rederive`: the experiment's own
``summarize`` on the recorded runs) and its page and the index (``experiments.md``) written from
the records alone (`index_md`). Where the runs' directories are at hand, their small files
(``config.json``, ``metrics.csv``, ``result.json``) are copied to ``OUT/runs/<run key>/`` beside
the records, so that every number on the page traces to a committed file.

The index begins with ``OUT/preface.md`` when there is one (hand-written context: the data, the
conventions); everything after it — the rule, where the claims stand, the table, each page — is
made from the records, so a stale verdict or a hand edit shows as a difference.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from ..core.errors import UserError
from ..core.io import atomic_write, atomic_write_json
from .output import build_record, section_md, shared_runs
from .runs import Experiment, RunResult, Scale

RULE = ("**How a verdict is reached.** Each claim is a difference between the paper's arm and the other "
        "(positive: the paper's direction), averaged over seeds, with its 95 % confidence interval "
        "(Student t): *paired* by seed where the two arms of a seed share their data order and initial "
        "weights, else Welch's interval for two groups (each page says which). *Reproduces* only when the "
        "whole interval lies on the paper's side of 0, *contradicts* when it lies on the other side, "
        "otherwise *inconclusive*, with the smallest effect those runs could have detected. A run that "
        "diverged or was unstable is named and never averaged in. With no real effect this rule says "
        "*reproduces* in 2.5 % of experiments (the older rule here, a difference beyond the seeds' "
        "half-range, did so in about 23 %).")
RUN_FILES = ("config.json", "metrics.csv", "result.json")


def results_of(record: dict[str, Any]) -> list[RunResult]:
    """The runs of a record as `RunResult`s (their metrics rows, extras, precision and wall time)."""
    out = []
    for d in record["runs"]:
        r = RunResult(d["arm"], d["seed"], d["run_dir"], d["epochs"], d.get("extra", {}), cached=True,
                      precision=d.get("precision", ""), num_classes=d.get("num_classes", 10),
                      resumed=bool(d.get("resumed")))
        if d.get("wall_s") is not None and getattr(r, "wall_s", None) is None:
            r.wall_s = d["wall_s"]  # the recorded wall time stays the run's (`output.run_wall_s`)
        out.append(r)
    return out


def rederive(exp: Experiment, record: dict[str, Any]) -> dict[str, Any]:
    """The record again, its verdict, comparisons, table and notes derived anew from its runs by
    ``exp.summarize``; how the runs were made (data, command, machine, date) is kept, and so is any
    key the record has that the current format does not make."""
    sc = record["scale"]
    new = build_record(exp, results_of(record), scale=Scale(**sc), data=record["data"], command=record["command"],
                       machine=record["machine"], machine_spec=record.get("machine_spec"),
                       fast=record.get("fast", False), date=record.get("date"))
    new["rows"] = keep_unknown_cells(record.get("rows", []), new["rows"])
    return {**new, **{k: v for k, v in record.items() if k not in new}}


def keep_unknown_cells(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``new`` rows, where a cell the recorded runs cannot give (``"?"``: the towers' parameter
    count needs the run's own folder) keeps the value recorded for the same row and column."""
    def label(row: dict[str, Any]) -> Any:
        return next(iter(row.values()), None)

    recorded = {label(r): r for r in old}
    return [{k: (recorded.get(label(r), {}).get(k, v) if v == "?" else v) for k, v in r.items()} for r in new]


def load_records(out: Path, names: list[str]) -> list[dict[str, Any]]:
    return [json.loads((out / f"{n}.json").read_text()) for n in names if (out / f"{n}.json").is_file()]


def _span(values: list[float], fmt: Callable[[float], str]) -> str:
    lo, hi = min(values), max(values)
    return fmt(lo) if lo == hi else f"{fmt(lo)}–{fmt(hi)}"


def standing(records: list[dict[str, Any]]) -> list[str]:
    """Where the claims stand, made from the records: the verdicts by word, those still judged by
    the old rule, and the scale of the runs behind them."""
    new = [r for r in records if not r.get("rule", "").endswith("(old)")]
    old = [r for r in records if r.get("rule", "").endswith("(old)")]
    lines = []
    if new:
        by_word: dict[str, list[str]] = {}
        for r in new:
            word = r.get("verdict_word") or ("with several statements, each judged on its own"
                                             if len(r.get("comparisons", [])) > 1 else "no verdict")
            by_word.setdefault(word, []).append(f"`{r['experiment']}`")
        parts = [f"{len(v)} {k} ({', '.join(v)})" for k, v in by_word.items()]
        lines.append(f"Of the {len(new)} claim{'s' if len(new) != 1 else ''} judged by this rule: " + "; ".join(parts) + ".")
    if old:
        lines.append("Not yet re-judged, their verdicts still from the older rule: "
                     + ", ".join(f"`{r['experiment']}`" for r in old) + ".")
    subsets = [r["scale"]["train_subset"] for r in records]
    sized = [s for s in subsets if s]  # 0: all of the training split
    imgs = " or ".join(([_span(sized, lambda v: f"{v:,.0f}")] if sized else []) + (["all"] if len(sized) < len(subsets) else []))
    errors = [100.0 - run["epochs"][-1]["val_top1"] for r in records for run in r["runs"] if run["epochs"]]
    unique = {Path(run["run_dir"]).name: run.get("wall_s") for r in records for run in r["runs"]}
    walls = [w for w in unique.values() if w is not None]
    resumed = any(run.get("resumed") for r in records for run in r["runs"])
    scale = (f"These runs trained on {imgs} training images for "
             f"{_span([r['scale']['epochs'] for r in records], lambda v: f'{v:.0f}')} epochs, "
             f"{_span([r['scale']['seeds'] for r in records], lambda v: f'{v:.0f}')} seeds per arm; their final "
             f"validation top-1 errors lie between {min(errors):.1f} and {max(errors):.1f} %." if errors else "")
    if walls:
        scale += (f" {len(unique)} distinct runs (shared ones counted once), {'at least ' if resumed else ''}"
                  f"{sum(walls) / 3600:.1f} h of training in all.")
    precisions = sorted({r.get("precision") or "not recorded" for r in records})
    machines = sorted({r["machine"] for r in records})
    scale += f" Precision: {', '.join(precisions)}. Machine: {'; '.join(machines)}."
    return lines + [scale.strip()]


def index_md(records: list[dict[str, Any]], *, image_prefix: str = "", preface: str = "") -> str:
    """The whole index from the records (and a hand-written ``preface``): the rule, where the
    claims stand, a table of every verdict beside the paper's claim, then each page."""
    lines = ["# The paper's claims, re-run", ""]
    if preface.strip():
        lines += [rebase_links(preface.strip(), image_prefix), ""]
    lines += [RULE, "", "**Where the claims stand.** " + " ".join(standing(records)), "",
              "| experiment | paper | claim | ours |", "|---|---|---|---|"]
    lines += [f"| [`{r['experiment']}`](#{r['experiment']}) | {r['section']} | {r['claim']} | {r['verdict']} |"
              for r in records]
    lines.append("")
    for r in records:
        lines += [f'<a id="{r["experiment"]}"></a>', "", section_md(r, shared_runs(r, records), image_prefix, in_index=True), ""]
    return "\n".join(lines)


def rebase_links(md: str, prefix: str) -> str:
    """Relative Markdown links of a page in folder ``prefix`` (``experiments/``), rewritten for a
    page one level up that includes it: ``runs/`` → ``experiments/runs/``, ``../x.md`` → ``x.md``."""
    import posixpath
    import re

    def one(m: re.Match) -> str:
        target = m.group(2)
        if not prefix or re.match(r"[a-z]+:|#|/", target):
            return m.group(0)
        path, sep, anchor = target.partition("#")
        new = posixpath.normpath(prefix + path) + ("/" if path.endswith("/") else "")
        return f"{m.group(1)}({new}{sep}{anchor})"

    return re.sub(r"(\]\s?)\(([^)\s]+)\)", one, md)


def write_index(out: Path, names: list[str], index: Path | None = None) -> Path:
    """``index`` (default ``OUT/experiments.md``) from the records in ``out``, and every ``OUT/NAME.md``
    again (so each names the experiments it shares runs with)."""
    records = load_records(out, names)
    if not records:
        raise UserError(f"{out}: no experiment results there yet (run `alexnet experiment NAME --out {out}`)")
    for r in records:
        atomic_write(out / f"{r['experiment']}.md", section_md(r, shared_runs(r, records)))
    index = index or out / "experiments.md"
    rel = os.path.relpath(out, index.parent)
    preface = (out / "preface.md").read_text() if (out / "preface.md").is_file() else ""
    atomic_write(index, index_md(records, image_prefix="" if rel == "." else rel + "/", preface=preface))
    return index


def copy_run_files(record: dict[str, Any], out: Path, runs_from: Path | None = None) -> int:
    """Copy each run's small files to ``OUT/runs/<run key>/`` from its recorded directory or from
    ``runs_from/<run key>``, where either exists and ``OUT`` has none of its own yet (a run's files
    already in ``OUT`` are kept: the recorded directory, relative to where the run trained, may be
    another copy's); returns how many runs were copied."""
    copied = 0
    for run in record["runs"]:
        key = Path(run["run_dir"]).name
        dest = out / "runs" / key
        if (dest / "metrics.csv").is_file():
            continue
        for src in [Path(run["run_dir"])] + ([runs_from / key] if runs_from else []):
            if (src / "metrics.csv").is_file() and src.resolve() != dest.resolve():
                dest.mkdir(parents=True, exist_ok=True)
                for f in RUN_FILES:
                    if (src / f).is_file():
                        shutil.copyfile(src / f, dest / f)
                copied += 1
                break
    return copied


def report(out: str | Path, experiments: dict[str, Experiment], *, index: str | Path | None = None,
           runs_from: str | Path | None = None, say: Callable[[str], None] = print) -> Path:
    """Derive every record's verdict in ``out`` again from its runs (no training), rewrite its JSON and
    page, copy the runs' small files where they are at hand, and write the index."""
    out = Path(out)
    names = [n for n in experiments if (out / f"{n}.json").is_file()]
    if not names:
        raise UserError(f"{out}: no experiment records (NAME.json) there to report on")
    for name in names:
        old = json.loads((out / f"{name}.json").read_text())
        for run in old["runs"]:  # records made before they carried it: the run's own result.json says
            kept = out / "runs" / Path(run["run_dir"]).name / "result.json"
            if "resumed" not in run and kept.is_file():
                run["resumed"] = bool(json.loads(kept.read_text()).get("resumed"))
        new = rederive(experiments[name], old)
        atomic_write_json(out / f"{name}.json", new)
        n = copy_run_files(new, out, Path(runs_from) if runs_from else None)
        change = "" if new["verdict"] == old["verdict"] else f" (was: {old['verdict']})"
        say(f"[{name}] {new['verdict']}{change}" + (f"; copied {n} runs' files" if n else ""))
    return write_index(out, names, Path(index) if index else None)
