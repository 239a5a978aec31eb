"""Tiny generated data and a tiny model trained on it for a few steps.

Three classes of images whose colour gives the class away (mostly red / green / blue, with noise
and varying sizes, JPEG and PNG), and `alexnet-cifar` at width 0.125 trained on them through the
data layer's own evaluation transform and normaliser — so predicting them back checks that
predict preprocesses exactly as training did.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

CLASSES = ["red", "green", "blue"]
PER_CLASS = 6


def colour_image(label: int, rng: np.random.Generator, h: int = 40, w: int = 48) -> np.ndarray:
    img = rng.integers(0, 70, size=(h, w, 3))
    img[..., label] += 150 + rng.integers(0, 30)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_images(root: Path, seed: int = 0) -> list[tuple[Path, int]]:
    rng = np.random.default_rng(seed)
    out = []
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(PER_CLASS):
            h, w = int(rng.integers(36, 64)), int(rng.integers(36, 64))
            p = root / name / f"{name}{i}.{'jpg' if i % 2 == 0 else 'png'}"
            Image.fromarray(colour_image(label, rng, h, w)).save(p, quality=95)
            out.append((p, label))
    return out


@pytest.fixture(scope="session")
def image_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    write_images(root)
    return root


@pytest.fixture(scope="session")
def image_files(image_root) -> list[tuple[Path, int]]:
    return sorted(((p, CLASSES.index(p.parent.name)) for p in image_root.rglob("*.*")), key=lambda t: str(t[0]))


def train_tiny(model_name: str, files, classes, steps: int = 12, **kwargs):
    """A few Adam steps on ``files`` with the data layer's eval transform + normaliser."""
    from alexnet.data import build_transforms, decode_image, normalizer_for
    from alexnet.models import build_model, model_cfg

    torch.manual_seed(0)
    model = build_model(model_name, num_classes=len(classes), **kwargs)
    cfg = model_cfg(model_name)
    tf, norm = build_transforms(cfg, train=False), normalizer_for(cfg)
    x = norm(torch.stack([tf(decode_image(str(p))) for p, _ in files]))
    y = torch.tensor([label for _, label in files])
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, image_files) -> Path:
    """A run directory with weights.safetensors + weights.json of a trained tiny CIFAR AlexNet."""
    from alexnet.models import make_meta, save_weights

    model = train_tiny("alexnet-cifar", image_files, CLASSES, width=0.125)
    run = tmp_path_factory.mktemp("run")
    save_weights(model, run, make_meta("alexnet-cifar", CLASSES, model_kwargs={"width": 0.125}))
    return run


@pytest.fixture(scope="session")
def predictor(tiny_run):
    from alexnet.infer import Predictor

    return Predictor(tiny_run, device="cpu", batch_size=4)


@pytest.fixture()
def corrupt_file(tmp_path) -> Path:
    p = tmp_path / "broken.jpg"
    p.write_bytes(b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 10)
    return p
