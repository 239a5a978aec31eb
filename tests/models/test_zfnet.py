"""ZFNet (Zeiler & Fergus 2013) as its paper's Figure 3 draws it: the map sizes, the parameters, the
initialisation, and that it trains and evaluates like the other models."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from alexnet.cli import main
from alexnet.models import build_model


def test_the_map_sizes_and_parameters_of_figure_3():
    model = build_model("zfnet")
    x, sizes = torch.zeros(1, 3, 224, 224), []
    for layer in model.features:
        x = layer(x)
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            sizes.append((x.shape[1], x.shape[2]))
    assert sizes == [(96, 110), (96, 55), (256, 26), (256, 13), (384, 13), (384, 13), (256, 13), (256, 6)]
    assert sum(p.numel() for p in model.parameters()) == 62_357_608
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.kernel_size, c.stride) for c in convs[:2]] == [((7, 7), (2, 2)), ((5, 5), (2, 2))]
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            assert abs(float(m.weight.std()) - 0.01) < 1e-3 and float(m.bias.abs().max()) == 0.0
    assert model.forward_features(torch.zeros(2, 3, 224, 224)).shape == (2, 4096)
    assert build_model("zfnet", num_classes=5, lrn=False)(torch.zeros(1, 3, 224, 224)).shape == (1, 5)


def test_zfnet_takes_the_photos_recipe():
    from alexnet.engine.recipes import default_recipe

    assert default_recipe("zfnet", None, "folder:d", (3, 230, 240)) == ("photos", "for zfnet on photos")


@pytest.mark.slow  # 6-7 s: a 58-million-parameter step; the recipe chosen from the data is tested on AlexNet too
def test_zfnet_trains_on_photos_with_the_photos_recipe(tmp_path, capsys):
    from PIL import Image

    for c, colour in enumerate(((200, 30, 30), (30, 30, 200))):
        (tmp_path / "d" / f"k{c}").mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (240, 230), colour).save(tmp_path / "d" / f"k{c}" / f"{i}.png")
    assert main(["train", "--model", "zfnet", "--data", str(tmp_path / "d"), "--max-steps", "1", "-b", "4",
                 "--amp", "off", "--val-split", "0.25", "--output-dir", str(tmp_path / "runs"), "--name", "z"]) == 0
    out = capsys.readouterr().out
    assert "recipe photos (for zfnet on photos;" in out and "model zfnet (58,268,802 parameters, 2 classes)" in out


def test_the_weights_fingerprint_reads_tensors_of_any_size():
    """fc6 of the full-size networks has 37,748,736 values: past float32's exact integers, where a
    float linspace of sample positions rounds past the end."""
    from alexnet.models.weights import fingerprint

    big = nn.Linear(9216, 4096)
    a = fingerprint(big)
    with torch.no_grad():
        big.weight[-1, -1] += 1.0  # the very last value is one of the samples
    assert fingerprint(big) != a and len(a) == 16
