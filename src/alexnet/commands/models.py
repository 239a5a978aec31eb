"""``alexnet models``: the registered models (``alexnet summary NAME`` shows one layer by layer)."""

from __future__ import annotations

import argparse
import json

ORDER = 90


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the registered models")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_models)


def unknown_model(name: str) -> str | None:
    """The one-line error for a model name that is not one of the built-in models (the names kept in
    ``models/catalog.json``, read without torch), so a mistyped ``--model`` is answered at once; None
    for a known name, and when the registry is already loaded (a model registered in this process,
    which the registry then checks)."""
    import sys
    from pathlib import Path

    from ..core.errors import did_you_mean

    if not name or "alexnet.models.registry" in sys.modules:
        return None
    try:
        catalog = json.loads((Path(__file__).parents[1] / "models" / "catalog.json").read_text())
        names = [key.split()[0] for key in catalog]
    except (OSError, ValueError, AttributeError, IndexError):
        return None  # the registry will say
    if not names or name in names:
        return None
    return f"unknown model {name!r}{did_you_mean(name, names)}; `alexnet models` lists them"


def run_models(args: argparse.Namespace) -> int:
    from ..models import list_models, model_cfg
    from ..models.catalog import model_table

    if args.json:
        print(json.dumps({n: model_cfg(n).to_dict() for n in list_models()}, indent=2))
    else:
        print(model_table())
    return 0
