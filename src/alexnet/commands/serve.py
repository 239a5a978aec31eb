"""``alexnet serve WEIGHTS [--index INDEX]``: a web page and JSON API that classify uploaded
images (and find their nearest neighbours in a feature index).

Needs the `serve` extra (FastAPI, uvicorn, python-multipart). Listens on 127.0.0.1 unless
``--host`` says otherwise. Exit status: 130 after Ctrl-C (143 after SIGTERM), as every command;
2 bad flags, weights, index, or an address it cannot listen on.
"""

from __future__ import annotations

import argparse
import sys

ORDER = 55


def register(sub: argparse._SubParsersAction) -> None:
    from ..serve import DEFAULT_MAX_PIXELS, DEFAULT_MAX_UPLOAD_BYTES

    p = sub.add_parser("serve", help="web page and JSON API: classify (and search) images in a browser",
                       description="Serves a page where you drop or pick an image and see the top-5 classes "
                                   "(and, with --index, the nearest indexed images), plus a JSON API: "
                                   "POST /api/predict, POST /api/neighbours, GET /api/model, GET /healthz; "
                                   "API docs at /docs. Needs: pip install 'alexnet[serve]'.")
    p.add_argument("weights", help="run directory or weights.safetensors")
    p.add_argument("--index", metavar="INDEX", help="feature index (from `alexnet index build`) for neighbours")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port)")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_BYTES / 2**20,
                   help=f"largest accepted image file in MiB (default {DEFAULT_MAX_UPLOAD_BYTES / 2**20:g})")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help=f"largest accepted width × height (decompression bombs; default {DEFAULT_MAX_PIXELS:,})")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--ten-crop", action="store_true", help="average the paper's ten crops (§4.1) per image")
    p.add_argument("--metric", choices=("euclidean", "cosine"), default="euclidean",
                   help="neighbour distance (default euclidean, as in the paper)")
    p.add_argument("--threads", type=int, default=2, help="requests computed at once (default 2)")
    p.add_argument("--body-timeout", type=float, default=20.0, metavar="SECONDS",
                   help="drop a request whose upload stops arriving for this long, with 408 (default 20)")
    p.add_argument("--log-level", choices=("critical", "error", "warning", "info", "debug"), default="info",
                   help="server log level (default info: one line per request)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..core.errors import UserError
    from ..serve import require_serve_dependencies

    require_serve_dependencies()
    if args.max_upload_mb <= 0:
        raise UserError(f"--max-upload-mb must be positive, not {args.max_upload_mb:g}")
    if args.max_pixels < 1:
        raise UserError(f"--max-pixels must be at least 1, not {args.max_pixels}")
    if not args.body_timeout > 0:
        raise UserError(f"--body-timeout must be a positive number of seconds, not {args.body_timeout:g}")
    if args.threads < 1:
        raise UserError(f"--threads must be at least 1, not {args.threads}")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be between 0 and 65535 (0: any free port), not {args.port}")

    from ..core.weight_files import load_meta

    load_meta(args.weights)  # a wrong path is one line before torch loads
    from ..infer import Predictor
    from ..infer.retrieval import FeatureIndex
    from ..serve.app import create_app
    from ..serve.server import LOOPBACK, bind_socket, serve_forever, url_of

    predictor = Predictor(args.weights, device=args.device, ten_crop=args.ten_crop, max_pixels=args.max_pixels)
    index = FeatureIndex(args.index) if args.index else None
    if index is not None and index.unfinished():
        print(f"warning: {index.unfinished()}; until then neighbours come from the images indexed so far",
              file=sys.stderr)
    if index is not None and bool(index.meta.get("ten_crop")) != args.ten_crop:
        built = "with" if index.meta.get("ten_crop") else "without"
        print(f"warning: the index was built {built} --ten-crop; queries are computed "
              f"{'with' if args.ten_crop else 'without'} it, so distances are not exact", file=sys.stderr)
    app = create_app(predictor, index, max_upload_bytes=int(args.max_upload_mb * 2**20), max_pixels=args.max_pixels,
                     max_concurrency=args.threads, max_pending=max(32, 4 * args.threads), metric=args.metric,
                     body_timeout=args.body_timeout)
    sock = bind_socket(args.host, args.port)  # UserError (one line) when the port is taken
    url = url_of(sock)
    c, h, w = predictor.cfg.input_size
    what = f"{predictor.name} ({predictor.num_classes} classes, input {c}×{h}×{w}, {predictor.device})"
    if index is not None:
        what += f" with {len(index)} indexed images"
    print(f"serving {what}\n  page: {url}/\n  API docs: {url}/docs (its page loads Swagger UI from the internet; "
          f"offline: {url}/openapi.json)\n  Ctrl-C stops", file=sys.stderr)
    if args.host not in LOOPBACK:
        print(f"warning: listening on {args.host}: other machines on the network can reach this server",
              file=sys.stderr)
    serve_forever(app, sock, log_level=args.log_level)
    return 0
