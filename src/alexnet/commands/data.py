"""``alexnet data check|list|imagenet-val|pca-stats|cache|shards``: look after datasets (docs/data.md).

``alexnet data list`` writes list files (train.txt, test.txt, classes.txt); it was called
``alexnet data index``, which still works (hidden) — not to be confused with ``alexnet index``,
the feature index for retrieval.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

ORDER = 40

SPEC_HELP = ("a dataset: digits, cifar10:PATH, mnist:PATH, imagenet:PATH, folder:PATH, list:FILE, "
             "or a bare folder / list file")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="check, list and prepare datasets",
                       description="Check, list and prepare datasets. Dataset specs and examples: docs/data.md")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])

    c = dsub.add_parser("check", help="decode every image; report bad files, class counts, sizes (exit 1 if bad)")
    c.add_argument("spec", metavar="ROOT_OR_SPEC", help=SPEC_HELP)
    c.add_argument("-j", "--workers", type=int, default=None, help="parallel decoders (default: CPU count, ≤ 8)")
    c.add_argument("--max-pixels", type=int, default=None,
                   help="images with more pixels are bad (decompression bombs; default 89,478,485)")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=run_check)

    _add_list_parser(dsub, "list", help="write train.txt, test.txt and classes.txt for an image-folder tree")
    _add_list_parser(dsub, "index")  # the old name of `data list`: still accepted, left out of the help

    v = dsub.add_parser("imagenet-val", help="sort ImageNet's 50,000 flat validation images into class folders")
    v.add_argument("folder", metavar="FOLDER", help="the folder holding ILSVRC2012_val_*.JPEG")
    v.add_argument("--devkit", required=True,
                   help="ILSVRC2012_devkit_t12.tar.gz, its unpacked folder, or Kaggle's LOC_val_solution.csv")
    v.add_argument("--dry-run", action="store_true", help="say what would move; move nothing")
    v.set_defaults(func=run_imagenet_val)

    s = dsub.add_parser("pca-stats", help="RGB eigenvalues/eigenvectors for PCA colour augmentation (§4.1)")
    s.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    s.add_argument("-o", "--output", required=True, help="JSON file to write (pass it to training as --pca)")
    s.add_argument("--max-images", type=int, default=2000, help="images to sample (default 2000)")
    s.add_argument("--size", type=int, default=256, help="short side images are resized to first (default 256)")
    s.add_argument("-j", "--workers", type=int, default=0, help="loader worker processes (default 0)")
    s.add_argument("--seed", type=int, default=0, help="seed of the image sample (default 0)")
    s.set_defaults(func=run_pca_stats)

    k = dsub.add_parser("cache", help="decode a dataset once into memory-mappable shards (train with --data cache:DIR)",
                        description="Decode every split of a dataset once into a cache folder: uint8 pixels "
                                    "(raw) or re-encoded JPEGs (jpeg), labels, class names and the list of source "
                                    "files that could not be decoded (skipped). raw: each image's short side is "
                                    "resized to --short-side, then the image is centre-cropped to a square of that "
                                    "side, so one split is one block of equal-sized images; jpeg keeps the aspect "
                                    "ratio. An interrupted build resumes from its finished shards when run again. "
                                    "Train on it with --data cache:DIR; cache at the model's short side (256 for "
                                    "alexnet, 32 for alexnet-cifar) so training crops straight from the cache.")
    k.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    k.add_argument("-o", "--output", required=True, metavar="DIR", help="the cache folder to write (new or empty, "
                   "or an interrupted build of the same command)")
    k.add_argument("--short-side", type=int, default=None,
                   help="short side of the stored images (default 256, the paper's; smaller images such as "
                        "CIFAR-10's 32×32 keep their own size)")
    k.add_argument("--format", choices=("raw", "jpeg"), default="raw",
                   help="raw: uint8 pixels, memory-mapped, no decode when training (S×S×3 bytes an image); "
                        "jpeg: re-encoded JPEGs, ~10× smaller, decoded when read (default raw)")
    k.add_argument("--quality", type=int, default=90, help="JPEG quality for --format jpeg (default 90)")
    k.add_argument("--val-split", type=float, default=None,
                   help="fraction held out as the val split where the source has none (default 0.1; 0: none)")
    k.add_argument("--seed", type=int, default=0, help="seed of that hold-out (default 0)")
    k.add_argument("--shard-size", type=int, default=1024, help="images per shard (default 1024)")
    k.add_argument("-j", "--workers", type=int, default=None, help="decoding threads (default: CPU count, ≤ 8)")
    k.set_defaults(func=run_cache)

    h = dsub.add_parser("shards", help="write a dataset as webdataset tar shards (train with --data shards:DIR)",
                        description="Write every split of a dataset as webdataset tar shards plus index.json "
                                    "(classes, splits, labels per shard, skipped files): the source files as they "
                                    "are (in-memory sets as lossless PNG), shuffled once across the shards. Train "
                                    "and evaluate with --data shards:DIR (or file://, s3://, gs://, https:// "
                                    "with the fsspec backend installed). See docs/data.md.")
    h.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    h.add_argument("-o", "--output", required=True, metavar="DIR", help="the folder to write (new or empty)")
    h.add_argument("--shard-size", type=float, default=64.0, metavar="MB",
                   help="megabytes per shard (default 64)")
    h.add_argument("--val-split", type=float, default=None,
                   help="fraction held out as the val split where the source has none, as training holds "
                        "it out (default 0.1, digits 0.2; 0: none)")
    h.add_argument("--seed", type=int, default=0, help="seed of that hold-out and of the shuffle (default 0)")
    h.add_argument("--overwrite", action="store_true",
                   help="replace the shards (or an interrupted build) in DIR; never other files")
    h.add_argument("-j", "--workers", type=int, default=None, help="reading threads (default: CPU count, ≤ 8)")
    h.set_defaults(func=run_shards)


def _add_list_parser(dsub: argparse._SubParsersAction, name: str, **help_kw: str) -> None:
    """``alexnet data NAME ROOT``: list files for an image-folder tree (a parser given no help is not listed)."""
    i = dsub.add_parser(name, **help_kw)
    i.add_argument("root", metavar="ROOT", help="a folder of class folders (or with train/ and val/ or test/)")
    i.add_argument("-o", "--output-dir", default=None, help="where to write the lists (default: ROOT)")
    i.add_argument("--val-split", type=float, default=0.1,
                   help="fraction held out as test.txt when there is no val/ or test/ folder (default 0.1)")
    i.add_argument("--seed", type=int, default=0, help="seed of that hold-out (default 0)")
    i.add_argument("--overwrite", action="store_true",
                   help="replace the train.txt, test.txt and classes.txt already there (a test.txt this listing "
                        "has no images for is removed)")
    i.set_defaults(func=run_list)


def run_check(args: argparse.Namespace) -> int:
    from ..core.errors import UserError
    from ..data.kinds import nothing_there

    if nothing_there(args.spec):  # a mistyped path: said before torch loads
        raise UserError(nothing_there(args.spec))
    from ..data.check import check_dataset, format_report
    from ..data.decode import DEFAULT_MAX_PIXELS

    if args.max_pixels is not None and args.max_pixels < 1:
        from ..core.errors import UserError

        raise UserError(f"--max-pixels must be at least 1 (leave it out for {DEFAULT_MAX_PIXELS:,}), not "
                        f"{args.max_pixels}")
    report = check_dataset(args.spec, workers=args.workers, progress=not args.json,
                           max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS)
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    return 1 if report.bad else 0


def run_list(args: argparse.Namespace) -> int:
    from ..core.errors import UserError
    from ..core.io import check_output_folder

    if not 0 <= args.val_split < 1:
        raise UserError(f"--val-split must be in [0, 1), not {args.val_split}")
    if args.output_dir:
        check_output_folder(args.output_dir, "-o")  # before torch loads
    from ..data.check import write_list_files
    r = write_list_files(args.root, args.output_dir, val_split=args.val_split, seed=args.seed,
                         overwrite=args.overwrite)
    print(f"wrote {r['out']}/train.txt ({r['train']} images), "
          + (f"test.txt ({r['test']} images), " if r["test"] else "")
          + f"classes.txt ({r['classes']} classes)")
    if r["removed"]:
        print(f"removed the earlier {r['removed']}: this listing holds nothing out")
    if r["other_val_list"]:
        print(f"warning: list:{r['out']}/train.txt will hold out the images of {r['other_val_list']}, which is "
              f"beside it{'' if not r['test'] else ' (before test.txt)'}: move it away to use this listing's",
              file=sys.stderr)
    for p in r["skipped"]:
        print(f"warning: skipped (a line break in its name): {p!r}", file=sys.stderr)
    from ..data.check import ignored_counts, images_outside_classes

    spec = f"folder:{os.path.abspath(os.path.expanduser(args.root.removeprefix('folder:')))}"
    for folder, n in images_outside_classes(spec).items():  # what the lists leave out, as `data check` tells it
        print(f"note: not listed: {n} image{'s' * (n != 1)} directly in {folder}, in no class folder", file=sys.stderr)
    ignored = sum(ignored_counts(spec).values())
    if ignored:
        print(f"note: not listed: {ignored} file{'s' * (ignored != 1)} whose name is not an image's (.heic photos, "
              f"say): `alexnet data check {args.root}` names them", file=sys.stderr)
    if r.get("empty"):
        print(f"note: no images in {', '.join(r['empty'][:8])}{', …' if len(r['empty']) > 8 else ''}: "
              f"classes.txt names {'them' if len(r['empty']) > 1 else 'it'}, and training gives "
              f"{'them' if len(r['empty']) > 1 else 'it'} an output", file=sys.stderr)
    return 0


def run_imagenet_val(args: argparse.Namespace) -> int:
    from ..data.imagenet import imagenet_val_relayout

    rep = imagenet_val_relayout(args.folder, args.devkit, dry_run=args.dry_run)
    for p in rep.conflicts:
        print(f"left in place (target exists): {p}", file=sys.stderr)
    print(("dry run: " if args.dry_run else "") + rep.summary())
    return 0


def run_pca_stats(args: argparse.Namespace) -> int:
    from types import SimpleNamespace

    from ..core.errors import UserError
    from ..core.io import atomic_write_json, check_output_file

    if args.max_images < 1:
        raise UserError(f"--max-images must be at least 1, not {args.max_images} (the default 2000 is plenty)")
    if args.size < 1:
        raise UserError(f"--size must be at least 1 pixel, not {args.size} (default 256, the paper's short side)")
    check_output_file(args.output, "-o")  # before torch loads and the images are read
    from ..data import build_dataset, build_transforms, compute_pca_stats

    cfg = SimpleNamespace(input_size=(3, args.size, args.size), resize=args.size, mean=(0, 0, 0), std=(1, 1, 1))
    ds = build_dataset(args.spec, "train", build_transforms(cfg, train=False), val_split=0.0)
    stats = compute_pca_stats(ds, args.max_images, seed=args.seed, workers=args.workers,
                              progress=sys.stderr.isatty())
    stats["source"] = args.spec
    atomic_write_json(args.output, stats)
    print(f"eigval {stats['eigval']}  ({stats['images']} images, {stats['bad']} bad skipped) → {args.output}")
    return 1 if stats["bad"] else 0  # written, from the images that could be read; the rest are a problem


def run_cache(args: argparse.Namespace) -> int:
    from ..data.cache_build import build_cache

    m = build_cache(args.spec, args.output, short_side=args.short_side, fmt=args.format, quality=args.quality,
                    shard_size=args.shard_size, workers=args.workers, val_split=args.val_split, seed=args.seed)
    parts = ", ".join(f"{s} {v['count']} images" for s, v in m["splits"].items())
    size = f"{m['short_side']}×{m['short_side']}" if m["format"] == "raw" else f"short side {m['short_side']}"
    usable = any(v["count"] for v in m["splits"].values())
    print(f"cache {args.output}: {parts}, {len(m['classes'])} classes, {m['format']} {size}"
          + (f" → train with --data cache:{args.output}" if usable else ""))
    return _skipped(m["bad"], usable)


def run_shards(args: argparse.Namespace) -> int:
    from ..data.shards_build import build_shards

    m = build_shards(args.spec, args.output, shard_mb=args.shard_size, val_split=args.val_split, seed=args.seed,
                     workers=args.workers, overwrite=args.overwrite)
    parts = ", ".join(f"{s} {v['count']} images in {len(v['shards'])} shard{'s' * (len(v['shards']) != 1)}"
                      for s, v in m["splits"].items())
    usable = any(v["count"] for v in m["splits"].values())
    print(f"shards {args.output}: {parts}, {len(m['classes'])} classes"
          + (f" → train with --data shards:{args.output}" if usable else ""))
    return _skipped(m["bad"], usable)


def _skipped(bad: list, usable: bool) -> int:
    """List the files a build skipped; exit 1 when there were any (the job ran and found bad files),
    saying so louder when not one image could be read."""
    from ..data.loader import summarize_bad

    for path, reason in bad:
        print(f"skipped: {path}: {reason}", file=sys.stderr)
    if bad:
        print(summarize_bad([tuple(b) for b in bad]), file=sys.stderr)
    if not usable:
        print("error: not one image could be read: nothing to train on", file=sys.stderr)
    return 1 if bad or not usable else 0
