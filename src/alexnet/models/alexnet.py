"""AlexNet: the paper's network, the single-tower torchvision layout, and small-image adaptations.

Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional Neural Networks",
NIPS 2012. Section numbers below refer to that paper.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.errors import UserError
from .lrn import LRN, LRN_ALPHA, LRN_ALPHA_MODES, LRN_BETA, LRN_K, LRN_SIZE  # noqa: F401  (re-exported)
from .registry import ModelCfg, register_model

PAPER = "Krizhevsky, Sutskever & Hinton, NIPS 2012 (ImageNet Classification with Deep CNNs)"


def _ch(n: int, width: float) -> int:
    """Scale a channel count by ``width`` keeping it even (so both towers get equal halves)."""
    return max(2, int(round(n * width / 2)) * 2)


INITS = ("paper", "caffe", "kaiming")  # what --model-arg init= takes for the models of this file


def init_paper(model: nn.Module, ones: Sequence[str], init: str = "paper") -> None:
    """§5: weights N(0, 0.01); biases 1 in conv2, conv4, conv5 and the hidden FC layers, 0 elsewhere.

    ``init="caffe"``: the Caffe reference model's variant (bias 0.1 instead of 1, FC weights std
    0.005), because bias 1 is known to stall some runs at the start. ``init="kaiming"``: He init,
    the safest choice for small datasets and deep variants.
    """
    if init not in INITS:
        raise UserError(f"unknown init {init!r} (use {', '.join(INITS)})")
    model.init_scheme = init  # read by the training loop's advice when the first epoch diverges
    if any(p.is_meta for p in model.parameters()):
        return  # shapes only (the models table): nothing to initialise, and meta init is slow
    for name, m in model.named_modules():
        if not isinstance(m, (nn.Conv2d, nn.Linear)):
            continue
        leaf = name.rsplit(".", 1)[-1]
        if init == "kaiming":
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
            continue
        std = 0.005 if (init == "caffe" and isinstance(m, nn.Linear) and leaf != "fc8") else 0.01
        nn.init.normal_(m.weight, 0.0, std)
        bias = (1.0 if init == "paper" else 0.1) if leaf in ones else 0.0
        nn.init.constant_(m.bias, bias)


class AlexNet(nn.Module):
    """The paper's network (§3.5, Figure 2), both GPU towers in one module via grouped convolutions.

    conv1 96×11×11/4 → ReLU → LRN → pool 3/2 → conv2 256×5×5 (groups=2) → ReLU → LRN → pool →
    conv3 384×3×3 (across towers) → conv4 384×3×3 (groups=2) → conv5 256×3×3 (groups=2) → pool →
    fc6 4096 → ReLU → dropout → fc7 4096 → ReLU → dropout → fc8 (§4.2: the outputs of fc6 and fc7
    are dropped, as in cuda-convnet2's ``dropout1``/``dropout2`` layers and Caffe's ``drop6``/``drop7``;
    pool5's features are not). On 227×227 input the maps are 55×55×96 → 27 → 27×27×256 → 13 →
    13×13×384 → 13×13×384 → 13×13×256 → 6×6×256; (227 − 11)/4 + 1 = 55, as in Caffe. The paper's
    224 is right for the authors' code too: cuda-convnet takes 224×224 crops with conv1 padding 0 and
    rounds the output size up, 1 + ⌈(224 − 11)/4⌉ = 55 (layer.py), the last filters overhanging the
    edge. 60,965,224 parameters at 1000 classes. ``lrn_alpha``: see `LRN` (default ``"per-n"``,
    the authors' code). ``lrn_k`` (default 2, the paper's and cuda-convnet2's) and ``lrn_across``
    (default false: each tower's maps on their own, as the paper's two GPUs): Caffe's
    ``bvlc_alexnet`` is ``lrn_k=1`` (its norm layers set no k; caffe.proto's default is 1) with
    ``lrn_across=true`` (its window runs over all the layer's maps, across the tower boundary).
    """

    BIAS_ONE = ("conv2", "conv4", "conv5", "fc6", "fc7")

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5,
                 init: str = "paper", width: float = 1.0, fc_width: int = 4096, groups: int = 2,
                 lrn_alpha: str = "per-n", lrn_k: float = LRN_K, lrn_across: bool = False, overhang: int = 0):
        super().__init__()
        c1, c2, c3, c4, c5 = (_ch(n, width) for n in (96, 256, 384, 384, 256))
        g = groups
        lg = 1 if lrn_across else g
        edge = [("overhang", nn.ZeroPad2d((0, overhang, 0, overhang)))] if overhang else []  # no parameters
        self.features = nn.Sequential(OrderedDict(edge + [
            ("conv1", nn.Conv2d(in_chans, c1, 11, stride=4)),
            ("relu1", nn.ReLU(inplace=True)),
            ("lrn1", LRN(groups=lg, alpha_mode=lrn_alpha, k=lrn_k)),
            ("pool1", nn.MaxPool2d(3, 2)),  # §3.4 overlapping pooling, s=2 < z=3
            ("conv2", nn.Conv2d(c1, c2, 5, padding=2, groups=g)),
            ("relu2", nn.ReLU(inplace=True)),
            ("lrn2", LRN(groups=lg, alpha_mode=lrn_alpha, k=lrn_k)),
            ("pool2", nn.MaxPool2d(3, 2)),
            ("conv3", nn.Conv2d(c2, c3, 3, padding=1)),  # §3.2: conv3 talks across the GPUs
            ("relu3", nn.ReLU(inplace=True)),
            ("conv4", nn.Conv2d(c3, c4, 3, padding=1, groups=g)),
            ("relu4", nn.ReLU(inplace=True)),
            ("conv5", nn.Conv2d(c4, c5, 3, padding=1, groups=g)),
            ("relu5", nn.ReLU(inplace=True)),
            ("pool5", nn.MaxPool2d(3, 2)),
        ]))
        self.classifier = nn.Sequential(OrderedDict([
            ("fc6", nn.Linear(c5 * 6 * 6, fc_width)),
            ("relu6", nn.ReLU(inplace=True)),
            ("drop6", nn.Dropout(dropout)),  # §4.2: dropout 0.5 on the outputs of fc6 and fc7
            ("fc7", nn.Linear(fc_width, fc_width)),
            ("relu7", nn.ReLU(inplace=True)),
            ("drop7", nn.Dropout(dropout)),
            ("fc8", nn.Linear(fc_width, num_classes)),
        ]))
        init_paper(self, self.BIAS_ONE, init)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer (fc7 after ReLU): the 4096-d vectors of Figure 4 (retrieval)."""
        x = torch.flatten(self.features(x), 1)
        return self.classifier[:-2](x)  # up to relu7: drop7 and fc8 left out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class _Tower(nn.Module):
    """One GPU's half of the paper's network (conv layers); see `AlexNetTowers`."""

    def __init__(self, in_chans: int, c: Sequence[int], lrn_alpha: str = "per-n", lrn_k: float = LRN_K):
        super().__init__()
        c1, c2, c3, c4, c5 = c
        self.conv1 = nn.Conv2d(in_chans, c1, 11, stride=4)
        self.conv2 = nn.Conv2d(c1, c2, 5, padding=2)
        self.conv3 = nn.Conv2d(2 * c2, c3, 3, padding=1)  # sees both towers' conv2 maps
        self.conv4 = nn.Conv2d(c3, c4, 3, padding=1)
        self.conv5 = nn.Conv2d(c4, c5, 3, padding=1)
        self.lrn = LRN(alpha_mode=lrn_alpha, k=lrn_k)
        self.pool = nn.MaxPool2d(3, 2)


class AlexNetTowers(nn.Module):
    """The paper's network as two really separate stacks (§3.2, Figure 2).

    Each tower holds half the kernels of every conv layer; they exchange activations only at
    conv3 and at the fully-connected layers, as the two GTX 580s did. ``devices=("cuda:0",
    "cuda:1")`` places one tower on each device. Computes the same function as `AlexNet` (whose
    grouped convolutions hold the same weights): `load_grouped` copies them over. In training mode
    too: dropout is applied to the concatenated fc6 and fc7 outputs (both towers' halves at once,
    in the grouped form's order), so under the same RNG state both forms drop the same units.
    """

    BIAS_ONE = AlexNet.BIAS_ONE

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5,
                 init: str = "paper", width: float = 1.0, fc_width: int = 4096,
                 devices: Sequence[str | torch.device] | None = None, lrn_alpha: str = "per-n",
                 lrn_k: float = LRN_K, lrn_across: bool = False, overhang: int = 0):
        super().__init__()
        self.overhang = int(overhang)
        if lrn_across:
            raise UserError("lrn_across=true needs the grouped network (towers=1): two separate towers "
                            "cannot normalise by each other's maps")
        half = [_ch(n, width) // 2 for n in (96, 256, 384, 384, 256)]
        self.tower1 = _Tower(in_chans, half, lrn_alpha, lrn_k)
        self.tower2 = _Tower(in_chans, half, lrn_alpha, lrn_k)
        f = fc_width // 2
        self.fc6 = nn.ModuleList([nn.Linear(2 * half[4] * 36, f), nn.Linear(2 * half[4] * 36, f)])
        self.fc7 = nn.ModuleList([nn.Linear(2 * f, f), nn.Linear(2 * f, f)])
        self.fc8 = nn.Linear(2 * f, num_classes)
        self.drop6 = nn.Dropout(dropout)  # on fc6's output, both halves together (§4.2)
        self.drop7 = nn.Dropout(dropout)  # on fc7's output
        self.devices = [torch.device(d) for d in devices] if devices else None
        if self.devices:
            self.tower1.to(self.devices[0]); self.fc6[0].to(self.devices[0]); self.fc7[0].to(self.devices[0])
            self.tower2.to(self.devices[1]); self.fc6[1].to(self.devices[1]); self.fc7[1].to(self.devices[1])
            self.fc8.to(self.devices[0])
        # The same initialisation as the grouped form (§5), drawn there and copied over.
        self.load_grouped(AlexNet(num_classes, in_chans, dropout, init, width, fc_width,
                                  lrn_alpha=lrn_alpha, lrn_k=lrn_k, overhang=overhang).state_dict())

    def _dev(self, i: int, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.devices[i]) if self.devices else x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        t = (self.tower1, self.tower2)
        if self.overhang:
            x = F.pad(x, (0, self.overhang, 0, self.overhang))
        h = [t[i].pool(t[i].lrn(F.relu(t[i].conv1(self._dev(i, x))))) for i in (0, 1)]
        h = [t[i].pool(t[i].lrn(F.relu(t[i].conv2(h[i])))) for i in (0, 1)]
        h = [F.relu(t[i].conv3(torch.cat([h[0], self._dev(0, h[1])], 1).to(h[i].device))) for i in (0, 1)]
        h = [F.relu(t[i].conv4(h[i])) for i in (0, 1)]
        h = [t[i].pool(F.relu(t[i].conv5(h[i]))) for i in (0, 1)]
        z = torch.cat([torch.flatten(h[0], 1), self._dev(0, torch.flatten(h[1], 1))], 1)
        z = [F.relu(self.fc6[i](z.to(self.fc6[i].weight.device))) for i in (0, 1)]
        z = self.drop6(torch.cat([z[0], z[1].to(z[0].device)], 1))
        z = [F.relu(self.fc7[i](z.to(self.fc7[i].weight.device))) for i in (0, 1)]
        return torch.cat([z[0], z[1].to(z[0].device)], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc8(self.drop7(self.forward_features(x)))

    def leaf_order(self) -> list[str]:
        """The leaf modules' names in the order `forward` first runs them (layer by layer, both
        towers at each), not the order they were registered in (all of tower 1, then tower 2):
        what "this layer and everything before it" (``--freeze``) follows."""
        order = []
        for k in range(1, 6):
            order += [f"tower{i}.conv{k}" for i in (1, 2)]
            if k == 1:
                order += [f"tower{i}.{m}" for i in (1, 2) for m in ("lrn", "pool")]
        return order + ["fc6.0", "fc6.1", "drop6", "fc7.0", "fc7.1", "drop7", "fc8"]

    @torch.no_grad()
    def load_grouped(self, sd: dict[str, torch.Tensor]) -> None:
        """Copy the weights of a grouped `AlexNet` state_dict into the two towers."""
        for layer in ("conv1", "conv2", "conv3", "conv4", "conv5"):
            w, b = sd[f"features.{layer}.weight"], sd[f"features.{layer}.bias"]
            n = w.shape[0] // 2
            for i, tower in enumerate((self.tower1, self.tower2)):
                conv = getattr(tower, layer)
                conv.weight.copy_(w[i * n:(i + 1) * n]); conv.bias.copy_(b[i * n:(i + 1) * n])
        for layer in ("fc6", "fc7"):
            w, b = sd[f"classifier.{layer}.weight"], sd[f"classifier.{layer}.bias"]
            n = w.shape[0] // 2
            for i in (0, 1):
                getattr(self, layer)[i].weight.copy_(w[i * n:(i + 1) * n])
                getattr(self, layer)[i].bias.copy_(b[i * n:(i + 1) * n])
        self.fc8.weight.copy_(sd["classifier.fc8.weight"]); self.fc8.bias.copy_(sd["classifier.fc8.bias"])


class AlexNetOWT(nn.Module):
    """The single-tower layout torchvision ships, with the widths of "One Weird Trick" (Krizhevsky
    2014), whose own configuration (cuda-convnet2's layers-imagenet-1gpu.cfg) also had two LRN layers.

    64-192-384-256-256 kernels, no LRN, 224×224 input, adaptive average pool to 6×6;
    61,100,840 parameters. Module names and indices equal ``torchvision.models.alexnet()``'s, so
    its ImageNet weights load with ``strict=True``. Dropout is torchvision's, not the paper's: it
    drops the *inputs* of fc6 and fc7 (pool5's features and fc6's output), where the paper drops
    the outputs of fc6 and fc7; kept so, because these weights were trained that way.
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5, in_chans: int = 3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier[:-1](torch.flatten(self.avgpool(self.features(x)), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class AlexNetSmall(nn.Module):
    """AlexNet's design for small images: CIFAR-10 (32×32×3) and MNIST/digits (28×28×1).

    Kept from the paper: five conv layers then three FC layers, ReLU, dropout 0.5 on the outputs of
    fc6 and fc7 (§4.2; ``dropout_at="torchvision"`` drops the inputs of fc6 and fc7 instead, as
    torchvision and the PyTorch tutorials do — the layout the previous CIFAR-10 recipe used;
    dropout has no parameters, so both layouts have the same state_dict keys), paper layer names.
    Changed, and why: an 11×11 stride-4 first layer would reduce a 32×32
    image to 6×6 at once, so every conv is 3×3 stride 1 with padding 1 and each of the three pools
    is 2×2 stride 2 (the tutorials' adaptation), leaving 4×4 maps for CIFAR (256·4·4 → fc6) and 3×3
    for 28×28 input; no LRN (it adds nothing once inputs are normalised, and costs time); no tower
    split (one device suffices). ``width`` scales every layer, for tests and fast runs.
    ``norm="batch"`` adds batch normalisation after each conv (not in the paper; the CIFAR-10
    recipe uses it, with narrower layers, to train to 87 % in 25 epochs, 20 minutes on 2 CPU
    cores; see docs/cifar10.md).
    """

    BIAS_ONE: tuple[str, ...] = ()

    def __init__(self, num_classes: int = 10, in_chans: int = 3, widths: Sequence[int] = (64, 192, 384, 256, 256),
                 fc_width: int = 4096, dropout: float = 0.5, init: str = "kaiming", width: float = 1.0,
                 input_hw: int = 32, norm: str = "none", dropout_at: str = "paper"):
        super().__init__()
        if norm not in ("none", "batch"):
            raise UserError(f"norm must be none or batch, not {norm!r}")
        if dropout_at not in ("paper", "torchvision"):
            raise UserError(f"dropout_at must be paper or torchvision, not {dropout_at!r}")
        c = [max(1, int(round(w * width))) for w in widths]
        fc = max(1, int(round(fc_width * width)))
        s = input_hw // 8
        layers: list[tuple[str, nn.Module]] = []
        cin = in_chans
        for i, cout in enumerate(c, start=1):
            layers.append((f"conv{i}", nn.Conv2d(cin, cout, 3, padding=1)))
            if norm == "batch":  # optional (Ioffe & Szegedy 2015): not in the paper; see recipes
                layers.append((f"bn{i}", nn.BatchNorm2d(cout)))
            layers.append((f"relu{i}", nn.ReLU(inplace=True)))
            if i in (1, 2, 5):
                layers.append((f"pool{i}", nn.MaxPool2d(2)))
            cin = cout
        self.features = nn.Sequential(OrderedDict(layers))
        fc6 = [("fc6", nn.Linear(c[4] * s * s, fc)), ("relu6", nn.ReLU(inplace=True))]
        fc7 = [("fc7", nn.Linear(fc, fc)), ("relu7", nn.ReLU(inplace=True))]
        drop6, drop7 = [("drop6", nn.Dropout(dropout))], [("drop7", nn.Dropout(dropout))]
        self.dropout_at = dropout_at
        order = fc6 + drop6 + fc7 + drop7 if dropout_at == "paper" else drop6 + fc6 + drop7 + fc7
        self.classifier = nn.Sequential(OrderedDict(order + [("fc8", nn.Linear(fc, num_classes))]))
        init_paper(self, ("conv2", "conv4", "conv5", "fc6", "fc7"), init)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """fc7 after ReLU (the last hidden layer), for retrieval."""
        upto = list(self.classifier._modules).index("relu7") + 1
        return self.classifier[:upto](torch.flatten(self.features(x), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


@register_model("alexnet", ModelCfg(
    input_size=(3, 227, 227), resize=256, min_input_size=(227, 227), year=2012,
    result="ILSVRC-2012 winner: 15.3% top-5 test error (7-CNN ensemble); one CNN 40.7%/18.2% top-1/top-5 val",
    reference=PAPER, notes="the paper's two-tower network, towers as grouped convolutions"),
    accepts=lambda: (AlexNet, AlexNetTowers), fixed=("overhang",))
def alexnet(num_classes: int = 1000, towers: int = 1, **kwargs) -> nn.Module:
    """The paper's network. ``towers=2`` gives `AlexNetTowers`, two really separate stacks. (Its
    ``overhang`` is `alexnet-224`'s, not a --model-arg.)"""
    if towers == 2:
        return AlexNetTowers(num_classes, **kwargs)
    if towers != 1:
        raise UserError(f"towers must be 1 (grouped) or 2 (separate stacks), not {towers}")
    return AlexNet(num_classes, **kwargs)


@register_model("alexnet-224", ModelCfg(
    input_size=(3, 224, 224), resize=256, min_input_size=(224, 224), year=2012,
    result="ILSVRC-2012 winner (as alexnet)", reference=PAPER,
    notes="alexnet on §4.1's 224×224 crops: conv1's last filters overhang the image by 3 pixels of zeros, as "
          "cuda-convnet computed it (1 + ⌈(224 − 11)/4⌉ = 55); the same weights as alexnet"),
    accepts=lambda: (AlexNet, AlexNetTowers), fixed=("overhang",))
def alexnet_224(num_classes: int = 1000, towers: int = 1, **kwargs) -> nn.Module:
    """The paper's network on the paper's 224 crops, as the authors' code ran it: 224 − 11 is not a
    multiple of 4, and cuda-convnet rounded conv1's output up to 55 positions, its last filters
    reading 3 pixels past the right and bottom edges as zeros. Here the zeros are padded on."""
    return alexnet(num_classes, towers, overhang=3, **kwargs)


@register_model("alexnet-owt", ModelCfg(
    input_size=(3, 224, 224), resize=256, min_input_size=(63, 63), year=2014,
    result="torchvision weights: 56.52% top-1, 79.07% top-5 ImageNet val (single crop)",
    reference="Krizhevsky, One weird trick for parallelizing CNNs, arXiv:1404.5997 (torchvision)",
    notes="single tower, no LRN; torchvision.models.alexnet layout"),
    accepts=lambda: (AlexNetOWT,))
def alexnet_owt(num_classes: int = 1000, **kwargs) -> nn.Module:
    return AlexNetOWT(num_classes, **kwargs)


CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


@register_model("alexnet-cifar", ModelCfg(
    input_size=(3, 32, 32), resize=32, num_classes=10, mean=CIFAR10_MEAN, std=CIFAR10_STD,
    min_input_size=(32, 32), year=2012, result="CIFAR-10 adaptation (no ImageNet result)",
    reference=PAPER + "; 32×32 adaptation as in the PyTorch tutorials",
    notes="3×3 convs stride 1, 2×2 pools, 256·4·4 → 4096 → 4096 → classes"),
    accepts=lambda: (AlexNetSmall,))
def alexnet_cifar(num_classes: int = 10, **kwargs) -> nn.Module:
    kwargs.setdefault("input_hw", 32)
    return AlexNetSmall(num_classes, **kwargs)


@register_model("alexnet-mnist", ModelCfg(
    input_size=(1, 28, 28), resize=28, num_classes=10, mean=(0.1307,), std=(0.3081,),
    min_input_size=(28, 28), year=2012, result="MNIST adaptation (no ImageNet result)",
    reference=PAPER + "; 1-channel 28×28 adaptation (also the 8×8 digits, upsampled)",
    notes="1 channel, 3×3 convs, 2×2 pools, narrower (32-64-96-96-64, fc 512)"),
    accepts=lambda: (AlexNetSmall,))
def alexnet_mnist(num_classes: int = 10, **kwargs) -> nn.Module:
    kwargs.setdefault("in_chans", 1)
    kwargs.setdefault("widths", (32, 64, 96, 96, 64))
    kwargs.setdefault("fc_width", 512)
    kwargs.setdefault("input_hw", 28)
    return AlexNetSmall(num_classes, **kwargs)
