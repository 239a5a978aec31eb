"""``alexnet export WEIGHTS --format onnx|pt2|torchscript|safetensors -o FILE``.

The exported network takes a normalised float batch (any batch size) and returns logits; the
preprocessing and class names travel with it (ONNX metadata / a JSON file). ONNX, pt2
(torch.export) and TorchScript files are run against PyTorch on the same inputs right after
export: the maximum absolute difference is printed, and beyond the tolerance the file is not
written (exit 1).
"""

from __future__ import annotations

import argparse

ORDER = 60


def register(sub: argparse._SubParsersAction) -> None:
    from ..infer.formats import EXPORTERS, FORMATS, ONNX_OPSET

    p = sub.add_parser("export", help="export weights to ONNX, torch.export (.pt2), TorchScript or safetensors",
                       description=__doc__.split("\n", 2)[2].strip())
    p.add_argument("weights", help="run directory or weights.safetensors")
    p.add_argument("--format", choices=FORMATS, default="onnx",
                   help="onnx (default), pt2 (torch.export.save; torch.export.load), torchscript (torch.jit), "
                        "safetensors")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="file to write")
    p.add_argument("--opset", type=int, default=ONNX_OPSET, help=f"ONNX opset (default {ONNX_OPSET})")
    p.add_argument("--exporter", choices=EXPORTERS, default="auto",
                   help="ONNX exporter: dynamo (torch.export, needs onnxscript), torchscript (legacy), "
                        "auto (dynamo when onnxscript is installed; default)")
    p.add_argument("--no-verify", action="store_true", help="skip the check against PyTorch")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from ..core.io import check_output_file
    from ..core.weight_files import load_meta

    load_meta(args.weights)  # a wrong path is one line before torch loads
    check_output_file(Path(args.output).expanduser(), "-o")  # /proc, a read-only disk: said before torch loads
    # (expanded as export_model expands it: a quoted "~/m.onnx" is the home folder's)
    from ..infer.export import SUFFIXES, ExportCheckError, export_model

    was_there = Path(args.output).expanduser().is_file()  # said below: an export replaces what -o held
    try:
        res = export_model(args.weights, args.format, args.output, opset=args.opset, verify=not args.no_verify,
                           exporter=args.exporter)
    except ExportCheckError as e:
        print(f"export failed: {e}", file=sys.stderr)
        return 1
    asked = Path(args.output)
    if res.format == "safetensors" and asked.suffix not in ("", ".safetensors"):
        print(f"note: -o {asked}: weights are written as {res.path} (every command reads them by the "
              f".safetensors suffix), with {res.path.with_suffix('.json')} beside it", file=sys.stderr)
    elif SUFFIXES.get(res.format) not in (None, asked.suffix):
        print(f"note: -o {asked}: a {res.format} file is usually named *{SUFFIXES[res.format]}; written as asked",
              file=sys.stderr)
    verb = "replaced" if was_there and res.path.resolve() == asked.expanduser().resolve() else "wrote"
    print(f"{verb} {res.path} ({res.format}, {res.path.stat().st_size / 2**20:.1f} MiB"
          + (f", {res.exporter}" if res.exporter else "") + ")")
    for f in res.extra_files:
        if f != res.path:
            print(f"wrote {f}")
    if res.max_abs_diff is not None:
        print(f"checked against PyTorch: max abs difference {res.max_abs_diff:.3g} "
              f"(tolerance {res.tolerance:.3g}) — ok")
    return 0
