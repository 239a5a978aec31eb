"""``alexnet visualize filters|curves|activations|kernels``: PNG figures of what a network learned
and how it trained."""

from __future__ import annotations

import argparse

ORDER = 40


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("visualize", aliases=["viz"], help="PNG figures: filters, training curves, activations, kernels",
                       description="Draw what a network learned and how it trained, as PNG files.")
    vs = p.add_subparsers(dest="what", metavar="WHAT", required=True)

    f = vs.add_parser("filters", help="the first layer's kernels as a colour grid (the paper's Figure 3)",
                      description="The first convolution's kernels, each scaled to [0, 1]; for the paper's "
                                  "network the two towers (GPUs) are drawn as separate panels.")
    f.add_argument("weights", help="run directory or weights.safetensors")
    f.add_argument("-o", "--output", default="filters.png", help="PNG to write (default filters.png)")
    f.set_defaults(func=run_filters)

    c = vs.add_parser("curves", help="loss, top-1/top-5 and lr against epoch from metrics.csv",
                      description="Training curves of one or more runs, overlaid.")
    c.add_argument("runs", nargs="+", metavar="RUN", help="run directories or metrics.csv files")
    c.add_argument("-o", "--output", default="curves.png", help="PNG to write (default curves.png)")
    c.add_argument("--labels", nargs="+", help="legend names, one per run (default: the run folders' names)")
    c.set_defaults(func=run_curves)

    a = vs.add_parser("activations", help="feature maps of every conv layer for one image",
                      description="Runs one image through the network and draws each conv layer's most "
                                  "active feature maps (after ReLU).")
    a.add_argument("weights", help="run directory or weights.safetensors")
    a.add_argument("image", help="an image file")
    a.add_argument("-o", "--output", default="activations.png", help="PNG to write (default activations.png)")
    a.add_argument("--maps", type=int, default=16, help="feature maps per layer (default 16)")
    a.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    a.set_defaults(func=run_activations)

    k = vs.add_parser("kernels", help="classic hand-made 3×3 kernels (edges, sharpen, blur, Sobel) applied to an image",
                      description="What a convolution does: edge detection, sharpen, box and Gaussian blur, "
                                  "Sobel x/y and emboss applied to one image, side by side.")
    k.add_argument("image", help="an image file")
    k.add_argument("-o", "--output", default="kernels.png", help="PNG to write (default kernels.png)")
    k.set_defaults(func=run_kernels)


def _done(path) -> int:
    from PIL import Image

    with Image.open(path) as im:
        print(f"wrote {path} ({im.width}×{im.height})")
    return 0


def _check_output(args: argparse.Namespace) -> None:
    """-o's folder can be written in: said from the arguments, before torch or a model loads."""
    from ..core.io import check_output_file

    check_output_file(args.output, "-o")


def _read_image(path: str):
    import os

    from ..core.errors import UserError
    from ..data import BadImageError, decode_image

    if os.path.isdir(path):
        raise UserError(f"{path} is a folder: give one image file (activations and kernels are drawn for one image)")
    try:
        return decode_image(path)
    except BadImageError as e:
        raise UserError(str(e)) from None


def run_filters(args: argparse.Namespace) -> int:
    _check_output(args)
    from ..core.weight_files import load_meta

    load_meta(args.weights)  # a wrong path is one line before torch loads
    from ..models import load_weights
    from ..viz import colourfulness, first_layer_kernels, plot_filters

    model, meta = load_weights(args.weights)
    out = plot_filters(model, args.output, title=f"{meta['model']}: first-layer kernels")
    for name, w in first_layer_kernels(model):
        c = colourfulness(w)
        if c == c:
            print(f"{name}: colourfulness {c:.3f} (0 = grey; the paper saw one tower colour-agnostic, "
                  f"the other colour-specific)" if "tower" in name else f"{name}: colourfulness {c:.3f}")
    return _done(out)


def run_curves(args: argparse.Namespace) -> int:
    _check_output(args)
    from ..core.errors import UserError
    from ..viz import plot_curves

    if args.labels and len(args.labels) != len(args.runs):
        raise UserError(f"{len(args.labels)} --labels for {len(args.runs)} runs")
    from ..core.weight_files import resolve_run_dir

    runs = [str(resolve_run_dir(r, need="metrics.csv")) for r in args.runs]
    return _done(plot_curves(runs, args.output, labels=args.labels))


def run_activations(args: argparse.Namespace) -> int:
    _check_output(args)
    from ..core.errors import UserError

    if args.maps < 1:
        raise UserError(f"--maps must be at least 1, not {args.maps}")
    from ..core.weight_files import load_meta

    load_meta(args.weights)  # a wrong path is one line before torch loads
    from ..infer import Predictor
    from ..viz import conv_activations, plot_activations
    pred = Predictor(args.weights, device=args.device)
    img = _read_image(args.image)
    crop = pred.transform(img)
    x = pred.normalize(crop[None].to(pred.device))
    acts = conv_activations(pred.model, x)
    out = plot_activations(acts, crop, args.output, maps=args.maps,
                           title=f"{pred.name}: feature maps for {args.image} (after ReLU, most active first)")
    return _done(out)


def run_kernels(args: argparse.Namespace) -> int:
    _check_output(args)
    from ..viz import plot_kernels

    return _done(plot_kernels(_read_image(args.image), args.output))
