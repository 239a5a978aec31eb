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
from .stats import Summary, by_seed, cell, usable
from .verdict import compare


def summarize(exp: Experiment, results: list[RunResult]) -> Summary:
    """Centre crop against ten crops on the same weights: the difference paired by seed (each seed's
    network tested both ways), with its 95 % interval; diverged or unstable runs left out."""
    kept, excluded = usable(results)

    def col(key: str) -> list[float]:
        return [r.extra[key] for r in kept]

    rows = [{"test": "centre crop", "top-1 error (%)": cell(col("centre_error")), "top-5 error (%)": cell(col("centre_error5")),
             "evaluation time (s)": cell(col("centre_seconds")), "seeds": len(kept), "paper": "baseline"},
            {"test": "ten crops, softmax averaged", "top-1 error (%)": cell(col("ten_crop_error")),
             "top-5 error (%)": cell(col("ten_crop_error5")), "evaluation time (s)": cell(col("ten_crop_seconds")),
             "seeds": len(kept), "paper": "lower error"}]
    err = compare(by_seed(kept, lambda r: r.extra["ten_crop_error"]), by_seed(kept, lambda r: r.extra["centre_error"]),
                  paired=True, what="ten-crop testing lowers the top-1 error", excluded=tuple(excluded))
    notes = ["Paired by seed on the same weights: each seed's trained network is tested both ways."]
    notes += [f"seed {r.seed}: centre {r.extra['centre_error']:.2f} %, ten-crop {r.extra['ten_crop_error']:.2f} %"
              for r in kept]
    return Summary(rows, err.text, notes, [err])


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
