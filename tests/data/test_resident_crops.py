"""The per-image recipes on the resident path (alexnet.data.resident): ``small`` (zero padding and a
random crop back to the input size), ``paper`` and ``light`` (a random input-size crop of the larger
stored image, §4.1), each with an independent flip per image, ``paper`` with its PCA lighting; all a
pure function of (seed, epoch), resumable mid-epoch, never flipping one-channel images."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from alexnet.data import AugPlan
from alexnet.data.loader import LitBatch
from alexnet.data.resident import ResidentLoader, center_crop, random_crops, stored_size
from alexnet.data.transforms import PCALighting
from alexnet.engine.config import TrainConfig


def _cfg(c: int, size: int, resize: int) -> SimpleNamespace:
    return SimpleNamespace(input_size=(c, size, size), resize=resize)


def _images(n: int, c: int, side: int) -> torch.Tensor:
    return torch.randint(1, 256, (n, c, side, side), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def _where(out: torch.Tensor, source: torch.Tensor, pad: int) -> list[tuple[int, int, bool]]:
    """For each output image, the one (top, left, flipped) of ``source`` zero-padded by ``pad``
    it equals; fails when an output is no such crop (or several, which random pixels rule out)."""
    h, w = out.shape[-2:]
    found = []
    for y, x in zip(out, F.pad(source, (pad,) * 4)):
        win = x.unfold(1, h, 1).unfold(2, w, 1)  # [C, tops, lefts, h, w]
        hits = [(int(t), int(l), flipped) for flipped, want in ((False, y), (True, y.flip(-1)))
                for t, l in (win == want[:, None, None]).all(-1).all(-1).all(0).nonzero().tolist()]
        assert len(hits) == 1, f"not exactly one crop: {hits}"
        found.append(hits[0])
    return found


def _check_uniform(found: list[tuple[int, int, bool]], span: int, flips: bool) -> None:
    n = len(found)
    tops, lefts = Counter(t for t, _, _ in found), Counter(l for _, l, _ in found)
    for counts in (tops, lefts):  # every offset 0‥span, each about n / (span + 1) times
        assert sorted(counts) == list(range(span + 1))
        assert max(counts.values()) < 1.5 * n / (span + 1) and min(counts.values()) > 0.5 * n / (span + 1)
    flipped = sum(f for _, _, f in found)
    assert (0.4 * n < flipped < 0.6 * n) if flips else flipped == 0


def test_small_is_a_crop_of_the_zero_padded_image_at_any_offset_flipped_about_half():
    plan = AugPlan.resolve("small", _cfg(3, 16, 16), path="resident")
    assert plan.pad == 2 and plan.flip and stored_size(plan) == (16, 16)
    x = _images(900, 3, 16)
    out, light = random_crops(x, plan, seed=1, epoch=0)
    assert out.shape == x.shape and out.dtype == torch.uint8 and light is None
    found = _where(out, x, plan.pad)
    _check_uniform(found, 2 * plan.pad, flips=True)
    assert any(t == 0 for t, _, _ in found) and (out == 0).any()  # the zero padding shows


def test_paper_crops_the_input_out_of_the_stored_square_with_pca_lighting():
    plan = AugPlan.resolve("paper", _cfg(3, 6, 8), path="resident", pca_scale="eigval")
    assert stored_size(plan) == (8, 8) and plan.lighting == 0.1
    x = _images(900, 3, 8)
    out, light = random_crops(x, plan, seed=2, epoch=3)
    assert out.shape == (900, 3, 6, 6)
    _check_uniform(_where(out, x, 0), 2, flips=True)
    # one RGB shift per image along the principal components, α ~ N(0, 0.1) scaled by λ
    assert light.shape == (900, 3) and light.dtype == torch.float32
    alpha = light @ PCALighting.of(plan).eigvec / (plan.lighting * torch.tensor(plan.eigval))
    assert abs(float(alpha.mean())) < 0.1 and 0.9 < float(alpha.std()) < 1.1
    again, light2 = random_crops(x, plan, seed=2, epoch=3)
    assert torch.equal(again, out) and torch.equal(light2, light)  # a pure function of (seed, epoch)
    other, light3 = random_crops(x, plan, seed=2, epoch=4)
    assert not torch.equal(other, out) and not torch.equal(light3, light)
    light_plan = AugPlan.resolve("light", _cfg(3, 6, 8), path="resident")
    assert random_crops(x, light_plan, seed=2, epoch=3)[1] is None


def test_one_channel_images_are_cropped_but_never_flipped():
    for name, side, stored in (("small", 8, 8), ("paper", 6, 8)):
        plan = AugPlan.resolve(name, _cfg(1, side, stored), path="resident")
        assert not plan.flip and not plan.lighting
        x = _images(300, 1, stored)
        found = _where(random_crops(x, plan, seed=0, epoch=1)[0], x, plan.pad)
        _check_uniform(found, 2 * plan.pad if name == "small" else stored - side, flips=False)


def test_the_loader_yields_lit_batches_the_same_after_a_mid_epoch_resume():
    plan = AugPlan.resolve("paper", _cfg(3, 6, 8), path="resident")
    x, y = _images(40, 3, 8), torch.arange(40)
    ld = ResidentLoader(x, y, batch_size=8, train=True, aug=plan, seed=5)
    ld.sampler.set_epoch(2)
    batches = list(ld)
    assert len(batches) == 5 and all(isinstance(b, LitBatch) for b in batches)
    crops, light = random_crops(x, plan, 5, 2)
    for b in batches:  # each image's own crop and shift of the epoch, in the sampler's order
        assert torch.equal(b.images, crops[b.labels]) and torch.equal(b.lighting, light[b.labels])
    ld2 = ResidentLoader(x, y, batch_size=8, train=True, aug=plan, seed=5)
    ld2.sampler.set_epoch(2)
    ld2.sampler.start_at(16)
    rest = list(ld2)
    assert len(rest) == 3
    for a, b in zip(rest, batches[2:]):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
        assert torch.equal(a.lighting, b.lighting)
    # evaluation of images held larger than the input: their centre crop, no lighting
    ev = list(ResidentLoader(x, y, batch_size=16, train=False, aug=plan))
    assert all(type(b).__name__ == "Batch" for b in ev)
    assert torch.equal(torch.cat([b.images for b in ev]), x[:, :, 1:7, 1:7])
    assert torch.equal(center_crop(x, (6, 6)), x[:, :, 1:7, 1:7])


def test_resident_accepts_the_per_image_recipes():
    for aug in ("small", "paper", "light"):
        TrainConfig(aug=aug, resident=True).validate()
