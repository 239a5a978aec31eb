"""The paper's network, exactly: parameter counts, shapes, grouping, towers, initialisation."""

import pytest
import torch
import torch.nn as nn
import torchvision

from alexnet.core.errors import UserError
from alexnet.models import LRN, build_model, list_models, model_cfg, summarize


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.fixture(scope="module")
def paper():
    torch.manual_seed(0)
    return build_model("alexnet")


def test_paper_parameter_count(paper):
    assert n_params(paper) == 60_965_224
    assert n_params(paper.features.conv1) == 34_944
    assert n_params(paper.classifier.fc6) == 37_752_832


def test_owt_parameter_count():
    assert n_params(build_model("alexnet-owt")) == 61_100_840


def test_paper_layer_shapes(paper):
    s = summarize(paper, (3, 227, 227))
    shapes = {r.name.split(".")[-1]: r.output_shape for r in s.rows}
    assert shapes["conv1"] == [96, 55, 55]
    assert shapes["pool1"] == [96, 27, 27]
    assert shapes["conv2"] == [256, 27, 27]
    assert shapes["pool2"] == [256, 13, 13]
    assert shapes["conv3"] == [384, 13, 13]
    assert shapes["conv4"] == [384, 13, 13]
    assert shapes["conv5"] == [256, 13, 13]
    assert shapes["pool5"] == [256, 6, 6]
    assert shapes["fc8"] == [1000]
    assert s.total_params == 60_965_224


def test_paper_layers_named_as_in_paper(paper):
    names = {n.split(".")[-1] for n, _ in paper.named_modules()}
    assert {"conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"} <= names


def test_grouped_layers_are_grouped(paper):
    f = paper.features
    assert f.conv2.weight.shape == (256, 48, 5, 5) and f.conv2.groups == 2
    assert f.conv3.weight.shape == (384, 256, 3, 3) and f.conv3.groups == 1
    assert f.conv4.weight.shape == (384, 192, 3, 3) and f.conv4.groups == 2
    assert f.conv5.weight.shape == (256, 192, 3, 3) and f.conv5.groups == 2


def test_lrn_uses_paper_formula():
    x = torch.rand(1, 7, 3, 3) * 10
    y = LRN()(x)
    # b_i = a_i / (k + α Σ_{j=i-2}^{i+2} a_j²)^β, §3.3, with k=2, α=1e-4, β=0.75
    i = 3
    denom = (2 + 1e-4 * (x[0, i - 2:i + 3] ** 2).sum(0)) ** 0.75
    torch.testing.assert_close(y[0, i], x[0, i] / denom)


def test_towers_equal_grouped_form(paper):
    torch.manual_seed(1)
    small = build_model("alexnet", num_classes=10, width=0.25, fc_width=64).eval()
    towers = build_model("alexnet", num_classes=10, width=0.25, fc_width=64, towers=2).eval()
    towers.load_grouped(small.state_dict())
    assert n_params(towers) == n_params(small)
    x = torch.randn(2, 3, 227, 227)
    torch.testing.assert_close(towers(x), small(x), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(towers.forward_features(x), small.forward_features(x), rtol=1e-5, atol=1e-6)
    full = build_model("alexnet", towers=2)
    assert n_params(full) == 60_965_224


def test_towers_is_not_trivially_equal():
    """The equality above could not pass by accident: other weights give other outputs."""
    torch.manual_seed(2)
    a = build_model("alexnet", num_classes=10, width=0.25, fc_width=64).eval()
    b = build_model("alexnet", num_classes=10, width=0.25, fc_width=64, towers=2).eval()
    x = torch.randn(1, 3, 227, 227)
    assert not torch.allclose(a(x), b(x))


@pytest.mark.parametrize("init,bias_one,fc_std", [("paper", 1.0, 0.01), ("caffe", 0.1, 0.005)])
def test_init_statistics(init, bias_one, fc_std):
    torch.manual_seed(0)
    m = build_model("alexnet", init=init)
    layers = {**{n: getattr(m.features, n) for n in ("conv1", "conv2", "conv3", "conv4", "conv5")},
              **{n: getattr(m.classifier, n) for n in ("fc6", "fc7", "fc8")}}
    for name, layer in layers.items():
        expected_bias = bias_one if name in ("conv2", "conv4", "conv5", "fc6", "fc7") else 0.0
        assert torch.all(layer.bias == expected_bias), name
        std = fc_std if isinstance(layer, nn.Linear) and name != "fc8" else 0.01
        assert abs(layer.weight.std().item() - std) < 0.05 * std, name
        assert abs(layer.weight.mean().item()) < 0.05 * std, name


def test_owt_loads_torchvision_weights_strict():
    torch.manual_seed(0)
    tv = torchvision.models.alexnet(weights=None).eval()
    ours = build_model("alexnet-owt").eval()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in tv.state_dict().items()}
    ours.load_state_dict(tv.state_dict(), strict=True)
    x = torch.randn(2, 3, 224, 224)
    assert torch.equal(ours(x), tv(x))


def test_small_variants_shapes():
    assert build_model("alexnet-cifar").classifier.fc6.in_features == 256 * 4 * 4
    m = build_model("alexnet-mnist")
    assert m.features.conv1.in_channels == 1
    assert m(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("name", list_models())
def test_every_model_forward_backward(name):
    cfg = model_cfg(name)
    h, w = cfg.min_input_size
    kwargs = {"width": 0.25, "fc_width": 64} if name == "alexnet" else {}
    m = build_model(name, num_classes=7, **kwargs)
    m.train()
    x = torch.randn(2, cfg.input_size[0], h, w)
    out = m(x)
    assert out.shape == (2, 7)
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)
    feats = m.eval().forward_features(x)
    assert feats.ndim == 2 and feats.shape[0] == 2


def test_registry_cfgs_complete():
    for name in list_models():
        cfg = model_cfg(name)
        assert len(cfg.mean) == len(cfg.std) == cfg.input_size[0]
        assert cfg.reference and cfg.result and cfg.year >= 2012
    assert model_cfg("alexnet").input_size == (3, 227, 227)
    assert model_cfg("resnext50_32x4d").year == 2016


def test_unknown_model_lists_close_matches():
    with pytest.raises(UserError, match="did you mean: alexnet"):
        build_model("alexnett")
    with pytest.raises(UserError):
        model_cfg("nope")
