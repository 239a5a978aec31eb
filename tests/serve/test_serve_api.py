"""The JSON API through FastAPI's TestClient (no socket): every endpoint, every bad upload."""

from __future__ import annotations

import io
import struct
import zlib
from types import SimpleNamespace

import anyio
import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from alexnet.core.errors import UserError  # noqa: E402
from alexnet.serve.app import create_app  # noqa: E402
from alexnet.serve.thumbnails import Thumbnails  # noqa: E402


def png_claiming(w: int, h: int) -> bytes:
    """A valid-looking PNG whose header claims ``w × h`` pixels, with almost no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def deflate_bomb(side: int) -> bytes:
    """A real PNG of ``side × side`` black pixels: a few KiB that decode to side² × 3 bytes."""
    buf = io.BytesIO()
    Image.new("RGB", (side, side)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def upload(data: bytes, name: str = "image.jpg", ctype: str = "image/jpeg") -> dict:
    return {"file": (name, data, ctype)}


# ----------------------------------------------------------------------------- service
def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "model": "alexnet-cifar", "busy": 0}
    for url in ("/healthz", "/"):  # HEAD, as uptime checkers and load balancers ask
        head = client.head(url)
        assert head.status_code == 200 and head.content == b"", url


def test_model_info(client, predictor, index, limits):
    r = client.get("/api/model")
    assert r.status_code == 200
    d = r.json()
    assert d["model"] == "alexnet-cifar" and d["num_classes"] == 3
    assert d["classes"] == predictor.classes and d["input_size"] == [3, 32, 32]
    assert d["device"] == "cpu" and d["ten_crop"] is False
    assert d["index"]["count"] == len(index) == 9 and d["index"]["dim"] == index.dim
    assert d["limits"]["max_upload_bytes"] == limits["max_upload_bytes"]
    assert d["limits"]["max_pixels"] == limits["max_pixels"]


def test_page_and_static_files(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert 'id="file"' in html and 'type="file"' in html and 'id="top5"' in html
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"] and "api/predict" in js.text
    css = client.get("/static/app.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_openapi_documents_every_endpoint(client):
    spec = client.get("/openapi.json").json()
    assert {"/healthz", "/api/model", "/api/predict", "/api/neighbours", "/api/thumbnail/{i}"} <= set(spec["paths"])
    body = spec["paths"]["/api/predict"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_unknown_route_and_method_are_json(client):
    r = client.get("/nope")
    assert r.status_code == 404 and r.json() == {"error": "Not Found"}
    r = client.get("/api/predict")
    assert r.status_code == 405 and "error" in r.json()


# ----------------------------------------------------------------------------- predict
def test_predict_matches_predictor(client, predictor, jpeg_bytes, png_bytes):
    for data, fmt in ((jpeg_bytes, "JPEG"), (png_bytes, "PNG")):
        r = client.post("/api/predict", files=upload(data))
        assert r.status_code == 200, r.text
        d = r.json()
        want = predictor.predict_bytes(data, 5)
        assert [p["class"] for p in d["predictions"]] == [c for c, _, _ in want]
        assert [p["index"] for p in d["predictions"]] == [i for _, i, _ in want]
        assert [p["prob"] for p in d["predictions"]] == pytest.approx([p for _, _, p in want], abs=1e-6)
        assert len(d["predictions"]) == 3  # k=5 asked, 3 classes exist
        assert sum(p["prob"] for p in d["predictions"]) == pytest.approx(1.0, abs=1e-4)
        assert d["image"] == {"format": fmt, "width": 48, "height": 40}
        assert d["model"] == "alexnet-cifar" and d["ms"] >= 0


def test_the_size_reported_is_the_size_shown(client):
    """A phone photo stored 48×40 with EXIF orientation 6 (turned a quarter) is shown, decoded and
    reported 40×48."""
    import io

    from PIL import Image

    im, buf = Image.new("RGB", (48, 40), (200, 30, 30)), io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(buf, "JPEG", exif=exif.tobytes())
    r = client.post("/api/predict", files=upload(buf.getvalue()))
    assert r.status_code == 200, r.text
    assert r.json()["image"] == {"format": "JPEG", "width": 40, "height": 48}


def test_predict_k(client, jpeg_bytes):
    r = client.post("/api/predict", files=upload(jpeg_bytes), data={"k": "2"})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 2
    probs = [p["prob"] for p in r.json()["predictions"]]
    assert probs == sorted(probs, reverse=True)
    r = client.post("/api/predict", files=upload(jpeg_bytes), data={"k": "1000"})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 3  # at most the number of classes


def test_content_is_sniffed_not_the_name(client, png_bytes):
    r = client.post("/api/predict", files=upload(png_bytes, "notes.txt", "text/plain"))
    assert r.status_code == 200 and r.json()["image"]["format"] == "PNG"
    r = client.post("/api/predict", files=upload(b"GIF89a\x02\x00\x02\x00 and then just text" * 3, "cat.jpg"))
    assert r.status_code == 422 and "GIF" in r.json()["error"]  # starts like a GIF, is not one
    r = client.post("/api/predict", files=upload(b"<html><script>alert(1)</script></html>", "cat.jpg"))
    assert r.status_code == 415 and r.json()["error"].startswith("not an image")


def _bad_inputs(jpeg: bytes, png: bytes, limits: dict) -> dict:
    return {
        "empty": (upload(b""), {}, 400, "empty upload"),
        "text": (upload(b"hello, this is not an image\n" * 4, "photo.jpg"), {}, 415, "not an image"),
        "zip": (upload(b"PK\x03\x04" + b"\0" * 64, "photo.png"), {}, 415, "not an image"),
        "truncated jpeg": (upload(jpeg[: len(jpeg) // 2]), {}, 422, "truncated JPEG"),
        "truncated png": (upload(png[: len(png) // 2], "a.png"), {}, 422, "truncated PNG"),
        "corrupt jpeg": (upload(b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 10), {}, 422, "JPEG"),
        "header only": (upload(png[:8], "a.png"), {}, 422, "bad image"),
        "file over the limit": (upload(b"\xff\xd8\xff" + b"\0" * limits["max_upload_bytes"]), {}, 413, "too large"),
        "body far over the limit": (upload(b"\xff\xd8\xff" + b"\0" * (4 * limits["max_upload_bytes"])), {}, 413,
                                    "too large"),
        "pixels over the limit": (upload(deflate_bomb(1200), "bomb.png"), {}, 413, "too many pixels"),
        "pillow's bomb limit": (upload(png_claiming(30000, 30000), "bomb.png"), {}, 413, "too many pixels"),
        "k zero": (upload(jpeg), {"k": "0"}, 422, "k:"),
        "k not a number": (upload(jpeg), {"k": "five"}, 422, "k:"),
    }


BAD = ["empty", "text", "zip", "truncated jpeg", "truncated png", "corrupt jpeg", "header only", "file over the limit",
       "body far over the limit", "pixels over the limit", "pillow's bomb limit", "k zero", "k not a number"]


@pytest.mark.parametrize("case", BAD)
def test_bad_upload_is_a_4xx_json_error_and_the_server_keeps_serving(client, jpeg_bytes, png_bytes, limits, case):
    files, data, status, words = _bad_inputs(jpeg_bytes, png_bytes, limits)[case]
    r = client.post("/api/predict", files=files, data=data)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert words in r.json()["error"]
    assert client.get("/healthz").status_code == 200
    assert client.post("/api/predict", files=upload(jpeg_bytes)).status_code == 200


def test_pixel_limit_from_header_before_decoding(client):
    # 30000² claimed in 100 bytes: refused from the header, nothing is decoded
    assert len(png_claiming(30000, 30000)) < 200
    assert deflate_bomb(1200).__len__() < 20_000  # 1.44 Mpx in a few KiB
    r = client.post("/api/predict", files=upload(deflate_bomb(1200), "b.png"))
    assert r.json()["error"] == "bad image: too many pixels (1200×1200 = 1,440,000 > 1,000,000)"
    ok = client.post("/api/predict", files=upload(deflate_bomb(1000), "b.png"))  # exactly the limit
    assert ok.status_code == 200


def test_missing_file_field_and_wrong_body(client):
    r = client.post("/api/predict", data={"k": "3"})
    assert r.status_code == 400 and "multipart/form-data field 'file'" in r.json()["error"]
    r = client.post("/api/predict", json={"file": "cat.jpg"})
    assert r.status_code == 400 and "error" in r.json()
    r = client.post("/api/predict", files={"image": ("a.jpg", b"\xff\xd8\xff", "image/jpeg")})
    assert r.status_code == 400


# ----------------------------------------------------------------------------- body limit, raw ASGI
def _call(app, headers: list[tuple[bytes, bytes]], chunks) -> tuple[int, bytes, int]:
    """POST /api/predict straight through ASGI: (status, body, bytes the app pulled from the client)."""
    pulled = 0
    sent: list[dict] = []
    it = iter(chunks)

    async def receive() -> dict:
        nonlocal pulled
        chunk = next(it, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(msg: dict) -> None:
        sent.append(msg)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/predict", "raw_path": b"/api/predict", "query_string": b"", "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}
    anyio.run(app, scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body, pulled


def test_declared_oversized_body_is_refused_before_reading(app, limits):
    def endless():
        while True:
            yield b"\0" * 65536

    ctype = (b"content-type", b"multipart/form-data; boundary=xyz")
    status, body, pulled = _call(app, [ctype, (b"content-length", b"%d" % (50 * limits["max_upload_bytes"]))], endless())
    assert status == 413 and b"too large" in body
    assert pulled == 0  # not one byte of the body was read


def test_streamed_oversized_body_is_cut_off_at_the_limit(app, limits):
    chunk = 16384

    def endless():
        yield b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n\xff\xd8\xff"
        while True:
            yield b"\0" * chunk

    status, body, pulled = _call(app, [(b"content-type", b"multipart/form-data; boundary=xyz")], endless())
    assert status == 413 and b"too large" in body
    assert limits["max_upload_bytes"] < pulled <= limits["max_upload_bytes"] + 64 * 1024 + 2 * chunk


# ----------------------------------------------------------------------------- neighbours and thumbnails
def test_neighbours_of_an_indexed_image_start_with_itself(client, index):
    target = 4
    data = open(index.paths[target], "rb").read()
    r = client.post("/api/neighbours", files=upload(data, "query.bin", "application/octet-stream"), data={"k": "4"})
    assert r.status_code == 200, r.text
    d = r.json()
    hits = d["neighbours"]
    assert len(hits) == 4 and d["metric"] == "euclidean"
    assert hits[0]["index"] == target and hits[0]["distance"] < 1e-2 and hits[0]["rank"] == 1
    assert hits[0]["name"] == index.paths[target].rsplit("/", 1)[-1]
    assert hits[0]["class"] == index.classes[int(index.labels[target])]
    assert all("/" not in h["name"] for h in hits)  # no server paths leak
    assert hits[0]["thumbnail"] == f"/api/thumbnail/{target}"
    # the same order as a brute-force search over every vector
    q = client.app.state.predictor.features([data])
    ref = torch.cdist(q, index.vectors().float())[0].topk(4, largest=False).indices.tolist()
    assert [h["index"] for h in hits] == ref
    dists = [h["distance"] for h in hits]
    assert dists == sorted(dists)


def test_neighbours_k_and_bad_uploads(client, index, png_bytes):
    r = client.post("/api/neighbours", files=upload(png_bytes), data={"k": "50"})
    assert r.status_code == 200 and len(r.json()["neighbours"]) == len(index)
    assert client.post("/api/neighbours", files=upload(png_bytes), data={"k": "101"}).status_code == 422
    r = client.post("/api/neighbours", files=upload(b"plain text, not an image"))
    assert r.status_code == 415 and "not an image" in r.json()["error"]
    r = client.post("/api/neighbours", files=upload(b""))
    assert r.status_code == 400


def test_thumbnail_is_the_indexed_image(client, index):
    i = next(j for j, p in enumerate(index.paths) if p.endswith(".png"))
    r = client.get(f"/api/thumbnail/{i}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    got = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
    want = np.asarray(Image.open(index.paths[i]).convert("RGB"))
    assert np.array_equal(got, want)  # 48×40 is under the thumbnail size: sent whole, lossless


@pytest.mark.parametrize("url", [
    "/api/thumbnail/-1", "/api/thumbnail/9", "/api/thumbnail/99999999999999999999", "/api/thumbnail/1e3",
    "/api/thumbnail/..%2F..%2F..%2Fetc%2Fpasswd", "/api/thumbnail/../../../etc/passwd",
    "/api/thumbnail/%2Fetc%2Fpasswd", "/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py",
    "/api/thumbnail/+1", "/api/thumbnail/%201", "/api/thumbnail/1%20", "/api/thumbnail/1_0", "/api/thumbnail/%D9%A1",
    "/api/thumbnail/0x1",
])
def test_no_file_outside_the_index_is_served(client, url):
    r = client.get(url)
    assert 400 <= r.status_code < 500, (url, r.status_code)
    assert b"root:" not in r.content and b"create_app" not in r.content


def test_thumbnails_of_an_in_memory_dataset():
    from alexnet.data import build_dataset

    stub = SimpleNamespace(meta={"data": "digits", "split": "val", "val_split": None},
                           paths=["digits[val]#3"], ids=torch.tensor([3]))
    body, media = Thumbnails(stub, 10**6).get(0)
    assert media == "image/png"
    img = np.asarray(Image.open(io.BytesIO(body)))
    want = build_dataset("digits", "val").load(3)[0].numpy()
    assert img.shape == (8, 8, 3) and np.array_equal(img[..., 0], want)


def test_thumbnails_of_an_index_of_every_split_are_its_entries():
    """An index of split "all" runs through train, then val: entry 1,700 is val's item 262, not the
    whole set's item 1,700 in its own order (the page showed other digits, of other classes)."""
    from alexnet.infer.retrieval import index_dataset

    entries = index_dataset("digits", "all")
    ids = [5, 1000, 1700, 1796]
    stub = SimpleNamespace(meta={"data": "digits", "split": "all", "val_split": None},
                           paths=[entries.samples_path(i) for i in ids], ids=torch.tensor(ids))
    thumbs = Thumbnails(stub, 10**6)
    for row, i in enumerate(ids):
        img = np.asarray(Image.open(io.BytesIO(thumbs.get(row)[0])))
        assert np.array_equal(img[..., 0], entries.load(i)[0].numpy()), i
    wrong = SimpleNamespace(meta=stub.meta, paths=["digits[val]#7"], ids=torch.tensor([1700]))  # not that item
    assert Thumbnails(wrong, 10**6).get(0) is None  # no picture rather than another's


def test_without_an_index(predictor, make_client, png_bytes):
    c = make_client(create_app(predictor))
    assert c.get("/api/model").json()["index"] is None
    r = c.post("/api/neighbours", files=upload(png_bytes))
    assert r.status_code == 404 and "--index" in r.json()["error"]
    assert c.get("/api/thumbnail/0").status_code == 404
    assert c.post("/api/predict", files=upload(png_bytes)).status_code == 200


def test_index_of_other_weights_is_refused(predictor):
    with pytest.raises(UserError, match="index holds alexnet features"):
        create_app(predictor, SimpleNamespace(meta={"model": "alexnet"}))


def test_bad_settings_are_refused(predictor):
    for kw in ({"max_upload_bytes": 0}, {"max_concurrency": 0}, {"max_concurrency": 4, "max_pending": 2},
               {"metric": "manhattan"}):
        with pytest.raises(UserError):
            create_app(predictor, **kw)


def test_a_bug_is_a_500_json_error_and_logged(predictor, make_client, jpeg_bytes, caplog):
    class Broken:
        def __getattr__(self, name):
            return getattr(predictor, name)

        def predict_bytes(self, data, k=5):
            raise RuntimeError("boom")

    c = make_client(create_app(Broken()))
    r = c.post("/api/predict", files=upload(jpeg_bytes))
    assert r.status_code == 500 and r.json()["error"].startswith("internal error (RuntimeError)")
    assert any("boom" in (rec.exc_text or "") or rec.exc_info for rec in caplog.records)
    assert c.get("/healthz").json()["busy"] == 0


def test_two_files_or_two_ks_in_one_request_are_refused(client, png_bytes):
    """Only one would be answered: a guess the caller would not see."""
    two = [("file", ("a.png", png_bytes, "image/png")), ("file", ("b.png", png_bytes, "image/png"))]
    r = client.post("/api/predict", files=two)
    assert r.status_code == 400 and r.json()["error"] == "one image per request: the form has 2 'file' fields"
    r = client.post("/api/predict", files=upload(png_bytes, "a.png", "image/png"), data={"k": ["1", "3"]})
    assert r.status_code == 400 and "'k' fields" in r.json()["error"]
    assert client.post("/api/predict", files=upload(png_bytes, "a.png", "image/png"), data={"k": "3"}).status_code == 200


@pytest.mark.parametrize("route", ["/api/predict", "/api/neighbours"])
def test_a_k_in_the_url_is_refused_not_ignored(client, png_bytes, route):
    """?k=0 used to be answered with the default k, as if it had been read."""
    r = client.post(f"{route}?k=0", files=upload(png_bytes, "a.png", "image/png"))
    assert r.status_code == 422 and r.json()["error"].startswith("this endpoint reads no URL parameters (k): send k")
