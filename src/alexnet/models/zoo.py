"""The ILSVRC winners that followed AlexNet, built from ``torchvision.models`` (not rewritten).

``torchvision.models`` is imported when one of these is built, not when the registry is read: it
pulls in torch._dynamo and costs about a second at start-up.

Results are the published single-model ImageNet validation numbers of torchvision's weights
(acc@1 / acc@5, single 224 crop) and the competition result of each architecture.
"""

from __future__ import annotations

import torch.nn as nn

from .registry import ModelCfg, register_model


def _tv(cls: str):
    """A torchvision model class, imported when its arguments are first asked for."""
    from torchvision import models as tvm

    return getattr(tvm, cls)


def _forward_features_fc(model: nn.Module) -> nn.Module:
    """Give a torchvision net ``forward_features`` (the vector before the last FC layer)."""
    import types

    import torch

    def forward_features(self, x):
        saved = self.fc
        self.fc = nn.Identity()
        try:
            return torch.flatten(self.forward(x), 1)
        finally:
            self.fc = saved

    model.forward_features = types.MethodType(forward_features, model)  # type: ignore[attr-defined]
    return model


@register_model("vgg16", ModelCfg(
    input_size=(3, 224, 224), resize=256, family="vgg", year=2014,
    result="ILSVRC-2014 runner-up (7.3% top-5 test); torchvision weights 71.59% / 90.38%",
    reference="Simonyan & Zisserman, Very Deep Convolutional Networks, ICLR 2015"),
    accepts=lambda: (_tv("VGG"),))
def vgg16(num_classes: int = 1000, **kwargs) -> nn.Module:
    from torchvision import models as tvm

    m = tvm.vgg16(weights=None, num_classes=num_classes, **kwargs)
    import types

    m.forward_features = types.MethodType(lambda self, x: self.classifier[:-1](  # type: ignore[attr-defined]
        __import__("torch").flatten(self.avgpool(self.features(x)), 1)), m)
    return m


@register_model("googlenet", ModelCfg(
    input_size=(3, 224, 224), resize=256, family="inception", year=2014,
    result="ILSVRC-2014 winner (6.67% top-5 test); torchvision weights 69.78% / 89.53%",
    reference="Szegedy et al., Going Deeper with Convolutions, CVPR 2015"),
    accepts=lambda: (_tv("GoogLeNet"),))
def googlenet(num_classes: int = 1000, **kwargs) -> nn.Module:
    from torchvision import models as tvm

    kwargs.setdefault("aux_logits", False)
    kwargs.setdefault("init_weights", True)
    return _forward_features_fc(tvm.googlenet(weights=None, num_classes=num_classes, **kwargs))


@register_model("resnet18", ModelCfg(
    input_size=(3, 224, 224), resize=256, family="resnet", year=2015,
    result="ResNet won ILSVRC-2015 (3.57% top-5 test, ensemble); torchvision weights 69.76% / 89.08%",
    reference="He et al., Deep Residual Learning for Image Recognition, CVPR 2016"),
    accepts=lambda: (_tv("ResNet"),))
def resnet18(num_classes: int = 1000, **kwargs) -> nn.Module:
    from torchvision import models as tvm

    return _forward_features_fc(tvm.resnet18(weights=None, num_classes=num_classes, **kwargs))


@register_model("resnet50", ModelCfg(
    input_size=(3, 224, 224), resize=256, family="resnet", year=2015,
    result="ResNet won ILSVRC-2015 (3.57% top-5 test, ensemble); torchvision weights 76.13% / 92.86%",
    reference="He et al., Deep Residual Learning for Image Recognition, CVPR 2016"),
    accepts=lambda: (_tv("ResNet"),))
def resnet50(num_classes: int = 1000, **kwargs) -> nn.Module:
    from torchvision import models as tvm

    return _forward_features_fc(tvm.resnet50(weights=None, num_classes=num_classes, **kwargs))


@register_model("resnext50_32x4d", ModelCfg(
    input_size=(3, 224, 224), resize=256, family="resnext", year=2016,
    result="ILSVRC-2016 classification runner-up (3.03% top-5 test); torchvision weights 77.62% / 93.70%",
    reference="Xie et al., Aggregated Residual Transformations for Deep Neural Networks, CVPR 2017"),
    accepts=lambda: (_tv("ResNet"),))
def resnext50_32x4d(num_classes: int = 1000, **kwargs) -> nn.Module:
    from torchvision import models as tvm

    return _forward_features_fc(tvm.resnext50_32x4d(weights=None, num_classes=num_classes, **kwargs))
