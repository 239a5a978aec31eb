"""A tiny untrained RGB model, a handful of generated images, a feature index of them, and the
app over both. The serve extra (FastAPI, …) is imported only inside fixtures, so that the test
modules can skip cleanly where it is not installed."""

from __future__ import annotations

import io
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

CLASSES = ["red", "green", "blue"]
MAX_UPLOAD = 200_000  # bytes: small, so that "too large" uploads stay cheap to make
MAX_PIXELS = 1_000_000


def encode(img: Image.Image, fmt: str, **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **save)
    return buf.getvalue()


def colour_image(label: int, seed: int, size=(48, 40)) -> Image.Image:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 70, size=(size[1], size[0], 3))
    a[..., label] += 160
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


@pytest.fixture(scope="session")
def image_root(tmp_path_factory) -> Path:
    """``root/<colour>/<colour><i>.{jpg,png}``: 3 classes × 3 images."""
    root = tmp_path_factory.mktemp("serve-photos")
    for label, name in enumerate(CLASSES):
        (root / name).mkdir()
        for i in range(3):
            ext = "jpg" if i % 2 == 0 else "png"
            colour_image(label, 10 * label + i).save(root / name / f"{name}{i}.{ext}", quality=95)
    return root


@pytest.fixture(scope="session")
def jpeg_bytes() -> bytes:
    return encode(colour_image(0, 100), "JPEG", quality=90)


@pytest.fixture(scope="session")
def png_bytes() -> bytes:
    return encode(colour_image(2, 101), "PNG")


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> Path:
    from alexnet.models import build_model, make_meta, save_weights

    torch.manual_seed(0)
    model = build_model("alexnet-cifar", num_classes=len(CLASSES), width=0.125)
    run = tmp_path_factory.mktemp("serve-run")
    save_weights(model, run, make_meta("alexnet-cifar", CLASSES, model_kwargs={"width": 0.125}))
    return run


@pytest.fixture(scope="session")
def predictor(weights):
    from alexnet.infer import Predictor

    return Predictor(weights, device="cpu", batch_size=8, workers=1)


@pytest.fixture(scope="session")
def index(weights, image_root, tmp_path_factory):
    from alexnet.infer.retrieval import build_index

    out = tmp_path_factory.mktemp("serve-index") / "index"
    return build_index(weights, f"folder:{image_root}", out, split="train", val_split=0, batch_size=16,
                       workers=0, progress=False)


def _test_client(app):
    """FastAPI's TestClient (Starlette ≥ 1.x warns that it would rather use httpx2; httpx works)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    return TestClient(app)


@pytest.fixture(scope="session")
def make_client():
    """``make_client(app)``: a TestClient (no socket) for an app."""
    return _test_client


@pytest.fixture(scope="session")
def limits() -> dict:
    return {"max_upload_bytes": MAX_UPLOAD, "max_pixels": MAX_PIXELS}


@pytest.fixture(scope="session")
def app(predictor, index):
    from alexnet.serve.app import create_app

    return create_app(predictor, index, max_upload_bytes=MAX_UPLOAD, max_pixels=MAX_PIXELS)


@pytest.fixture(scope="session")
def client(app):
    return _test_client(app)


class SlowPredictor:
    """A `Predictor` whose ``predict_bytes`` waits until ``release`` is set: a request that is
    certainly still computing while the test looks at the server."""

    def __init__(self, inner):
        self.inner = inner
        self.started = threading.Event()
        self.release = threading.Event()
        self.calls = 0
        self._lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def predict_bytes(self, data, k=5):
        with self._lock:
            self.calls += 1
        self.started.set()
        if not self.release.wait(20):
            raise RuntimeError("the test never released the slow request")
        return self.inner.predict_bytes(data, k)


@pytest.fixture()
def slow(predictor):
    s = SlowPredictor(predictor)
    yield s
    s.release.set()
