"""`take_subset` / `--train-subset`: a stratified, seeded sample of a training split."""

from __future__ import annotations

import collections

import pytest
import torch

from alexnet.core.errors import UserError
from alexnet.data import TensorImageDataset, take_subset


def make(n_per_class=(30, 20, 10)):
    targets = [c for c, n in enumerate(n_per_class) for _ in range(n)]
    images = torch.arange(len(targets), dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).contiguous()
    return TensorImageDataset(images, targets, ["a", "b", "c"], name="t")


def test_stratified_and_deterministic():
    ds = make()
    sub = take_subset(ds, 30)
    assert len(sub) == 30
    assert collections.Counter(sub.targets) == {0: 15, 1: 10, 2: 5}  # in proportion
    again = take_subset(make(), 30)
    assert sub.indices == again.indices
    for i in range(len(sub)):  # images and labels stay paired
        img, label = sub[i]
        j = sub.indices[i]
        assert int(img[0, 0, 0]) == j and label == ds.targets[j]
        assert sub.samples_path(i) == ds.samples_path(j)
    assert take_subset(ds, 30, seed=1).indices != sub.indices


def test_zero_or_large_means_all():
    ds = make()
    assert take_subset(ds, 0) is ds and take_subset(ds, 60) is ds and take_subset(ds, 100) is ds
    with pytest.raises(UserError):
        take_subset(ds, -1)


def test_train_flag(tmp_path):
    from alexnet.commands.train import config_from_args
    from alexnet.cli import build_parser

    args = build_parser().parse_args(["train", "--train-subset", "100", "--epochs", "1"])
    assert config_from_args(args).train_subset == 100


def test_a_subset_has_exactly_n_images_in_proportion():
    """--train-subset N trains on N images, not on each class's rounded share summed (5 of 10
    balanced classes gave 10, 37 gave 40, 1437 of digits' 1,438 gave 1,428)."""
    from collections import Counter

    from alexnet.data.base import split_indices, stratified_sample

    digits_like = [i % 10 for i in range(1438)]
    for n in (1, 5, 37, 100, 1437):
        got = stratified_sample(digits_like, n, seed=0)
        assert len(got) == n == len(set(got))
        counts = Counter(digits_like[i] for i in got)
        assert max(counts.values()) - min(counts.get(c, 0) for c in range(10)) <= 1  # in proportion
    skewed = [0] * 90 + [1] * 10
    assert Counter(skewed[i] for i in stratified_sample(skewed, 20, seed=0)) == {0: 18, 1: 2}
    balanced = [c for c in range(10) for _ in range(450)]  # where the old rule was exact, the same images
    assert stratified_sample(balanced, 500, seed=3) == split_indices(balanced, 500 / 4500, seed=3)[1]
