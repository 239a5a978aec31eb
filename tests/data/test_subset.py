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
