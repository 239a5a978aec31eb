"""The named recipes: one YAML file each, beside this module (``<name>.yaml``).

A recipe file is a documented set of `TrainConfig` field values: ``recipe: NAME`` (its own name),
``description:`` (one line, shown by ``alexnet recipes``), then the fields it sets, each number
with its source as a comment (the paper's section, a measurement and where it is written up). So
a recipe file is also a config file: ``alexnet recipes show NAME > my.yaml``, edit, then
``alexnet train --config my.yaml``.

`RECIPES` maps each name to its field values (a fresh copy on every lookup); the names are the
files' names, so listing them (``alexnet train --help``) reads no file and imports no YAML parser.
Adding a recipe is adding a file. `default_recipe` chooses one where none is named.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RECIPE_DIR = Path(__file__).resolve().parent

# Keys of a recipe file that are not fields it sets.
META_KEYS = ("recipe", "description")


def yaml_load(text: str) -> Any:
    """``text`` parsed as YAML 1.2 reads it: ``1e-3`` is a number (PyYAML's YAML 1.1 rules read it
    as a string) and only true/false are booleans (YAML 1.1 also turns on/off/yes/no into booleans,
    which would make ``channels_last: off`` a boolean). Raises ``yaml.YAMLError``."""
    import yaml

    return yaml.load(text, Loader=_loader())  # noqa: S506 — a SafeLoader subclass


@functools.cache
def _loader() -> type:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    bool_tag, float_tag = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:float"
    Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != bool_tag]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    Loader.add_implicit_resolver(bool_tag, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
    Loader.add_implicit_resolver(float_tag, re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                                 list("-+0123456789"))
    return Loader


@dataclass(frozen=True)
class Recipe:
    """One recipe file: its name, one-line description, the fields it sets, and the file's text."""

    name: str
    description: str
    values: dict[str, Any]
    text: str


def recipe_path(name: str) -> Path:
    return RECIPE_DIR / f"{name}.yaml"


def recipe_names() -> tuple[str, ...]:
    """Every recipe's name (its file's name), sorted."""
    return tuple(sorted(p.stem for p in RECIPE_DIR.glob("*.yaml")))


@functools.cache
def load_recipe(name: str) -> Recipe:
    """The recipe ``name`` read from its file. A malformed built-in file is a bug, not a person's
    mistake: it raises ``ValueError`` naming the file."""
    path = recipe_path(name)
    text = path.read_text(encoding="utf-8")
    data = yaml_load(text)
    if not isinstance(data, dict) or data.get("recipe") != name or not isinstance(data.get("description"), str):
        raise ValueError(f"{path}: a recipe file needs 'recipe: {name}' and a 'description:' line")
    values = {k: v for k, v in data.items() if k not in META_KEYS}
    return Recipe(name, data["description"], values, text)


class RecipeTable(Mapping):
    """``{name: field values}`` read from the recipe files on first lookup; iterating lists the
    files' names only."""

    def __getitem__(self, name: str) -> dict[str, Any]:
        if name not in self:
            raise KeyError(name)
        return copy.deepcopy(load_recipe(name).values)  # a caller's config must not share the recipe's lists

    def __iter__(self) -> Iterator[str]:
        return iter(recipe_names())

    def __len__(self) -> int:
        return len(recipe_names())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and "/" not in name and recipe_path(name).is_file()

    def __repr__(self) -> str:
        return f"RecipeTable({', '.join(self)})"


RECIPES = RecipeTable()


DATA_RECIPES = {"cifar10": "cifar10", "imagenet": "paper"}  # a dataset's own recipe, for data given without a model
SMALL_IMAGE = 64  # a short side up to this is a small image: CIFAR-10's 32, MNIST's 28, Tiny ImageNet's 64


def default_recipe(model: str | None, weights: str | None, data: str | None = None,
                   image: tuple[int, int, int] | None = None) -> tuple[str, str]:
    """The recipe to use when none is named, and why: one that suits the model (and ``--weights``),
    or, with neither, the data: a dataset named by kind brings its own (``--data cifar10:DIR``: the
    cifar10 recipe's alexnet-cifar, not the digits' 1-channel network on greyed images), and a
    folder or list of images is told by ``image``, (channels, height, width) that stand for its first
    images (`alexnet.data.datasets.first_image`): photos train alexnet-owt (`photos`), small colour images
    alexnet-cifar (`cifar10`), small grey ones alexnet-mnist (`digits`)."""
    if weights:
        return "finetune", "starting from --weights"
    kind = (data or "").partition(":")[0]
    if not model and kind in DATA_RECIPES:
        return DATA_RECIPES[kind], f"for {kind} data"
    if not model and image:
        c, h, w = image
        first = f"the data's first images are {w}×{h}, {'colour' if c == 3 else 'grey'}"
        if min(h, w) > SMALL_IMAGE:
            return "photos", f"for photos: {first}"
        return ("cifar10", f"for small colour images: {first}") if c == 3 else \
            ("digits", f"for small grey images: {first}")
    if not model or model == "alexnet-mnist":
        return "digits", f"for {model or 'the default model alexnet-mnist'}"
    if model == "alexnet-cifar":
        return "cifar10", "for alexnet-cifar"
    if model == "alexnet-cifar-fast":
        return "cifar10-fast", "for alexnet-cifar-fast"
    return "photos", f"for {model} on photos"
