"""``alexnet import torchvision FILE.pth -o OUT``: bring weights from elsewhere into this project's
format (``weights.safetensors`` + ``weights.json``)."""

from __future__ import annotations

import argparse

ORDER = 70


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="convert torchvision's AlexNet checkpoint into our weights",
                       description="Convert weights from elsewhere into a weights.safetensors + weights.json "
                                   "that every command accepts.")
    vs = p.add_subparsers(dest="source", metavar="SOURCE", required=True)
    t = vs.add_parser("torchvision", help="torchvision's AlexNet state_dict (alexnet-owt-7be5be79.pth)",
                      description="torchvision.models.alexnet's ImageNet weights → our alexnet-owt model with "
                                  "the 1,000 ImageNet class names. Loaded with weights_only=True: files "
                                  "holding pickled code are refused.")
    t.add_argument("file", help="the .pth file (a state_dict)")
    t.add_argument("-o", "--output", required=True, metavar="OUT", help="folder to write the weights to")
    t.add_argument("--classes", help="a text file with one class name per line (default: ImageNet's 1,000)")
    t.set_defaults(func=run_torchvision)


def run_torchvision(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..core.errors import UserError
    from ..infer.interop import import_torchvision

    classes = None
    if args.classes:
        try:
            classes = [ln.strip() for ln in Path(args.classes).read_text(encoding="utf-8").splitlines() if ln.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"{args.classes}: cannot read class names ({e})") from None
    st = import_torchvision(args.file, args.output, classes=classes)
    print(f"wrote {st} and {st.with_suffix('.json').name} (alexnet-owt); try: alexnet predict {args.output} IMAGE")
    return 0
