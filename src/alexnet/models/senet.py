"""SENet (Hu, Shen & Sun, *Squeeze-and-Excitation Networks*, CVPR 2018; arXiv:1709.01507): the
ILSVRC-2017 winner, the last of the challenge.

The squeeze-and-excitation block (that paper's §3, Figure 3): a residual branch's output ``u`` (C
channels) is averaged over space (squeeze), passed through two fully connected layers C → C/16 →
C with a ReLU between and a sigmoid after (excitation, reduction ratio r = 16), and the C numbers
rescale ``u``'s channels before the identity is added.

Two networks, laid out as the authors' released Caffe models are (github.com/hujie-frank/SENet),
with the parameter names of their PyTorch conversion (Cadene's ``pretrainedmodels``), so that a
state_dict converted from the authors' weights loads with ``--weights FILE.pth``:

- ``se_resnet50``: ResNet-50 with an SE block in each of its 16 bottlenecks. As in the original
  ResNet's Caffe models (and unlike torchvision's ``resnet50``, "V1.5"), a stage's first block
  strides in its first 1×1 convolution, not in its 3×3; the stem's max-pooling rounds up.
- ``senet154``: the challenge network (the paper's §6.1 and Appendix): SE-ResNeXt-152 (64 × 4d) with
  its three changes — the first 1×1 convolution of each block halved, the 7×7 stem replaced by
  three 3×3 convolutions, the downsampling projections 3×3 at stride 2 instead of 1×1 — and
  dropout 0.2 before the classifier. Blocks 3-8-36-3, 115 M parameters.

The SE layers' 1×1 convolutions are the paper's fully connected layers (with biases), applied to a
1×1 map. Weights start as torchvision's ResNets do (He normal, fan out; batch norm 1 and 0).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn

from .registry import ModelCfg, register_model


class SEModule(nn.Module):
    """Squeeze (global average pooling) and excitation (C → C/r → C, ReLU then sigmoid) of §3."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, kernel_size=1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))


class SEBlock(nn.Module):
    """A bottleneck (1×1 → 3×3 → 1×1, batch norm after each) whose output an `SEModule` rescales
    before the shortcut is added. ``widths``: the two inner widths; ``stride_in_1x1``: stride in the
    first convolution (SE-ResNet, as Caffe's ResNets) or in the 3×3 (SENet-154, ResNeXt)."""

    def __init__(self, inplanes: int, widths: tuple[int, int], out: int, *, groups: int = 1,
                 reduction: int = 16, stride: int = 1, stride_in_1x1: bool = True,
                 downsample: nn.Module | None = None):
        super().__init__()
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = nn.Conv2d(inplanes, widths[0], 1, stride=s1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.conv2 = nn.Conv2d(widths[0], widths[1], 3, stride=s3, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(widths[1])
        self.conv3 = nn.Conv2d(widths[1], out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.se_module = SEModule(out, reduction)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(self.se_module(y) + shortcut)


class SENet(nn.Module):
    """Stem, four stages of `SEBlock` (output widths 256-512-1024-2048), global average pooling,
    optional dropout and the classifier ``last_linear``.

    ``depths``: blocks per stage. ``groups`` and ``width_mult`` set the inner widths: a stage of
    ``planes`` (64, 128, 256, 512) has inner widths (planes·w₁, planes·w₂), ``width_mult = (w₁, w₂)``:
    (1, 1) for SE-ResNet, (2, 4) with 64 groups for SENet-154. ``deep_stem``: three 3×3 convolutions
    (64-64-128) instead of one 7×7 (64). ``down_kernel``: the projection shortcuts' kernel (1 or 3;
    the first stage's is 1×1 always)."""

    def __init__(self, depths: tuple[int, ...] = (3, 4, 6, 3), num_classes: int = 1000, *, groups: int = 1,
                 width_mult: tuple[int, int] = (1, 1), reduction: int = 16, deep_stem: bool = False,
                 down_kernel: int = 1, stride_in_1x1: bool = True, dropout: float = 0.0, in_chans: int = 3):
        super().__init__()
        if len(depths) != 4 or min(depths) < 1 or len(width_mult) != 2 or min(width_mult) < 1 or reduction < 1:
            raise ValueError("depths takes four block counts of 1 or more, width_mult two multiples of 1 or more, "
                             "reduction 1 or more")
        if deep_stem:
            stem = [("conv1", nn.Conv2d(in_chans, 64, 3, stride=2, padding=1, bias=False)), ("bn1", nn.BatchNorm2d(64)),
                    ("relu1", nn.ReLU(inplace=True)),
                    ("conv2", nn.Conv2d(64, 64, 3, padding=1, bias=False)), ("bn2", nn.BatchNorm2d(64)),
                    ("relu2", nn.ReLU(inplace=True)),
                    ("conv3", nn.Conv2d(64, 128, 3, padding=1, bias=False)), ("bn3", nn.BatchNorm2d(128)),
                    ("relu3", nn.ReLU(inplace=True))]
            inplanes = 128
        else:
            stem = [("conv1", nn.Conv2d(in_chans, 64, 7, stride=2, padding=3, bias=False)), ("bn1", nn.BatchNorm2d(64)),
                    ("relu1", nn.ReLU(inplace=True))]
            inplanes = 64
        self.layer0 = nn.Sequential(OrderedDict([*stem, ("pool", nn.MaxPool2d(3, stride=2, ceil_mode=True))]))
        for i, (planes, depth) in enumerate(zip((64, 128, 256, 512), depths)):
            stride, kernel = (1, 1) if i == 0 else (2, down_kernel)
            out = planes * 4
            down = None
            if stride != 1 or inplanes != out:
                down = nn.Sequential(nn.Conv2d(inplanes, out, kernel, stride=stride, padding=kernel // 2, bias=False),
                                     nn.BatchNorm2d(out))
            widths = (planes * width_mult[0], planes * width_mult[1])
            blocks = [SEBlock(inplanes, widths, out, groups=groups, reduction=reduction, stride=stride,
                              stride_in_1x1=stride_in_1x1, downsample=down)]
            blocks += [SEBlock(out, widths, out, groups=groups, reduction=reduction, stride_in_1x1=stride_in_1x1)
                       for _ in range(depth - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            inplanes = out
        self.avg_pool = nn.AdaptiveAvgPool2d(1)  # the authors' 7×7 average pooling at 224, any size here
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.last_linear = nn.Linear(inplanes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled vector before the classifier (2,048 values)."""
        for i in range(5):
            x = getattr(self, f"layer{i}")(x)
        return torch.flatten(self.avg_pool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_linear(self.dropout(self.forward_features(x)))


_AUTHORS = "the authors' Caffe models, github.com/hujie-frank/SENet, Table 1: single 224 crop of a 256 short side"
_REF = "Hu, Shen & Sun, Squeeze-and-Excitation Networks, CVPR 2018"


@register_model("se_resnet50", ModelCfg(
    input_size=(3, 224, 224), resize=256, family="senet", year=2017,
    result=f"SENet won ILSVRC-2017 (2.251% top-5 test, ensemble); SE-ResNet-50 22.37% / 6.36% top-1/top-5 val "
           f"error ({_AUTHORS}); no pretrained weights here", reference=_REF,
    notes="ResNet-50 (stride in the first 1×1, as Caffe's) with a squeeze-and-excitation block in every bottleneck"),
    accepts=lambda: (SENet,))
def se_resnet50(num_classes: int = 1000, **kwargs) -> nn.Module:
    return SENet(kwargs.pop("depths", (3, 4, 6, 3)), num_classes, **kwargs)  # depths=3,4,23,3: SE-ResNet-101


@register_model("senet154", ModelCfg(
    input_size=(3, 224, 224), resize=256, family="senet", year=2017,
    result=f"ILSVRC-2017 winner (2.251% top-5 test, ensemble); SENet-154 18.68% / 4.47% top-1/top-5 val error "
           f"({_AUTHORS}); no pretrained weights here", reference=_REF,
    notes="SE-ResNeXt-152 (64 × 4d) with a 3×3 stem, 3×3 projections and dropout 0.2"),
    accepts=lambda: (SENet,))
def senet154(num_classes: int = 1000, **kwargs) -> nn.Module:
    kwargs = {"groups": 64, "width_mult": (2, 4), "deep_stem": True, "down_kernel": 3, "stride_in_1x1": False,
              "dropout": 0.2, **kwargs}
    return SENet(kwargs.pop("depths", (3, 8, 36, 3)), num_classes, **kwargs)
