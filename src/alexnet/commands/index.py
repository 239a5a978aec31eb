"""``alexnet index build|query``: search images by their last-hidden-layer features (the paper's
Figure 4)."""

from __future__ import annotations

import argparse
import json
import sys

ORDER = 50


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="build a feature index of a dataset and find an image's nearest neighbours",
                       description="Images whose fc7 feature vectors are close look alike to the network "
                                   "(the paper's Figure 4).")
    vs = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    b = vs.add_parser("build", help="compute and store the features of every image of a dataset",
                      description="Streams DATA through the network and stores float16 features with paths "
                                  "and labels in the folder INDEX. An interrupted build resumes.")
    b.add_argument("weights", help="run directory or weights.safetensors")
    b.add_argument("data", help="dataset spec (folder:/path, cifar10:/path, …) or a folder")
    b.add_argument("-o", "--output", required=True, metavar="INDEX", help="index folder to write")
    b.add_argument("--split", default="all", choices=("all", "train", "val"),
                   help="which images of DATA: all (train and val, the default), train or val")
    b.add_argument("--val-split", type=float, default=None,
                   help="fraction held out as val where DATA has no validation part (default: the data layer's)")
    b.add_argument("-b", "--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    b.add_argument("-j", "--workers", type=int, default=2, help="loader worker processes (default 2)")
    b.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    b.add_argument("--limit", type=int, metavar="N", help="index only the first N images")
    b.add_argument("--shard-size", type=int, default=8192, help="vectors per shard file (default 8192)")
    b.add_argument("--overwrite", action="store_true", help="replace an existing index")
    b.set_defaults(func=run_build)

    q = vs.add_parser("query", help="the nearest neighbours of an image",
                      description="Prints the K nearest images in INDEX and writes a PNG strip "
                                  "(query + neighbours).")
    q.add_argument("index", help="index folder (from `alexnet index build`)")
    q.add_argument("image", help="an image file")
    q.add_argument("-k", type=int, default=8, help="neighbours (default 8)")
    q.add_argument("--metric", choices=("euclidean", "cosine"), default="euclidean",
                   help="distance (default euclidean, as in the paper)")
    q.add_argument("--weights", help="weights to compute the query's features (default: the index's)")
    q.add_argument("-o", "--output", default="neighbours.png", help="PNG strip to write (default neighbours.png)")
    q.add_argument("--no-strip", action="store_true", help="do not write the PNG strip")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    q.set_defaults(func=run_query)


def run_build(args: argparse.Namespace) -> int:
    from ..core.errors import UserError
    from ..core.io import check_output_folder

    for flag, v in (("--batch-size", args.batch_size), ("--shard-size", args.shard_size), ("--limit", args.limit)):
        if v is None:
            continue
        if v < 1:
            raise UserError(f"{flag} must be at least 1, not {v}")
    check_output_folder(args.output, "-o")
    from ..core.weight_files import load_meta, resolve_run_dir
    from ..data.kinds import nothing_there

    load_meta(args.weights)  # a wrong path, or --data that is not there: one line before torch loads
    if args.data is not None and nothing_there(args.data):
        raise UserError(nothing_there(args.data))
    from ..infer.retrieval import build_index

    args.weights = str(resolve_run_dir(args.weights))  # the --output-dir folder: its newest run, recorded
    index = build_index(args.weights, args.data, args.output, split=args.split, batch_size=args.batch_size,
                        workers=args.workers, device=args.device, shard_size=args.shard_size,
                        overwrite=args.overwrite, limit=args.limit, val_split=args.val_split,
                        log=lambda m: print(m, file=sys.stderr))
    bad = index.meta.get("bad") or {}
    print(f"indexed {len(index)} images ({index.dim}-d float16) in {index.path}"
          + (f"; {len(bad)} unreadable images skipped" if bad else ""))
    for path, reason in list(bad.items())[:10]:
        print(f"  skipped: {path}: {reason}", file=sys.stderr)
    return 1 if bad else 0  # the index holds the rest; bad files are a problem found, as everywhere


def run_query(args: argparse.Namespace) -> int:
    from ..core.errors import UserError
    from ..core.io import check_output_file

    if args.k < 1:
        raise UserError(f"-k must be at least 1, not {args.k}")
    if not args.no_strip:
        check_output_file(args.output, "-o")
    from ..data import BadImageError
    from ..infer.retrieval import query_index
    try:
        res = query_index(args.index, args.image, k=args.k, metric=args.metric, weights=args.weights,
                          device=args.device, strip=None if args.no_strip else args.output)
    except BadImageError as e:
        raise UserError(str(e)) from None
    if len(res.neighbours) < args.k:  # the whole index: fewer than asked
        print(f"note: -k {args.k}: the index holds {len(res.neighbours)} images, all of them listed", file=sys.stderr)
    if args.json:
        print(json.dumps({"query": args.image, "metric": args.metric,
                          "neighbours": [n.to_dict() for n in res.neighbours],
                          "strip": str(res.strip) if res.strip else None}, indent=2))
        return 0
    rows = [("#", "distance", "class", "path")]
    for n in res.neighbours:
        rows.append((str(n.rank), f"{n.distance:.4f}", n.label_name or str(n.label), n.path))
    from ..core.text import cells, ljust

    w = [max(cells(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print(f"{r[0]:>{w[0]}}  {r[1]:>{w[1]}}  {ljust(r[2], w[2])}  {r[3]}")
    if res.strip:
        from ..infer.retrieval import STRIP_MAX

        shows = f" (the nearest {STRIP_MAX} of the {len(res.neighbours)})" if len(res.neighbours) > STRIP_MAX else ""
        print(f"wrote {res.strip}{shows}")
    return 0
