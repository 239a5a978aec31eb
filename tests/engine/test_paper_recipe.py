"""The paper recipe's details: §5's exact SGD update, bias groups, the global batch under torchrun,
and the training data's own mean pixel (§2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from alexnet.core.errors import UserError
from alexnet.engine import make_config
from alexnet.engine.distributed import plan_batch
from alexnet.engine.optim import PaperSGD, build_optimizer, param_groups
from alexnet.engine.train import fit


# -- §5's update rule ---------------------------------------------------------------------------------

def _step(opt: torch.optim.Optimizer, p: torch.Tensor, grad: torch.Tensor, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr
    p.grad = grad.clone()
    opt.step()


def test_paper_sgd_equals_the_update_rule_by_hand_across_a_rate_drop():
    """v ← 0.9v − 0.0005·ε·w − ε·g, w ← w + v; the rate drops ÷10 at the second step."""
    w0 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    g1 = torch.tensor([0.3, 0.1, -0.2], dtype=torch.float64)
    g2 = torch.tensor([-0.1, 0.4, 0.2], dtype=torch.float64)
    e1, e2, mu, wd = 0.01, 0.001, 0.9, 0.0005
    v1 = -wd * e1 * w0 - e1 * g1
    w1 = w0 + v1
    v2 = mu * v1 - wd * e2 * w1 - e2 * g2
    w2 = w1 + v2
    p = nn.Parameter(w0.clone())
    opt = PaperSGD([p], lr=e1, momentum=mu, weight_decay=wd)
    _step(opt, p, g1, e1)
    torch.testing.assert_close(p.detach(), w1, rtol=0, atol=1e-15)
    _step(opt, p, g2, e2)
    torch.testing.assert_close(p.detach(), w2, rtol=0, atol=1e-15)
    # PyTorch's SGD cuts the momentum with the rate at once: a different w2 (the difference
    # is 0.9·(ε2 − ε1)·b1 — the old velocity scaled down by the drop)
    q = nn.Parameter(w0.clone())
    sgd = torch.optim.SGD([q], lr=e1, momentum=mu, weight_decay=wd)
    _step(sgd, q, g1, e1)
    torch.testing.assert_close(q.detach(), w1, rtol=0, atol=1e-15)  # equal before the drop
    _step(sgd, q, g2, e2)
    torch_w2 = w1 - e2 * (mu * (g1 + wd * w0) + g2 + wd * w1)
    torch.testing.assert_close(q.detach(), torch_w2, rtol=0, atol=1e-15)
    assert (q.detach() - p.detach()).abs().max() > 1e-4


def test_paper_sgd_equals_torch_sgd_while_the_rate_is_constant_and_resumes_from_its_state_dict():
    torch.manual_seed(0)
    a, b = nn.Linear(5, 3).double(), nn.Linear(5, 3).double()
    b.load_state_dict(a.state_dict())
    pa = PaperSGD(a.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    pb = torch.optim.SGD(b.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    xs = [torch.randn(8, 5, dtype=torch.float64) for _ in range(6)]
    for i, x in enumerate(xs):
        for m, opt in ((a, pa), (b, pb)):
            opt.zero_grad()
            m(x).pow(2).sum().backward()
            opt.step()
        if i == 2:  # a checkpoint mid-way: a fresh optimiser from the state_dict continues exactly
            state = pa.state_dict()
            pa = PaperSGD(a.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
            pa.load_state_dict(state)
    for pa_, pb_ in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa_, pb_, rtol=1e-10, atol=1e-12)


# -- bias groups ------------------------------------------------------------------------------------

def test_bias_groups_get_their_rate_multiplier_and_decay():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    cfg = make_config("digits", optimizer="sgd-paper", lr=0.01, weight_decay=5e-4, bias_lr_mult=2.0,
                      bias_weight_decay=0.0)
    groups = param_groups(cfg, model, cfg.lr)
    names = {id(p): n for n, p in model.named_parameters()}
    weights, biases = groups
    assert sorted(names[id(p)] for p in biases["params"]) == ["0.bias", "1.bias", "3.bias"]
    assert sorted(names[id(p)] for p in weights["params"]) == ["0.weight", "1.weight", "3.weight"]
    assert (weights["lr_mult"], weights["weight_decay"], weights["lr"]) == (1.0, 5e-4, 0.01)
    assert (biases["lr_mult"], biases["weight_decay"], biases["lr"]) == (2.0, 0.0, 0.02)
    opt = build_optimizer(cfg, model)
    assert isinstance(opt, PaperSGD) and [g["lr"] for g in opt.param_groups] == [0.01, 0.02]
    # the defaults keep one group in parameter order (checkpoints from before still load)
    plain = param_groups(make_config("digits"), model, 1e-3)
    assert len(plain) == 1 and [id(p) for p in plain[0]["params"]] == [id(p) for p in model.parameters()]
    # frozen parameters are left out
    model[0].weight.requires_grad_(False)
    assert all(p is not model[0].weight for g in param_groups(cfg, model, 0.01) for p in g["params"])


def test_paper_recipe_uses_the_authors_optimiser_details():
    cfg = make_config("paper")
    assert (cfg.optimizer, cfg.bias_lr_mult, cfg.bias_weight_decay, cfg.global_batch) == ("sgd-paper", 2.0, 0.0, 128)
    assert cfg.pca_scale == "sqrt" and cfg.normalize == "pixelmean"


def test_training_applies_the_bias_multiplier_every_step(tmp_path):
    cfg = make_config("digits", epochs=1, max_steps=3, batch_size=64, output_dir=str(tmp_path), name="bias",
                      optimizer="sgd-paper", lr=0.01, lr_scheduler="constant", bias_lr_mult=2.0,
                      bias_weight_decay=0.0, model_kwargs={"width": 0.25, "fc_width": 32}, amp="off")
    fit(cfg)
    from alexnet.core.io import safe_torch_load

    ck = safe_torch_load(tmp_path / "bias" / "checkpoints" / "last.pt")
    lrs = [(g["lr"], g["lr_mult"], g["weight_decay"]) for g in ck["optimizer"]["param_groups"]]
    assert lrs == [(0.01, 1.0, cfg.weight_decay), (0.02, 2.0, 0.0)]


# -- the global batch under torchrun ---------------------------------------------------------------

def test_plan_batch_keeps_the_global_batch_or_scales_the_rate():
    p = plan_batch(128, 0.01, 8, global_batch=128)
    assert (p.per_process, p.global_batch, p.lr) == (16, 128, 0.01)
    assert "global batch 128 kept = 8 processes × 16" in p.note
    assert plan_batch(128, 0.01, 1, global_batch=128).per_process == 128
    with pytest.raises(UserError, match="does not split evenly over 3 processes"):
        plan_batch(128, 0.01, 3, global_batch=128)
    p = plan_batch(128, 0.01, 8, scale_lr=True)
    assert (p.per_process, p.global_batch, p.lr) == (128, 1024, pytest.approx(0.08))
    assert "scaled linearly" in p.note
    p = plan_batch(64, 0.01, 2)
    assert (p.per_process, p.global_batch, p.lr) == (64, 128, 0.01)


def test_make_config_batch_rules():
    assert make_config("paper").global_batch == 128
    assert make_config("paper", batch_size=64).global_batch == 0  # an explicit -b is per process
    cfg = make_config("paper", scale_lr=True)
    assert cfg.global_batch == 0 and cfg.batch_size == 128
    assert make_config("digits", global_batch=64).global_batch == 64
    with pytest.raises(UserError, match="not both"):
        make_config("paper", batch_size=64, global_batch=128)
    with pytest.raises(UserError, match="give one"):
        make_config("paper", global_batch=256, scale_lr=True)


# -- the mean pixel (§2) ---------------------------------------------------------------------------

def test_compute_mean_of_a_dataset_of_known_mean():
    from alexnet.data import TensorImageDataset, compute_mean

    img = torch.zeros(6, 3, 4, 4, dtype=torch.uint8)
    img[:3] = torch.tensor([10, 20, 30], dtype=torch.uint8).view(3, 1, 1)
    img[3:] = torch.tensor([50, 100, 150], dtype=torch.uint8).view(3, 1, 1)
    stats = compute_mean(TensorImageDataset(img, [0] * 6, ["x"]))
    assert stats["mean"] == pytest.approx([30 / 255, 60 / 255, 90 / 255], rel=1e-6) and stats["images"] == 6
    gray = compute_mean(TensorImageDataset(img[:, :1].contiguous(), [0] * 6, ["x"]))
    assert gray["mean"] == pytest.approx([30 / 255], rel=1e-6)


@pytest.fixture
def half_and_half_cifar(tmp_path):
    """CIFAR-10 batches whose every image is half (10, 20, 30), half (50, 100, 150): mean (30, 60, 90)."""
    import pickle

    d = tmp_path / "cifar" / "cifar-10-batches-py"
    d.mkdir(parents=True)
    img = np.zeros((3, 32, 32), np.uint8)
    for c, (lo, hi) in enumerate([(10, 50), (20, 100), (30, 150)]):
        img[c, :, :16], img[c, :, 16:] = lo, hi
    data = np.tile(img.reshape(1, -1), (4, 1))

    def write(name: str, n: int) -> None:  # the official format: a pickled dict, data uint8 [N, 3072]
        with open(d / name, "wb") as f:
            pickle.dump({"batch_label": name, "labels": [i % 10 for i in range(n)], "data": data[:n],
                         "filenames": [f"{i}.png" for i in range(n)]}, f, protocol=2)

    for b in range(1, 6):
        write(f"data_batch_{b}", 4)
    write("test_batch", 2)
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [str(i) for i in range(10)], "num_cases_per_batch": 10000, "num_vis": 3072},
                    f, protocol=2)
    return tmp_path / "cifar"


def test_pixelmean_is_the_training_datas_mean_and_travels_with_the_weights(half_and_half_cifar, tmp_path):
    from alexnet.infer import Predictor
    from alexnet.models import load_meta

    common = dict(data=f"cifar10:{half_and_half_cifar}", epochs=1, max_steps=1, batch_size=4, normalize="pixelmean",
                  model_kwargs={"width": 0.125}, amp="off", output_dir=str(tmp_path), ten_crop=False)
    fit(make_config("cifar10", name="measured", **common))
    run = tmp_path / "measured"
    expected = [30 / 255, 60 / 255, 90 / 255]
    assert json.loads((run / "config.json").read_text())["pixel_mean"] == pytest.approx(expected, rel=1e-6)
    assert load_meta(run)["cfg"]["mean"] == pytest.approx(expected, rel=1e-6)
    pred = Predictor(str(run), device="cpu")
    x = torch.full((1, 3, 32, 32), 100, dtype=torch.uint8)
    shift = pred.normalize(x)[0, :, 0, 0]
    torch.testing.assert_close(shift, torch.tensor([70.0, 40.0, 10.0]), rtol=0, atol=1e-3)  # 100 − mean
    # a pca.json with a mean (alexnet data pca-stats writes one) is used as it is
    pca = tmp_path / "pca.json"
    pca.write_text(json.dumps({"eigval": [0.1, 0.01, 0.001], "eigvec": np.eye(3).tolist(), "mean": [0.1, 0.2, 0.3]}))
    fit(make_config("cifar10", name="from-pca", pca=str(pca), **common))
    assert json.loads((tmp_path / "from-pca" / "config.json").read_text())["pixel_mean"] == [0.1, 0.2, 0.3]
