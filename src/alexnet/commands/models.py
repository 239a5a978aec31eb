"""``alexnet models``: the registered models (``alexnet summary NAME`` shows one layer by layer)."""

from __future__ import annotations

import argparse
import json

ORDER = 90


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the registered models")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_models)


def run_models(args: argparse.Namespace) -> int:
    from ..models import list_models, model_cfg
    from ..models.catalog import model_table

    if args.json:
        print(json.dumps({n: model_cfg(n).to_dict() for n in list_models()}, indent=2))
    else:
        print(model_table())
    return 0
