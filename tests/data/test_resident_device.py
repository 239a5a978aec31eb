"""Where a resident set lives (data/pipeline.py, `decide_resident_placement`): on a CUDA device
whose free memory holds it, so that the augmentation and the batch indexing run there (airbench's
way), else in host memory. The batches must be bit-for-bit those of the plain host-memory loader
for the same seeds; the choice is made once, recorded in config.json (``resident_device``) and
kept on resume and by ``--config`` of a run's config.json.

The placement code runs here with ``device="cpu"`` (the path that moves the set and indexes it
where it is); the same test bodies run with ``cuda`` where there is a GPU (marked ``cuda``)."""

from __future__ import annotations

import json
import time

import pytest
import torch

import alexnet.data.pipeline as pipeline
from alexnet.data import BadSampleLog, TrainingDataConfig, open_training_data
from alexnet.data.pipeline import ResidentPlacement, decide_resident_placement
from alexnet.data.resident import ResidentLoader, decode_all
from alexnet.engine import make_config
from alexnet.engine.config import resume_config
from alexnet.engine.distributed import World
from alexnet.engine.elastic import resolve_auto_resume
from alexnet.engine.train import fit
from alexnet.models import model_cfg
from conftest import write_image

CUDA = pytest.param("cuda", marks=[pytest.mark.cuda,
                                   pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")])
CIFAR_FAST = model_cfg("alexnet-cifar-fast")
GB = 10 ** 9


def test_the_set_goes_to_a_gpu_whose_free_memory_holds_it_and_a_recorded_choice_is_kept():
    cpu, gpu = torch.device("cpu"), torch.device("cuda:0")
    assert decide_resident_placement(cpu, GB, 0) == ResidentPlacement("cpu", "")  # a CPU run: nothing changes
    fits = decide_resident_placement(gpu, 154 * 10 ** 6, 140 * GB)  # CIFAR-10 train + val on an H200
    assert fits.where == "cuda" and "on cuda:0" in fits.reason and "no batch crosses PCIe" in fits.reason
    # four times the set in half of the free memory: 1000 bytes fit in 8000 free, not in 7999
    assert decide_resident_placement(gpu, 1000, 8000).where == "cuda"
    tight = decide_resident_placement(gpu, 1000, 7999)
    assert tight.where == "cpu" and "each batch copied to cuda:0" in tight.reason
    # recorded: kept whatever the memory says now, and said so
    kept = decide_resident_placement(gpu, 10 * GB, 0, recorded="cuda")
    assert kept.where == "cuda" and "as recorded in the run's config" in kept.reason
    assert decide_resident_placement(gpu, 1000, 140 * GB, recorded="cpu").where == "cpu"
    # a run recorded on a GPU and resumed on a CPU: host memory, said so
    moved = decide_resident_placement(cpu, 1000, 0, recorded="cuda")
    assert moved.where == "cpu" and "trains on cpu" in moved.reason


@pytest.fixture(scope="module")
def cifar_like(tmp_path_factory):
    """4 classes × 6 random 32×32 PNGs."""
    root = tmp_path_factory.mktemp("cifarlike")
    for c in range(4):
        for i in range(6):
            write_image(root / f"c{c}" / f"{i}.png", size=(32, 32), seed=6 * c + i)
    return root


def _batches(loader, epochs=(0,)):
    out = []
    for e in epochs:
        loader.sampler.set_epoch(e)
        out += [(b.images, b.labels) for b in loader]
    return out


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_a_set_placed_on_the_device_gives_the_host_loaders_batches_bit_for_bit(cifar_like, device):
    cfg = TrainingDataConfig(data=f"folder:{cifar_like}", val_split=0.25, resident=True, aug="flip-translate",
                             translate=2, seed=7)
    data = open_training_data(cfg, CIFAR_FAST, device)
    data.place_resident(ResidentPlacement("cuda", "on the device"), torch.device(device))  # the placement path
    data.build_loaders(batch_size=5, bad_log=BadSampleLog())
    assert data.resident_on == torch.device(device) and data.note.endswith(" · on the device")
    views = data.ten_crop_loader(5, mirror=True)
    for ld in (data.train_loader, data.val_loader, views):
        assert isinstance(ld, ResidentLoader) and ld.images.device.type == device == ld.labels.device.type
    # the plain path: decoded into host memory, never moved
    x, y, _ = decode_all(data.train_ds)
    vx, vy, _ = decode_all(data.val_ds)
    plain = ResidentLoader(x, y, batch_size=5, train=True, aug=data.aug_plan, seed=7)
    plain_val = ResidentLoader(vx, vy, batch_size=data.val_loader.batch_size, train=False, seed=7)
    plain_views = ResidentLoader(vx, vy, batch_size=data.val_loader.batch_size, train=False, seed=7, mirror_views=True)
    pairs = [(_batches(data.train_loader, (0, 1, 2)), _batches(plain, (0, 1, 2))),
             (_batches(data.val_loader), _batches(plain_val)), (_batches(views), _batches(plain_views))]
    for got, want in pairs:
        assert len(got) == len(want) > 0
        for (a, la), (b, lb) in zip(got, want):
            assert a.device.type == device and torch.equal(a.cpu(), b) and torch.equal(la.cpu(), lb)
    # augmented: epochs differ (a broken placement that skipped the augmentation would pass the rest)
    assert not torch.equal(data.train_loader.epoch_images(0).cpu(), data.train_loader.epoch_images(1).cpu())


def test_the_choice_is_recorded_and_kept_on_resume_and_by_a_runs_config(cifar_like, tmp_path, monkeypatch, capsys):
    seen: list[str] = []
    decide = pipeline.decide_resident_placement

    def spy(device, need, free, recorded=""):
        seen.append(recorded)
        return decide(device, need, free, recorded)

    monkeypatch.setattr(pipeline, "decide_resident_placement", spy)
    kw = dict(data=f"folder:{cifar_like}", val_split=0.25, device="cpu", amp="off", ten_crop=False,
              model_kwargs={"widths": [4, 4, 4]})
    d = fit(make_config("cifar10-fast", output_dir=str(tmp_path), name="r", epochs=2, batch_size=6, max_steps=2,
                        **kw)).run_dir
    assert seen == [""] and json.loads((d / "config.json").read_text())["resident_device"] == "cpu"
    fit(resume_config(str(d), max_steps=3))
    assert seen == ["", "cpu"]  # the recorded choice, not decided afresh
    assert json.loads((d / "config.json").read_text())["resident_device"] == "cpu"
    # --resume auto: the command line's (undecided) field does not replace the run's
    again, _ = resolve_auto_resume(make_config("cifar10-fast", output_dir=str(tmp_path), name="r", resume="auto",
                                               **kw), World())
    assert again.resident_device == "cpu"
    # --config of the run's config.json keeps it, unless a flag changes what it was decided from
    from alexnet.engine.config_file import read_config_file

    cf = read_config_file(str(d))
    assert cf.start_values({})["resident_device"] == "cpu"
    assert "resident_device" not in cf.start_values({"device": "cuda"})
    capsys.readouterr()


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_cifar_fast_trains_with_its_resident_set_on_the_gpu(cifar_like, tmp_path, monkeypatch, device, capsys):
    """`alexnet-cifar-fast` two epochs with --resident on ``device``: the training, validation and
    flip-averaging loaders all index a set on that device, and config.json says where. On CUDA it
    also prints how long an epoch's augmentation of a CIFAR-10-sized set takes on the GPU and on
    the CPU (no time is asserted), and checks that the two are the same images."""
    seen: list[tuple[str, bool]] = []
    iterate = ResidentLoader.__iter__

    def spy(self):
        seen.append((self.images.device.type, self.mirror_views))
        return iterate(self)

    monkeypatch.setattr(ResidentLoader, "__iter__", spy)
    t = time.perf_counter()
    d = fit(make_config("cifar10-fast", data=f"folder:{cifar_like}", device=device, epochs=2, batch_size=6,
                        val_split=0.25, ten_crop=True, output_dir=str(tmp_path), name="r",
                        model_kwargs={"widths": [8, 8, 8]})).run_dir
    took = time.perf_counter() - t
    out = capsys.readouterr().out
    assert json.loads((d / "config.json").read_text())["resident_device"] == device
    assert ("resident set and its augmentation on cuda" in out) == (device == "cuda")
    # two epochs of training and of validation, then the flip-averaged views: all on the device
    assert [m for _, m in seen].count(True) == 1 and len(seen) == 5 and {t for t, _ in seen} == {device}, seen
    if device != "cuda":
        return
    x = torch.randint(0, 256, (50_000, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(50_000, dtype=torch.int64)
    secs, images = {}, {}
    for dev in ("cpu", "cuda"):
        ld = ResidentLoader(x.to(dev), y, batch_size=512, train=True, aug="flip-translate", seed=1)
        ld.sampler.set_epoch(1)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        images[dev] = ld.epoch_images(1)
        n = sum(len(b.labels) for b in ld)
        torch.cuda.synchronize()
        secs[dev] = time.perf_counter() - t0
    assert torch.equal(images["cpu"], images["cuda"].cpu()) and n == 50_000 // 512 * 512
    with capsys.disabled():
        print(f"\n[resident on cuda] alexnet-cifar-fast, 2 epochs of 18 images with evaluations: {took:.1f}s; "
              f"one epoch of flip-translate + batches over 50,000 images: cuda {secs['cuda']:.3f}s, "
              f"cpu {secs['cpu']:.3f}s")
