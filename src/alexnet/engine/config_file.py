"""``alexnet train --config FILE``: training fields from a YAML file or from a run's ``config.json``.

The file's keys are `TrainConfig` fields, the names ``config.json`` uses (``batch_size``,
``weight_decay``, ``model_kwargs``, …); a recipe file's ``description:`` is allowed and ignored,
so ``alexnet recipes show NAME > my.yaml`` is a config file to edit. The fields come in layers:

1. the recipe: ``recipe:`` in the file (``--recipe`` on the command line wins), else the one that
   suits the model, as without ``--config`` (`default_recipe`);
2. the file: every field it gives (``batch_size`` without ``global_batch`` means the batch per
   process, as ``-b`` does);
3. the flags given on the command line.

A ``.json`` file (or a run directory) is a run's ``config.json``: the fields of a finished run,
trained again as a *new* run: its ``name`` and ``resume`` are dropped (a new run directory under
the same ``output_dir``), and what the run decided at its start is kept, so that the re-run is
exact with ``--deterministic``: the precision ``--amp auto`` chose (not measured again) and the
measured mean pixel, and ``--time-budget``'s plan (the steps it timed, trained again without timing
them) — unless a flag changes what they were decided from (`DECIDED_FROM`). The run records the
file in ``config_file``.

Every mistake in the file is one line naming the file and the key (an unknown key with a
did-you-mean, a wrong type, an out-of-range value, a file that is not YAML), found in plain Python
before torch is imported.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import UserError, did_you_mean
from .config import PER_INVOCATION, TrainConfig, config_values
from .recipes import RECIPES, yaml_load

# Fields of a run's config.json that belong to that run only: a re-run is a new run.
RUN_ONLY = ("name", "resume", "config_file", *PER_INVOCATION)
# Fields a run decides at its start and records, kept by a re-run unless a flag changes their inputs.
DECIDED_FROM = {"precision": ("amp", "device"), "precision_reason": ("amp", "device"),
                "pixel_mean": ("data", "pca", "val_split", "seed"),
                "resident_device": ("device", "data", "train_subset"),
                # --time-budget's plan (the steps, timed on the machine that ran it): replayed, not measured
                # again, unless a flag changes the budget, the length or what the steps and evaluations cost. The
                # data may move (another machine has them at another path): the run keeps the plan when they give
                # the steps per epoch it was made for, and times afresh, saying so, when not (budget_run)
                "budget_plan": ("time_budget", "epochs", "train_epochs", "model", "model_kwargs", "weights", "freeze",
                                "val_split", "train_subset", "batch_size", "global_batch", "aug", "translate",
                                "workers", "data_device", "resident", "ten_crop", "tta", "device", "amp",
                                "channels_last", "compile", "checkpoint_every")}


@dataclass
class ConfigFile:
    """A config file read and checked: where it is, the fields it gives, whether it is a run's."""

    path: Path
    values: dict[str, Any]
    from_run: bool = False

    def say(self, key: str | None, msg: str) -> UserError:
        """The one-line error: ``FILE: KEY must be …`` (a flag's name at its start becomes the key)."""
        if key is None:
            return UserError(f"{self.path}: {msg}")
        flag = "--" + key.replace("_", "-") + " must "
        msg = msg[len(flag) - 5:] if msg.startswith(flag) else msg
        return UserError(f"{self.path}: {key} {msg}" if msg.startswith("must ") else f"{self.path}: {key}: {msg}")

    def start_values(self, flags: dict[str, Any]) -> dict[str, Any]:
        """The fields to train with before ``flags`` (the command line's fields) go on top."""
        values = {k: v for k, v in self.values.items()
                  if not set(DECIDED_FROM.get(k, ())) & flags.keys()}
        return {**values, "config_file": str(self.path.resolve())}

    def check_values(self, recipe: str) -> None:
        """`TrainConfig.check_values` on recipe ``recipe`` with the file's fields on top; a failure
        names the file and the first key without which the check fails differently (or passes)."""

        def failure(values: dict[str, Any]) -> str | None:
            try:
                config_values(recipe, file_values=values).check_values()
            except UserError as e:
                return str(e)
            return None

        msg = failure(self.values)
        if msg is None:
            return
        key = next((k for k in self.values if failure({j: v for j, v in self.values.items() if j != k}) != msg),
                   None)
        raise self.say(key, msg)


def read_config_file(spec: str) -> ConfigFile:
    """``spec`` (a YAML file, a run's config.json, or a run directory) read, its keys and their
    types checked; the values are checked with the recipe by `ConfigFile.check_values`."""
    path = Path(spec).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        path = path / "config.json"
    if not path.exists():
        raise UserError(f"--config {spec}: no such file")
    if not path.is_file():
        raise UserError(f"--config {spec}: not a file (a YAML file of training fields, or a run's config.json)")
    from_run = path.suffix.lower() == ".json"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"--config {path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    cf = ConfigFile(path, {}, from_run)
    data = _parse(cf, text)
    cf.values = _fields(cf, data)
    return cf


def _parse(cf: ConfigFile, text: str) -> dict:
    if cf.from_run:
        try:
            data = json.loads(text)
        except ValueError as e:
            raise cf.say(None, f"not valid JSON ({e})") from None
    else:
        import yaml

        try:
            data = yaml_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise cf.say(None, f"not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise cf.say(None, f"expected KEY: VALUE lines (alexnet train's fields), not a {type(data).__name__}")
    return data


def _fields(cf: ConfigFile, data: dict) -> dict[str, Any]:
    """The file's keys as typed `TrainConfig` fields; the run-only ones of a run's config.json left out."""
    hints = field_types()
    values = {}
    for key, value in data.items():
        if key == "description":  # a recipe file's one line
            continue
        if not isinstance(key, str) or key not in hints:
            raise cf.say(None, f"unknown key {str(key)!r}{did_you_mean(str(key), hints)} (the keys are "
                               f"alexnet train's fields, as in a run's config.json)")
        if cf.from_run and key in RUN_ONLY:
            continue
        values[key] = typed(cf, key, value, hints[key])
    if values.get("resume"):
        raise cf.say("resume", "a config file starts a new run; to continue one, give --resume RUN_DIR instead")
    values.pop("resume", None)
    values.pop("config_file", None)  # set to this file
    if "recipe" in values and values["recipe"] not in RECIPES:
        if cf.from_run:  # e.g. an experiment's arm: every field is given, any recipe is a base
            del values["recipe"]
        else:
            raise cf.say("recipe", f"{values['recipe']!r} is not a recipe{did_you_mean(values['recipe'], RECIPES)} "
                                   f"(`alexnet recipes` lists them)")
    if "batch_size" in values and "global_batch" not in values:
        values["global_batch"] = 0  # the batch per process, as -b means
    return values


@functools.cache
def field_types() -> dict[str, Any]:
    """Each `TrainConfig` field's type (``int``, ``float | None``, ``list[float]``, …)."""
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(TrainConfig)}


def typed(cf: ConfigFile, key: str, value: Any, hint: Any) -> Any:
    """``value`` as field ``key`` of type ``hint`` holds it (an int where a float goes becomes a
    float), or the one-line error naming the key and the file."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = next(a for a in args if a is not type(None))
        try:
            return typed(cf, key, value, inner)
        except UserError:
            raise cf.say(key, f"must be {_kind(inner)} or null, not {value!r}") from None
    ok, out = _convert(value, hint)
    if not ok:
        raise cf.say(key, f"must be {_kind(hint)}, not {value!r}")
    return out


def _convert(value: Any, hint: Any) -> tuple[bool, Any]:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        return number, float(value) if number else value
    if hint is str:
        return isinstance(value, str), value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        if not isinstance(value, list):
            return False, value
        items = [_convert(v, args[0]) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(k, str) for k in value), value
    return True, value  # Any


def _kind(hint: Any) -> str:
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}
    if hint in names:
        return names[hint]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        return f"a list of {_kind(args[0]).removeprefix('a ')}s, e.g. [1, 2]"
    if origin is dict:
        return "a mapping of names to values (KEY: VALUE lines, indented)"
    return str(hint)
