"""Running the app under uvicorn: on a socket we bind ourselves, in the foreground or a thread.

Binding first lets ``alexnet serve`` say in one line why it cannot listen (port in use, unknown
host) and lets ``--port 0`` pick a free port whose number is then printed; the same
`start_server` runs the tests' and the benchmark's servers in a background thread.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from typing import Any

from ..core.errors import UserError
from . import INSTALL_HINT

try:
    import uvicorn
except ImportError as e:  # pragma: no cover — the command checks first
    raise ImportError(f"the web server needs uvicorn ({e}): {INSTALL_HINT}") from e

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def bind_socket(host: str = "127.0.0.1", port: int = 8000) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: any free port), not yet listening.
    Raises `UserError` with the reason when that is not possible."""
    if not 0 <= int(port) <= 65535:
        raise UserError(f"--port must be between 0 and 65535, not {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UserError(f"cannot listen on {host!r}: {e.strerror or e}") from None
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        hint = ""
        if e.errno == errno.EADDRINUSE:
            hint = " (another program is listening there: pick another --port, or --port 0 for any free one)"
        elif e.errno in (errno.EACCES, errno.EPERM):
            hint = " (ports below 1024 need privileges: use a port above 1024)"
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}{hint}") from None
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _config(app: Any, log_level: str, access_log: bool) -> "uvicorn.Config":
    # limit_concurrency: connections + tasks beyond which uvicorn answers 503 itself, a last
    # guard above the app's own bound on inference requests.
    return uvicorn.Config(app, log_level=log_level, access_log=access_log, timeout_keep_alive=5,
                          limit_concurrency=256, server_header=False)


def serve_forever(app: Any, sock: socket.socket, log_level: str = "info", access_log: bool = True) -> None:
    """Serve ``app`` on ``sock`` until Ctrl-C / SIGTERM (uvicorn shuts down gracefully)."""
    uvicorn.Server(_config(app, log_level, access_log)).run(sockets=[sock])


class RunningServer:
    """A uvicorn server in a background thread; ``url``, and ``stop()`` (or use as a context manager)."""

    def __init__(self, server: "uvicorn.Server", thread: threading.Thread, sock: socket.socket):
        self.server = server
        self.thread = thread
        self.sock = sock
        self.url = url_of(sock)

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()

    def __enter__(self) -> "RunningServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_server(app: Any, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning",
                 access_log: bool = False, timeout: float = 20.0) -> RunningServer:
    """Start ``app`` under uvicorn in a daemon thread on ``host:port`` (default: a free port on
    127.0.0.1) and return once it accepts connections."""
    sock = bind_socket(host, port)
    server = uvicorn.Server(_config(app, log_level, access_log))
    errors: list[BaseException] = []

    def target() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as e:  # noqa: BLE001 — reported to the starting thread
            errors.append(e)

    thread = threading.Thread(target=target, name="alexnet-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if errors or not thread.is_alive():
            sock.close()
            raise RuntimeError(f"the server did not start: {errors[0] if errors else 'it exited'}")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the server did not start within {timeout} s")
        time.sleep(0.02)
    return RunningServer(server, thread, sock)
