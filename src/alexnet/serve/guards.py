"""Request guards of the web app: JSON errors, the request-body limit and timeout, bounded worker threads.

`BodyLimit` and `Gate` are our own small pieces rather than framework options (recent
Starlette/FastAPI have a body limit of their own), so that they behave the same on every
FastAPI/Starlette version the `serve` extra allows.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any, Callable

import anyio
import anyio.to_thread
from fastapi.responses import JSONResponse

log = logging.getLogger("alexnet.serve")


class ApiError(Exception):
    """An error answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def human_bytes(n: int) -> str:
    """A byte count for messages: "10 MiB", "195 KiB", "100 bytes"."""
    if n >= 2**20:
        return f"{n / 2**20:.3g} MiB"
    return f"{n / 2**10:.3g} KiB" if n >= 2**10 else f"{n} bytes"


# ----------------------------------------------------------------------------- body limit
class _BodyTooLarge(Exception):
    pass


class _BodyTimeout(Exception):
    pass


DEFAULT_BODY_TIMEOUT = 20.0  # seconds a request body may pause before the request is dropped (408)


class BodyLimit:
    """ASGI middleware: refuses request bodies over ``max_body`` bytes with 413 (before reading
    when Content-Length says so, else as soon as the running count passes it); drops a request
    whose body stops arriving for ``body_timeout`` seconds with 408 (and closes the connection),
    so half-sent uploads are not held open forever; adds ``X-Content-Type-Options: nosniff`` and
    ``Referrer-Policy: no-referrer`` to every response."""

    def __init__(self, app: Callable, max_body: int, message: str, body_timeout: float | None = DEFAULT_BODY_TIMEOUT):
        self.app = app
        self.max_body = int(max_body)
        self.message = message
        self.body_timeout = body_timeout

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_headers(msg: dict) -> None:
            if msg["type"] == "http.response.start":
                headers = list(msg.get("headers", []))
                names = {k.lower() for k, _ in headers}
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                if b"referrer-policy" not in names:
                    headers.append((b"referrer-policy", b"no-referrer"))
                msg = {**msg, "headers": headers}
            await send(msg)

        length = None
        for k, v in scope.get("headers", []):
            if k.lower() == b"content-length":
                try:
                    length = int(v)
                except ValueError:
                    length = None
        if length is not None and length > self.max_body:
            return await error_response(413, self.message)(scope, receive, send_headers)

        total = 0
        exceeded = timed_out = body_done = False
        started = False

        async def limited_receive() -> dict:
            nonlocal total, exceeded, timed_out, body_done
            if body_done or not self.body_timeout:  # after the body: waiting for a disconnect is fine
                msg = await receive()
            else:
                try:
                    with anyio.fail_after(self.body_timeout):
                        msg = await receive()
                except TimeoutError:
                    timed_out = True
                    raise _BodyTimeout() from None
            if msg["type"] == "http.request":
                total += len(msg.get("body", b""))
                body_done = not msg.get("more_body", False)
                if total > self.max_body:
                    exceeded = True
                    raise _BodyTooLarge()
            return msg

        async def guarded_send(msg: dict) -> None:
            nonlocal started
            if exceeded or timed_out:  # whatever the app made of the cut-off body is replaced by ours
                return
            if msg["type"] == "http.response.start":
                started = True
            await send_headers(msg)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not (exceeded or timed_out):
                raise
        if started:
            return
        if exceeded:
            await error_response(413, self.message)(scope, receive, send_headers)
        elif timed_out:
            log.warning("dropped %s %s: the request body stopped arriving for %g s",
                        scope.get("method"), scope.get("path"), self.body_timeout)
            await error_response(408, f"request timeout: the body stopped arriving for {self.body_timeout:g} s",
                                 headers={"Connection": "close"})(scope, receive, send_headers)


# ----------------------------------------------------------------------------- worker threads
class Gate:
    """Runs blocking work in worker threads: at most ``running`` at once, at most ``pending``
    accepted (running or waiting) — beyond that a request is refused with 503 at once rather
    than queued without bound."""

    def __init__(self, running: int, pending: int, what: str):
        self.running = int(running)
        self.pending = int(pending)
        self.what = what
        self.active = 0  # touched only on the event loop
        self._limiters: dict[int, Any] = {}

    def _limiter(self) -> Any:
        # one CapacityLimiter per event loop (TestClient may start a loop per request)
        loop = id(asyncio.get_running_loop())
        lim = self._limiters.get(loop)
        if lim is None:
            self._limiters = {loop: anyio.CapacityLimiter(self.running)}
            lim = self._limiters[loop]
        return lim

    async def run(self, fn: Callable, *args: Any) -> Any:
        if self.active >= self.pending:
            raise ApiError(503, f"server busy: {self.active} {self.what} requests in progress; try again shortly",
                           headers={"Retry-After": "1"})
        self.active += 1
        try:
            return await anyio.to_thread.run_sync(partial(fn, *args), limiter=self._limiter())
        except ApiError:
            raise
        except Exception as e:  # a bug: logged with its traceback, answered as JSON
            log.exception("%s failed", self.what)
            raise ApiError(500, f"internal error ({type(e).__name__}); see the server log") from None
        finally:
            self.active -= 1
