"""The training settings the experiments share, and the plots most of them draw.

Two networks (`alexnet.models.ablation`): ``cifar4``, the four-layer CNN the paper uses for its
CIFAR-10 statements, and ``alexnet-mini``, the whole §3.5 network at CIFAR scale. Every arm of an
experiment starts from one of the settings below and changes one thing, so runs that share a
setting (the baselines) are trained once and reused through the run cache.
"""

from __future__ import annotations

from typing import Any

from ..viz.plotting import integer_ticks
from .output import heading
from .runs import RunResult, Scale
from .stats import by_arm

# The paper's optimiser family (§5: SGD, momentum 0.9, weight decay 5e-4) with a one-cycle rate,
# the schedule that reaches a given error in the fewest epochs on a CPU budget (docs/cifar10.md);
# pad-and-crop + flips for the 32×32 net (the usual CIFAR recipe). Every base runs on the resident
# path (the set decoded once into memory, each epoch's crops, flips and lighting drawn per image as
# whole-epoch tensor operations: `alexnet.data.resident`), validated on a stratified hold-out of
# 10 % of the training split when it is given as class folders (5,000 of CIFAR-10's 50,000 images,
# the hold-out's seed fixed at 0, so every run of every experiment is validated on the same images;
# given the python batches, the runs validate on the test split instead).
CIFAR4: dict[str, Any] = dict(
    model="cifar4", optimizer="sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4,
    lr_scheduler="onecycle", label_smoothing=0.0, aug="small", val_split=0.1, workers=0, resident=True)

# The whole network at CIFAR scale: 24×24 random crops of the 32×32 images + flips + PCA lighting
# (aug "paper", §4.1), LRN, overlapping pools, dropout 0.5 on fc6/fc7, two towers.
MINI: dict[str, Any] = dict(
    model="alexnet-mini", optimizer="sgd", lr=0.02, momentum=0.9, nesterov=True, weight_decay=5e-4,
    lr_scheduler="onecycle", label_smoothing=0.0, aug="paper", val_split=0.1, workers=0, resident=True,
    pca_scale="eigval")  # α·λ as the paper prints it (the default, α·√λ, is cuda-convnet2's): what was measured

# Sizes: `default` trains on the whole training split less the hold-out (45,000 CIFAR-10 images),
# 3 seeds per arm (the project's floor for a claim: two give a 95 % interval, but with 1 degree of freedom,
# ±12.7 standard errors; an experiment whose effect is under a point asks for more with
# dataclasses.replace). Epochs: a budget choice, not a measured plateau — enough for the one-cycle
# schedule to settle at this size (docs/experiments-budget.md has the measured epoch times and what
# `alexnet experiment all` costs). `--epochs`, `--train-subset` and `--seeds`
# change them. `fast` is for tests (the digits, seconds).
CIFAR4_SCALE = Scale(epochs=40, train_subset=0, seeds=3)
MINI_SCALE = Scale(epochs=30, train_subset=0, seeds=3, width=0.5)
FAST_SCALE = Scale(epochs=4, train_subset=384, seeds=1, width=0.25, batch_size=32)

# Measured seconds per epoch (45,000 training + 5,000 validation images, resident, in the precision
# `--amp auto` picks) of each base network at its default width, on the reference machine: what
# `alexnet experiment all` estimates its hours from (`alexnet.experiments.budget`).
# docs/experiments/budget.json holds the measurement (tools/experiment_budget.py; a test keeps the two equal).
REFERENCE_IMAGES = 45_000
EPOCH_SECONDS: dict[tuple[str, float], float] = {("cifar4", 1.0): 11.98, ("alexnet-mini", 0.5): 11.7}
RUN_OVERHEAD_SECONDS = 9.2  # a run's wall time besides its epochs (decoding the set into memory, building the model)
REFERENCE_MACHINE = "AMD EPYC, 2 cores (avx512_bf16, no AMX)"


def val_curves(exp, results: list[RunResult], fig, *, train: bool = True) -> None:
    """Left: validation top-1 error per epoch, one line per run (same colour per arm). Right:
    training error (running, with dropout and augmentation on) per epoch."""
    import matplotlib

    colours = matplotlib.colormaps["tab10"]
    axes = fig.subplots(1, 2 if train else 1, squeeze=False)[0]
    for i, (arm, runs) in enumerate(by_arm(results).items()):
        for j, r in enumerate(runs):
            ep = [row["epoch"] for row in r.epochs]
            style = dict(color=colours(i % 10), marker="o", markersize=3, linewidth=1.5,
                         label=arm if j == 0 else None, linestyle="-" if j == 0 else "--")
            axes[0].plot(ep, [100 - row["val_top1"] for row in r.epochs], **style)
            if train:
                axes[1].plot(ep, [100 - row["train_top1"] for row in r.epochs], **style)
    axes[0].set_title("validation top-1 error (%)")
    if train:
        axes[1].set_title("training error while training (%)")
    for ax in axes:
        ax.set_xlabel("epoch")
        integer_ticks(ax.xaxis)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    fig.suptitle(heading(exp), fontsize=11)
    fig.tight_layout()
