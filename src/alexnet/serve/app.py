"""The web app: one static page and a JSON API over a `Predictor` (and optionally a feature index).

    app = create_app(Predictor("runs/cifar"), FeatureIndex("index"))

Endpoints (OpenAPI at ``/docs``, schema at ``/openapi.json``):

    GET  /                      the page (static HTML/CSS/JS from ``static/``, no build step)
    GET  /healthz               {"status": "ok", …} — never waits for inference
    GET  /api/model             model name, classes, input size, index, limits
    POST /api/predict           multipart ``file`` (+ optional ``k``, default 5) → top-k classes
    POST /api/neighbours        multipart ``file`` (+ optional ``k``, default 8) → nearest images in the index
    GET  /api/thumbnail/{i}     a small JPEG/PNG of entry ``i`` of the index (nothing else is served)

Every error is JSON ``{"error": "…"}`` with a 4xx status (5xx only for a bug, logged):
400 empty upload, 413 upload or pixel count over the limit, 415 content that is not an image
(sniffed from the bytes; file name and Content-Type are ignored), 422 a corrupt or truncated
image or a bad field (a thumbnail number that is not plain digits), 404 no index / no such entry,
408 a request body that stopped arriving for ``body_timeout`` seconds, 503 too many requests waiting.

Hardening: the request body is counted as it arrives and refused (413) as soon as it passes the
limit — before a byte is read when Content-Length already says so; an image's dimensions are read
from its header and checked against the pixel limit before it is decoded (decompression bombs);
decoding and inference run in worker threads, at most ``max_concurrency`` at a time and at most
``max_pending`` accepted, so the event loop keeps answering (``/healthz``, the page, thumbnails)
while a slow request computes.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import DEFAULT_MAX_PIXELS, DEFAULT_MAX_UPLOAD_BYTES, INSTALL_HINT

try:
    from fastapi import FastAPI, File, Form, Request, UploadFile
    from fastapi import Path as FastApiPath
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError as e:  # pragma: no cover — exercised by the command's own check
    raise ImportError(f"the web server needs FastAPI ({e}): {INSTALL_HINT}") from e

from ..data import BadImageError, sniff_format
from ..data.decode import reason_kind
from .guards import DEFAULT_BODY_TIMEOUT, ApiError, BodyLimit, Gate, error_response, human_bytes
from .thumbnails import Thumbnails

STATIC = Path(__file__).parent / "static"
# Room in the request body around the file: multipart boundaries, part headers, the `k` field.
MULTIPART_OVERHEAD = 64 * 1024
MAX_NEIGHBOURS = 100
FORMATS = "JPEG, PNG, GIF, BMP, TIFF, WebP or PPM"

# The page loads nothing from elsewhere and runs no inline script.
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
            "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


# ----------------------------------------------------------------------------- images
def _bad_image(e: BadImageError) -> ApiError:
    kind = reason_kind(e.reason)
    status = {"empty file": 400, "too many pixels": 413}.get(kind, 422)
    return ApiError(status, f"bad image: {e.reason}")


def _inspect(data: bytes, max_pixels: int) -> dict[str, Any]:
    """Format and size from the image's header, refusing more than ``max_pixels`` before any
    pixel is decoded. An unreadable header is left to the decoder, which says why."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h, fmt = int(im.size[0]), int(im.size[1]), im.format
            if im.getexif().get(0x0112) in (5, 6, 7, 8):  # EXIF orientation: shown turned a quarter
                w, h = h, w
    except Image.DecompressionBombError:
        raise ApiError(413, f"bad image: too many pixels (more than {max_pixels:,})") from None
    except Exception:  # noqa: BLE001 — corrupt header: decode_image gives the reason
        return {}
    if w * h > max_pixels:
        raise ApiError(413, f"bad image: too many pixels ({w}×{h} = {w * h:,} > {max_pixels:,})")
    return {"format": fmt, "width": w, "height": h}


# ----------------------------------------------------------------------------- what the routes share
@dataclass
class Service:
    """What the routes share: the model, the index, the limits and the worker gates."""

    predictor: Any
    index: Any
    metric: str
    max_upload_bytes: int
    pixel_limit: int
    model_info: dict[str, Any]
    gate: Gate  # inference: at most max_concurrency at once, max_pending accepted
    thumb_gate: Gate
    thumbs: Thumbnails | None

    @property
    def too_large(self) -> str:
        return f"upload too large: the limit is {human_bytes(self.max_upload_bytes)}"

    async def read_image(self, file: UploadFile, request: Request) -> bytes:
        """The upload's bytes, refused unless it is a non-empty image within the size limit, the only
        ``file`` of its form (and no field given twice: which one counted would be a guess), and the
        URL has no parameters (the form has the arguments)."""
        if request.query_params:  # ?k=0 would be answered with the default k, as if it had been read
            names = ", ".join(sorted(set(request.query_params.keys())))
            raise ApiError(422, f"this endpoint reads no URL parameters ({names}): send k as a form field "
                                f"beside the file (curl -F file=@IMAGE -F k=3)")
        form = await request.form()  # parsed once already, for the arguments
        for field in ("file", "k"):
            if len(form.getlist(field)) > 1:
                raise ApiError(400, f"one {'image' if field == 'file' else field} per request: the form has "
                                    f"{len(form.getlist(field))} '{field}' fields")
        data = await file.read(self.max_upload_bytes + 1)
        if len(data) > self.max_upload_bytes:
            raise ApiError(413, self.too_large)
        if not data:
            raise ApiError(400, "empty upload: the file has no bytes")
        if sniff_format(data) is None:
            raise ApiError(415, f"not an image: the content is not {FORMATS} "
                                f"(recognised by its bytes, not by its name)")
        return data

    def predict_job(self, data: bytes, k: int) -> dict[str, Any]:
        """The top-``k`` classes of one image (runs in a worker thread)."""
        t0 = time.perf_counter()
        image = _inspect(data, self.pixel_limit)
        try:
            top = self.predictor.predict_bytes(data, k)
        except BadImageError as e:
            raise _bad_image(e) from None
        return {"model": self.predictor.name, "image": image,
                "predictions": [{"class": c, "index": i, "prob": round(p, 6)} for c, i, p in top],
                "ms": round((time.perf_counter() - t0) * 1000, 2)}

    def neighbours_job(self, data: bytes, k: int) -> dict[str, Any]:
        """The ``k`` nearest entries of the index to one image (runs in a worker thread)."""
        t0 = time.perf_counter()
        image = _inspect(data, self.pixel_limit)
        try:
            feats = self.predictor.features([data])
        except BadImageError as e:
            raise _bad_image(e) from None
        hits = self.index.neighbours(feats[0], k=k, metric=self.metric,
                                     device=getattr(self.predictor, "device", None))
        return {"image": image, "metric": self.metric, "neighbours": hits,
                "ms": round((time.perf_counter() - t0) * 1000, 2)}


def check_settings(predictor: Any, index: Any, *, max_upload_bytes: int, max_pixels: int | None,
                   max_concurrency: int, max_pending: int, metric: str, body_timeout: float | None) -> int:
    """Refuse impossible limits and an index of another model (`UserError`); return the pixel
    limit in force: the smaller of ``max_pixels`` and the predictor's own."""
    from ..core.errors import UserError
    from ..infer.retrieval import METRICS

    if max_upload_bytes < 1:
        raise UserError(f"the upload limit must be at least 1 byte, not {max_upload_bytes}")
    if max_concurrency < 1 or max_pending < max_concurrency:
        raise UserError(f"need 1 ≤ max_concurrency ≤ max_pending, not {max_concurrency} and {max_pending}")
    if body_timeout is not None and not body_timeout > 0:
        raise UserError(f"the body timeout must be a positive number of seconds, not {body_timeout}")
    if metric not in METRICS:
        raise UserError(f"unknown metric {metric!r} (use {' or '.join(METRICS)})")
    own_limit = int(getattr(predictor, "max_pixels", 0) or 0) or None
    limits = [v for v in (max_pixels, own_limit) if v]
    pixel_limit = min(limits) if limits else DEFAULT_MAX_PIXELS
    if pixel_limit < 1:
        raise UserError(f"the pixel limit must be at least 1, not {pixel_limit}")
    if index is not None:
        from ..infer.retrieval import check_same_weights

        check_same_weights(index.meta, predictor, own=f"serve {index.meta.get('weights') or 'them'}")
    return pixel_limit


def describe_model(predictor: Any, index: Any, metric: str, max_upload_bytes: int, pixel_limit: int) -> dict[str, Any]:
    """What ``GET /api/model`` answers: the model, the index if any, and the upload limits."""
    index_info = None
    if index is not None:
        index_info = {"count": len(index), "dim": index.dim, "metric": metric,
                      "classes": index.classes, "complete": index.complete}
    limits_info = {"max_upload_bytes": int(max_upload_bytes), "max_pixels": int(pixel_limit),
                   "max_neighbours": MAX_NEIGHBOURS, "formats": FORMATS}
    return {**predictor.info(), "device": str(getattr(predictor, "device", "cpu")),
            "ten_crop": bool(getattr(predictor, "ten_crop", False)), "index": index_info, "limits": limits_info}


# ----------------------------------------------------------------------------- the app
def create_app(predictor: Any, index: Any = None, *, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
               max_pixels: int | None = DEFAULT_MAX_PIXELS, max_concurrency: int = 2, max_pending: int = 32,
               metric: str = "euclidean", body_timeout: float | None = DEFAULT_BODY_TIMEOUT) -> FastAPI:
    """The FastAPI app serving ``predictor`` (an `alexnet.Predictor`) and, if given, ``index``
    (an `alexnet.infer.retrieval.FeatureIndex` of features from the same model).

    ``max_upload_bytes``: largest accepted image file (413 beyond). ``max_pixels``: largest
    accepted width × height, checked from the header before decoding (413 beyond; None: the
    predictor's own limit). ``max_concurrency``: inference threads at once; ``max_pending``:
    inference requests accepted at once (running or waiting; 503 beyond). ``metric``: distance
    for neighbours, "euclidean" (the paper's) or "cosine". ``body_timeout``: seconds a request
    body may stop arriving before the request is dropped with 408 (None: no limit).
    """
    pixel_limit = check_settings(predictor, index, max_upload_bytes=max_upload_bytes, max_pixels=max_pixels,
                                 max_concurrency=max_concurrency, max_pending=max_pending, metric=metric,
                                 body_timeout=body_timeout)
    svc = Service(predictor, index, metric, max_upload_bytes, pixel_limit,
                  model_info=describe_model(predictor, index, metric, max_upload_bytes, pixel_limit),
                  gate=Gate(max_concurrency, max_pending, "inference"), thumb_gate=Gate(2, 256, "thumbnail"),
                  thumbs=Thumbnails(index, pixel_limit) if index is not None else None)
    app = FastAPI(
        title="alexnet",
        summary="Classify images with an AlexNet, and find the indexed images nearest to them.",
        description="Upload an image as multipart/form-data field `file`. Errors are JSON `{\"error\": \"…\"}`.",
        version=_version(),
    )
    app.state.predictor = predictor
    app.state.index = index
    app.state.gate = svc.gate
    app.add_middleware(BodyLimit, max_body=max_upload_bytes + MULTIPART_OVERHEAD, message=svc.too_large,
                       body_timeout=body_timeout)
    add_error_handlers(app)
    add_page_routes(app)
    add_model_routes(app, svc)
    add_index_routes(app, svc)
    return app


def add_error_handlers(app: FastAPI) -> None:
    """Every error as JSON ``{"error": "…"}``: ours, the framework's, and invalid fields (422; a
    missing file is 400)."""

    @app.exception_handler(ApiError)
    async def _apierror_response(request: Request, e: ApiError) -> JSONResponse:
        return error_response(e.status, e.message, e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _httperror_response(request: Request, e: StarletteHTTPException) -> JSONResponse:
        return error_response(e.status_code, str(e.detail), getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validationerror_response(request: Request, e: RequestValidationError) -> JSONResponse:
        parts = []
        for err in e.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "form")]
            field = ".".join(loc) or "request"
            if field == "file" and err.get("type") == "missing":
                return error_response(400, "no file: send the image as multipart/form-data field 'file'")
            parts.append(f"{field}: {err.get('msg', 'invalid')}")
        return error_response(422, "; ".join(parts) or "invalid request")


def add_page_routes(app: FastAPI) -> None:
    """The page (``/``, under its content security policy), an empty favicon and ``/static``."""

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)  # HEAD: uptime checkers, balancers
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html",
                            headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def add_model_routes(app: FastAPI, svc: Service) -> None:
    """``/healthz``, ``/api/model`` and ``/api/predict``."""

    @app.api_route("/healthz", methods=["GET", "HEAD"], tags=["service"])
    async def healthz() -> dict[str, Any]:
        """Liveness: answers at once, whatever inference is doing."""
        return {"status": "ok", "model": svc.predictor.name, "busy": svc.gate.active}

    @app.get("/api/model", tags=["model"])
    async def model() -> dict[str, Any]:
        """The model (name, classes, input size, device), the index if any, and the upload limits."""
        return svc.model_info

    @app.post("/api/predict", tags=["model"])
    async def predict(request: Request,
                      file: UploadFile = File(..., description="the image (JPEG, PNG, GIF, BMP, TIFF, WebP, PPM)"),
                      k: int = Form(5, ge=1, description="how many classes (most probable first)")) -> dict[str, Any]:
        """The ``k`` most probable classes of the uploaded image, with their probabilities."""
        data = await svc.read_image(file, request)
        return await svc.gate.run(svc.predict_job, data, min(k, svc.predictor.num_classes))


def add_index_routes(app: FastAPI, svc: Service) -> None:
    """``/api/neighbours`` and ``/api/thumbnail/{i}`` (404 when the server has no index)."""
    index = svc.index

    @app.post("/api/neighbours", tags=["index"])
    async def neighbours(request: Request,
                         file: UploadFile = File(..., description="the image"),
                         k: int = Form(8, ge=1, le=MAX_NEIGHBOURS, description="how many neighbours")
                         ) -> dict[str, Any]:
        """The ``k`` images of the index whose features are nearest to the upload's (the paper's
        Figure 4), nearest first, each with a thumbnail URL. 404 when the server has no index."""
        if index is None:
            raise ApiError(404, "no index: start the server with --index INDEX (built by `alexnet index build`)")
        data = await svc.read_image(file, request)
        res = await svc.gate.run(svc.neighbours_job, data, min(k, max(1, len(index))))
        res["neighbours"] = [{"rank": h.rank, "index": h.index, "distance": round(h.distance, 6),
                              "class": h.label_name, "label": h.label, "name": Path(h.path).name,
                              "thumbnail": request.url_for("thumbnail", i=h.index).path}
                             for h in res["neighbours"]]
        return res

    @app.get("/api/thumbnail/{i}", name="thumbnail", tags=["index"],
             responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}})
    async def thumbnail(i: str = FastApiPath(..., description="entry number: decimal digits only")) -> Response:
        """A small image of entry ``i`` of the index (as listed by /api/neighbours)."""
        # strictly digits: int() would also take "+1", " 1", "1_0" and non-ASCII digits
        if not (i.isascii() and i.isdigit()):
            raise ApiError(422, f"thumbnail {i[:20]!r}: the entry number must be plain decimal digits")
        if svc.thumbs is None:
            raise ApiError(404, "no index: start the server with --index INDEX")
        if len(i) > 18 or int(i) >= len(index):
            raise ApiError(404, f"no entry {i[:20]} in the index (it has {len(index)})")
        i = int(i)
        got = await svc.thumb_gate.run(svc.thumbs.get, i)
        if got is None:
            raise ApiError(404, f"entry {i}: its image is not readable any more")
        body, media = got
        return Response(body, media_type=media, headers={"Cache-Control": "public, max-age=3600"})


def _version() -> str:
    try:
        from .. import __version__

        return __version__
    except ImportError:  # pragma: no cover
        return "0"
