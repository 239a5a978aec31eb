"""The experiment networks: each switch changes exactly the ingredient it names."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from alexnet.core.errors import UserError
from alexnet.models import LRN, build_model


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_cifar4_is_the_papers_four_layer_net():
    m = build_model("cifar4")
    convs = [x for x in m.modules() if isinstance(x, nn.Conv2d)]
    fcs = [x for x in m.modules() if isinstance(x, nn.Linear)]
    assert [c.out_channels for c in convs] == [32, 32, 64] and all(c.kernel_size == (5, 5) for c in convs)
    assert len(fcs) == 1 and fcs[0].out_features == 10
    # 3·32·25+32 + 32·32·25+32 + 32·64·25+64 + 64·4·4·10+10
    assert n_params(m) == 2432 + 25632 + 51264 + 10250 == 89578
    assert sum(isinstance(x, LRN) for x in m.modules()) == 2
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("name,hw", [("cifar4", 32), ("alexnet-mini", 24)])
def test_switches(name, hw):
    x = torch.randn(2, 3, hw, hw)
    base = build_model(name)
    no_lrn = build_model(name, lrn=False)
    assert any(isinstance(m, LRN) for m in base.modules()) and not any(isinstance(m, LRN) for m in no_lrn.modules())
    assert n_params(base) == n_params(no_lrn)
    tanh = build_model(name, act="tanh")
    assert any(isinstance(m, nn.Tanh) for m in tanh.modules()) and not any(isinstance(m, nn.ReLU) for m in tanh.modules())
    overlap, plain = build_model(name), build_model(name, pool="plain")
    pools_o = [m for m in overlap.modules() if isinstance(m, nn.MaxPool2d)]
    pools_p = [m for m in plain.modules() if isinstance(m, nn.MaxPool2d)]
    assert all(p.kernel_size == 3 and p.stride == 2 for p in pools_o)
    assert all(p.kernel_size == 2 and p.stride == 2 for p in pools_p)
    # §3.4 compares schemes "which produce output of equivalent dimensions"
    assert overlap.features(x).shape == plain.features(x).shape
    assert n_params(overlap) == n_params(plain)
    for m in (base, no_lrn, tanh, plain):
        assert m(x).shape == (2, 10)


def test_mini_towers_depth_and_dropout():
    full, one = build_model("alexnet-mini"), build_model("alexnet-mini", groups=1)
    g = {n: m.groups for n, m in full.features.named_children() if isinstance(m, nn.Conv2d)}
    assert g == {"conv1": 1, "conv2": 2, "conv3": 1, "conv4": 2, "conv5": 2}
    assert all(m.groups == 1 for m in one.modules() if isinstance(m, nn.Conv2d))
    assert n_params(one) > n_params(full)
    for c in ("conv2", "conv3", "conv4"):
        m = build_model("alexnet-mini", drop_conv=c)
        names = [n for n, x in m.features.named_children() if isinstance(x, nn.Conv2d)]
        assert c not in names and len(names) == 4
        assert m(torch.randn(2, 3, 24, 24)).shape == (2, 10)
    # dropout acts on the outputs of fc6 and fc7 (after their activation), as in the paper
    seen = {}
    full.train()
    for name in ("drop6", "drop7"):
        getattr(full.classifier, name).register_forward_hook(lambda mod, inp, out, n=name: seen.__setitem__(n, inp[0]))
    for name in ("act6", "act7"):
        getattr(full.classifier, name).register_forward_hook(lambda mod, inp, out, n=name: seen.__setitem__(n, out))
    full(torch.randn(4, 3, 24, 24))
    assert torch.equal(seen["drop6"], seen["act6"]) and torch.equal(seen["drop7"], seen["act7"])
    assert build_model("alexnet-mini", dropout=0.0).classifier.drop6.p == 0.0


@pytest.mark.parametrize("kw", [{"act": "sigmoid"}, {"pool": "avg"}, {"groups": 3}, {"drop_conv": "conv1"},
                                {"dropout": 1.5}, {"width": 0}])
def test_bad_arguments_are_user_errors(kw):
    with pytest.raises(UserError):
        build_model("alexnet-mini", **kw)


def test_same_init_for_relu_and_tanh():
    torch.manual_seed(0)
    a = build_model("cifar4", act="relu")
    torch.manual_seed(0)
    b = build_model("cifar4", act="tanh")
    for (n, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(p, q), n
    assert a.classifier.fc4.weight.std().item() == pytest.approx(0.01, rel=0.1)


def test_paper_init_is_n_0_001_everywhere_and_saturates_tanh_on_raw_pixels():
    """init="paper" (§5): every weight N(0, 0.01), every bias 0 — what relu-vs-tanh trains with, on
    mean-subtracted pixels in 0‥255 units. There tanh's first layer starts saturated; ReLU's does not."""
    torch.manual_seed(0)
    m = build_model("cifar4", act="tanh", lrn=False, init="paper")
    for name, p in m.named_parameters():
        if name.endswith("weight"):
            assert p.std().item() == pytest.approx(0.01, rel=0.1), name
        else:
            assert torch.count_nonzero(p) == 0, name
    lecun = build_model("cifar4", act="tanh", lrn=False)  # conv1 std 1/√75 ≈ 0.115: not the same init
    assert lecun.features.conv1.weight.std().item() > 0.1
    x = torch.randn(16, 3, 32, 32) * 60  # raw pixels minus the mean: standard deviation ≈ 60
    h = m.features.act1(m.features.conv1(x))
    assert (h.abs() > 0.95).float().mean() > 0.5  # most tanh units saturated at the start
