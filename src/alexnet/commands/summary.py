"""``alexnet summary``: per-layer output shape, parameters and MACs of a registered model."""

from __future__ import annotations

import argparse
import json

from .train import key_value  # --model-arg read as train reads it

ORDER = 91  # right after models


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="per-layer output shape, parameters and MACs of a model")
    p.add_argument("model", help="a registered model name (see `alexnet models`)")
    p.add_argument("--input-size", nargs=2, type=int, metavar=("H", "W"), help="input height and width")
    p.add_argument("--num-classes", type=int, help="number of output classes (default: the model's)")
    p.add_argument("--model-arg", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                   help="a model argument, as alexnet train takes it: towers=2, width=0.5 (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_summary)


def run_summary(args: argparse.Namespace) -> int:
    from ..core.errors import UserError
    from .models import unknown_model

    if unknown_model(args.model):  # a mistyped name: said before torch loads
        raise UserError(unknown_model(args.model))
    from ..models import model_cfg
    from ..models.catalog import meta_summary

    cfg = model_cfg(args.model)
    c, h, w = cfg.input_size
    if args.input_size:
        h, w = args.input_size
        mh, mw = cfg.min_input_size
        if h < mh or w < mw:
            raise UserError(f"--input-size {h} {w} is too small for {args.model} (at least {mh} {mw})")
    try:  # on the meta device: the same shapes and counts, no weights allocated
        s = meta_summary(args.model, (c, h, w), num_classes=args.num_classes, **dict(args.model_arg))
    except RuntimeError as e:
        raise UserError(f"{args.model} cannot run on {h}×{w} input: {str(e).splitlines()[0]}") from None
    print(json.dumps(s.to_dict(), indent=2) if args.json else s.table())
    return 0
