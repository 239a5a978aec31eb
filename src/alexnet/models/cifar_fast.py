"""``alexnet-cifar-fast``: airbench94's CIFAR-10 network with ReLU — not AlexNet.

This is Keller Jordan's airbench network (2024; github.com/KellerJordan/cifar10-airbench, the one
that reaches 94 %) with ReLU in place of GELU: a whitening layer, six 3×3 convolutions with
fixed-scale batch norm, and one linear layer. What it shares with AlexNet is only the general
pattern of the era AlexNet started (convolutions, ReLU, max-pooling, a classifier on top); it has
no LRN, no large early kernels, no dropout and one fully connected layer instead of three. It is
here as the reference for CIFAR-10 time to accuracy on a CPU. Its parts:

- a frozen 2×2 **whitening** convolution first (24 filters: the 12 eigenvectors of the 2×2×3 patch
  covariance of the training images, scaled by 1/√eigenvalue, and their negatives), set from the
  data before training by `init_from_data` (§2 of the paper subtracts the mean; this goes one
  step further and decorrelates the pixels);
- three stages of conv 3×3 → max-pool 2×2 → batch norm → ReLU → conv 3×3 → batch norm → ReLU
  (widths 64-256-256 by default, airbench's 94 % network: on 2 CPU cores 64-128-128 runs 1.9×
  as fast but stayed 1.4 points lower at the same epochs, short of 90 % — docs/cifar10.md);
- max-pool 3×3 over the last 3×3 map, one fully connected layer to the classes, logits × 1/9;
- batch norm with a fixed scale (only its bias learns) and ε = 1e-12, convolutions initialised
  as identity on their first input channels (Dirac) — both from airbench;
- ``act``: ``relu`` (the default, the ``cifar10-fast`` recipe) or ``gelu`` (airbench94's own, the
  ``cifar10-airbench`` reference recipe) after the whitening layer and after every batch norm;
  neither has parameters, so the state dict is the same either way.

Its recipe is ``cifar10-fast`` (engine/config.py).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn

from ..core.errors import UserError
from .registry import ModelCfg, register_model

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
WHITEN_K = 2
ACTIVATIONS = ("relu", "gelu")  # --model-arg act=…: ReLU (cifar10-fast) or GELU (airbench94)


def activation(act: str) -> nn.Module:
    """The nonlinearity ``act`` names: ``relu`` (in place) or ``gelu`` (exact, as airbench's ``nn.GELU()``)."""
    if act == "relu":
        return nn.ReLU(inplace=True)
    if act == "gelu":
        return nn.GELU()
    raise UserError(f"act must be one of {', '.join(ACTIVATIONS)}, not {act!r}")


class FixedScaleBN(nn.BatchNorm2d):
    """Batch norm whose scale stays 1 (only the bias learns), ε 1e-12; ``momentum`` as in PyTorch
    (the weight of the new batch in the running statistics)."""

    def __init__(self, n: int, momentum: float = 0.4):
        super().__init__(n, eps=1e-12, momentum=momentum)
        self.weight.requires_grad_(False)


def _conv(cin: int, cout: int, k: int = 3, padding: str | int = "same", bias: bool = False) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, k, padding=padding, bias=bias)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[:min(cin, cout)])
        if conv.bias is not None:
            conv.bias.zero_()
    return conv


class Shift(nn.Module):
    """A learned per-channel offset (the whitening layer's bias, kept apart from the biases that
    ``--bias-lr-mult`` speeds up: in airbench only the batch-norm biases learn 64× faster)."""

    def __init__(self, n: int):
        super().__init__()
        self.offset = nn.Parameter(torch.zeros(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.offset.view(1, -1, 1, 1).to(x.dtype)


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor:g}"


class CifarFast(nn.Module):
    """See the module docstring. ``widths``: the three stages' channels; ``act``: relu or gelu."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, widths: tuple[int, int, int] | list[int] = (64, 256, 256),
                 bn_momentum: float = 0.4, whiten: bool = True, logit_scale: float = 1 / 9,
                 whiten_bias_epochs: int = 3, act: str = "relu"):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) != 3 or min(widths) < 1:
            raise UserError(f"widths must be three positive channel counts, not {list(widths)}")
        w0 = 2 * in_chans * WHITEN_K * WHITEN_K
        layers: list[tuple[str, nn.Module]] = [("whiten", _conv(in_chans, w0, WHITEN_K, padding=0)),
                                               ("shift", Shift(w0)), ("act0", activation(act))]
        cin = w0
        for i, c in enumerate(widths, start=1):
            layers += [(f"conv{i}a", _conv(cin, c)), (f"pool{i}", nn.MaxPool2d(2)),
                       (f"norm{i}a", FixedScaleBN(c, bn_momentum)), (f"act{i}a", activation(act)),
                       (f"conv{i}b", _conv(c, c)), (f"norm{i}b", FixedScaleBN(c, bn_momentum)),
                       (f"act{i}b", activation(act))]
            cin = c
        layers.append(("pool4", nn.MaxPool2d(3)))
        self.features = nn.Sequential(OrderedDict(layers))
        self.classifier = nn.Sequential(OrderedDict([("fc", nn.Linear(cin, num_classes, bias=False)),
                                                     ("scale", Scale(logit_scale))]))
        self.whiten_from_data = whiten
        self.whiten_bias_epochs = int(whiten_bias_epochs)
        # The whitening filters are set from the data, never trained; the offset after them trains
        # for the first epochs of the recipe (`whiten_bias_epochs`), at the base rate.
        self.features.whiten.weight.requires_grad_(False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.features(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))

    def start_epoch(self, epoch: int) -> None:
        """Called by the training loop before each epoch (0-based): the whitening layer's bias
        trains for the first ``whiten_bias_epochs`` epochs only (airbench), then stays fixed."""
        self.features.shift.offset.requires_grad_(epoch < self.whiten_bias_epochs)

    @torch.no_grad()
    def init_from_data(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the whitening filters from normalised training images ``[N, C, H, W]`` (float):
        the eigenvectors of the covariance of their 2×2 patches, each scaled by 1/√(λ + ε), and
        their negatives (so that the ReLU after it keeps both signs)."""
        if not self.whiten_from_data:
            return
        w = self.features.whiten.weight
        c, k = w.shape[1], w.shape[2]
        x = images.float()
        patches = x.unfold(2, k, 1).unfold(3, k, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k)
        patches = patches.double()
        cov = patches.T @ patches / len(patches)
        evals, evecs = torch.linalg.eigh(cov)
        evals, evecs = evals.flip(0), evecs.T.flip(0)  # largest first, one eigenvector per row
        filt = (evecs / torch.sqrt(evals.clamp_min(0) + eps)[:, None]).reshape(c * k * k, c, k, k)
        w.copy_(torch.cat((filt, -filt)).to(w.dtype))


@register_model("alexnet-cifar-fast", ModelCfg(
    input_size=(3, 32, 32), resize=32, num_classes=10, mean=CIFAR_MEAN, std=CIFAR_STD,
    min_input_size=(32, 32), year=2024,
    result="airbench94's network with ReLU, not AlexNet: CIFAR-10 time to accuracy (--recipe cifar10-fast; "
           "no ImageNet result)",
    reference="Jordan 2024, airbench (network, whitening, recipe)",
    notes="whitening 2×2 + 3 × (conv-pool-BN-ReLU-conv-BN-ReLU) 64-256-256 + FC; recipe cifar10-fast"),
    accepts=lambda: (CifarFast,))
def alexnet_cifar_fast(num_classes: int = 10, **kwargs) -> nn.Module:
    return CifarFast(num_classes=num_classes, **kwargs)
