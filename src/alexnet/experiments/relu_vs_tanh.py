"""Figure 1: ReLUs train several times faster than tanh units.

"A four-layer convolutional neural network with ReLUs (solid line) reaches a 25% training error
rate on CIFAR-10 six times faster than an equivalent network with tanh neurons (dashed line). The
learning rates for each network were chosen independently to make training as fast as possible.
No regularization of any kind was employed."

Here: ``cifar4`` without LRN, no augmentation, no weight decay, SGD momentum 0.9 at a constant
rate; each activation at two rates, and each activation's faster run is the one compared (the
paper's "chosen independently"). Measured: epochs (and seconds) until the training error, averaged
over each epoch, falls to 25 %, interpolated between epochs.
"""

from __future__ import annotations

import dataclasses
import math

from .base import Arm, Experiment, RunResult, by_arm
from .setups import CIFAR4_SCALE, FAST_SCALE

TARGET = 25.0
BASE = dict(model="cifar4", model_kwargs={"lrn": False}, optimizer="sgd", momentum=0.9, nesterov=False,
            weight_decay=0.0, lr_scheduler="constant", label_smoothing=0.0, aug="none", val_split=0.04, workers=0)
RATES = (0.01, 0.03)


def epochs_to(errors: list[float], target: float = TARGET) -> float:
    """Epochs until ``errors`` (one per epoch, starting from chance before epoch 1) reach ``target``,
    interpolated linearly within the epoch that crosses it; nan if it never does."""
    prev = 90.0  # ten classes: chance before any training
    for e, err in enumerate(errors, start=1):
        if err <= target:
            return (e - 1) + (prev - target) / (prev - err) if prev > err else float(e)
        prev = err
    return float("nan")


def _fastest(runs: list[RunResult]) -> tuple[RunResult, float]:
    scored = [(epochs_to([100 - row["train_top1"] for row in r.epochs]), r) for r in runs]
    reached = [(e, r) for e, r in scored if not math.isnan(e)]
    if reached:
        e, r = min(reached, key=lambda t: t[0])
        return r, e
    best = min(runs, key=lambda r: 100 - r.last["train_top1"])
    return best, float("nan")


def summarize(exp: Experiment, results: list[RunResult]):
    acts: dict[str, list[RunResult]] = {}
    for arm, runs in by_arm(results).items():
        acts.setdefault(arm.split()[0], []).extend(runs)
    rows, ep = [], {}
    for act in ("ReLU", "tanh"):
        runs = acts.get(act, [])
        if not runs:
            continue
        r, e = _fastest(runs)
        ep[act] = e
        per_epoch = r.seconds / max(1, len(r.epochs))
        rows.append({"activation": act, "rate (fastest of " + ", ".join(f"{x:g}" for x in RATES) + ")":
                     r.arm.split("lr ")[-1], "epochs to 25 % training error": f"{e:.2f}" if not math.isnan(e)
                     else f"> {len(r.epochs)}", "seconds to 25 %": f"{e * per_epoch:.0f}" if not math.isnan(e) else "–",
                     "final training error": f"{100 - r.last['train_top1']:.2f}",
                     "final validation error": f"{r.val_error:.2f}", "paper": "6× fewer epochs for ReLU"
                     if act == "ReLU" else "baseline"})
    relu, tanh = ep.get("ReLU", float("nan")), ep.get("tanh", float("nan"))
    n_epochs = max((len(r.epochs) for r in results), default=0)
    if math.isnan(relu) and not math.isnan(tanh):
        verdict = (f"does not reproduce: tanh reached {TARGET:g} % training error in {tanh:.2f} epochs, ReLU had not "
                   f"after {n_epochs} (paper: ReLU 6× faster)")
    elif math.isnan(relu):
        verdict = f"inconclusive: neither reached {TARGET:g} % training error in {n_epochs} epochs"
    elif math.isnan(tanh):
        verdict = (f"reproduces: ReLU reached {TARGET:g} % training error in {relu:.2f} epochs; tanh had not after "
                   f"{n_epochs} (≥ {n_epochs / relu:.1f}× faster; paper: 6×)")
    else:
        ratio = tanh / relu
        verdict = (f"{'reproduces' if ratio > 1 else 'does not reproduce'}: ReLU reached {TARGET:g} % training error "
                   f"{ratio:.1f}× faster than tanh ({relu:.2f} vs {tanh:.2f} epochs; paper: 6×)")
    notes = [f"{r.arm}: training error by epoch " + ", ".join(f"{100 - row['train_top1']:.1f}" for row in r.epochs)
             for r in results]
    return rows, verdict, notes


def plot(exp: Experiment, results: list[RunResult], fig) -> None:
    ax = fig.subplots()
    colours = {"ReLU": "tab:blue", "tanh": "tab:red"}
    for r in results:
        act = r.arm.split()[0]
        ep = [0] + [row["epoch"] for row in r.epochs]
        err = [90.0] + [100 - row["train_top1"] for row in r.epochs]
        ax.plot(ep, err, color=colours.get(act, "k"), linestyle="-" if act == "ReLU" else "--", marker="o",
                markersize=3, alpha=1.0 if r.arm.endswith(f"{RATES[0]:g}") else 0.55, label=r.arm)
    ax.axhline(TARGET, color="grey", linewidth=1, linestyle=":")
    ax.text(0.1, TARGET + 1, f"{TARGET:g} %", color="grey")
    ax.set(xlabel="epochs", ylabel="training error rate (%)", ylim=(0, 92),
           title="Figure 1 again: ReLU (solid) vs tanh (dashed), the four-layer CNN")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()


EXPERIMENT = Experiment(
    name="relu-vs-tanh", title="ReLU vs tanh: time to 25 % training error", section="§3.1, Figure 1",
    claim="a four-layer CNN on CIFAR-10 reaches 25 % training error six times faster with ReLUs than with tanh "
          "units (learning rates chosen independently, no regularisation)",
    base=BASE,
    arms=tuple(Arm(f"{act} lr {lr:g}", {"lr": lr, "model_kwargs": {"lrn": False, "act": act.lower()}})
               for act in ("ReLU", "tanh") for lr in RATES),
    default=dataclasses.replace(CIFAR4_SCALE, seeds=1, epochs=10, train_subset=2500, batch_size=32),
    fast=FAST_SCALE, summarize=summarize, plot=plot,
    scale_note="One seed: the difference is large. Training error is the running error over each epoch. "
               "2,500 images in batches of 32, so that 25 % training error is reached within a CPU budget "
               "(the paper: 50,000 images).")
