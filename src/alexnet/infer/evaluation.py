"""Score trained weights on a dataset: top-1/top-5 accuracy and error, centre crop and ten-crop (§4.1, §6).

What ``alexnet evaluate`` runs. The weights and the preprocessing they were trained with come from
the run directory (or ``weights.safetensors``); the data from a dataset spec (default: the run's own).
The batches are scored by `alexnet.engine.evaluate.evaluate`, the loop training validates with, so a
run's own validation split scores here exactly as it did at the end of training. (`infer` imports
`engine` for that loop and nothing else; `engine` never imports `infer` — docs/architecture.md.)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Callable

from ..core.errors import UserError


def _run_config(weights: str) -> dict:
    """The run's saved ``config.json`` — in the run directory ``weights``, or beside the weights file
    ``weights`` (a run's ``weights.safetensors``) — else ``{}``."""
    run_cfg = (Path(weights) if Path(weights).is_dir() else Path(weights).parent) / "config.json"
    try:
        cfg = json.loads(run_cfg.read_text()) if run_cfg.is_file() else {}
    except OSError:
        return {}
    except ValueError as e:  # a hand edit broke it: said, not taken for no config at all
        raise UserError(f"{run_cfg}: not valid JSON ({e})") from None
    return cfg if isinstance(cfg, dict) else {}


def _run_amp(amp: str, saved: dict, dev) -> str:
    """``--amp auto`` on a run: the precision the run chose at its start and validated in (recorded in
    its config.json), so that its own validation split scores here as at the end of training; where
    there is none (weights alone, an older run) or it cannot run here (fp16 on a CPU), ``auto``."""
    chosen = {"fp32": "off", "bf16": "bf16", "fp16": "fp16"}.get(saved.get("precision") or "")
    return chosen if amp == "auto" and chosen and not (chosen == "fp16" and dev.type == "cpu") else amp


def _same_data(spec: str, run_spec: str | None) -> bool:
    """Whether the dataset spec ``spec`` names the data the run trained on (``run_spec``)."""
    from ..data import parse_spec

    if not run_spec:
        return False
    try:
        (kind, path), (run_kind, run_path) = parse_spec(spec), parse_spec(run_spec)
    except UserError:  # the run's data is no longer there
        return False
    return kind == run_kind and os.path.realpath(path or ".") == os.path.realpath(run_path or ".")


def _match_classes(spec: str, ds, model_classes: list[str], say: Callable[[str], None] | None):
    """``ds`` with its labels in the model's classes: as it is when they agree; relabelled by name
    when the data's classes are the model's in another order or some of them (`class_mapping`); by
    index, with a warning (``say``), when only the names differ; a one-line error otherwise
    (`class_mapping`'s, naming the classes the model does not know)."""
    from ..data.base import RelabelledDataset
    from .report import class_mapping

    data_classes = list(ds.classes)
    remap = class_mapping(data_classes, model_classes, spec)
    if remap is not None:
        if say:
            n = len(data_classes)
            say(f"note: the data's {n} {'class is' if n == 1 else 'classes are'} matched to the model's "
                f"{len(model_classes)} by name{'' if n == len(model_classes) else ' (the others have no images here)'}")
        return RelabelledDataset(ds, remap, model_classes)
    if say and data_classes != list(model_classes):
        pairs = [f"{a!r} → {b!r}" for a, b in zip(data_classes, model_classes) if a != b]
        shown = ", ".join(pairs[:8]) + (f", … ({len(pairs)} in all)" if len(pairs) > 8 else "")
        say(f"warning: no class name of the data is the model's, so labels are matched by position (sorted "
            f"names): {shown}; if that pairing is wrong every score below is, so name the data's folders as "
            f"the model's classes (its classes.json)")
    return ds


def evaluate_weights(weights: str, data: str | None = None, *, split: str | None = None, ten_crop: bool = False,
                     batch_size: int = 64, workers: int = 0, device: str = "auto", amp: str = "auto",
                     val_split: float | None = None, on_batch: Callable | None = None,
                     announce: Callable[[str], None] | None = None) -> dict:
    """Evaluate a run directory (or the ``--output-dir`` folder holding runs: its newest) or
    ``weights.safetensors`` on ``data`` (default: the run's own data).

    ``split``: default ``val`` for the run's own data; for ``data`` given here,
    `alexnet.data.default_eval_split` (``all`` — every image — when it has no validation part of its
    own: a folder without train/val sub-folders, a list; else ``val``). A seeded slice is announced
    through ``announce`` (default: stderr).

    Returns ``{"centre": EvalResult, "ten_crop": EvalResult | None, "meta": …, "data": spec, "split": …,
    "mirror": bool, "bad_files": {path: reason}, "warning": str}``; unreadable files are left out of
    the scores. ``warning`` (also announced) is non-empty when the centre-crop scores show a useless
    model: no better than always guessing the split's largest class, or one class predicted for
    nearly every image (`alexnet.engine.evaluate.uselessness`; the result's ``pred_counts``).
    Preprocessing comes from the cfg stored with the weights, so it is the one training validated
    with; ten-crop mirrors its crops only when training flipped images.
    """
    from ..core.device import resolve_device, resolve_precision
    from ..data.transforms import crops_note
    from ..data import (BadSampleLog, build_dataset, build_loader, build_transforms, default_eval_split,
                        normalizer_for)
    from ..data.base import NoValidationPart
    from ..engine.evaluate import evaluate
    from ..models import load_weights, meta_cfg, resolve_run_dir

    say = announce or (lambda msg: print(msg, file=sys.stderr))
    weights = str(resolve_run_dir(weights))
    dev = resolve_device(device)
    model, meta = load_weights(weights, dev)
    saved = _run_config(weights)
    spec = data or saved.get("data")
    if not spec:
        raise UserError("--data is needed: the weights do not come with a run's config.json")
    if not data:  # the run's own, as typed where it trained: a relative path from another folder is said so
        from ..engine.flag_notes import check_resume_data

        check_resume_data(weights, spec, "evaluate")
    own = not data or _same_data(data, saved.get("data"))
    if split is None:  # a folder or list handed over for evaluation is scored whole unless it has a val part,
        # or is the run's own data: then its validation split, not the images it trained on
        split = "val" if own else default_eval_split(data)
    vs = val_split if val_split is not None else saved.get("val_split", 0.1)
    if not own and val_split is None and vs == 0:
        vs = None  # the run's 0 said nothing of other data: its own default split
    cfg = meta_cfg(meta)
    precision = resolve_precision(_run_amp(amp, saved, dev), dev)
    normalize = normalizer_for(cfg, mode=meta.get("normalize", "meanstd")).to(dev)
    mirror = bool(meta.get("train_flip", cfg.input_size[0] != 1))
    out: dict = {"meta": meta, "data": spec, "ten_crop": None, "split": split, "mirror": mirror, "run": weights}
    for key, tc in (("centre", False), ("ten_crop", True)) if ten_crop else (("centre", False),):
        try:
            ds = build_dataset(spec, split, transform=build_transforms(cfg, train=False, ten_crop=tc, mirror=mirror),
                               val_split=vs)
        except NoValidationPart:
            if own:  # the run's own data, which has no validation part, all trained on
                raise UserError(f"{weights} trained on every image of {spec} (--val-split 0), so none were held "
                                f"out to score: give other images (--data DIR), or --split all for how well it "
                                f"fits the images it trained on") from None
            raise
        if key == "centre" and getattr(ds, "slice_note", ""):
            unknown = "" if saved else (" — without the run's config.json its own hold-out is unknown, so these "
                                        "may be images it trained on")
            say(f"note: scoring {ds.slice_note} (--split all scores every image){unknown}")
        ds = _match_classes(spec, ds, list(meta["classes"]), say if key == "centre" else None)
        if tc and crops_note(cfg, mirror):
            say(crops_note(cfg, mirror))
        loader = build_loader(ds, batch_size=max(1, batch_size // (10 if tc else 1)), train=False, workers=workers,
                              substitute=False)
        log = BadSampleLog()
        out[key] = evaluate(model, loader, normalize, precision, dev, progress=True,
                            on_batch=on_batch if not tc else None, bad_log=log)
        out.setdefault("bad_files", {}).update(log.total)
        out[f"{key}_dataset"] = ds
    out["warning"] = useless_warning(out["centre"], meta["classes"])
    if out["warning"]:
        say(out["warning"])
    return out


def useless_warning(res, classes: list[str]) -> str:
    """"warning: …" when ``res`` (an `EvalResult`) shows a model that learnt nothing useful, else ""."""
    from ..engine.evaluate import uselessness

    useless = uselessness(res.top1, res.label_counts, res.pred_counts, classes)
    if not useless:
        return ""
    what = [f"top-1 ({res.top1:.2f}%) {useless.below_chance}"] if useless.below_chance else []
    what += [f"the model {useless.one_class}"] if useless.one_class else []
    return f"warning: {'; '.join(what)}: this model has learnt nothing useful on {res.n} images"
