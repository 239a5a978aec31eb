"""§4.1: at test time, averaging the softmax of ten patches beats the centre patch alone.

"At test time, the network makes a prediction by extracting five 224 × 224 patches (the four
corner patches and the center patch) as well as their horizontal reflections (hence ten patches
in all), and averaging the predictions made by the network's softmax layer on the ten patches."
Here: the ``alexnet-mini`` baseline (trained on random 24×24 crops of 32×32 images with flips),
evaluated on the validation split with the centre 24×24 crop and with ten crops.
"""

from __future__ import annotations

from .runs import Arm, Experiment, RunResult
from .setups import FAST_SCALE, MINI, MINI_SCALE
from .stats import direction, half_range, mean, spread


def summarize(exp: Experiment, results: list[RunResult]):
    c = [r.extra["centre_error"] for r in results]
    t = [r.extra["ten_crop_error"] for r in results]
    c5 = [r.extra["centre_error5"] for r in results]
    t5 = [r.extra["ten_crop_error5"] for r in results]
    ct = [r.extra["centre_seconds"] for r in results]
    tt = [r.extra["ten_crop_seconds"] for r in results]
    rows = [{"test": "centre crop", "top-1 error (%)": spread(c), "top-5 error (%)": spread(c5),
             "evaluation time (s)": spread(ct), "seeds": len(results), "paper": "baseline"},
            {"test": "ten crops, softmax averaged", "top-1 error (%)": spread(t), "top-5 error (%)": spread(t5),
             "evaluation time (s)": spread(tt), "seeds": len(results), "paper": "lower error"}]
    diffs = [a - b for a, b in zip(c, t)]
    verdict = direction(mean(diffs), half_range(diffs), +1, "ten crops lowered the error (same weights, paired)")
    return rows, verdict, [f"seed {r.seed}: centre {a:.2f} %, ten-crop {b:.2f} %" for r, a, b in zip(results, c, t)]


def plot(exp: Experiment, results: list[RunResult], fig) -> None:
    ax = fig.subplots()
    xs = range(len(results))
    w = 0.38
    ax.bar([x - w / 2 for x in xs], [r.extra["centre_error"] for r in results], w, label="centre crop")
    ax.bar([x + w / 2 for x in xs], [r.extra["ten_crop_error"] for r in results], w, label="ten crops")
    ax.set_xticks(list(xs), [f"seed {r.seed}" for r in results])
    lo = min(min(r.extra["centre_error"], r.extra["ten_crop_error"]) for r in results)
    ax.set_ylim(max(0, lo - 5), None)
    ax.set(ylabel="validation top-1 error (%)", title="ten-crop test (§4.1): the same weights, two ways of testing")
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    fig.tight_layout()


EXPERIMENT = Experiment(
    name="ten-crop", title="ten-crop testing", section="§4.1",
    claim="averaging the softmax over ten patches (four corners + centre, and their mirrors) beats the centre patch",
    base=MINI, arms=(Arm("alexnet-mini", {}),), default=MINI_SCALE, fast=FAST_SCALE,
    summarize=summarize, plot=plot, extras=("ten_crop",))
