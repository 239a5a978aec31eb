"""airbench94's own training code on this project's data: is the gap to 94 % in the engine or in the data?

    python tools/airbench_original.py run DATA OUT [--seeds 0,1,2] [--amp bf16|fp32]   # timed, under the lock
    python tools/airbench_original.py summarize OUT RESULTS.json [--engine docs/results/airbench-steps.json]

`--recipe cifar10-airbench` is this engine's rendering of airbench94's choices; on the CIFAR-10 JPEGs it
reaches about 90.5 %, not airbench's 94.01 % (docs/cifar10.md, "The reference: airbench94's choices").
Either the engine renders a choice wrongly or the data (JPEGs, 45,000 training images, a hold-out)
costs the points. This tool tells the two apart: it trains with airbench's own code
(tools/airbench94_cpu.py: the functions of ``legacy/airbench94.py`` from
github.com/KellerJordan/cifar10-airbench, MIT licence, changed only to run on the CPU — see there)
on exactly the images the engine trains and scores on: the training split of ``cifar10:DATA``
decoded by this project (45,000 images) and its 5,000-image hold-out (10 %, split seed 0) in place
of the test split. ``--amp bf16`` runs the forward passes under bf16 autocast (what ``--amp auto``
gives the engine on a CPU with bf16), ``--amp fp32`` in fp32. The final weights are scored three
ways: centre, mirror (flip-averaged) and airbench's six views (its ``tta_level`` 0, 1, 2).

``run`` writes ``OUT/orig-s<seed>/`` (``metrics.csv`` per epoch, ``result.json``, ``output.txt``,
``run.json`` with the whole command's wall time, one run at a time under ``$ALEXNET_CPU_LOCK``);
a seed with a ``result.json`` is skipped. The decoded splits are kept in ``OUT/decoded.pt`` (as
airbench keeps ``train.pt``; for another DATA path they are decoded again — delete the file if the
images under the same path change). ``summarize`` gives each score's median and, against the engine's
reference seeds (``arms.airbench`` of ``--engine``), the difference with a 95 % Welch interval
(unpaired: the two codes draw different random numbers for the same seed).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import airbench94_cpu as airbench94  # noqa: E402 — airbench's own code, on the CPU
import torch  # noqa: E402
from airbench_steps import welch  # noqa: E402 — the sibling tool's interval, the same for both comparisons
from ema_measure import json_text, run as timed_run  # noqa: E402 — timed, locked, run.json

NAME = "orig-s{seed}"
SCORES = ("centre", "flip", "tta")  # the final weights scored at airbench's tta_level 0, 1, 2


def decoded_splits(data: str, cache: Path):
    """(train images, train labels, hold-out images, hold-out labels): uint8 ``[N, 3, 32, 32]`` and int64, the
    splits `alexnet train --data-path DATA` trains and validates on (``cifar10:DATA``, 10 % held out, seed 0)."""
    from alexnet.data.datasets import build_dataset
    from alexnet.data.resident import decode_all

    if cache.is_file():
        saved = torch.load(cache)
        if saved["data"] == str(data):
            return saved["train"], saved["train_labels"], saved["val"], saved["val_labels"]
    out = {"data": str(data)}
    for split, key in (("train", "train"), ("val", "val")):
        images, labels, bad = decode_all(build_dataset(f"cifar10:{data}", split, val_split=0.1, seed=0), workers=2)
        if bad:
            print(f"{split}: {len(bad)} unreadable images left out")
        out[key], out[f"{key}_labels"] = images, labels
    torch.save(out, cache)
    return out["train"], out["train_labels"], out["val"], out["val_labels"]


def train_one(data: str, folder: Path, seed: int, amp: str, epochs: float, batch_size: int, cache: Path) -> dict:
    """One run of airbench94's ``main`` on the decoded splits; writes ``metrics.csv`` and ``result.json``."""
    t0 = time.perf_counter()
    train_x, train_y, val_x, val_y = decoded_splits(data, cache)
    decode_s = time.perf_counter() - t0
    try:
        rows, scores, train_s = airbench94.main(train_x, train_y, val_x, val_y, seed=seed, amp=amp, epochs=epochs,
                                                batch_size=batch_size, log=lambda line: print(line, flush=True))
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    with open(folder / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    result = {"seed": seed, "amp": amp, "epochs": epochs, "batch_size": batch_size, "steps": rows[-1]["steps"],
              "train_images": len(train_y), "val_images": len(val_y), **scores,
              "train_s": round(train_s, 1), "decode_s": round(decode_s, 1),
              "epoch_s_median": round(statistics.median(r["time"] for r in rows), 2)}
    (folder / "result.json").write_text(json_text(result))
    print("final " + " ".join(f"{k} {v}" for k, v in scores.items()), flush=True)
    return result


def run(data: str, out: Path, seeds: list[int], amp: str, epochs: float, batch_size: int) -> int:
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for seed in seeds:
        folder = out / NAME.format(seed=seed)
        if (folder / "result.json").is_file():
            print(f"{folder.name}: done before, skipped")
            continue
        cmd = [sys.executable, str(Path(__file__).resolve()), "one", str(data), str(folder), "--seed", str(seed),
               "--amp", amp, "--epochs", str(epochs), "--batch-size", str(batch_size), "--cache", str(out / "decoded.pt")]
        rc = timed_run(out, folder.name, cmd)
        print(f"{folder.name}: " + ("done" if rc == 0 else f"failed (exit {rc}), see {folder / 'output.txt'}"))
        failed += rc != 0
    return 1 if failed else 0


def summarize(out: Path, dest: Path, engine: Path | None) -> dict:
    seeds = {}
    for folder in sorted(out.glob(NAME.format(seed="*"))):
        if (folder / "result.json").is_file():
            r = json.loads((folder / "result.json").read_text())
            wall = json.loads((folder / "run.json").read_text())["wall_s"] if (folder / "run.json").is_file() else None
            seeds[str(r["seed"])] = {**{k: r[k] for k in (*SCORES, "steps", "epoch_s_median", "amp")}, "wall_s": wall}
    if not seeds:
        raise SystemExit(f"no runs with a result.json in {out}")
    summary: dict = {"what": "airbench94's own code (legacy/airbench94.py) on the engine's splits", "seeds": seeds}
    for k in SCORES:
        values = [s[k] for s in seeds.values()]
        summary[f"{k}_median"], summary[f"{k}_range"] = statistics.median(values), [min(values), max(values)]
    summary["epoch_s_median"] = statistics.median(s["epoch_s_median"] for s in seeds.values())  # of the seeds' medians
    if engine is not None:
        ref = json.loads(engine.read_text())["arms"]["airbench"]["seeds"]
        summary["engine_reference"] = {"file": str(engine), "seeds": sorted(ref, key=int)}
        for k in SCORES:
            summary[f"{k}_vs_engine"] = welch([s[k] for s in seeds.values()], [s[k] for s in ref.values()])
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json_text(summary))
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="verb", required=True)
    for verb in ("run", "one"):
        s = sub.add_parser(verb)
        s.add_argument("data")
        s.add_argument("out")
        s.add_argument("--amp", choices=("bf16", "fp32"), default="bf16")
        s.add_argument("--epochs", type=float, default=airbench94.hyp['opt']['train_epochs'])
        s.add_argument("--batch-size", type=int, default=airbench94.hyp['opt']['batch_size'])
        if verb == "run":
            s.add_argument("--seeds", default="0,1,2")
        else:
            s.add_argument("--seed", type=int, required=True)
            s.add_argument("--cache", required=True)
    s = sub.add_parser("summarize")
    s.add_argument("out")
    s.add_argument("results")
    s.add_argument("--engine", default=None)
    a = p.parse_args(argv)
    if a.verb == "run":
        try:
            seeds = [int(x) for x in a.seeds.split(",") if x.strip()]
        except ValueError:
            p.error(f"--seeds: comma-separated integers, not {a.seeds!r}")
        return run(a.data, Path(a.out), seeds, a.amp, a.epochs, a.batch_size)
    if a.verb == "one":
        from alexnet.core.errors import UserError

        Path(a.out).mkdir(parents=True, exist_ok=True)
        try:
            train_one(a.data, Path(a.out), a.seed, a.amp, a.epochs, a.batch_size, Path(a.cache))
        except UserError as e:  # the data: one line, as the alexnet command gives it
            raise SystemExit(f"error: {e}") from None
        return 0
    summarize(Path(a.out), Path(a.results), Path(a.engine) if a.engine else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
