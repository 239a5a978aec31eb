"""``alexnet predict WEIGHTS IMAGE_OR_FOLDER_OR_GLOB…``: top-k classes per image.

Exit status: 0 every image was classified, 1 some file was missing or not a readable image (its
row says why; the others are still classified), 2 bad flags or weights.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys

ORDER = 30
FORMATS = ("table", "csv", "json")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify images: top-k classes with probabilities",
                       description="Classify images with trained weights (a run directory or a "
                                   "weights.safetensors). Inputs are files, folders (searched "
                                   "recursively for images) or globs ('photos/**/*.jpg').")
    p.add_argument("weights", help="run directory or weights.safetensors")
    p.add_argument("inputs", nargs="+", metavar="IMAGE", help="image files, folders or glob patterns")
    p.add_argument("-k", "--top-k", dest="k", type=int, default=5, help="classes per image (default 5)")
    p.add_argument("--format", choices=FORMATS, default=None, help="output format (default table)")
    p.add_argument("--json", action="store_true", help="same as --format json")
    p.add_argument("--csv", action="store_true", help="same as --format csv")
    p.add_argument("--ten-crop", action="store_true",
                   help="average the softmax over the paper's ten crops (§4.1) instead of one centre crop")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("-b", "--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    p.add_argument("-j", "--workers", type=int, default=None, help="decoding threads (default: up to 4)")
    p.set_defaults(func=run)


def _table(results, k: int) -> str:
    """One line per (file, rank), the file named on its first line; an error row says why."""
    rows = [("file", "#", "class", "prob")]
    for r in results:
        if not r.ok:
            rows.append((r.path, "-", f"error: {r.error}", None))
            continue
        for rank, (name, _, prob) in enumerate(r.top, start=1):
            rows.append((r.path if rank == 1 else "", str(rank), name, f"{prob:.4f}"))
    from ..core.text import cells, ljust

    w = [max(cells(row[i]) for row in rows if i < 2 or row[3] is not None) for i in range(3)]
    lines = []
    for f, rank, name, prob in rows:
        if prob is None:  # an error row: the message runs on, it does not widen the column
            lines.append(f"{ljust(f, w[0])}  {rank:>{w[1]}}  {name}")
        else:
            lines.append(f"{ljust(f, w[0])}  {rank:>{w[1]}}  {ljust(name, w[2])}  {prob:>6}".rstrip())
    return "\n".join(lines)


def _csv(results) -> None:
    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(["file", "rank", "class", "index", "prob", "error"])
    for r in results:
        if not r.ok:
            w.writerow([r.path, "", "", "", "", r.error])
            continue
        for rank, (name, idx, prob) in enumerate(r.top, start=1):
            w.writerow([r.path, rank, name, idx, f"{prob:.6f}", ""])


def run(args: argparse.Namespace) -> int:
    from ..core.errors import UserError

    if args.k < 1:  # before torch is imported: a slip is answered at once
        raise UserError(f"-k must be at least 1, not {args.k}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, not {args.batch_size}")
    asked = {f"--{f}": f for f in ("json", "csv") if getattr(args, f)}
    if args.format:
        asked[f"--format {args.format}"] = args.format
    if len(set(asked.values())) > 1:
        raise UserError(f"{' and '.join(asked)} ask for two formats; give one")
    args.format = next(iter(asked.values()), "table")
    from ..core.weight_files import load_meta

    load_meta(args.weights)  # a wrong path or file is one line before torch loads
    from ..infer import Predictor
    from ..infer.predictor import FileResult, expand_inputs

    predictor = Predictor(args.weights, device=args.device, ten_crop=args.ten_crop,
                          batch_size=args.batch_size, workers=args.workers)
    if args.ten_crop:  # what the crops really are, as evaluate says
        from ..data.transforms import crops_note

        note = crops_note(predictor.cfg, predictor.mirror)
        if note:
            print(note, file=sys.stderr)
    items = expand_inputs(args.inputs)
    todo = [path for path, err in items if err is None]
    bar = None
    if sys.stderr.isatty() and len(todo) > 4 * args.batch_size:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="img", desc="predict", leave=False, file=sys.stderr)
    try:
        done = iter(predictor.predict_files(todo, k=args.k, on_progress=bar.update if bar else None))
    finally:
        if bar is not None:
            bar.close()
    results = [next(done) if err is None else FileResult(path, error=err) for path, err in items]
    if args.format == "json":
        views = ("ten-crop" if predictor.mirror else "five-crop") if args.ten_crop else "centre"
        print(json.dumps({"model": predictor.name, "ten_crop": args.ten_crop, "views": views,
                          "results": [r.to_dict() for r in results]}, indent=2))
    elif args.format == "csv":
        _csv(results)
    else:
        print(_table(results, args.k))
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"{len(failed)} of {len(results)} inputs failed", file=sys.stderr)
    return 1 if failed else 0
