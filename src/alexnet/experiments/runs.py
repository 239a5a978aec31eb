"""The runs of an experiment: its arms of training configs, and the cache of finished runs.

An experiment is a list of *arms* (one training config each: the paper's setting and the one
ingredient changed) trained for several seeds by the ordinary training engine (`engine.fit`; there
is no second training loop). Each run's directory is named by a hash of its config, under
``OUT/runs/``, so a run shared by two experiments (the same baseline) is trained once, a re-run
computes only what is missing, and an interrupted run resumes from its last checkpoint. A finished
run gets ``result.json`` (its metrics and any extra evaluations the experiment asked for).

What the runs are turned into: `alexnet.experiments.stats` (spreads and verdicts) and
`alexnet.experiments.output` (table, JSON, plot).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..core.errors import UserError
from ..core.io import atomic_write_json
from .run_files import (RUN_ENTRIES, classes_of, foreign_entries, read_metrics,  # noqa: F401 (re-exported)
                        read_result, run_precision_of)

# Fields that do not change what a run computes, so they are left out of its cache key.
# The precision is left out as the device is: an experiment pins one for all its arms, and each
# run's own (from its config.json) is recorded in the experiment's JSON.
_NOT_IN_KEY = ("output_dir", "name", "resume", "test_only", "print_freq", "checkpoint_every", "workers",
               "device", "download", "max_steps", "precision", "precision_reason")


@dataclass(frozen=True)
class Arm:
    """One setting of an experiment: a label for the table and the config fields it sets."""

    label: str
    fields: dict[str, Any]
    paper: str = ""  # the paper's figure for this setting, if it gives one


@dataclass(frozen=True)
class Scale:
    """How big the runs are. ``default`` is sized for 2 CPU cores; ``fast`` for tests (seconds)."""

    epochs: int
    train_subset: int  # training images (a stratified sample of the training split; 0: all)
    seeds: int
    width: float = 1.0  # multiplies every layer's width (model argument `width`)
    batch_size: int = 128


@dataclass
class RunResult:
    """One finished run: its arm, seed, directory and the numbers read back from it."""

    arm: str
    seed: int
    run_dir: str
    epochs: list[dict[str, float]]  # metrics.csv rows
    extra: dict[str, Any] = field(default_factory=dict)
    cached: bool = False
    precision: str = ""  # what the run trained in (its config.json): fp32, bf16 or fp16
    wall_s: float | None = None  # its result.json's: the wall time of training it and its extras (None: not recorded)
    machine: str = ""  # its result.json's: where it trained (`core.machine.machine_line`)
    num_classes: int = 10  # its classes.json's (CIFAR-10's ten where the run was recorded without it)
    resumed: bool = False  # its result.json's: finished by a later command after an interruption

    @property
    def last(self) -> dict[str, float]:
        return self.epochs[-1]

    @property
    def chance_error(self) -> float:
        """The top-1 error of guessing: 90 % for ten classes, 50 % for two."""
        return 100.0 * (1.0 - 1.0 / max(1, self.num_classes))

    @property
    def val_error(self) -> float:
        return 100.0 - self.last["val_top1"]

    @property
    def val_error5(self) -> float:
        return 100.0 - self.last["val_top5"]

    @property
    def overfit_gap(self) -> float:
        """Validation error minus training error in eval mode (the ``train_eval`` extra; nan for a
        run recorded before its experiment asked for it)."""
        train = self.extra.get("train_eval_error")
        return float("nan") if train is None else self.val_error - train

    @property
    def seconds(self) -> float:
        return sum(r["time"] for r in self.epochs)

    @property
    def img_per_s(self) -> float:
        return statistics.median(r["img_per_s"] for r in self.epochs)

    def to_dict(self) -> dict[str, Any]:
        return {"arm": self.arm, "seed": self.seed, "run_dir": self.run_dir, "precision": self.precision,
                "num_classes": self.num_classes, "resumed": self.resumed, "epochs": self.epochs, "extra": self.extra}


@dataclass(frozen=True)
class Experiment:
    """A claim of the paper and the runs that test it.

    ``summarize(exp, results, ctx)`` turns the runs into ``(rows, verdict, notes)``: table rows
    (dicts with the same keys, in order), a one-line verdict and extra lines for the write-up.
    ``plot(exp, results, fig)`` draws on a matplotlib figure. ``extras`` names evaluations each
    finished run needs besides its metrics (``"train_eval"``: error on the training images in
    eval mode; ``"ten_crop"``: centre and ten-crop error of the final weights).
    """

    name: str
    title: str
    section: str
    claim: str
    base: dict[str, Any]
    arms: tuple[Arm, ...]
    default: Scale
    fast: Scale
    summarize: Callable[..., tuple[list[dict[str, Any]], str, list[str]]]
    plot: Callable[..., None]
    extras: tuple[str, ...] = ()
    scale_note: str = ""

    def configs(self, scale: Scale, seed: int, data: str, out: Path, **over: Any) -> list[tuple[Arm, Any]]:
        """The ``TrainConfig`` of every arm for ``seed``."""
        from ..engine.config import TrainConfig

        runs = []
        for arm in self.arms:
            values = {**self.base, **arm.fields}
            kw = {**self.base.get("model_kwargs", {}), **arm.fields.get("model_kwargs", {})}
            values.pop("model_kwargs", None)
            if scale.width != 1.0:
                kw["width"] = scale.width
            values.update(epochs=scale.epochs, train_subset=scale.train_subset, batch_size=scale.batch_size,
                          seed=seed, data=data, model_kwargs=kw, recipe="experiment", **over)
            cfg = TrainConfig.from_dict(values).validate()
            cfg.output_dir = str(out / "runs")
            cfg.name = run_key(cfg)
            runs.append((arm, cfg))
        return runs

    def plan_configs(self, scale: Scale, seed: int, data: str, out: Path, **over: Any) -> list[tuple[Arm, Any]]:
        """The configs a plan counts for ``seed`` (`experiments.budget`): `configs`, which an
        experiment that decides its later runs from earlier ones overrides so as not to train."""
        return self.configs(scale, seed, data, out, **over)


def run_key(cfg) -> str:
    """``<model>-<12 hex>``: a hash of the config fields that change what the run computes and
    differ from `TrainConfig`'s defaults (so a field added later, with a default, keeps old keys)."""
    from ..engine.config import TrainConfig

    defaults = TrainConfig().to_dict()
    d = {k: v for k, v in cfg.to_dict().items() if k not in _NOT_IN_KEY and defaults.get(k, object()) != v}
    digest = hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{cfg.model}-{digest}"


def eval_precision(cfg, device):
    """The precision the run ``cfg`` trained in, for evaluating its weights the same way."""
    from ..core.device import precision_named, resolve_precision

    return precision_named(cfg.precision, cfg.precision_reason) if cfg.precision else resolve_precision(cfg.amp, device)


# ----------------------------------------------------------------------------- extra evaluations

def _train_eval(run_dir: Path, cfg) -> dict[str, float]:
    """Top-1 error of the final weights on the training images, in eval mode (no dropout, no
    augmentation): with the validation error, how much the network overfits."""
    import torch

    from ..core.device import resolve_device
    from ..data import build_dataset, build_loader, build_transforms, normalizer_for, take_subset
    from ..engine.evaluate import evaluate
    from ..models import meta_cfg

    dev = resolve_device(cfg.device)
    model, meta = _final_model(run_dir, dev)
    mcfg = meta_cfg(meta)
    ds = build_dataset(cfg.data, "train", transform=build_transforms(mcfg, train=False), val_split=cfg.val_split)
    ds = take_subset(ds, cfg.train_subset)
    loader = build_loader(ds, batch_size=256, train=False, workers=0)
    norm = normalizer_for(mcfg, mode=meta.get("normalize", "meanstd")).to(dev)
    with torch.inference_mode():
        res = evaluate(model, loader, norm, eval_precision(cfg, dev), dev)
    return {"train_eval_error": res.top1_error, "train_eval_n": res.n}


def _final_model(run_dir: Path, device):
    """The weights at the end of the run (checkpoints/last.pt), in the model of weights.json."""
    from ..engine.checkpoint import load_checkpoint
    from ..models import load_weights

    model, meta = load_weights(run_dir, device)
    ck = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    model.load_state_dict(ck["model"])
    return model, meta


def _ten_crop(run_dir: Path, cfg) -> dict[str, float]:
    """Centre-crop and ten-crop (§4.1) error of the final weights on the validation split."""
    import torch

    from ..core.device import resolve_device
    from ..data import build_dataset, build_loader, build_transforms, normalizer_for
    from ..engine.evaluate import evaluate
    from ..models import meta_cfg

    dev = resolve_device(cfg.device)
    model, meta = _final_model(run_dir, dev)
    mcfg = meta_cfg(meta)
    norm = normalizer_for(mcfg, mode=meta.get("normalize", "meanstd")).to(dev)
    out: dict[str, float] = {}
    for key, tc in (("centre", False), ("ten_crop", True)):
        ds = build_dataset(cfg.data, "val", transform=build_transforms(mcfg, train=False, ten_crop=tc),
                           val_split=cfg.val_split)
        loader = build_loader(ds, batch_size=25 if tc else 256, train=False, workers=0)
        t = time.perf_counter()
        with torch.inference_mode():
            res = evaluate(model, loader, norm, eval_precision(cfg, dev), dev)
        out[f"{key}_error"], out[f"{key}_error5"] = res.top1_error, res.top5_error
        out[f"{key}_loss"], out[f"{key}_seconds"] = res.loss, time.perf_counter() - t
    return out


EXTRAS: dict[str, Callable[[Path, Any], dict[str, float]]] = {"train_eval": _train_eval, "ten_crop": _ten_crop}


# ----------------------------------------------------------------------------- running

def train_or_reuse(cfg, extras: tuple[str, ...], say: Callable[[str], None]) -> tuple[dict[str, Any], bool]:
    """Train ``cfg`` unless its run finished before; resume it if it was interrupted. Returns the
    contents of its ``result.json`` and whether it came from the cache.

    ``result.json`` records ``wall_s``, the wall time of training it and of its extra evaluations
    (extras added later add theirs): this call's, and when it ``resumed`` an interrupted run, the
    epoch times ``metrics.csv`` kept of the part done before (that process's start-up is not
    counted, so the figure is a little low), and ``machine``."""
    from ..engine import fit
    from ..engine.config import resume_config
    from ..core.machine import machine_line

    t0 = time.perf_counter()
    resumed, before_s = False, 0.0
    run_dir = Path(cfg.output_dir) / cfg.name
    result_path = run_dir / "result.json"
    result = read_result(run_dir)
    cached = result is not None
    if not cached:
        from ..engine.elastic import has_checkpoint

        if has_checkpoint(run_dir):  # last.pt, or last.prev.pt where a kill came between their renames
            say(f"    resuming the interrupted run {run_dir}")
            before = {(r.get("epoch"), r.get("time")) for r in read_metrics(run_dir)}
            fit(resume_config(str(run_dir)))
            # the part done before: the rows it wrote that the resumed run kept (a row it trimmed and
            # trained again, or a partial epoch's, is not counted twice)
            before_s = sum(float(r.get("time") or 0.0) for r in read_metrics(run_dir)
                           if (r.get("epoch"), r.get("time")) in before)
            resumed = True
        else:
            if run_dir.exists():  # killed before its first checkpoint: nothing to resume; this cache's own folder
                foreign = foreign_entries(run_dir)
                if foreign:  # a person's files: not removed with the run's
                    raise UserError(f"{run_dir}, the folder of an interrupted run of this experiment, also holds "
                                    f"{', '.join(foreign[:3])}{', …' if len(foreign) > 3 else ''}, which training "
                                    f"does not write: move {'them' if len(foreign) > 1 else 'it'} away and run the "
                                    f"same command again (the run starts over: it left no checkpoint)")
                say(f"    starting over: the interrupted run {run_dir} left no checkpoint")
                shutil.rmtree(run_dir)
            fit(cfg)
        result = {"config": cfg.to_dict(), "epochs": read_metrics(run_dir), "extra": {}, "wall_s": round(before_s, 2),
                  "resumed": resumed, "machine": machine_line()}
        if len(result["epochs"]) < cfg.epochs:
            raise UserError(f"{run_dir}: the run stopped after {len(result['epochs'])} of {cfg.epochs} epochs")
    missing = [e for e in extras if not all(k in result["extra"] for k in EXTRA_KEYS[e])]
    for e in missing:
        result["extra"].update(EXTRAS[e](run_dir, cfg))
    if missing or not cached:
        if result.get("wall_s") is not None or not cached:
            result["wall_s"] = round(result.get("wall_s", 0.0) + time.perf_counter() - t0, 2)
        atomic_write_json(result_path, result)
    return result, cached and not missing


EXTRA_KEYS = {"train_eval": ("train_eval_error",), "ten_crop": ("centre_error", "ten_crop_error")}


def decided_precision(name: str, first):
    """The precision of experiment ``name``, from its first arm's config ``first``: measured the
    first time (`engine.precision.experiment_precision`) and written to
    ``<runs>/precision-<name>.json``; read back from there while the same ``--amp`` runs on the same
    kind of device, so a timing probe that answers differently the next time changes nothing."""
    from ..core.device import precision_named, resolve_device
    from ..engine.precision import experiment_precision

    record = Path(first.output_dir) / f"precision-{name}.json"
    # what the probe measured: another --amp, device kind, network or batch decides afresh
    key = {"amp": first.amp, "device": resolve_device(first.device).type, "model": first.model,
           "model_kwargs": json.loads(json.dumps(first.model_kwargs)), "batch_size": first.batch_size}
    if record.is_file():
        try:
            rec = json.loads(record.read_text())
            if all(rec[k] == v for k, v in key.items() if k in rec) and "precision" in rec:
                return precision_named(rec["precision"], f"{rec['reason']} (decided {rec['date']}, as recorded in "
                                                         f"{record.name})")
        except (ValueError, KeyError, TypeError, UserError):
            pass  # a damaged record: decide again and rewrite it
    p = experiment_precision(first)
    record.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(record, {**key, "precision": p.name, "reason": p.reason,
                               "date": time.strftime("%Y-%m-%d")})
    return p


def run_experiment(exp: Experiment, *, data: str, out: Path, scale: Scale,
                   say: Callable[[str], None] = print, **over: Any) -> list[RunResult]:
    """Train (or reuse) every arm × seed of ``exp``; return their results, arm by arm.

    The precision is decided once, here, from the first arm (its ``amp``; ``over`` may give one, or
    pin ``precision`` itself) and given to every arm, so the arms differ only in what they test.
    The decision is recorded beside the runs, so a re-run or an interrupted one keeps it."""
    from ..engine.precision import pinned_fields

    results: list[RunResult] = []
    if "precision" not in over:
        p = decided_precision(exp.name, exp.configs(scale, 0, data, out, **over)[0][1])
        over = {**over, **pinned_fields(p, f"pinned for every arm of experiment {exp.name}")}
        say(f"[{exp.name}] every arm trains in {p.name}: {p.reason}")
    plan = [(seed, arm, cfg) for seed in range(scale.seeds) for arm, cfg in exp.configs(scale, seed, data, out, **over)]
    for i, (seed, arm, cfg) in enumerate(plan, start=1):
        run_dir = Path(cfg.output_dir) / cfg.name
        done = read_result(run_dir) is not None
        say(f"[{exp.name}] run {i}/{len(plan)}: {arm.label}, seed {seed}{' (cached)' if done else ''} → {run_dir}")
        result, cached = train_or_reuse(cfg, exp.extras, say)
        results.append(RunResult(arm.label, seed, str(run_dir), result["epochs"], result["extra"], cached,
                                 precision=run_precision_of(run_dir), wall_s=result.get("wall_s"),
                                 machine=result.get("machine", ""), num_classes=classes_of(run_dir),
                                 resumed=bool(result.get("resumed"))))
    more = 0  # finished runs of further seeds, from an earlier --seeds: kept on disk, not in this verdict
    while more < 100 and all(read_result(Path(c.output_dir) / c.name) is not None
                             for _, c in exp.configs(scale, scale.seeds + more, data, out, **over)):
        more += 1
    if more:
        say(f"[{exp.name}] note: {out}/runs also holds every arm of {more} more seed{'s' * (more != 1)}, finished "
            f"before and not in this verdict: --seeds {scale.seeds + more} takes {'them' if more > 1 else 'it'} in "
            f"without training")
    return results

