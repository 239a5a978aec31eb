"""`AugPlan` (alexnet.data.augment): the registry of ``--aug`` names, what each name resolves to
under a model, and the paths that run it."""

from __future__ import annotations

import argparse

import pytest
import torch

from alexnet.cli import build_parser
from alexnet.core.errors import UserError
from alexnet.data import AugPlan, build_transforms
from alexnet.data import resident, transforms
from alexnet.data.augment import IMAGENET_PCA, PATHS
from alexnet.data.gpu import DeviceBatchLoader
from alexnet.data.resident import ResidentLoader
from alexnet.data.transforms import plan_steps, trains_with_flips
from alexnet.engine import config
from alexnet.models import model_cfg

ALEXNET, CIFAR, MNIST = model_cfg("alexnet"), model_cfg("alexnet-cifar"), model_cfg("alexnet-mnist")
PCA_EIGVEC = tuple(tuple(r) for r in IMAGENET_PCA["eigvec"])


def aug_choices() -> tuple[str, ...]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return tuple(next(a for a in sub.choices["train"]._actions if "--aug" in a.option_strings).choices)


def test_the_registry_lists_every_name_aug_accepts_and_where_each_runs():
    names = AugPlan.names()
    assert aug_choices() == names == config.AUGS
    assert len(set(names)) == len(names) == len(AugPlan.REGISTRY)
    for a in AugPlan.REGISTRY:
        assert a.description and "\n" not in a.description
        assert a.paths and set(a.paths) <= set(PATHS)
    # every name is valid on some path, and validate accepts it there
    for name in names:
        resident_only = name not in AugPlan.names("cpu")
        config.TrainConfig(aug=name, resident=resident_only).validate()
    # the tuples the layers used to keep by hand are read from it
    assert transforms.AUGS == AugPlan.names("cpu") == ("auto", "paper", "light", "small", "none")
    assert resident.AUGS == config.RESIDENT_AUGS == AugPlan.names("resident", auto=False) \
        == ("paper", "light", "small", "flip", "flip-translate", "none")
    assert AugPlan.names("gpu") == AugPlan.names("cache") == AugPlan.names("cpu")


def test_auto_means_small_or_paper_by_the_models_size_and_flip_translate_resident():
    assert AugPlan.concrete("auto", ALEXNET) == "paper"
    assert AugPlan.concrete("auto", CIFAR) == AugPlan.concrete("auto", MNIST) == "small"
    assert AugPlan.concrete("auto", ALEXNET, "resident") == "flip-translate"
    assert AugPlan.resolve("auto", CIFAR).name == "small" and transforms.resolve_aug(ALEXNET, "auto") == "paper"


def test_each_plans_fields_on_the_papers_model():
    base = dict(channels=3, size=(227, 227), resize=256, center=256)
    assert AugPlan.resolve("paper", ALEXNET) == AugPlan(
        "paper", **base, flip=True, lighting=0.1, eigval=tuple(IMAGENET_PCA["eigval"]), eigvec=PCA_EIGVEC)
    assert AugPlan.resolve("paper", ALEXNET, alphastd=0.5, pca_scale="eigval").lighting_scale == "eigval"
    assert AugPlan.resolve("paper", ALEXNET, alphastd=0).lighting == 0 and not AugPlan.resolve(
        "paper", ALEXNET, alphastd=0).eigval
    assert AugPlan.resolve("light", ALEXNET) == AugPlan("light", **base, flip=True)
    assert AugPlan.resolve("small", ALEXNET) == AugPlan("small", **base, pad=28, flip=True)
    assert AugPlan.resolve("none", ALEXNET) == AugPlan("none", **base)


def test_each_plans_fields_on_small_and_one_channel_models():
    cifar = dict(channels=3, size=(32, 32), resize=32, center=32)
    assert AugPlan.resolve("small", CIFAR) == AugPlan("small", **cifar, pad=4, flip=True)
    assert AugPlan.resolve("light", CIFAR) == AugPlan("light", **cifar, flip=True)
    assert AugPlan.resolve("none", CIFAR) == AugPlan("none", **cifar)
    assert AugPlan.resolve("flip-translate", CIFAR, path="resident", translate=3) == AugPlan(
        "flip-translate", **cifar, flip=True, translate=3)
    assert AugPlan.resolve("flip", CIFAR, path="resident") == AugPlan("flip", **cifar, flip=True)
    mnist = dict(channels=1, size=(28, 28), resize=28, center=28)
    # a mirrored digit is another symbol: no flip, and no lighting on one channel
    assert AugPlan.resolve("paper", MNIST) == AugPlan("paper", **mnist)
    assert AugPlan.resolve("small", MNIST) == AugPlan("small", **mnist, pad=4)
    assert AugPlan.resolve("flip", MNIST, path="resident").flip  # whole batches flip what they are given


def test_a_transform_carries_the_plan_it_was_built_from():
    for aug in ("paper", "light", "small", "none"):
        tf = build_transforms(ALEXNET, train=True, aug=aug)
        assert tf.plan == AugPlan.resolve(aug, ALEXNET) and tf.name == f"train-{aug}"
    assert build_transforms(ALEXNET, train=False).plan == AugPlan.resolve("none", ALEXNET)
    assert build_transforms(ALEXNET, train=False, ten_crop=True).plan is None
    # a plan resolved once (as the engine may) gives the same transform as its name
    plan = AugPlan.resolve("paper", ALEXNET, alphastd=0.3, pca_scale="eigval")
    tf = build_transforms(ALEXNET, train=True, aug=plan)
    assert tf.plan is plan and repr(tf) == repr(build_transforms(ALEXNET, True, aug="paper", alphastd=0.3,
                                                                   pca_scale="eigval"))
    assert build_transforms(ALEXNET, train=False, aug=plan).plan == AugPlan.resolve("none", ALEXNET)
    with pytest.raises(UserError, match="--resident"):
        build_transforms(CIFAR, train=True, aug=AugPlan.resolve("flip", CIFAR, path="resident"))


@pytest.mark.parametrize("call", [
    lambda: AugPlan.resolve("fancy", ALEXNET), lambda: AugPlan.describe("fancy"),
    lambda: AugPlan.concrete("fancy", ALEXNET, "resident"), lambda: build_transforms(ALEXNET, True, aug="fancy"),
    lambda: trains_with_flips(MNIST, "fancy"), lambda: AugPlan.resolve("flip", ALEXNET),  # flip: --resident only
    lambda: AugPlan.resolve("paper", ALEXNET, pca_scale="cube")])
def test_an_unknown_name_is_one_line(call):
    with pytest.raises(UserError) as e:
        call()
    msg = str(e.value)
    assert "\n" not in msg and ("unknown augmentation" in msg or "scale must be one of" in msg)


def test_trains_with_flips_reads_the_plan():
    for cfg in (ALEXNET, CIFAR, MNIST):
        for name in AugPlan.names("cpu"):
            assert trains_with_flips(cfg, name) == AugPlan.resolve(name, cfg).flip
        for name in ("flip", "flip-translate"):
            assert trains_with_flips(cfg, name) is True
    assert trains_with_flips(MNIST, AugPlan.resolve("flip", MNIST, path="resident")) is True
    assert [trains_with_flips(MNIST, n) for n in ("auto", "paper", "none")] == [False] * 3
    assert trains_with_flips(ALEXNET, "none") is False


def test_each_path_refuses_a_plan_it_cannot_run():
    flip = AugPlan.resolve("flip", CIFAR, path="resident")
    assert not flip.runs_on("cpu") and flip.runs_on("resident") and AugPlan.resolve("small", CIFAR).runs_on("gpu")
    with pytest.raises(UserError, match="--resident"):
        plan_steps(flip)
    ds = type("DS", (), {"transform": type("TF", (), {"plan": flip})(), "__len__": lambda self: 4})()
    with pytest.raises(UserError, match="needs a transform from build_transforms"):
        DeviceBatchLoader(ds, batch_size=2, device="cpu")
    with pytest.raises(ValueError, match="needs its AugPlan"):  # the crop size and padding are the plan's
        ResidentLoader(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(2), batch_size=1, train=True,
                       aug="small")


def test_the_resident_loader_takes_a_plan_or_its_name():
    x = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    y = torch.arange(10)
    plan = AugPlan.resolve("auto", CIFAR, path="resident", translate=1)
    by_plan = ResidentLoader(x, y, batch_size=4, train=True, aug=plan, seed=2)
    by_name = ResidentLoader(x, y, batch_size=4, train=True, aug="flip-translate", translate=1, seed=2)
    assert (by_plan.aug, by_plan.pad) == ("flip-translate", 1)
    assert torch.equal(by_plan.epoch_images(1), by_name.epoch_images(1))
