"""Raw weights vs their EMA (``--ema``), paired on the same runs: run the arms, then summarise.

    python tools/ema_measure.py run OUT NAME -- alexnet train …   # one run, timed, under the CPU lock
    python tools/ema_measure.py summarize RUNS_DIR RESULTS.json   # the paired differences over seeds

``run`` first takes the lock file ``$ALEXNET_CPU_LOCK`` when it is set (so that on a shared machine
the run has the cores to itself), then records ``output.txt`` (the console) and ``run.json``
(command, machine, wall and CPU time) beside the run's own ``config.json`` and ``metrics.csv``.
``summarize`` reads every ``RUNS_DIR/<recipe>-s<seed>/metrics.csv`` and writes, per recipe, the
last epoch's and the best epoch's validation top-1 of the raw weights and of their EMA, their
paired differences (EMA − raw) over the seeds, and a 95 % Student-t interval of the mean
difference. Plain Python and scipy (no torch).
"""

from __future__ import annotations

import csv
import fcntl
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

def json_text(obj) -> str:
    """``obj`` as indented JSON that any parser reads: NaN and infinities (no interval: one seed, no
    spread) written as null — the ``NaN`` Python's json writes by default is not JSON."""
    def finite(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: finite(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [finite(v) for v in x]
        return x

    return json.dumps(finite(obj), indent=1, allow_nan=False) + "\n"


def t975(df: float) -> float:
    """The two-sided 95 % quantile of Student's t at ``df`` degrees of freedom, whole or not (the
    same as `alexnet.experiments.verdict`, whose rule these tools follow)."""
    from scipy.stats import t  # scikit-learn's dependency, so always installed with the project

    return float(t.ppf(0.975, df))


def machine() -> dict:
    import torch
    import torchvision

    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((ln.split(":", 1)[1].strip() for ln in flags.splitlines() if ln.startswith("model name")), "")
    cpu = "AMD EPYC" if "EPYC" in model else model or platform.processor()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    # two machines that both say "AMD EPYC" ran the same epoch in 46 s and 85 s: the family, model and clock tell them apart
    field = lambda key: next((ln.split(":", 1)[1].strip() for ln in flags.splitlines()  # noqa: E731
                              if ":" in ln and ln.split(":", 1)[0].strip() == key), "")
    return {"cpu": cpu, "cpu_id": f"family {field('cpu family')} model {field('model')}".strip(),
            "cpu_mhz": round(float(field("cpu MHz") or 0)), "cores": os.cpu_count(), "avx512_bf16": "avx512_bf16" in flags,
            "amx": "amx_tile" in flags, "gpu": gpu, "torch": torch.__version__.split("+")[0],
            "torchvision": torchvision.__version__.split("+")[0]}


def run(out: Path, name: str, cmd: list[str]) -> int:
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    with open(os.environ.get("ALEXNET_CPU_LOCK") or os.devnull, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        info = machine()
    (folder / "output.txt").write_text(proc.stdout + proc.stderr)
    record = {"command": " ".join(["alexnet", *cmd[cmd.index("train"):]]) if "train" in cmd else " ".join(cmd),
              "date": date.today().isoformat(), "machine": info, "wall_s": round(wall, 1),
              "user_cpu_s": round(after.ru_utime - before.ru_utime, 1),
              "system_cpu_s": round(after.ru_stime - before.ru_stime, 1), "returncode": proc.returncode,
              "note": "run alone on the cores (one job at a time under a shared lock); wall_s: the whole command"}
    (folder / "run.json").write_text(json.dumps(record, indent=1) + "\n")
    return proc.returncode


def t_interval(diffs: list[float]) -> dict:
    """Mean of ``diffs`` and its 95 % Student-t interval (nan half-width with one value, or when
    every value is the same: no spread to take an interval from, as `alexnet.experiments.verdict`)."""
    n = len(diffs)
    m = sum(diffs) / n
    if n < 2:
        return {"n": n, "mean": m, "half_width": math.nan, "low": math.nan, "high": math.nan, "sd": math.nan}
    sd = math.sqrt(sum((d - m) ** 2 for d in diffs) / (n - 1))
    h = t975(n - 1) * sd / math.sqrt(n) if sd > 0 else math.nan
    return {"n": n, "mean": m, "sd": sd, "half_width": h, "low": m - h, "high": m + h}


def verdict(ci: dict) -> str:
    if math.isnan(ci["half_width"]):
        return "one seed: no interval" if ci["n"] < 2 else "no spread over the seeds: no interval"
    if ci["low"] > 0:
        return "the EMA is better (the 95 % interval excludes 0)"
    if ci["high"] < 0:
        return "the raw weights are better (the 95 % interval excludes 0)"
    return "within the noise (the 95 % interval includes 0)"


def summarize(runs: Path, dest: Path) -> dict:
    recipes: dict[str, dict] = {}
    for folder in sorted(p for p in runs.iterdir() if (p / "metrics.csv").is_file()):
        recipe, seed = folder.name.rsplit("-s", 1)
        rows = list(csv.DictReader((folder / "metrics.csv").open()))
        last = rows[-1]
        cfg = json.loads((folder / "config.json").read_text())
        r = recipes.setdefault(recipe, {"runs": [], "model": cfg["model"], "ema_decay": cfg["ema"],
                                        "epochs": cfg["epochs"], "train_subset": cfg["train_subset"],
                                        "batch_size": cfg["batch_size"], "steps": int(last["step"])})
        r["runs"].append({
            "seed": int(seed), "dir": folder.name,
            "last_raw": float(last["val_top1"]), "last_ema": float(last["val_top1_ema"]),
            "best_raw": max(float(x["val_top1"]) for x in rows), "best_ema": max(float(x["val_top1_ema"]) for x in rows),
            "mid_raw": float(rows[len(rows) // 2 - 1]["val_top1"]),
            "mid_ema": float(rows[len(rows) // 2 - 1]["val_top1_ema"]),
            "user_cpu_s": json.loads((folder / "run.json").read_text())["user_cpu_s"]})
    out = {"machine": None, "recipes": {}}
    for recipe, r in recipes.items():
        rs = r.pop("runs")
        for what in ("last", "best", "mid"):
            raw, ema = [x[f"{what}_raw"] for x in rs], [x[f"{what}_ema"] for x in rs]
            ci = t_interval([e - a for a, e in zip(raw, ema)])
            r[what] = {"raw_mean": sum(raw) / len(raw), "ema_mean": sum(ema) / len(ema), "diff": ci,
                       "verdict": verdict(ci)}
        r["seeds"] = rs
        r["user_cpu_s"] = round(sum(x["user_cpu_s"] for x in rs), 1)
        out["recipes"][recipe] = r
        first = runs / rs[0]["dir"] / "run.json"
        out["machine"] = json.loads(first.read_text())["machine"]
        out["date"] = json.loads(first.read_text())["date"]
    dest.write_text(json_text(out))
    return out


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "run" and "--" in sys.argv:
        sys.exit(run(Path(sys.argv[2]), sys.argv[3], sys.argv[sys.argv.index("--") + 1:]))
    if len(sys.argv) == 4 and sys.argv[1] == "summarize":
        print(json.dumps(summarize(Path(sys.argv[2]), Path(sys.argv[3])), indent=1))
        sys.exit(0)
    sys.exit(__doc__)  # --help, or arguments of neither form: the usage, exit 1
