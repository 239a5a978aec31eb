"""Transforms: the paper's train/eval geometry, ten-crop, PCA lighting, normalisation."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from alexnet.core.errors import UserError
from alexnet.data import (IMAGENET_PCA, Normalizer, PCALighting, TenCrop, TensorImageDataset, build_transforms,
                          compute_pca_stats, normalizer_for, resolve_aug)


def cfg(c=3, h=72, w=72, resize=80, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
    return SimpleNamespace(input_size=(c, h, w), resize=resize, mean=mean, std=std)


def coords(h, w) -> torch.Tensor:
    """uint8 [3, h, w]: R = column, G = row (so a crop tells where it came from), B = 7."""
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([x, y, torch.full_like(x, 7)]).to(torch.uint8)


def test_auto_picks_small_for_small_images_and_paper_for_large():
    assert resolve_aug(cfg(h=32, w=32, resize=32), "auto") == "small"
    assert resolve_aug(cfg(h=224, w=224, resize=256), "auto") == "paper"
    with pytest.raises(UserError, match="unknown augmentation"):
        build_transforms(cfg(), True, aug="fancy")
    with pytest.raises(UserError, match="ten-crop"):
        build_transforms(cfg(), True, ten_crop=True)


def test_eval_is_resize_then_exact_centre_crop():
    t = build_transforms(cfg(), train=False)
    img = coords(80, 80)
    out = t(img)
    assert out.dtype == torch.uint8 and torch.equal(out, img[:, 4:76, 4:76])
    assert t.decode_short_side == 80
    wide = t(coords(40, 60))  # short side 40 → 80: 80×120, centre 72×72
    assert wide.shape == (3, 72, 72)


def test_paper_train_crops_inside_the_centre_square_and_flips():
    t = build_transforms(cfg(), train=True, aug="paper", alphastd=0.0)
    img = coords(80, 120)  # short side already 80; the centre square is columns 20..99
    lefts, flips = set(), 0
    torch.manual_seed(0)
    for _ in range(200):
        out = t(img)
        assert out.shape == (3, 72, 72) and out.dtype == torch.uint8
        r = out[0, 0].int()
        flipped = bool(r[0] > r[-1])
        flips += flipped
        left = int(r.min())
        assert 20 <= left and int(r.max()) <= 99 and int(r.max()) - left == 71
        top = int(out[1, :, 0].min())
        assert 0 <= top <= 8
        lefts.add(left)
    assert lefts == set(range(20, 29))  # every horizontal offset of the 80→72 crop
    assert 60 < flips < 140


def test_paper_train_has_pca_lighting_with_default_imagenet_values():
    t = build_transforms(cfg(), train=True, aug="paper")
    pca = [s for s in t.steps if isinstance(s, PCALighting)]
    assert len(pca) == 1 and pca[0].eigval.tolist() == pytest.approx(IMAGENET_PCA["eigval"])
    assert not any(isinstance(s, PCALighting) for s in build_transforms(cfg(), True, aug="light").steps)


def test_pca_from_json_file(tmp_path):
    stats = {"eigval": [1.0, 0.5, 0.25], "eigvec": np.eye(3).tolist()}
    (tmp_path / "pca.json").write_text(json.dumps(stats))
    t = build_transforms(cfg(), train=True, aug="paper", pca=str(tmp_path / "pca.json"))
    assert [s for s in t.steps if isinstance(s, PCALighting)][0].eigval.tolist() == [1.0, 0.5, 0.25]
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(UserError, match="eigval"):
        build_transforms(cfg(), train=True, aug="paper", pca=str(tmp_path / "bad.json"))


def test_small_pads_and_crops_and_never_flips_one_channel_images():
    t = build_transforms(cfg(h=32, w=32, resize=32), train=True)  # auto → small
    img = coords(32, 32)
    torch.manual_seed(0)
    shifts = set()
    for _ in range(100):
        out = t(img)
        assert out.shape == (3, 32, 32)
        r = out[0, 16].int()
        nz = r[out[2, 16] == 7]  # pixels from the image (padding is 0)
        shifts.add(int(nz[0]) if nz[0] < nz[-1] else -int(nz[-1]) - 1)
    assert len(shifts) > 8  # both directions, several offsets
    gray = build_transforms(cfg(c=1, h=28, w=28, resize=28), train=True, aug="light")
    img1 = torch.arange(28 * 28, dtype=torch.int64).reshape(1, 28, 28).remainder(251).to(torch.uint8)
    assert all(torch.equal(gray(img1), img1) for _ in range(50))  # light, same size, 1 channel: identity


def test_channels_are_converted_to_the_models():
    rgb = torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8)
    to_gray = build_transforms(cfg(c=1, h=8, w=8, resize=8), train=False)
    g = to_gray(rgb)
    assert g.shape == (1, 8, 8) and g.dtype == torch.uint8
    expected = (0.2989 * rgb[0].float() + 0.587 * rgb[1].float() + 0.114 * rgb[2].float())
    assert (g[0].float() - expected).abs().max() <= 1
    to_rgb = build_transforms(cfg(c=3, h=8, w=8, resize=8), train=False)
    out = to_rgb(g)
    assert out.shape == (3, 8, 8) and torch.equal(out[0], g[0]) and torch.equal(out[2], g[0])


def test_ten_crop_geometry_is_exact():
    t = build_transforms(cfg(), train=False, ten_crop=True)
    img = coords(80, 100)  # short side 80 stays; centre square = columns 10..89
    out = t(img)
    assert out.shape == (10, 3, 72, 72) and out.dtype == torch.uint8
    sq = img[:, :, 10:90]
    expect = [(0, 0), (0, 8), (8, 0), (8, 8), (4, 4)]  # tl, tr, bl, br, centre
    for k, (top, left) in enumerate(expect):
        assert torch.equal(out[k], sq[:, top:top + 72, left:left + 72]), k
        assert torch.equal(out[k + 5], out[k].flip(-1)), k + 5
    assert TenCrop((72, 72)).boxes(80, 80) == expect


@pytest.mark.parametrize("scale", ["sqrt", "eigval"])
def test_pca_lighting_shift_is_exactly_the_chosen_formula(scale):
    """shift = eigvec @ (α ⊙ s) with α ~ N(0, 0.1): s = √λ (cuda-convnet2) or λ (the paper's text)."""
    q, _ = torch.linalg.qr(torch.tensor([[1.0, 0.3, 0.2], [0.1, 1.0, 0.4], [0.3, 0.2, 1.0]]))
    eigval = torch.tensor([0.2, 0.05, 0.01])
    lighting = PCALighting(eigval.tolist(), q.tolist(), alphastd=0.1, scale=scale)
    torch.manual_seed(5)
    alpha = torch.randn(3) * 0.1
    s = eigval.sqrt() if scale == "sqrt" else eigval
    expected = q @ (alpha * s)
    torch.manual_seed(5)
    torch.testing.assert_close(lighting.shift(), expected)
    other = eigval if scale == "sqrt" else eigval.sqrt()
    assert not torch.allclose(expected, q @ (alpha * other), atol=1e-4)
    torch.manual_seed(5)
    img = torch.full((3, 2, 2), 100, dtype=torch.uint8)  # uint8: the [0, 1] shift × 255, rounded
    out = lighting(img)
    assert torch.equal(out, (100 + 255 * expected).round().clamp(0, 255).to(torch.uint8).view(3, 1, 1).expand(3, 2, 2))
    assert f"scale={scale}" in repr(lighting)


def test_pca_lighting_default_scale_is_the_authors_code_and_reaches_the_transform():
    assert PCALighting().scale == "sqrt"
    for scale in ("sqrt", "eigval"):
        t = build_transforms(cfg(), train=True, aug="paper", pca_scale=scale)
        assert [st.scale for st in t.steps if isinstance(st, PCALighting)] == [scale]
    with pytest.raises(UserError, match="scale"):
        PCALighting(scale="var")


def test_pca_lighting_moves_colour_along_eigenvectors_at_the_right_scale():
    q, _ = torch.linalg.qr(torch.tensor([[1.0, 0.3, 0.2], [0.1, 1.0, 0.4], [0.3, 0.2, 1.0]]))
    eigval = torch.tensor([0.2, 0.05, 0.01])
    lighting = PCALighting(eigval.tolist(), q.tolist(), alphastd=0.1, scale="eigval")
    img = torch.full((3, 4, 4), 128, dtype=torch.uint8)
    torch.manual_seed(0)
    n = 4000
    shifts = torch.stack([lighting(img).float().mean((1, 2)) - 128 for _ in range(n)])  # [n, 3]
    proj = shifts @ q  # coordinates along the eigenvectors
    std = proj.std(0)
    expected = 255 * 0.1 * eigval
    assert std[0] == pytest.approx(float(expected[0]), rel=0.06)
    assert std[1] == pytest.approx(float(expected[1]), rel=0.1)
    assert std[2] < 0.6  # 0.26 levels + rounding to whole levels
    assert proj.mean(0).abs().max() < 0.2  # zero-mean
    # float images are taken to be in [0, 1]: the exact shift, no rounding
    torch.manual_seed(1)
    x = torch.full((3, 2, 2), 0.5)
    y = lighting(x)
    torch.manual_seed(1)
    assert torch.allclose(y - x, lighting.shift().view(3, 1, 1).expand(3, 2, 2))
    assert torch.equal(PCALighting(alphastd=0.0)(img), img)


def test_normalizer_meanstd_and_pixelmean():
    c = cfg()
    x = torch.randint(0, 256, (2, 3, 5, 5), dtype=torch.uint8)
    n = normalizer_for(c)
    y = n(x)
    mean, std = torch.tensor(c.mean).view(3, 1, 1), torch.tensor(c.std).view(3, 1, 1)
    assert y.dtype == torch.float32 and torch.allclose(y, (x.float() / 255 - mean) / std, atol=1e-5)
    assert torch.allclose(n(x.float()), y)  # floats are in the same 0..255 units
    assert torch.allclose(n(x[0]), y[0]) and n(x.unsqueeze(1)).shape == (2, 1, 3, 5, 5)  # CHW, ten-crop
    cl = n(x.contiguous(memory_format=torch.channels_last))
    assert cl.is_contiguous(memory_format=torch.channels_last) and torch.allclose(cl, y)
    p = normalizer_for(c, mode="pixelmean")(x)
    assert torch.allclose(p, x.float() - 255 * mean, atol=1e-4)  # raw pixel units, as in the paper
    assert list(n.state_dict()) == []  # no persistent buffers: a model wrapped with it keeps its keys
    with pytest.raises(UserError):
        Normalizer((0.5,), (0.5,), mode="zscore")


def test_normalizer_for_one_channel_cfg_with_rgb_stats():
    n = normalizer_for(cfg(c=1, h=8, w=8, resize=8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)))
    x = torch.full((1, 1, 2, 2), 255, dtype=torch.uint8)
    assert torch.allclose(n(x), torch.full((1, 1, 2, 2), 2.0))
    with pytest.raises(ValueError, match="3-channel"):
        n(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))


def test_compute_pca_stats_recovers_the_colour_covariance():
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g))
    z = torch.randn(16, 3, 24 * 24, generator=g) * torch.tensor([40.0, 15.0, 5.0]).view(1, 3, 1)
    pix = (128 + torch.einsum("ij,njp->nip", q, z)).round().clamp(0, 255)
    images = pix.reshape(16, 3, 24, 24).to(torch.uint8)
    ds = TensorImageDataset(images, [0] * 16, ["x"], name="synthetic")
    stats = compute_pca_stats(ds, max_images=100)
    allpix = images.permute(1, 0, 2, 3).reshape(3, -1).double() / 255
    ref_val, ref_vec = torch.linalg.eigh(torch.cov(allpix, correction=0))
    assert stats["eigval"] == pytest.approx(ref_val.flip(0).tolist(), rel=1e-4)
    vec = torch.tensor(stats["eigvec"], dtype=torch.float64)
    for k in range(3):  # the same directions (up to sign), as columns
        assert abs(float(vec[:, k] @ ref_vec[:, 2 - k])) == pytest.approx(1.0, abs=1e-4)
    assert stats["images"] == 16 and stats["pixels"] == 16 * 576
    assert stats["eigval"][0] == pytest.approx((40 / 255) ** 2, rel=0.1)
    with pytest.raises(UserError, match="RGB"):
        compute_pca_stats(TensorImageDataset(images[:, :1].contiguous(), [0] * 16, ["x"]))


def test_ten_crop_of_an_image_no_larger_than_the_crop_is_named_for_what_it_is():
    """28×28 on a 28×28 model: the five crops are one view, so ten-crop is centre + mirror."""
    from alexnet.data.transforms import ten_crop_coincides, ten_crop_note

    small = cfg(h=28, w=28, resize=28)
    stack = build_transforms(small, train=False, ten_crop=True)(coords(28, 28))
    assert all(torch.equal(stack[k], stack[0]) for k in range(5))  # the degenerate case is real
    assert all(torch.equal(stack[k], stack[0].flip(-1)) for k in range(5, 10))
    assert ten_crop_coincides(small) and not ten_crop_coincides(cfg())  # 72 in 80: five different crops
    assert not ten_crop_coincides(cfg(h=24, w=24, resize=32))
    assert ten_crop_note(cfg()) is None
    assert "only the centre crop and its mirror" in ten_crop_note(small)
    assert "only the centre crop (the five crops coincide)" in ten_crop_note(small, mirror=False)


def test_degenerate_ten_crop_is_said_once_in_train_and_evaluate(tmp_path, capsys):
    from alexnet.cli import main
    from alexnet.engine import fit, make_config

    run = fit(make_config("digits", epochs=1, batch_size=128, output_dir=str(tmp_path), name="r", ten_crop=True,
                          model_kwargs={"width": 0.25, "fc_width": 64}, amp="off")).run_dir
    out = capsys.readouterr().out
    assert out.count("the five crops coincide") == 1, out
    assert main(["evaluate", str(run), "--ten-crop", "--amp", "off"]) == 0
    captured = capsys.readouterr()
    assert (captured.out + captured.err).count("the five crops coincide") == 1
    assert main(["evaluate", str(run), "--amp", "off"]) == 0  # no ten-crop asked: nothing said
    assert "coincide" not in "".join(capsys.readouterr())
