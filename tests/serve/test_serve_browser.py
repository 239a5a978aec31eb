"""End to end in a real browser: Debian's chromium driven by Playwright's Python API, against a
real uvicorn server on a free 127.0.0.1 port. Upload an image through the page's file input and
read the top-5 back from the page; the page must agree with the JSON API to the digit.

Skips (saying why) only where chromium or the playwright package is absent; CI installs both.
"""

from __future__ import annotations

import os
import shutil

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    for p in (shutil.which("chromium"), "/usr/bin/chromium"):
        if p and os.access(p, os.X_OK):
            return p
    return None


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install playwright; no browser download needed)")
    exe = chromium_path()
    if exe is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(predictor, index):
    from alexnet.serve.app import create_app
    from alexnet.serve.server import start_server

    with start_server(create_app(predictor, index, max_upload_bytes=200_000)) as srv:
        yield srv


@pytest.fixture()
def page(browser, server):
    ctx = browser.new_context()
    pg = ctx.new_page()
    pg.set_default_timeout(15_000)
    problems: list[str] = []
    pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.goto(server.url + "/")
    pg.wait_for_selector("body[data-ready='1']")
    pg.problems = problems
    yield pg
    ctx.close()


def read_rows(page) -> list[tuple[str, str, str]]:
    return [(li.query_selector(".name").inner_text(), li.query_selector(".prob").inner_text(),
             li.query_selector(".fill").evaluate("e => e.style.width"))
            for li in page.query_selector_all("#top5 li.pred")]


def test_upload_shows_top5_as_the_api_gives_it(page, server, image_root, index):
    assert page.inner_text("#model-name") == "alexnet-cifar"
    assert page.inner_text("#model-classes") == "3"
    assert page.inner_text("#model-input") == "3×32×32"
    assert page.inner_text("#model-index") == "9 images"

    photo = sorted(image_root.rglob("*.jpg"))[0]
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("body[data-state='done']")
    rows = read_rows(page)

    with httpx.Client(trust_env=False, timeout=10) as c:
        api = c.post(server.url + "/api/predict", files={"file": (photo.name, photo.read_bytes(), "image/jpeg")}).json()
    want = [(p["class"], f"{p['prob'] * 100:.1f}%", f"{p['prob'] * 100:.2f}%") for p in api["predictions"]]
    assert len(rows) == 3 and rows == want  # 3 classes: the "top 5" holds all three
    assert page.is_visible("#preview") and page.eval_on_selector("#preview", "e => e.naturalWidth") == 48
    assert "JPEG 48×40" in page.inner_text("#image-info")

    # neighbours: the photo itself comes first, and every thumbnail loaded
    page.wait_for_function("() => [...document.querySelectorAll('#neighbours img')].every(i => i.complete)")
    names = [e.inner_text() for e in page.query_selector_all("#neighbours .nname")]
    assert len(names) == 8 and names[0] == photo.name
    widths = page.eval_on_selector_all("#neighbours img", "imgs => imgs.map(i => i.naturalWidth)")
    assert widths == [48] * 8
    assert page.problems == []


def test_a_bad_file_shows_the_error_and_the_next_upload_works(page, tmp_path, image_root):
    bad = tmp_path / "holiday.jpg"
    bad.write_text("this is not a photo")
    page.set_input_files("#file", str(bad))
    page.wait_for_selector("body[data-state='error']")
    assert "not an image" in page.inner_text("#error")
    assert read_rows(page) == []

    good = sorted(image_root.rglob("*.png"))[0]
    page.set_input_files("#file", str(good))
    page.wait_for_selector("body[data-state='done']")
    assert page.is_hidden("#error") and len(read_rows(page)) == 3
    # the 413 path console-logs a failed request; only the good upload's page state matters here
    assert [p for p in page.problems if "413" not in p and "415" not in p] == []


def test_a_file_over_the_limit_is_refused_in_the_page(page, tmp_path):
    big = tmp_path / "huge.jpg"
    big.write_bytes(b"\xff\xd8\xff" + b"\0" * 300_000)
    page.set_input_files("#file", str(big))
    page.wait_for_selector("body[data-state='error']")
    assert "the server accepts up to" in page.inner_text("#error")
