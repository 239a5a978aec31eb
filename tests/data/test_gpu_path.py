"""The device data path (`alexnet.data.gpu`), run on the CPU: the same crops, flips and lighting as
the per-image CPU path from the same seeds; bad files reported; --data-device cuda without CUDA."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet.cli import main
from alexnet.core.errors import UserError
from alexnet.data import build_dataset, build_loader, build_transforms
from alexnet.data.gpu import DeviceBatchLoader, Draws, augment_batch, check_data_device, sample_params
from alexnet.data.transforms import PCALighting


def cfg(c=3, h=12, w=12, resize=16):
    return SimpleNamespace(input_size=(c, h, w), resize=resize, mean=(0.5,) * c, std=(0.25,) * c)


@pytest.fixture
def jpeg_folder(tmp_path):
    """``root/{a,b}/``: 6 smooth JPEGs each of mixed sizes (all below 2× the short side 16, so the
    CPU path decodes them at full size too), one PNG and one gray JPEG."""
    root = tmp_path / "jp"
    rng = np.random.default_rng(0)
    sizes = [(20, 17), (17, 24), (30, 22), (16, 16), (25, 19), (18, 31)]
    for c, cls in enumerate("ab"):
        (root / cls).mkdir(parents=True)
        for i, (w, h) in enumerate(sizes):
            img = Image.fromarray(rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)).resize((w, h))
            if i == 4:
                img.save(root / cls / f"{i}.png")
            else:
                (img.convert("L") if i == 5 else img).save(root / cls / f"{i}.jpg", quality=92)
    return root


@pytest.mark.parametrize("aug", ["paper", "light", "small", "none"])
def test_device_batches_equal_the_cpu_paths_batches(jpeg_folder, aug):
    c = cfg(h=16, w=16, resize=16) if aug == "small" else cfg()
    tf = build_transforms(c, train=aug != "none", aug=aug if aug != "none" else "auto", alphastd=0.5)
    ds = build_dataset(f"folder:{jpeg_folder}", "train", tf, val_split=0)
    cpu = build_loader(ds, batch_size=4, train=True, seed=7)
    dev = DeviceBatchLoader(ds, batch_size=4, train=True, seed=7, device="cpu")
    assert len(cpu) == len(dev) == 3
    for epoch in (0, 1):
        cpu.sampler.set_epoch(epoch)
        dev.sampler.set_epoch(epoch)
        for (xa, ya, _), (xb, yb, bad) in zip(cpu, dev):
            assert xb.dtype == torch.uint8 and xb.shape == xa.shape and bad == []
            assert torch.equal(ya, yb)
            # the same decoder (libjpeg-turbo) and the same resize on a CPU: the same pixels
            assert (xa.int() - xb.int()).abs().max() <= 1


def test_sample_params_follow_torchvisions_draws():
    plan = build_transforms(cfg(h=12, w=12, resize=16), train=True, aug="light").plan
    seen = {(p.top, p.left, p.flip) for p in (sample_params(plan, 16, 20, s) for s in range(400))}
    tops, lefts, flips = zip(*seen)
    assert set(tops) == set(range(5)) and set(lefts) == set(range(9)) and set(flips) == {True, False}
    assert sample_params(plan, 16, 20, 5) == sample_params(plan, 16, 20, 5)
    none = build_transforms(cfg(), train=False).plan
    assert sample_params(none, 16, 20, 1) == Draws(top=0, left=0, flip=False, alpha=None)


def test_flip_is_exact_and_lighting_is_one_shift_per_image():
    tf = build_transforms(cfg(h=16, w=16, resize=16), train=True, aug="paper", alphastd=0.0)
    img = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    outs = [augment_batch([img], tf.plan, [s])[0] for s in range(40)]
    assert any(torch.equal(o, img) for o in outs) and any(torch.equal(o, img.flip(-1)) for o in outs)
    assert all(torch.equal(o, img) or torch.equal(o, img.flip(-1)) for o in outs)
    lit = build_transforms(cfg(h=16, w=16, resize=16), train=True, aug="paper", alphastd=0.1)
    flat = torch.full((3, 16, 16), 128, dtype=torch.uint8)
    x = augment_batch([flat] * 300, lit.plan, list(range(300))).float()
    per_image = x.flatten(2)
    assert torch.equal(per_image.amax(-1), per_image.amin(-1))  # one RGB shift per image
    shift = (per_image[..., 0] - 128) / 255
    pc1 = shift @ PCALighting.of(lit.plan).eigvec[:, 0]
    assert 0.035 < pc1.std() < 0.06  # 0.1 · √0.2175 ≈ 0.047 along the first component


def test_bad_files_are_left_out_and_reported(jpeg_folder):
    (jpeg_folder / "a" / "9_trunc.jpg").write_bytes((jpeg_folder / "a" / "0.jpg").read_bytes()[:40])
    (jpeg_folder / "b" / "9_text.jpg").write_text("not an image")
    ds = build_dataset(f"folder:{jpeg_folder}", "train", build_transforms(cfg(), train=False), val_split=0)
    got = list(DeviceBatchLoader(ds, batch_size=14, train=False, device="cpu"))
    assert len(got) == 1 and len(got[0].images) == 12
    assert sorted(b.path.rsplit("/", 2)[-2] + "/" + b.path.rsplit("/", 1)[-1] for b in got[0].bad) == \
        ["a/9_trunc.jpg", "b/9_text.jpg"]


def test_in_memory_and_cached_sets_go_through_it_too(cifar10_root, tmp_path):
    ds = build_dataset(f"cifar10:{cifar10_root}", "train",
                       build_transforms(cfg(h=32, w=32, resize=32), train=True, aug="small"))
    cpu = torch.cat([x for x, _, _ in build_loader(ds, batch_size=5, train=True, seed=1)])
    dev = torch.cat([x for x, _, _ in DeviceBatchLoader(ds, batch_size=5, train=True, seed=1, device="cpu")])
    assert torch.equal(cpu, dev)


def test_data_device_cuda_without_cuda_is_one_line(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="needs a CUDA GPU"):
        check_data_device("cuda")
    assert check_data_device("cpu") is None
    assert main(["train", "--data-device", "cuda", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "CUDA" in err[0]
    assert main(["train", "--data-device", "tpu", "--epochs", "1"]) == 2
