"""CUDA: the paths that only a GPU takes. Marked ``cuda``: skipped without CUDA, selected with
``pytest -m cuda``. Where a path can also run on a CPU, the same test body runs there too
(the ``device`` parameter), so the default CPU run keeps it honest.

Covered: a training step under bf16 and fp16 autocast (fp16 with the grad scaler), channels_last,
``--compile``, the GPU data path against the CPU one, ``towers=2`` on two devices, DDP with NCCL at
world size 1 (torchrun), Predictor and the web app on CUDA.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet.engine import make_config
from alexnet.engine.train import fit

HAS_CUDA = torch.cuda.is_available()
cuda = pytest.mark.cuda
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
CUDA = pytest.param("cuda", marks=[cuda, needs_cuda])
TINY = {"width": 0.25, "fc_width": 128}
ENV = {**os.environ, "ALEXNET_CPU_BF16": "0", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _fit(tmp_path, name, **kw):
    kw.setdefault("model_kwargs", TINY)
    cfg = make_config("digits", epochs=1, batch_size=64, output_dir=str(tmp_path), name=name, max_steps=3, **kw)
    return fit(cfg)


def _finite_weights(run_dir: Path) -> bool:
    from safetensors.torch import load_file

    w = load_file(str(run_dir / "weights.safetensors"))
    return all(torch.isfinite(v).all() for v in w.values())


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
@pytest.mark.parametrize("device", [CUDA])
def test_training_step_under_autocast(tmp_path, device, amp):
    """bf16 and fp16 autocast; fp16 turns the grad scaler on. The loss falls over a few steps."""
    from alexnet.core.device import resolve_precision

    prec = resolve_precision(amp, torch.device(device))
    assert prec.use_scaler == (amp == "fp16")
    res = _fit(tmp_path, amp, device=device, amp=amp)
    assert _finite_weights(res.run_dir)


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_channels_last_training_matches_nchw(tmp_path, device):
    """channels_last on and off give the same weights after a few deterministic steps."""
    from safetensors.torch import load_file

    runs = {}
    for cl in ("on", "off"):
        r = _fit(tmp_path, f"cl-{cl}-{device}", device=device, amp="off", channels_last=cl, deterministic=True,
                 lr_scheduler="constant", model_kwargs={**TINY, "dropout": 0})
        runs[cl] = load_file(str(r.run_dir / "weights.safetensors"))
    for k in runs["on"]:
        torch.testing.assert_close(runs["on"][k], runs["off"][k], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("device", [CUDA])
def test_compile_trains(tmp_path, device):
    res = _fit(tmp_path, "compiled", device=device, amp="bf16", compile=True)
    assert _finite_weights(res.run_dir)


# ----------------------------------------------------------------------------- the GPU data path

@pytest.fixture
def photo_folder(tmp_path):
    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for c, cls in enumerate("ab"):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            w, h = int(rng.integers(280, 420)), int(rng.integers(260, 400))
            img = Image.fromarray(rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)).resize((w, h))
            img.save(root / cls / f"{i}.jpg", quality=92)
    return root


@cuda
@needs_cuda
def test_gpu_data_path_cuts_the_cpu_paths_crops(photo_folder):
    """Same seeds → same crops and flips; pixels differ only by decoder (nvJPEG vs libjpeg-turbo,
    and the CPU path's reduced-size decode of large JPEGs) and resize rounding."""
    from alexnet.data import build_dataset, build_loader, build_transforms
    from alexnet.data.gpu import DeviceBatchLoader
    from alexnet.models import model_cfg

    cfg = model_cfg("alexnet-owt")
    tf = build_transforms(cfg, train=True, aug="paper", alphastd=0.0)
    ds = build_dataset(f"folder:{photo_folder}", "train", tf, val_split=0)
    cpu = build_loader(ds, batch_size=4, train=True, seed=3, pin_memory=False)
    gpu = DeviceBatchLoader(ds, batch_size=4, train=True, seed=3, device="cuda")
    for (xa, ya, _), (xb, yb, bad) in zip(cpu, gpu):
        assert xb.is_cuda and xb.dtype == torch.uint8 and xb.shape == xa.shape and not bad
        assert torch.equal(ya, yb.cpu())
        d = (xa.int() - xb.cpu().int()).abs().float()
        assert d.mean() < 3.0, d.mean()  # a different crop or flip would differ by tens of levels


@cuda
@needs_cuda
def test_train_with_data_device_cuda(photo_folder, tmp_path):
    cfg = make_config("photos", model="alexnet-owt", data=f"folder:{photo_folder}", epochs=1, batch_size=4,
                      output_dir=str(tmp_path), name="gpu-data", device="cuda", data_device="cuda", max_steps=2,
                      val_split=0.2, amp="bf16")
    res = fit(cfg)
    assert _finite_weights(res.run_dir)


# ----------------------------------------------------------------------------- towers, DDP

@cuda
@pytest.mark.skipif(not HAS_CUDA or torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_two_towers_on_two_devices_compute_the_grouped_network():
    from alexnet.models import build_model
    from alexnet.models.alexnet import AlexNetTowers

    torch.manual_seed(0)
    grouped = build_model("alexnet", num_classes=10, width=0.25).eval()
    towers = AlexNetTowers(num_classes=10, width=0.25, devices=("cuda:0", "cuda:1")).eval()
    assert towers.tower2.conv1.weight.device == torch.device("cuda:1")
    towers.load_grouped(grouped.state_dict())
    x = torch.randn(2, 3, 227, 227)
    with torch.no_grad():
        want = grouped(x)
        got = towers(x.to("cuda:0")).cpu()
    torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_ddp_world_size_one_gives_the_plain_gradients(device):
    """DDP in-process at world size 1 (gloo on the CPU, NCCL on CUDA): the same gradients as the
    bare model (the all-reduce of one process is the identity, but it runs)."""
    import copy

    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel as DDP

    from alexnet.models import build_model, model_cfg

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dist.init_process_group("nccl" if device == "cuda" else "gloo", init_method=f"tcp://127.0.0.1:{port}",
                            rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = build_model("alexnet-mnist", num_classes=10, **TINY).to(device).eval()  # eval: no dropout draws
        ref = copy.deepcopy(model)
        ddp = DDP(model, device_ids=[0] if device == "cuda" else None)
        x = torch.randn(8, *model_cfg("alexnet-mnist").input_size, device=device)
        y = torch.arange(8, device=device) % 10
        F.cross_entropy(ddp(x), y).backward()
        F.cross_entropy(ref(x), y).backward()
        for (name, p), q in zip(model.named_parameters(), ref.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)
    finally:
        dist.destroy_process_group()


@cuda
@needs_cuda
def test_torchrun_one_process_trains_on_cuda(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", f"--master_port={port}",
                        "-m", "alexnet", "train", "--max-steps", "3", "--device", "cuda", "--output-dir", str(tmp_path),
                        "--name", "ddp", "--model-arg", "width=0.25", "--model-arg", "fc_width=128"],
                       capture_output=True, text=True, timeout=300, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "ddp" / "weights.safetensors").is_file()


# ----------------------------------------------------------------------------- inference

@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    from alexnet.models import build_model, make_meta, save_weights

    torch.manual_seed(0)
    model = build_model("alexnet-cifar", num_classes=3, width=0.125)
    run = tmp_path_factory.mktemp("cuda-run")
    save_weights(model, run, make_meta("alexnet-cifar", ["a", "b", "c"], model_kwargs={"width": 0.125}))
    return run


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_predictor_on_device_agrees_with_cpu(weights_dir, device):
    from alexnet.infer import Predictor

    images = [_jpeg(s) for s in range(4)]
    ref = Predictor(weights_dir, device="cpu", amp="off").probs(images)
    p = Predictor(weights_dir, device=device, amp="off")
    assert p.device.type == device
    got = p.probs(images)
    assert got.device.type == "cpu"
    torch.testing.assert_close(got, ref, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_serve_on_device(weights_dir, device):
    pytest.importorskip("fastapi")
    from alexnet.infer import Predictor
    from alexnet.serve.app import create_app

    p = Predictor(weights_dir, device=device, amp="off")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    client = TestClient(create_app(p))
    info = client.get("/api/model").json()
    assert info["device"].startswith(device)
    r = client.post("/api/predict", files={"file": ("x.jpg", _jpeg(1), "image/jpeg")})
    assert r.status_code == 200, r.text
    want = p.predict_bytes(_jpeg(1), 3)
    assert [q["index"] for q in r.json()["predictions"]][:3] == [i for _, i, _ in want][:3]
