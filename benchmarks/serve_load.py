"""Load on the web server: N requests from C concurrent clients (never part of the test run).

    python benchmarks/serve_load.py                           # tiny model, 1,000 × POST /api/predict, 8 clients
    python benchmarks/serve_load.py --weights runs/cifar --requests 5000 --clients 16
    python benchmarks/serve_load.py --url http://127.0.0.1:8000   # an `alexnet serve` already running

Starts ``alexnet serve WEIGHTS --host 127.0.0.1 --port 0`` in its own process (so that the
clients' threads do not share a GIL with the server), waits for /healthz, sends a short warm-up,
then ``--requests`` uploads of one JPEG (``--image-size``, a typical 500×375 ImageNet photo by
default) from ``--clients`` threads, each with its own keep-alive connection. Meanwhile one more
thread asks GET /healthz every 50 ms, to show that the event loop stays responsive under load.

Reports requests/s, latency p50/p90/p99/max, errors (any status but 200, or a failed request)
and the /healthz latency under load. Without ``--weights`` a tiny untrained ``alexnet-cifar``
(width 0.125) is made in a temporary folder: the numbers then measure the server (upload
parsing, decode, resize, thread hand-off), not the network.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def tiny_weights(folder: Path) -> Path:
    import torch

    from alexnet.models import build_model, make_meta, save_weights

    torch.manual_seed(0)
    classes = [f"class{i}" for i in range(10)]
    model = build_model("alexnet-cifar", num_classes=len(classes), width=0.125)
    save_weights(model, folder, make_meta("alexnet-cifar", classes, model_kwargs={"width": 0.125}))
    return folder


def photo(w: int, h: int) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    # smooth colour gradients plus noise: compresses like a photo, not like pure noise
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([x * 255 // max(1, w - 1), y * 255 // max(1, h - 1), (x + y) * 255 // max(1, w + h - 2)], -1)
    a = np.clip(a + rng.normal(0, 12, a.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def start(weights: Path, threads: int, device: str, index: str | None) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "alexnet", "serve", str(weights), "--host", "127.0.0.1", "--port", "0",
           "--log-level", "warning", "--device", device, "--threads", str(threads)]
    if index:
        cmd += ["--index", index]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"page: (http://[^/\s]+)/", line)
        if m:
            # keep draining stderr so the server never blocks on a full pipe
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, m.group(1)
    proc.kill()
    sys.exit("the server did not start:\n" + "".join(lines))


def wait_healthy(client, url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if client.get(url + "/healthz").status_code == 200:
                return
        except Exception:  # noqa: BLE001 — not listening yet
            pass
        if time.monotonic() > deadline:
            sys.exit(f"{url}/healthz did not answer within {timeout} s")
        time.sleep(0.1)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s)) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", help="run directory or weights.safetensors (default: a tiny untrained model)")
    ap.add_argument("--url", help="load a server that is already running instead of starting one")
    ap.add_argument("-n", "--requests", type=int, default=1000, help="requests to time (default 1000)")
    ap.add_argument("-c", "--clients", type=int, default=8, help="concurrent clients (default 8)")
    ap.add_argument("--warmup", type=int, default=32, help="untimed requests first (default 32)")
    ap.add_argument("--image-size", type=int, nargs=2, default=(500, 375), metavar=("W", "H"))
    ap.add_argument("--endpoint", choices=("predict", "neighbours", "healthz"), default="predict")
    ap.add_argument("--index", help="the server's --index (for --endpoint neighbours; built with --weights)")
    ap.add_argument("--threads", type=int, default=2, help="the server's --threads (default 2)")
    ap.add_argument("--device", default="cpu", help="the server's --device (default cpu)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args()

    import httpx

    if args.endpoint == "neighbours" and not (args.index or args.url):
        ap.error("--endpoint neighbours needs --index (and the --weights it was built with)")
    data = photo(*args.image_size)
    tmp = None
    proc = None
    if args.url:
        url = args.url.rstrip("/")
    else:
        weights = Path(args.weights) if args.weights else None
        if weights is None:
            tmp = tempfile.TemporaryDirectory()
            weights = tiny_weights(Path(tmp.name))
        proc, url = start(weights, args.threads, args.device, args.index)

    def one(client) -> tuple[float, int | str]:
        t = time.perf_counter()
        try:
            if args.endpoint == "healthz":
                r = client.get(url + "/healthz")
            else:
                r = client.post(f"{url}/api/{args.endpoint}", files={"file": ("photo.jpg", data, "image/jpeg")})
            status: int | str = r.status_code
            if status == 200:
                r.json()
        except Exception as e:  # noqa: BLE001 — counted as an error
            status = type(e).__name__
        return time.perf_counter() - t, status

    try:
        with httpx.Client(trust_env=False, timeout=60) as c:
            wait_healthy(c, url)
            model = c.get(url + "/api/model").json()
            for _ in range(args.warmup):
                one(c)

        lock = threading.Lock()
        todo = [args.requests]
        lat: list[float] = []
        statuses: dict[str, int] = {}
        stop = threading.Event()
        health: list[float] = []

        def client_loop() -> None:
            with httpx.Client(trust_env=False, timeout=60) as c:
                while True:
                    with lock:
                        if todo[0] <= 0:
                            return
                        todo[0] -= 1
                    dt, st = one(c)
                    with lock:
                        lat.append(dt)
                        statuses[str(st)] = statuses.get(str(st), 0) + 1

        def health_loop() -> None:
            with httpx.Client(trust_env=False, timeout=60) as c:
                while not stop.wait(0.05):
                    t = time.perf_counter()
                    try:
                        c.get(url + "/healthz")
                        health.append(time.perf_counter() - t)
                    except Exception:  # noqa: BLE001
                        pass

        hb = threading.Thread(target=health_loop, daemon=True)
        workers = [threading.Thread(target=client_loop) for _ in range(args.clients)]
        t0 = time.perf_counter()
        hb.start()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        wall = time.perf_counter() - t0
        stop.set()
        hb.join()
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if tmp is not None:
            tmp.cleanup()

    errors = sum(v for k, v in statuses.items() if k != "200")
    ms = [x * 1000 for x in lat]
    hms = [x * 1000 for x in health]
    res = {
        "endpoint": f"{'GET /healthz' if args.endpoint == 'healthz' else 'POST /api/' + args.endpoint}",
        "model": model.get("model"), "device": model.get("device"), "server_threads": args.threads,
        "image": f"JPEG {args.image_size[0]}×{args.image_size[1]}, {len(data)} bytes",
        "requests": len(lat), "clients": args.clients, "seconds": round(wall, 3),
        "requests_per_s": round(len(lat) / wall, 1),
        "p50_ms": round(pct(ms, 50), 2), "p90_ms": round(pct(ms, 90), 2), "p99_ms": round(pct(ms, 99), 2),
        "max_ms": round(max(ms), 2) if ms else None, "mean_ms": round(statistics.fmean(ms), 2) if ms else None,
        "errors": errors, "statuses": statuses,
        "healthz_under_load": {"n": len(hms), "p50_ms": round(pct(hms, 50), 2), "p99_ms": round(pct(hms, 99), 2)},
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(res, indent=2))
        return
    width = max(len(k) for k in res)
    for k, v in res.items():
        print(f"{k:<{width}}  {v}")
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
