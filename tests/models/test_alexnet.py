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


def _lrn_by_hand(x: torch.Tensor, i: int, alpha: float) -> torch.Tensor:
    """b_i = a_i / (k + alpha · Σ_{j=i-2}^{i+2} a_j²)^β with k=2, β=0.75 (maps beyond the edge omitted)."""
    lo, hi = max(0, i - 2), min(x.shape[1], i + 3)
    return x[0, i] / (2 + alpha * (x[0, lo:hi] ** 2).sum(0)) ** 0.75


@pytest.mark.parametrize("mode,alpha", [("per-n", 1e-4 / 5), ("paper", 1e-4)])
def test_lrn_each_alpha_convention_equals_its_formula(mode, alpha):
    x = torch.rand(1, 7, 3, 3) * 30  # large enough that the two conventions differ clearly
    y = LRN(alpha_mode=mode)(x)
    for i in (0, 1, 3, 6):  # edges included
        torch.testing.assert_close(y[0, i], _lrn_by_hand(x, i, alpha))
    other = 1e-4 if mode == "per-n" else 1e-4 / 5
    assert not torch.allclose(y[0, 3], _lrn_by_hand(x, 3, other), rtol=1e-4, atol=0)
    assert f"alpha_mode={mode}" in repr(LRN(alpha_mode=mode))
    with pytest.raises(UserError):
        LRN(alpha_mode="half")


def test_lrn_default_is_the_authors_code_and_reaches_every_lrn():
    """Default α/n (cuda-convnet's cmrnorm, Caffe); ``lrn_alpha`` reaches every LRN in both forms."""
    assert LRN().alpha_mode == "per-n"
    for kw in ({}, {"towers": 2}):
        m = build_model("alexnet", num_classes=10, width=0.25, fc_width=64, **kw)
        assert {l.alpha_mode for l in m.modules() if isinstance(l, LRN)} == {"per-n"}
        assert "alpha/size" in repr(m)
        m = build_model("alexnet", num_classes=10, width=0.25, fc_width=64, lrn_alpha="paper", **kw)
        modes = [l.alpha_mode for l in m.modules() if isinstance(l, LRN)]
        assert modes and set(modes) == {"paper"}


def _fc_dropout_inputs(model, x):
    """What fc6 and the two dropouts receive in one train-mode forward pass."""
    seen = {}
    mods = dict(model.named_modules())
    names = {"fc6": "classifier.fc6", "drop6": "classifier.drop6", "drop7": "classifier.drop7",
             "fc7": "classifier.fc7", "pool": "features"}
    hooks = [mods[m].register_forward_hook(lambda mod, inp, out, k=k: seen.update({k: (inp[0].clone(), out.clone())}))
             for k, m in names.items()]
    model.train()
    model(x)
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize("name,size", [("alexnet", 227), ("alexnet-cifar", 32), ("alexnet-mnist", 28)])
def test_dropout_drops_the_outputs_of_fc6_and_fc7_not_pool5(name, size):
    """§4.2: fc6 → ReLU → dropout → fc7 → ReLU → dropout → fc8, in training mode."""
    torch.manual_seed(0)
    kw = {"width": 0.25, "fc_width": 64} if name == "alexnet" else {"width": 0.25}
    m = build_model(name, num_classes=10, **kw)
    x = torch.randn(4, m.features.conv1.in_channels, size, size)
    seen = _fc_dropout_inputs(m, x)
    pool5 = torch.flatten(seen["pool"][1], 1)
    assert torch.equal(seen["fc6"][0], pool5)  # fc6 sees pool5's features undropped
    assert torch.equal(seen["drop6"][0], torch.relu(seen["fc6"][1]))  # dropout sees fc6's output after ReLU
    assert torch.equal(seen["fc7"][0], seen["drop6"][1])
    assert torch.equal(seen["drop7"][0], torch.relu(seen["fc7"][1]))
    dropped = seen["drop6"][1]
    assert (dropped == 0).float().mean() > 0.3 and not torch.equal(dropped, seen["drop6"][0])  # it did drop
    # retrieval's features are fc7 after ReLU: in eval mode exactly the input of drop7
    m.eval()
    seen = {}
    h = m.classifier.drop7.register_forward_hook(lambda mod, inp, out: seen.update(x=inp[0].clone()))
    m(x)
    h.remove()
    torch.testing.assert_close(m.forward_features(x), seen["x"])


def test_small_models_keep_the_tutorial_dropout_layout_on_request():
    torch.manual_seed(0)
    m = build_model("alexnet-cifar", width=0.25, dropout_at="torchvision")
    assert list(m.classifier._modules)[:3] == ["drop6", "fc6", "relu6"]
    paper_keys = build_model("alexnet-cifar", width=0.25).state_dict().keys()
    assert m.state_dict().keys() == paper_keys  # the same checkpoints load either way
    x = torch.randn(2, 3, 32, 32)
    seen = _fc_dropout_inputs(m, x)
    assert not torch.equal(seen["fc6"][0], torch.flatten(seen["pool"][1], 1))  # here pool5 is dropped
    assert m.forward_features(x).shape == (2, m.classifier.fc7.out_features)
    with pytest.raises(UserError):
        build_model("alexnet-cifar", dropout_at="middle")


def test_owt_keeps_torchvision_dropout_layout():
    m = build_model("alexnet-owt")
    kinds = [type(l).__name__ for l in m.classifier]
    assert kinds == ["Dropout", "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Linear"]


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


def test_towers_equal_grouped_form_in_training_mode():
    """Same dropout positions and, under the same RNG state, the same dropout masks."""
    torch.manual_seed(3)
    grouped = build_model("alexnet", num_classes=10, width=0.25, fc_width=64).train()
    towers = build_model("alexnet", num_classes=10, width=0.25, fc_width=64, towers=2).train()
    towers.load_grouped(grouped.state_dict())
    x = torch.randn(3, 3, 227, 227)
    torch.manual_seed(7)
    a = grouped(x)
    torch.manual_seed(7)
    b = towers(x)
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    torch.manual_seed(8)
    assert not torch.allclose(towers(x), a, rtol=1e-3, atol=1e-4)  # dropout is on: another draw differs
    # the towers' dropouts see fc6's and fc7's outputs after ReLU, both halves together
    seen = {}
    for k in ("drop6", "drop7"):
        getattr(towers, k).register_forward_hook(lambda m, i, o, k=k: seen.update({k: i[0].clone()}))
    fc = {}
    for k in ("fc6", "fc7"):
        for i in (0, 1):
            getattr(towers, k)[i].register_forward_hook(lambda m, inp, o, k=k, i=i: fc.update({(k, i): o.clone()}))
    towers(x)
    for k in ("fc6", "fc7"):
        torch.testing.assert_close(seen[f"drop{k[-1]}"], torch.relu(torch.cat([fc[(k, 0)], fc[(k, 1)]], 1)))
    assert seen["drop6"].shape[1] == 64


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


@pytest.mark.parametrize("size, says", [
    ((3, 1, 1), "alexnet cannot run on a 3×1×1 input: "),
    ((1, 227, 227), "alexnet cannot run on a 1×227×227 input: "),  # grey into a colour conv1
    ((227, 227), "input_size is (channels, height, width)"),
])
def test_summarize_says_which_input_a_network_cannot_take(size, says):
    from alexnet import build_model, summarize
    from alexnet.core.errors import UserError

    with pytest.raises(UserError) as e:
        summarize(build_model("alexnet"), size)
    assert str(e.value).startswith(says) and "\n" not in str(e.value)


def test_alexnet_224_is_cuda_convnets_overhanging_conv1_with_alexnets_weights():
    """224 crops: conv1 at 55×55 positions, the last reading 3 pixels of zeros past the right and
    bottom edges (cuda-convnet's 1 + ⌈(224 − 11)/4⌉); the same parameters as alexnet, so its weights
    load; equal to alexnet on the crop zero-padded to 227; two towers too."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    a = build_model("alexnet", num_classes=10, width=0.25, fc_width=64).eval()
    b = build_model("alexnet-224", num_classes=10, width=0.25, fc_width=64).eval()
    b.load_state_dict(a.state_dict())  # no key more or less
    x = torch.randn(2, 3, 224, 224)
    assert torch.allclose(b(x), a(F.pad(x, (0, 3, 0, 3))), atol=1e-5)
    assert b.features.conv1(b.features.overhang(x)).shape[-2:] == (55, 55)
    t = build_model("alexnet-224", num_classes=10, towers=2, width=0.25, fc_width=64).eval()
    t.load_grouped(a.state_dict())
    assert torch.allclose(t(x), b(x), atol=1e-5)
    with pytest.raises(UserError):
        build_model("alexnet-224", num_classes=10, overhang=5)
