"""The paper's claims as experiments anyone can re-run: ``alexnet experiment NAME``.

Each module holds one claim: the arms it trains (through `engine.fit`, the one training loop),
how it summarises them against the paper's figure, and its plot. `run` trains what is missing
(finished runs are cached by config; an interrupted one resumes) and writes ``OUT/NAME.md``,
``OUT/NAME.json`` and ``OUT/NAME.png``.

    from alexnet import experiments
    experiments.run("relu-vs-tanh", data="cifar10:/data/cifar10")
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from ..core.errors import UserError, did_you_mean
from . import depth, dropout, lrn, overlap_pool, pca_lighting, relu_vs_tanh, ten_crop, towers
from .output import machine_line, write_outputs
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


def run(name: str, *, data: str | None = None, fast: bool = False, seeds: int | None = None,
        epochs: int | None = None, train_subset: int | None = None, out: str | Path = "experiments",
        device: str = "auto", workers: int | None = None, command: str = "", amp: str | None = None,
        say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run experiment ``name`` (training only what the cache lacks) and write its table, JSON and
    plot to ``out``. ``data``: a dataset spec (default CIFAR-10 is needed; ``fast`` falls back to
    the embedded digits). ``amp``: the precision of every arm (auto: measured once at the start).
    Returns the JSON record (``verdict``, ``rows``, ``runs``, …)."""
    from ..core.device import AMP_CHOICES

    exp = get(name)
    scale = exp.fast if fast else exp.default
    if seeds is not None:
        if seeds < 1:
            raise UserError(f"--seeds must be at least 1, not {seeds}")
        scale = dataclasses.replace(scale, seeds=seeds)
    if epochs is not None:
        if epochs < 1:
            raise UserError(f"--epochs must be at least 1, not {epochs}")
        scale = dataclasses.replace(scale, epochs=epochs)
    if train_subset is not None:
        if train_subset < 0:
            raise UserError(f"--train-subset must be non-negative, not {train_subset}")
        scale = dataclasses.replace(scale, train_subset=train_subset)
    if data is None:
        if not fast:
            raise UserError(f"experiment {name} trains on CIFAR-10: give --data cifar10:PATH (the python batches or "
                            f"class folders of the training images), or --fast for a seconds-long check on the digits")
        data = "digits"
    over: dict[str, Any] = {"device": device}
    if amp is not None:
        if amp not in AMP_CHOICES:
            raise UserError(f"--amp must be one of {', '.join(AMP_CHOICES)}, not {amp!r}")
        over["amp"] = amp
    if workers is not None:
        over["workers"] = workers
    if fast:
        over["workers"] = 0
    out = Path(out)
    results = run_experiment(exp, data=data, out=out, scale=scale, say=say, **over)
    record = write_outputs(exp, results, out=out, scale=scale, data=data, fast=fast,
                           command=command or f"alexnet experiment {name}", machine=machine_line())
    say(f"[{name}] {record['verdict']}")
    say(f"[{name}] wrote {out / (name + '.md')}, {out / (name + '.json')}, {out / (name + '.png')}")
    return record


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
    """Every experiment in turn (shared runs are trained once), then `write_index`."""
    records = {name: run(name, **kwargs) for name in EXPERIMENTS}
    path = write_index(kwargs.get("out", "experiments"), list(records))
    kwargs.get("say", print)(f"wrote {path}")
    return records


__all__ = ["EXPERIMENTS", "Arm", "Experiment", "RunResult", "Scale", "get", "list_experiments", "report", "run",
           "run_all", "write_index"]
