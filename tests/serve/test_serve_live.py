"""A real uvicorn server on 127.0.0.1 in a background thread: inference never blocks the event
loop, the number of requests computing and waiting is bounded, oversized uploads over a real
socket still get their 413."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from alexnet.serve.app import create_app  # noqa: E402
from alexnet.serve.server import start_server  # noqa: E402


def post_in_thread(url: str, data: bytes, out: list) -> threading.Thread:
    def go():
        with httpx.Client(trust_env=False, timeout=30) as c:
            out.append(c.post(url + "/api/predict", files={"file": ("a.jpg", data, "image/jpeg")}))

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def test_slow_request_does_not_block_healthz_or_the_page(slow, jpeg_bytes):
    with start_server(create_app(slow)) as srv, httpx.Client(base_url=srv.url, trust_env=False, timeout=5) as c:
        done: list = []
        t = post_in_thread(srv.url, jpeg_bytes, done)
        assert slow.started.wait(10)
        # the request is certainly computing now (blocked in its worker thread until released):
        # were inference on the event loop, these would time out
        h = c.get("/healthz")
        assert h.status_code == 200 and h.json()["busy"] == 1
        assert c.get("/").status_code == 200
        assert c.get("/api/model").status_code == 200
        assert not done
        slow.release.set()
        t.join(10)
        assert done and done[0].status_code == 200 and len(done[0].json()["predictions"]) == 3
        assert c.get("/healthz").json()["busy"] == 0


def test_requests_beyond_the_pending_limit_get_503(slow, jpeg_bytes):
    app = create_app(slow, max_concurrency=1, max_pending=2)
    with start_server(app) as srv, httpx.Client(base_url=srv.url, trust_env=False, timeout=5) as c:
        done: list = []
        first = post_in_thread(srv.url, jpeg_bytes, done)
        assert slow.started.wait(10)
        second = post_in_thread(srv.url, jpeg_bytes, done)  # accepted, waits for the one thread
        deadline = time.monotonic() + 10
        while c.get("/healthz").json()["busy"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        r = c.post("/api/predict", files={"file": ("a.jpg", jpeg_bytes, "image/jpeg")})
        assert r.status_code == 503 and r.headers["retry-after"] == "1" and "busy" in r.json()["error"]
        time.sleep(0.2)
        assert slow.calls == 1  # max_concurrency=1: the second waits outside the predictor
        slow.release.set()
        first.join(10)
        second.join(10)
        assert [r.status_code for r in done] == [200, 200] and slow.calls == 2


def test_oversized_upload_over_a_real_socket(predictor, jpeg_bytes):
    app = create_app(predictor, max_upload_bytes=100_000)
    with start_server(app) as srv, httpx.Client(base_url=srv.url, trust_env=False, timeout=10) as c:
        big = b"\xff\xd8\xff" + b"\0" * 3_000_000
        r = c.post("/api/predict", files={"file": ("big.jpg", big, "image/jpeg")})
        assert r.status_code == 413 and "too large" in r.json()["error"]
        ok = c.post("/api/predict", files={"file": ("a.jpg", jpeg_bytes, "image/jpeg")})
        assert ok.status_code == 200


def _read_until_closed(sock, limit: float) -> bytes:
    sock.settimeout(limit)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_stalled_upload_is_dropped_with_408_while_healthz_answers(predictor):
    """A client that sends half its body and stops: the request is answered 408 and its connection
    closed after body_timeout seconds; meanwhile the server keeps answering."""
    import json
    import socket

    app = create_app(predictor, body_timeout=0.5)
    with start_server(app) as srv, httpx.Client(base_url=srv.url, trust_env=False, timeout=5) as c:
        host, port = srv.sock.getsockname()[:2]
        stalled = []
        for _ in range(3):
            s = socket.create_connection((host, port), timeout=10)
            s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: multipart/form-data; boundary=bb\r\nContent-Length: 5000\r\n\r\n"
                      b'--bb\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n\xff\xd8\xff')
            stalled.append(s)
        assert c.get("/healthz").status_code == 200  # the stalled uploads hold nothing the server needs
        for s in stalled:
            with s:
                got = _read_until_closed(s, 10)  # a server that never drops it: socket.timeout here
            head, _, body = got.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408"), got[:200]
            assert b"connection: close" in head.lower()
            assert "stopped arriving for 0.5 s" in json.loads(body)["error"]
        assert c.get("/healthz").status_code == 200
        # a body that arrives in slow pieces, each within the timeout, is not dropped
        ok = c.post("/api/predict", files={"file": ("a.jpg", b"not an image", "image/jpeg")})
        assert ok.status_code == 415
