"""The web page and JSON API: ``alexnet serve WEIGHTS [--index INDEX]``.

    from alexnet import Predictor
    from alexnet.serve import create_app          # needs the `serve` extra (FastAPI, uvicorn)
    app = create_app(Predictor("runs/cifar"))     # an ASGI app: uvicorn, TestClient, …

`create_app` lives in `alexnet.serve.app` (imports FastAPI); `serve_forever` / `start_server` in
`alexnet.serve.server` (imports uvicorn). Importing this package itself needs neither, so the
command can say what is missing in one line.
"""

from __future__ import annotations

import importlib.util
from typing import Any

INSTALL_HINT = "pip install 'alexnet[serve]'"
DEFAULT_MAX_UPLOAD_BYTES = 10 * 2**20
# A 48-megapixel phone photo (8000×6000) passes; Pillow's own bomb limit is ~89.5 Mpx.
DEFAULT_MAX_PIXELS = 50_000_000


def missing_dependencies() -> list[str]:
    """The web server's packages that are not installed (FastAPI, uvicorn, python-multipart)."""
    missing = [name for name, mod in (("fastapi", "fastapi"), ("uvicorn", "uvicorn")) if importlib.util.find_spec(mod) is None]
    # python-multipart parses uploads; it is imported as `python_multipart` (≥ 0.0.13) or `multipart`
    if importlib.util.find_spec("python_multipart") is None and importlib.util.find_spec("multipart") is None:
        missing.append("python-multipart")
    return missing


def require_serve_dependencies() -> None:
    """Raise `UserError` naming the missing packages and the install command, if any are missing."""
    from ..core.errors import UserError

    missing = missing_dependencies()
    if missing:
        raise UserError(f"the web server needs {', '.join(missing)}: {INSTALL_HINT}")


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    if name in ("serve_forever", "start_server", "bind_socket"):
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module 'alexnet.serve' has no attribute {name!r}")


__all__ = ["create_app", "serve_forever", "start_server", "bind_socket", "require_serve_dependencies",
           "missing_dependencies", "INSTALL_HINT"]
