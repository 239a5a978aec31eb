"""Fine-tuning against training from scratch over seeds (docs/finetune.md): run the arms, summarise.

    python tools/finetune_seeds.py run D R [--seeds 0,1,2]   # pretrain once, then both arms per seed
    python tools/finetune_seeds.py summarize R RESULTS.json  # best validation top-1, paired by seed

``D`` holds the two subsets docs/finetune.md makes (``c5pre``: five classes to pretrain on,
``c5ft``: 300 images of the other five); ``R`` receives the runs. ``run`` trains ``pretrain5``
(once; a finished one is kept) and then, for each seed, ``ft-s<seed>`` (the `finetune` recipe
from ``pretrain5``) and ``scratch-s<seed>`` (the same recipe, network and data from scratch),
each through ``tools/ema_measure.py``'s ``run`` (the console as ``output.txt``, the machine, wall
and CPU time as ``run.json``; under ``$ALEXNET_CPU_LOCK`` when set). A finished run is skipped, so
an interrupted ``run`` goes on where it stopped. The seed moves the fine-tuning's data order,
augmentation and the new last layer's initial weights (and, from scratch, every weight); the
pretrained network is the same for every seed. ``summarize`` pairs the arms by seed: the
difference of the best validation top-1 (pretrained − scratch) with its 95 % Student-t interval.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ema_measure import run as timed_run, t_interval  # noqa: E402

PREVIOUS = "docs/runs/cifar10-recipe/previous.yaml"  # the cifar10 recipe as it was when the first runs were made
ARMS = {
    "ft": lambda d, r: ["--weights", f"{r}/pretrain5", "--data", f"{d}/c5ft"],
    "scratch": lambda d, r: ["--recipe", "finetune", "--model", "alexnet-cifar", "--model-arg", "width=0.5",
                             "--lr-backbone-scale", "1", "--data", f"{d}/c5ft"],
}


def finished(folder: Path, weights: bool = True) -> bool:
    """A run that ended well (its run.json says exit 0), with its weights where they are needed
    (``weights``: to skip it in ``run``; ``summarize`` reads the committed small files only)."""
    info = folder / "run.json"
    return (info.is_file() and json.loads(info.read_text()).get("returncode") == 0
            and (not weights or (folder / "weights.safetensors").is_file()))


def run_all(d: str, r: str, seeds: list[int]) -> int:
    out = Path(r)
    train = [sys.executable, "-m", "alexnet", "train", "--output-dir", r]
    jobs = [("pretrain5", ["--config", PREVIOUS, "--data", f"folder:{d}/c5pre", "--model-arg", "width=0.5",
                           "--epochs", "8", "-b", "128"])]
    jobs += [(f"{arm}-s{s}", [*make(d, r), "--seed", str(s)]) for s in seeds for arm, make in ARMS.items()]
    for name, args in jobs:
        if finished(out / name):
            print(f"{name}: finished before, kept")
            continue
        subprocess.run(["rm", "-rf", str(out / name)], check=True)  # a run cut short starts again
        rc = timed_run(out, name, [*train, *args, "--name", name])
        print(f"{name}: exit {rc}")
        if rc:
            return rc
    return 0


def best_top1(folder: Path) -> float:
    return max(float(row["val_top1"]) for row in csv.DictReader((folder / "metrics.csv").open()))


def summarize(r: str, dest: str) -> dict:
    runs = Path(r)
    by_arm: dict[str, dict[int, float]] = {arm: {} for arm in ARMS}
    for folder in sorted(runs.glob("*-s*")):
        arm, _, seed = folder.name.rpartition("-s")
        if arm in by_arm and finished(folder, weights=False):
            by_arm[arm][int(seed)] = best_top1(folder)
    seeds = sorted(set(by_arm["ft"]) & set(by_arm["scratch"]))
    ci = t_interval([by_arm["ft"][s] - by_arm["scratch"][s] for s in seeds]) if seeds else None
    info = json.loads((runs / "pretrain5" / "run.json").read_text())
    out = {"what": "best validation top-1 (%) on the 600 held-out images of the five target classes, fine-tuned "
                   "from pretrain5 (`finetune` recipe) against the same recipe, network and data from scratch; "
                   "pairs by seed",
           "machine": info["machine"], "date": info["date"], "pretrain5_best": best_top1(runs / "pretrain5"),
           "seeds": [{"seed": s, "ft": by_arm["ft"][s], "scratch": by_arm["scratch"][s]} for s in seeds],
           "ft_mean": sum(by_arm["ft"][s] for s in seeds) / len(seeds) if seeds else None,
           "scratch_mean": sum(by_arm["scratch"][s] for s in seeds) / len(seeds) if seeds else None,
           "ft_minus_scratch": ci,
           "verdict": ("fewer than 3 seeds: no claim" if len(seeds) < 3 else
                       "no spread over the seeds: no interval, no claim" if math.isnan(ci["half_width"]) else
                       "fine-tuning is better (the 95 % interval excludes 0)" if ci["low"] > 0 else
                       "scratch is better (the 95 % interval excludes 0)" if ci["high"] < 0 else
                       "within the noise (the 95 % interval includes 0)")}
    Path(dest).write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "run":
        seeds = [int(x) for x in (sys.argv[sys.argv.index("--seeds") + 1] if "--seeds" in sys.argv else "0,1,2").split(",")]
        sys.exit(run_all(sys.argv[2], sys.argv[3], seeds))
    if len(sys.argv) == 4 and sys.argv[1] == "summarize":
        print(json.dumps(summarize(sys.argv[2], sys.argv[3]), indent=1))
        sys.exit(0)
    sys.exit(__doc__)
