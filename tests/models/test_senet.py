"""SENet (Hu, Shen & Sun, ILSVRC-2017): the squeeze-and-excitation block, the two registered
networks' sizes and layouts, the parameter names of the authors' weights as converted to PyTorch,
and that they train, load weights and evaluate like the other models."""

from __future__ import annotations

import hashlib
import re

import pytest
import torch
import torch.nn as nn

from alexnet.cli import main
from alexnet.models import build_model
from alexnet.models.senet import SEBlock, SEModule


def _layout(model: nn.Module) -> tuple[int, str]:
    """The number of state_dict entries and a hash of their names and shapes, in order."""
    sd = model.state_dict()
    lines = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in sd.items())
    return len(sd), hashlib.sha256(lines.encode()).hexdigest()[:16]


@pytest.mark.parametrize("name, params, layout", [
    # parameters: ResNet-50's 25,557,032 plus 2,530,992 in the 16 SE blocks (the paper's "~2.5 million")
    ("se_resnet50", 28_088_024, (384, "88db40d4b5f26f3d")),
    ("senet154", 115_088_984, (1144, "220ca4b3387d7d36")),
])
def test_sizes_and_the_names_of_the_converted_weights(name, params, layout):
    """The layouts hashed are those of Cadene's ``pretrainedmodels`` (0.7.4) ``se_resnet50`` and
    ``senet154``, the PyTorch conversion of the authors' Caffe weights: the same names, shapes and
    order, so such a file loads with ``strict=True``."""
    with torch.device("meta"):
        model = build_model(name)
    assert sum(p.numel() for p in model.parameters()) == params
    assert _layout(model) == layout


def test_the_squeeze_and_excitation_rescales_each_channel_by_a_gate_of_its_mean():
    se = SEModule(32, reduction=16)
    assert (se.fc1.out_channels, se.fc2.out_channels) == (2, 32)
    x = torch.randn(2, 32, 5, 7)
    with torch.no_grad():
        gate = torch.sigmoid(se.fc2(torch.relu(se.fc1(x.mean((2, 3), keepdim=True)))))
        y = se(x)
    assert torch.allclose(y, x * gate, atol=1e-6)
    assert not torch.allclose(y, x)  # a gate, not the identity


def test_the_gate_acts_before_the_shortcut_is_added():
    block = SEBlock(64, (16, 16), 64).eval()
    x = torch.randn(1, 64, 8, 8)
    with torch.no_grad():
        block.se_module.fc2.bias.fill_(-50.0)  # every gate ≈ 0: the branch is switched off
        y = block(x)
    assert torch.allclose(y, torch.relu(x), atol=1e-5)  # only the shortcut is left


def test_where_each_network_strides():
    """SE-ResNet-50 strides in a stage's first 1×1 (the authors' Caffe layout, not torchvision's
    V1.5); SENet-154 in the 3×3, with 64 groups and 3×3 projection shortcuts."""
    r = build_model("se_resnet50", num_classes=3)
    first = r.layer2[0]
    assert (first.conv1.stride, first.conv2.stride) == ((2, 2), (1, 1))
    assert first.downsample[0].kernel_size == (1, 1)
    with torch.device("meta"):
        s = build_model("senet154")
    first = s.layer3[0]
    assert (first.conv1.stride, first.conv2.stride, first.conv2.groups) == ((1, 1), (2, 2), 64)
    assert (first.conv1.out_channels, first.conv2.out_channels) == (512, 1024)  # the halved first 1×1
    assert first.downsample[0].kernel_size == (3, 3)
    assert [len(getattr(s, f"layer{i}")) for i in range(1, 5)] == [3, 8, 36, 3]
    assert s.dropout.p == 0.2 and isinstance(r.dropout, nn.Identity)
    x = torch.zeros(2, 3, 64, 80)  # any input size: the pooling is adaptive
    assert r(x).shape == (2, 3) and r.forward_features(x).shape == (2, 2048)


def test_se_resnet50_trains_and_starts_from_a_converted_state_dict(tmp_path, capsys):
    from PIL import Image

    for c, colour in enumerate(((200, 30, 30), (30, 30, 200))):
        (tmp_path / "d" / f"k{c}").mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (240, 230), colour).save(tmp_path / "d" / f"k{c}" / f"{i}.png")
    start = build_model("se_resnet50")  # 1000 classes, as the authors' weights
    with torch.no_grad():
        start.layer1[0].se_module.fc1.weight.fill_(0.125)
    # as a file saved before PyTorch 0.4.1 (the 2017 conversions): no batch-norm step counters
    torch.save({k: v for k, v in start.state_dict().items() if not k.endswith("num_batches_tracked")},
               tmp_path / "se_resnet50-converted.pth")
    assert main(["train", "--model", "se_resnet50", "--data", str(tmp_path / "d"), "--max-steps", "1", "-b", "4",
                 "--amp", "off", "--val-split", "0.25",
                 "--weights", str(tmp_path / "se_resnet50-converted.pth"),
                 "--output-dir", str(tmp_path / "runs"), "--name", "se"]) == 0
    out = capsys.readouterr().out
    assert "model se_resnet50 (" in out and "2 classes" in out
    from alexnet.models import load_weights

    model, _ = load_weights(tmp_path / "runs" / "se", "cpu")
    assert model.last_linear.out_features == 2
    # one step of training moved it a little from the loaded weights, nowhere near a fresh start's
    assert abs(float(model.layer1[0].se_module.fc1.weight.detach().mean()) - 0.125) < 0.01


@pytest.mark.parametrize("name, kwargs, says", [
    ("se_resnet50", {"reduction": 0}, "reduction 1 or more"),
    ("se_resnet50", {"groups": 3}, "divisible by groups"),
    ("se_resnet50", {"down_kernel": 2}, "broadcast"),  # builds, but its shapes do not add up: found before a run
    ("se_resnet50", {"width_mult": (1, 1, 1)}, "width_mult two multiples"),
    ("resnet18", {"groups": 2}, "BasicBlock only supports"),
    ("googlenet", {"aux_logits": True}, "its training output is GoogLeNetOutputs, not [batch, 3] logits"),
])
def test_a_model_argument_that_makes_no_network_is_one_line(name, kwargs, says):
    from alexnet.core.errors import UserError

    with pytest.raises(UserError, match=rf"model {name} with .*: not a network this builds \(.*{re.escape(says)}"):
        build_model(name, num_classes=3, **kwargs)


def test_depths_make_the_deeper_se_resnets():
    with torch.device("meta"):
        net = build_model("se_resnet50", depths=(3, 4, 23, 3))  # SE-ResNet-101
    assert len(net.layer3) == 23
