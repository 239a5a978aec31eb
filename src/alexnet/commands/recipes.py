"""``alexnet recipes [show NAME]``: the named recipes, one line each, or one recipe's YAML file
(each number's source in its comments), ready to copy, edit and train with ``--config``."""

from __future__ import annotations

import argparse

ORDER = 12  # after train and evaluate


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recipes", help="list the training recipes, or print one as YAML to copy and edit",
                       description="A recipe is a set of training fields with each number's source "
                                   "(alexnet train --recipe NAME). `alexnet recipes show NAME > my.yaml`, edit, "
                                   "then `alexnet train --config my.yaml`.")
    vs = p.add_subparsers(dest="action", metavar="ACTION")
    s = vs.add_parser("show", help="print a recipe's YAML file, comments included",
                      description="Prints the recipe's file as shipped: its fields, each number's source as a "
                                  "comment. Save it, edit it, and train with `alexnet train --config FILE`.")
    s.add_argument("name", metavar="NAME", help="recipe name (`alexnet recipes` lists them)")
    s.set_defaults(func=run_show)
    p.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    from ..engine.recipes import load_recipe, recipe_names

    recipes = [load_recipe(n) for n in recipe_names()]
    rows = [("recipe", "model", "description")] + [(r.name, str(r.values.get("model", "")), r.description)
                                                     for r in recipes]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}")
    print("\n`alexnet recipes show NAME` prints one (YAML, each number's source commented); train it with "
          "`alexnet train --recipe NAME`, or edit a copy and give `--config FILE`.")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from ..core.errors import UserError, did_you_mean
    from ..engine.recipes import RECIPES, load_recipe

    if args.name not in RECIPES:
        raise UserError(f"unknown recipe {args.name!r}{did_you_mean(args.name, RECIPES)} "
                        f"(choose from {', '.join(RECIPES)})")
    print(load_recipe(args.name).text, end="")
    return 0
