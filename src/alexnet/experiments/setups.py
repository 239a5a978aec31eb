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
# pad-and-crop + flips for the 32×32 net (the usual CIFAR recipe).
CIFAR4: dict[str, Any] = dict(
    model="cifar4", optimizer="sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4,
    lr_scheduler="onecycle", label_smoothing=0.0, aug="small", val_split=0.04, workers=0)

# The whole network at CIFAR scale: 24×24 random crops of the 32×32 images + flips + PCA lighting
# (aug "paper", §4.1), LRN, overlapping pools, dropout 0.5 on fc6/fc7, two towers.
MINI: dict[str, Any] = dict(
    model="alexnet-mini", optimizer="sgd", lr=0.02, momentum=0.9, nesterov=True, weight_decay=5e-4,
    lr_scheduler="onecycle", label_smoothing=0.0, aug="paper", val_split=0.04, workers=0,
    pca_scale="eigval")  # α·λ as the paper prints it (the default, α·√λ, is cuda-convnet2's): what was measured

# Sizes: `default` fits one experiment in minutes on 2 CPU cores (docs/experiments.md has the
# measured times), validated on a 2,000-image stratified hold-out (val_split 0.04: at a 30 % error
# rate its standard error is about 1 point; evaluating 5,000 images each epoch cost a third of a
# run). cifar4: 8 epochs on a stratified 5,000-image sample of the training split; alexnet-mini at
# half width (24-64-96-96-64, fc 256): 10 epochs on 10,000 images. `--epochs`, `--train-subset`
# (0: all 48,000) and `--seeds` scale them up. `fast` is for tests.
CIFAR4_SCALE = Scale(epochs=8, train_subset=5000, seeds=2)
MINI_SCALE = Scale(epochs=10, train_subset=10000, seeds=2, width=0.5)
FAST_SCALE = Scale(epochs=2, train_subset=96, seeds=1, width=0.25, batch_size=32)


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
