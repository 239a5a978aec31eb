"""ZFNet (Zeiler & Fergus, *Visualizing and Understanding Convolutional Networks*, ECCV 2014;
arXiv:1311.2901): AlexNet's successor at ILSVRC-2013, the network of the paper's Figure 3.

What it changed, and why (§4.1 of that paper): the first layer's 11×11 filters at stride 4 left
"dead" filters and aliasing in the second layer's maps, so layer 1 takes 7×7 filters at stride 2,
and layer 2 a stride of 2; everything else is AlexNet's single-tower layout — 96-256-384-384-256
kernels, ReLU, "contrast normalisation across feature maps" after the first two layers (AlexNet's
LRN here, whose constants that paper does not give), 3×3 max-pooling at stride 2 after layers 1,
2 and 5, two fully connected layers of 4,096 with dropout 0.5, N(0, 0.01) weights and biases 0.

Sizes follow the paper's Figure 3 for a 224×224 input: 110 → 55 → 26 → 13 → 13 → 13 → 6, as
Caffe computes them (the convolution rounds down, the pooling up: ``ceil_mode=True``). Left out:
the paper renormalises each convolution filter whose RMS exceeds 0.1 back to 0.1 during training.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .lrn import LRN
from .registry import ModelCfg, register_model


class ZFNet(nn.Module):
    """Zeiler & Fergus's network (62,357,608 parameters at 1,000 classes)."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5, in_chans: int = 3, lrn: bool = True):
        super().__init__()
        norm = (lambda: LRN()) if lrn else (lambda: nn.Identity())  # noqa: E731
        pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)  # noqa: E731
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 96, 7, stride=2, padding=1), nn.ReLU(inplace=True), pool(), norm(),
            nn.Conv2d(96, 256, 5, stride=2), nn.ReLU(inplace=True), pool(), norm(),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True), pool(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The fc7 vector (after its ReLU and dropout, as in AlexNet's `forward_features`)."""
        return self.classifier[:-1](torch.flatten(self.features(x), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


@register_model("zfnet", ModelCfg(
    input_size=(3, 224, 224), resize=256, min_input_size=(224, 224), family="zfnet", year=2013,
    result="6-net ensemble 14.8% top-5 test error, one net 16.5% top-5 val (Zeiler & Fergus, Table 2); "
           "no pretrained weights",
    reference="Zeiler & Fergus, Visualizing and Understanding Convolutional Networks, ECCV 2014",
    notes="AlexNet's layout with 7×7 stride-2 conv1 and stride-2 conv2, single tower"),
    accepts=lambda: (ZFNet,))
def zfnet(num_classes: int = 1000, **kwargs) -> nn.Module:
    return ZFNet(num_classes, **kwargs)
