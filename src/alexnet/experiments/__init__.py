"""The paper's claims as experiments anyone can re-run: ``alexnet experiment NAME``.

Each module holds one claim: the arms it trains (through `engine.fit`, the one training loop),
how it summarises them against the paper's figure, and its plot. `run` trains what is missing
(finished runs are cached by config; an interrupted one resumes) and writes ``OUT/NAME.md``,
``OUT/NAME.json`` and ``OUT/NAME.png``.

    from alexnet import experiments
    experiments.run("relu-vs-tanh", data="cifar10:/data/cifar10/train")
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..core.errors import UserError, did_you_mean
from ..core.machine import machine_line
from . import depth, dropout, lrn, overlap_pool, pca_lighting, relu_vs_tanh, ten_crop, towers
from .output import write_outputs
from .budget import Plan, plan_runs
from .runs import Arm, Experiment, RunResult, Scale, run_experiment

EXPERIMENTS: dict[str, Experiment] = {m.EXPERIMENT.name: m.EXPERIMENT for m in (
    relu_vs_tanh, lrn, overlap_pool, depth, dropout, pca_lighting, ten_crop, towers)}


def list_experiments() -> list[Experiment]:
    return list(EXPERIMENTS.values())


def get(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise UserError(f"unknown experiment {name!r}{did_you_mean(name, EXPERIMENTS)} "
                        f"(`alexnet experiment list` names them)")
    return EXPERIMENTS[name]


@dataclass(frozen=True)
class Job:
    """One experiment as `run` will run it: the scale (defaults and overrides applied), the data
    spec and the config fields every arm gets (device, workers, precision mode)."""

    exp: Experiment
    scale: Scale
    data: str
    over: dict[str, Any]


def prepare(name: str, *, data: str | None = None, fast: bool = False, seeds: int | None = None,
            epochs: int | None = None, train_subset: int | None = None, device: str = "auto",
            workers: int | None = None, amp: str | None = None, **_: Any) -> Job:
    """Experiment ``name`` with `run`'s arguments checked and applied (one-line `UserError` for a bad one)."""
    from ..engine.config import AMP_MODES

    exp = get(name)
    scale = exp.fast if fast else exp.default
    for flag, value, least in (("seeds", seeds, 1), ("epochs", epochs, 1), ("train_subset", train_subset, 0)):
        if value is not None:
            if value < least:
                what = "at least 1" if least else "non-negative"
                raise UserError(f"--{flag.replace('_', '-')} must be {what}, not {value}")
            scale = dataclasses.replace(scale, **{flag: value})
    if data is None:
        if not fast:
            raise UserError(f"experiment {name} trains on CIFAR-10: give --data cifar10:PATH (class folders of the "
                            f"training images, 10 % held out; the python batches validate on the test split), "
                            f"or --fast for a seconds-long check on the digits")
        data = "digits"
    over: dict[str, Any] = {"device": device}
    if amp is not None:
        if amp not in AMP_MODES:
            raise UserError(f"--amp must be one of {', '.join(AMP_MODES)}, not {amp!r}")
        over["amp"] = amp
    if workers is not None:
        over["workers"] = workers
    if fast:
        over["workers"] = 0
    return Job(exp, scale, data, over)


def check_data(spec: str) -> None:
    """A one-line `UserError` before anything is printed or probed, where ``spec`` names data that
    is not there (the check looks; it decodes nothing). A plan alone (`plan`) needs no data."""
    from ..data.builtin import cifar10_missing
    from ..data.datasets import parse_spec

    kind, path = parse_spec(spec)
    if kind == "cifar10" and path:
        problem = cifar10_missing(path, download_flag=False)
        if problem:
            raise UserError(problem)


def run(name: str, *, data: str | None = None, fast: bool = False, seeds: int | None = None,
        epochs: int | None = None, train_subset: int | None = None, out: str | Path = "experiments",
        device: str = "auto", workers: int | None = None, command: str = "", amp: str | None = None,
        say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run experiment ``name`` (training only what the cache lacks) and write its table, JSON and
    plot to ``out``. ``data``: a dataset spec (needed unless ``fast``, which falls back to the
    embedded digits; the experiments are sized for CIFAR-10). ``amp``: the precision of every arm
    (auto: measured once at the start). Returns the JSON record (``verdict``, ``rows``, ``runs``, …)."""
    job = prepare(name, data=data, fast=fast, seeds=seeds, epochs=epochs, train_subset=train_subset, device=device,
                  workers=workers, amp=amp)
    check_data(job.data)
    out = Path(out)
    say(f"[{name}] " + plan_runs([(job.exp, job.scale)], data=job.data, out=out, **job.over).summary())
    from ..engine.distributed import resumed_by

    again = command or f"alexnet experiment {name} (the same command again)"
    with resumed_by(f"{again}  — finished runs are kept and this one resumes"):
        results = run_experiment(job.exp, data=job.data, out=out, scale=job.scale, say=say, **job.over)
    record = write_outputs(job.exp, results, out=out, scale=job.scale, data=job.data, fast=fast,
                           command=command or f"alexnet experiment {name}", machine=machine_line())
    say(f"[{name}] {record['verdict']}")
    say(f"[{name}] wrote {out / (name + '.md')}, {out / (name + '.json')}, {out / (name + '.png')}")
    return record


def plan(names: list[str] | None = None, *, out: str | Path = "experiments", **kwargs: Any) -> Plan:
    """What running ``names`` (default: every experiment) in order with `run`'s arguments would
    train: unique runs, cached ones, estimated hours per experiment (`alexnet.experiments.budget`)."""
    jobs = [prepare(n, **kwargs) for n in (names or EXPERIMENTS)]
    return plan_runs([(j.exp, j.scale) for j in jobs], data=jobs[0].data, out=Path(out), **jobs[0].over)


def write_index(out: str | Path, names: list[str] | None = None, index: str | Path | None = None) -> Path:
    """``OUT/experiments.md`` (or ``index``): where the claims stand and a summary table of every
    experiment written to ``out`` (its verdict beside the paper's claim), followed by each
    experiment's own page, all made from the JSON records (`pages.index_md`)."""
    from .pages import write_index as write

    return write(Path(out), list(names or EXPERIMENTS), Path(index) if index else None)


def report(out: str | Path, *, index: str | Path | None = None, runs_from: str | Path | None = None,
           say: Callable[[str], None] = print) -> Path:
    """Derive every verdict in ``out`` again from the runs its JSON records hold, with the current
    rule and without training; rewrite the records, pages and index (`alexnet.experiments.pages`)."""
    from .pages import report as rederive_all

    return rederive_all(out, EXPERIMENTS, index=index, runs_from=runs_from, say=say)


def run_all(**kwargs: Any) -> dict[str, dict[str, Any]]:
    """Every experiment in turn (shared runs are trained once), then `write_index`. The plan
    (`plan`: runs, cached ones, estimated hours per experiment) is printed first; an interrupted
    ``all`` run again trains only what is missing and resumes the run it stopped in."""
    say = kwargs.get("say", print)
    check_data(kwargs.get("data") or "digits")
    for line in plan(**{k: v for k, v in kwargs.items() if k not in ("say", "command")}).lines():
        say(line)
    records = {name: run(name, **kwargs) for name in EXPERIMENTS}
    path = write_index(kwargs.get("out", "experiments"), list(records))
    kwargs.get("say", print)(f"wrote {path}")
    return records


__all__ = ["EXPERIMENTS", "Arm", "Experiment", "Job", "Plan", "RunResult", "Scale", "get", "list_experiments", "plan",
           "prepare", "report", "run", "run_all", "write_index"]
