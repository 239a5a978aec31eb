"""Where cifar10-fast's points go against airbench94: the reference and each difference, one at a time.

    python tools/airbench_steps.py list [--json FILE]             # the arms, their commands and estimated times
    python tools/airbench_steps.py run DATA OUT [--seeds 0,1,2] [--arms a,b]   # run them (timed, under the lock)
    python tools/airbench_steps.py summarize OUT RESULTS.json [--fast-seeds F] [--against OTHER]  # Δ vs the reference

Each command takes ``--set cifar10`` (after the verb) for the second table: the `cifar10` recipe's
network (`alexnet-cifar` with batch norm) on the fast engine, its first try ``c1``
(docs/runs/cifar10-recipe/c1/c1.yaml) as the reference and one change at a time — more epochs,
narrower fully connected layers (fewer parameters for the optimiser to update each step), another
rate, more translation, no dropout, an EMA instead of lookahead — for the search of 87 % in 20 minutes;
``--set cifar10-recipe`` for the recipe that search chose and its ablation. An arm with ``replay`` (``r-…-replay``)
trains from a committed run's config.json instead of flags — the recipe seed's own ``--time-budget`` plan, step for
step, not timed again — with one flag changed: the same steps on any machine, so its pair differs in that flag alone.
For more pairs than the recipe has seeds, ``recipe-replay`` trains the recipe itself at seed N ≥ 3 on seed N mod 3's
plan, and a replay arm's seed N pairs with it (``--arms recipe-replay,r-ls0-replay --seeds 3,4``).

The reference is ``--recipe cifar10-airbench`` (airbench94's own choices; docs/cifar10.md, "The
reference: airbench94's choices"). Each other arm changes exactly one thing, in one of two
directions: the reference with one of cifar10-fast's values (``ab-…``: what that difference costs
airbench), or cifar10-fast with one of airbench's (``fast-…``: what it would bring the recipe).
Every run also scores its final weights three ways — centre, flip averaging (``--ten-crop``: the
softmaxes of the image and its mirror) and airbench's TTA (``--tta 2``: six views, logits
weighted) — so the evaluation differences need no runs of their own.

``run`` runs each arm × seed through tools/ema_measure.py's ``run`` (the lock file
``$ALEXNET_CPU_LOCK`` when set, ``output.txt`` and ``run.json`` beside the run's ``config.json``,
``metrics.csv`` and ``final.json``) into ``OUT/<arm>-s<seed>``; an arm × seed with a
``final.json`` is skipped, so an interrupted session continues where it stopped. ``summarize``
gives, per arm, the mean, median and range of each score over its seeds and, paired by seed, the difference to the
reference with a 95 % Student-t interval (3 seeds or more; "within the noise" when it includes 0) — for
`cifar10-fast`'s own arms also to the arm ``fast`` by seed (``*_vs_base``) and over all the seeds of each, unpaired
(``flip_vs_base_runs``, a Welch interval), and ``ab-30m`` (the reference with ``--time-budget 30m``) likewise to
``ab-16ep``;
``--fast-seeds docs/results/cifar10-fast-2026-11-23.json`` adds each arm (``flip_vs_cifar10_fast_seeds``) and the
reference's TTA against `cifar10-fast`'s own committed seeds (flip-averaged), which share no runs with them: a
Welch interval, unpaired. ``--against OTHER`` (another OUT) adds, for each arm with runs of the same seeds there,
the difference of its runs to those, paired by seed (``vs_against``: centre, flip-averaged, wall time, steps) — the
same commands on another CPU or with another version of the code; an arm naming another arm there (``against_arm``:
``r-now-40m``, the recipe given 40 minutes, against ``r-nolookahead-replay``, the recipe on its own 20-minute steps)
pairs with that one's runs.
Plain Python (no torch).
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ema_measure import json_text, run as timed_run, t975, t_interval  # noqa: E402 — the sibling tool's timed, locked run

REFERENCE = "airbench"
COMMON = ["--ten-crop", "--tta", "2", "--report-at", "80,85,90,93,94"]  # every arm scores all three ways

# Seconds per epoch on the measuring machine (AMD EPYC, 2 cores, avx512_bf16, no AMX; `--amp auto` took bf16):
# cifar10-fast (ReLU, batch 512) from its runs; GELU at batch 1024 from the 1-epoch smoke of the reference
# (docs/cifar10.md); the other two combinations assumed between them.
EPOCH_S = {("relu", 512): 43.0, ("gelu", 1024): 45.6, ("relu", 1024): 43.0, ("gelu", 512): 45.6,
           # alexnet-cifar with batch norm at batch 512 (c1's epochs, docs/runs/cifar10-recipe/c1/metrics.csv);
           # with 1,024-wide fully connected layers: c1's × 619/765, the bf16 steps' img/s of the two in
           # benchmarks/cifar_recipe_step.md
           ("alexnet-cifar", 512): 78.0, ("alexnet-cifar fc1024", 512): 63.0,
           # convolutions 64-128-256-256-256 as well: c1-narrow-20m's epochs (docs/runs/cifar10-search/c1-narrow-20m-s0)
           ("alexnet-cifar narrow", 512): 47.0,
           # airbench95's 128-384-384: the reference's epoch × 2.54, its convolutions' multiply-adds per image
           # (802 M against 316 M)
           ("gelu 128-384-384", 1024): 116.0}
# start-up, decoding the 50,000 JPEGs, the bf16 probe, whitening, checkpoints, the final evaluations (1 + 2 + 6
# passes over the 5,000 held-out images): the smoke's 76 s of wall time less its 46 s epoch
SETUP_S = 20.0
FINAL_S = 8.0


def budget_epochs(seconds: float, key: tuple[str, int]) -> float:
    """The epochs a ``--time-budget`` of ``seconds`` fits at ``EPOCH_S[key]``: a budgeted arm's estimate is its budget."""
    return (seconds - SETUP_S - FINAL_S) / EPOCH_S[key]


@dataclass(frozen=True)
class Arm:
    name: str
    flags: tuple[str, ...]
    what: str  # the one difference, in words
    act: str  # for the time estimate
    batch: int
    epochs: float
    common: tuple[str, ...] = tuple(COMMON)
    base: str = ""  # the arm it is one change away from, when not the set's reference (cifar10-fast's own arms, ab-30m)
    # a committed run folder ({plan}: the seed modulo the recipe's RECIPE_SEEDS) whose config.json the arm trains
    # from, at its own seed, its --time-budget plan replayed step for step (not timed again, so on any machine), its
    # data path set to DATA; the flags change one thing
    replay: str = ""
    # an arm whose runs stand in for the reference's at the seeds the reference has none (the recipe itself on a
    # replayed plan, at seeds after its own), so that a replay arm pairs by seed there too
    stand_in: str = ""
    # the arm in ``--against`` whose runs this one's pair with by seed, where not one of the same name (the recipe
    # given another budget on another machine against the recipe's own steps)
    elsewhere: str = ""

    def command(self, data: str, out: str, seed: int) -> list[str]:
        if self.replay:  # data and budget come from the replayed config (a --data-path would make a new plan)
            return ["alexnet", "train", "--config", f"{out}/{self.name}-s{seed}.config.json", *self.flags,
                    "--output-dir", out, "--name", f"{self.name}-s{seed}", "--seed", str(seed)]
        return ["alexnet", "train", *self.flags, *self.common, "--data-path", data, "--output-dir", out,
                "--name", f"{self.name}-s{seed}", "--seed", str(seed)]

    def replayed(self, seed: int) -> Path:
        """The committed run whose plan seed ``seed`` replays: the recipe's seed of that number, or, at a seed after
        them, seed ``seed`` modulo their number (so seed 3 trains seed 0's steps)."""
        return Path(self.replay.format(plan=seed % RECIPE_SEEDS))

    def write_replay(self, data: str, out: Path, seed: int) -> Path:
        """``OUT/<arm>-s<seed>.config.json``: the replayed run's config.json with its data (``…DATA``) at ``data``."""
        src = self.replayed(seed) / "config.json"
        if not src.is_file():
            raise SystemExit(f"{self.name}: {src} not found (run from the repository's root)")
        cfg = json.loads(src.read_text())
        kind, _, where = str(cfg.get("data", "")).rpartition(":")
        if where != "DATA":
            raise SystemExit(f"{self.name}: {src}'s data is {cfg.get('data')!r}, not a committed run's ...DATA")
        cfg["data"] = f"{kind}:{data}" if kind else data
        dest = out / f"{self.name}-s{seed}.config.json"
        dest.write_text(json.dumps(cfg, indent=1) + "\n")
        return dest

    def estimate_min(self) -> float:
        return (SETUP_S + EPOCH_S[(self.act, self.batch)] * self.epochs + FINAL_S) / 60


AB, FAST = ("--recipe", "cifar10-airbench"), ("--recipe", "cifar10-fast")
# airbench95 (legacy/airbench95.py: 95.01 % over 200 runs on the test split, 15 epochs) differs from airbench94 in
# the widths (128-384-384) and the rate (10.0 per 1024 decoupled, not 11.5): 10 / 11.5 of the reference's 1.5 on a
# mean loss; the weight decay stays 0.0153 decoupled, so per step the same: 0.0153 / 10 of the rate, / 64 for the
# biases. --model-arg replaces the recipe's model arguments as a whole, so GELU is given again.
AB95 = ("--model-arg", "act=gelu", "--model-arg", "widths=128,384,384", "--lr", "1.3043478260869565",
        "--wd", "1.53e-3", "--bias-weight-decay", "2.390625e-05")
ARMS = (
    Arm(REFERENCE, AB, "airbench94's choices (the reference)", "gelu", 1024, 9.9),
    Arm("ab-relu", (*AB, "--model-arg", "act=relu"), "ReLU instead of GELU", "relu", 1024, 9.9),
    Arm("ab-b512", (*AB, "-b", "512", "--lr", "0.75"), "batch 512 (lr 0.75: the same rate per image)",
        "gelu", 512, 9.9),
    Arm("ab-16ep", (*AB, "--epochs", "16"), "16 epochs instead of 9.9", "gelu", 1024, 16),
    # the reference given the whole half hour: --time-budget plans its epochs (and the schedule over them) to 30
    # minutes on the machine it runs on; its estimate is the budget (the epochs below fit it)
    Arm("ab-30m", (*AB, "--time-budget", "30m"), "airbench's choices, epochs planned to 30 minutes", "gelu", 1024,
        budget_epochs(1800, ("gelu", 1024)), base="ab-16ep"),
    Arm("ab-fp32", (*AB, "--amp", "off"), "fp32 instead of bf16 autocast (airbench: fp16)", "gelu", 1024, 9.9 * 1.6),
    Arm("fast", FAST, "cifar10-fast as it is (ReLU, batch 512, 16 epochs)", "relu", 512, 16),
    Arm("fast-gelu", (*FAST, "--model-arg", "act=gelu"), "cifar10-fast with GELU", "gelu", 512, 16, base="fast"),
    Arm("fast-b1024", (*FAST, "-b", "1024", "--lr", "1.5"), "cifar10-fast at batch 1024", "relu", 1024, 16,
        base="fast"),
    Arm("fast-9.9ep", (*FAST, "--train-epochs", "9.9"), "cifar10-fast for 9.9 epochs", "relu", 512, 9.9, base="fast"),
    # GELU at equal time: both planned to 15 minutes by --time-budget (GELU's slower epochs buy fewer of them), paired
    # by seed; their estimate is the budget
    Arm("fast-15m", (*FAST, "--time-budget", "15m"), "cifar10-fast, epochs planned to 15 minutes", "relu", 512,
        budget_epochs(900, ("relu", 512)), base="fast"),
    Arm("fast-gelu-15m", (*FAST, "--model-arg", "act=gelu", "--time-budget", "15m"),
        "cifar10-fast with GELU, epochs planned to 15 minutes", "gelu", 512,
        budget_epochs(900, ("gelu", 512)), base="fast-15m"),
    Arm("ab95", (*AB, *AB95, "--epochs", "15"),
        "airbench95's choices (128-384-384, rate 10 per 1024 decoupled, 15 epochs)", "gelu 128-384-384", 1024, 15),
)  # ab-fp32's epochs: 9.9 × the bf16 speed-up the smoke measured (1.6×), as fp32 epochs take that much longer


C1 = ("--config", "docs/runs/cifar10-recipe/c1/c1.yaml")
BN = ("--model-arg", "norm=batch")  # --model-arg replaces the config's model arguments as a whole
NET, NET_FC, NET_NARROW = "alexnet-cifar", "alexnet-cifar fc1024", "alexnet-cifar narrow"
NARROW = ("--model-arg", "widths=64,128,256,256,256")  # conv2 and conv3 narrower: an epoch 47 s against fc1024's 64 s
CIFAR10_ARMS = (
    Arm("c1", C1, "the first try (16 epochs, batch 512, lr 0.2 one-cycle, ±2 px, lookahead)", NET, 512, 16, ("--ten-crop",)),
    Arm("c1-24ep", (*C1, "--epochs", "24"), "24 epochs", NET, 512, 24, ("--ten-crop",)),
    Arm("c1-32ep", (*C1, "--epochs", "32"), "32 epochs", NET, 512, 32, ("--ten-crop",)),
    Arm("c1-fc1024", (*C1, *BN, "--model-arg", "fc_width=1024"), "fully connected layers 1,024 wide", NET_FC, 512, 16,
        ("--ten-crop",)),
    Arm("c1-fc1024-24ep", (*C1, *BN, "--model-arg", "fc_width=1024", "--epochs", "24"),
        "fully connected layers 1,024 wide, 24 epochs", NET_FC, 512, 24, ("--ten-crop",)),
    Arm("c1-lr0.4", (*C1, "--lr", "0.4"), "peak rate 0.4", NET, 512, 16, ("--ten-crop",)),
    Arm("c1-t4", (*C1, "--translate", "4"), "±4 px translation", NET, 512, 16, ("--ten-crop",)),
    Arm("c1-nodrop", (*C1, *BN, "--model-arg", "dropout=0"), "no dropout (batch norm only)", NET, 512, 16,
        ("--ten-crop",)),
    Arm("c1-ema", (*C1, "--no-lookahead", "--ema", "0.999"), "an EMA of the weights (0.999) instead of lookahead",
        NET, 512, 16, ("--ten-crop",)),
    Arm("c1-narrow-20m", (*C1, *BN, "--model-arg", "fc_width=1024", *NARROW, "--time-budget", "20m"),
        "convolutions 64-128-256-256-256, fully connected layers 1,024 wide, epochs planned to 20 minutes",
        NET_NARROW, 512, 23, ("--ten-crop",)),
)
RECIPE_SEEDS = 3  # the recipe's committed seeds, whose plans the replay arms train
REPLAYED = "docs/runs/cifar10-recipe-arms/recipe-s{plan}"
# the recipe the search chose, its epochs planned to 20 minutes, with the lookahead it had when these arms ran (the
# recipe has since dropped it: r-nolookahead is the recipe as it now stands)
R20 = ("--recipe", "cifar10", "--time-budget", "20m", "--lookahead")
RECIPE_ARMS = (
    Arm("recipe", R20, "the cifar10 recipe with lookahead, as it was (c1-narrow-20m's settings)", NET_NARROW, 512, 25,
        ()),
    Arm("r-wide", (*R20, *BN, "--model-arg", "fc_width=1024"), "the tutorials' convolutions 64-192-384-256-256",
        NET_FC, 512, 18, ()),
    Arm("r-ls0", (*R20, "--label-smoothing", "0"), "no label smoothing", NET_NARROW, 512, 25, ()),
    Arm("r-nolookahead", (*R20[:-1], "--no-lookahead"), "no lookahead (the recipe now)", NET_NARROW, 512, 25, ()),
    # the recipe as it now stands (no flag but the budget) given 40 minutes: on a CPU of half the recipe machine's
    # speed (the slower EPYC) about the epochs 20 minutes fit there, so with --against it pairs by seed with the
    # recipe now on the recipe seeds' own 20-minute steps
    Arm("r-now-40m", ("--recipe", "cifar10", "--time-budget", "40m"), "the recipe now, epochs planned to 40 minutes",
        NET_NARROW, 512, 50, (), elsewhere="r-nolookahead-replay"),
    Arm("r-flip", (*R20, "--aug", "flip"), "no translation (flips stay)", NET_NARROW, 512, 25, ()),
    Arm("r-fp32", (*R20, "--amp", "off"), "fp32 instead of bf16 autocast", NET_NARROW, 512, 25, ()),
    # the same change on the recipe seed's own steps: its config.json replayed, plan and all, so the pair differs in
    # label smoothing alone (not also in the epochs each run's probe fitted) and may run on a slower machine
    Arm("r-ls0-replay", ("--label-smoothing", "0"), "no label smoothing, on the recipe seed's recorded plan",
        NET_NARROW, 512, 25, (), replay=REPLAYED, stand_in="recipe-replay"),
    Arm("r-nolookahead-replay", ("--no-lookahead",), "no lookahead, on the recipe seed's recorded plan",
        NET_NARROW, 512, 25, (), replay=REPLAYED, stand_in="recipe-replay"),
    # label smoothing once lookahead is gone: paired by seed with r-nolookahead-replay (its base), the same steps
    Arm("r-nolookahead-ls0-replay", ("--no-lookahead", "--label-smoothing", "0"),
        "no label smoothing, without lookahead, on the recipe seed's recorded plan", NET_NARROW, 512, 25, (),
        base="r-nolookahead-replay", replay=REPLAYED, stand_in="recipe-replay"),
    # more pairs than the recipe has seeds: the recipe itself at seed N ≥ 3 on seed N mod 3's plan, which the replay
    # arms at seed N pair with (at seeds 0-2 it retraces the recipe's own runs)
    Arm("recipe-replay", (), "the recipe at a new seed, on a recipe seed's recorded plan", NET_NARROW, 512, 25, (),
        replay=REPLAYED),
)  # every arm but r-now-40m runs to the same 20-minute budget: its estimate is the budget, whatever the epochs it fits
SETS = {"airbench": (REFERENCE, ARMS), "cifar10": ("c1", CIFAR10_ARMS), "cifar10-recipe": ("recipe", RECIPE_ARMS)}


def arm_set(opts: dict) -> tuple[str, tuple[Arm, ...]]:
    name = opts.get("--set", "airbench")
    if name not in SETS:
        raise SystemExit(f"unknown set {name!r}: choose from {', '.join(SETS)}")
    return SETS[name]


def list_arms(arms: tuple[Arm, ...] = ARMS) -> str:
    lines = []
    for a in arms:
        lines.append(f"{a.name:<11} ~{a.estimate_min():4.1f} min  {a.what}\n"
                     f"            {' '.join(a.command('DATA', 'OUT', 0))}")
    lines.append(f"all {len(arms)} arms: ~{estimates(arms)['all_arms_min']:.0f} min per seed (one run at a time)")
    return "\n".join(lines)


def estimates(arms: tuple[Arm, ...] = ARMS) -> dict:
    """Each arm's estimated wall time (minutes) and what it rests on."""
    arms = {a.name: round(a.estimate_min(), 1) for a in arms}
    return {"epoch_s": {f"{act}-{batch}": s for (act, batch), s in EPOCH_S.items()}, "setup_s": SETUP_S,
            "final_s": FINAL_S, "arms_min": arms, "all_arms_min": round(sum(arms.values()), 0)}


def run_arms(data: str, out: Path, seeds: list[int], names: list[str] | None, every: tuple[Arm, ...] = ARMS) -> int:
    arms = [a for a in every if not names or a.name in names]
    unknown = set(names or ()) - {a.name for a in every}
    if unknown:
        raise SystemExit(f"unknown arm(s) {', '.join(sorted(unknown))}: choose from {', '.join(a.name for a in every)}")
    failed = 0
    for seed in seeds:
        for a in arms:
            if (out / f"{a.name}-s{seed}" / "final.json").is_file():
                continue
            if a.replay:
                out.mkdir(parents=True, exist_ok=True)
                a.write_replay(str(Path(data).resolve()), out, seed)
            # this interpreter's alexnet (``python -m alexnet``), whether or not its script is on PATH
            cmd = [sys.executable, "-m", *a.command(data, str(out), seed)]
            rc = timed_run(out, f"{a.name}-s{seed}", cmd)
            print(f"{a.name}-s{seed}: exit {rc}", flush=True)
            failed += rc != 0
    return 1 if failed else 0


def scores(folder: Path) -> dict:
    final = json.loads((folder / "final.json").read_text())
    run = json.loads((folder / "run.json").read_text()) if (folder / "run.json").is_file() else {}
    rows = list(csv.DictReader((folder / "metrics.csv").open()))
    pick = lambda key: final[key]["top1"] if final.get(key) else None  # noqa: E731
    return {"centre": pick("centre"), "flip": pick("ten_crop"), "tta": pick("tta"), "wall_s": run.get("wall_s"),
            "steps": int(rows[-1]["step"]), "epoch_s": sorted(float(r["time"]) for r in rows)[len(rows) // 2],
            "machine": run.get("machine")}


def paired(got: dict, other: dict, key: str) -> dict | None:
    """``got`` − ``other`` seed by seed on ``key`` (``by_seed``), with its 95 % interval; None when they share no
    scored seed."""
    by_seed = {s: got[s][key] - other[s][key] for s in got if s in other and None not in (got[s][key], other[s][key])}
    return {**t_interval(list(by_seed.values())), "by_seed": by_seed} if by_seed else None


def flips(seeds: dict) -> list[float]:
    """The flip-averaged scores of one arm's seeds (those that have one)."""
    return [s["flip"] for s in seeds.values() if s["flip"] is not None]


def welch(a: list[float], b: list[float]) -> dict:
    """mean(a) − mean(b) and its 95 % Welch interval (unequal variances, the t quantile at the Welch–Satterthwaite
    degrees of freedom, as `alexnet.experiments.verdict.compare`); for two sets of runs that share no seeds.
    No interval (nan) with one run on a side, or no spread on either."""
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    if min(len(a), len(b)) < 2:
        return {"n": [len(a), len(b)], "mean": ma - mb, "half_width": math.nan, "low": math.nan, "high": math.nan}
    va = sum((x - ma) ** 2 for x in a) / (len(a) - 1) / len(a)
    vb = sum((x - mb) ** 2 for x in b) / (len(b) - 1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return {"n": [len(a), len(b)], "mean": ma - mb, "half_width": math.nan, "low": math.nan, "high": math.nan}
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    h = t975(df) * se
    return {"n": [len(a), len(b)], "mean": ma - mb, "df": df, "half_width": h, "low": ma - mb - h, "high": ma - mb + h}


def load_runs(out: Path) -> dict[str, dict[int, dict]]:
    """Arm → seed → `scores` of each finished run folder ``OUT/<arm>-s<seed>``."""
    runs: dict[str, dict[int, dict]] = {}
    for folder in sorted(p for p in out.iterdir() if (p / "final.json").is_file()):
        name, seed = folder.name.rsplit("-s", 1)
        runs.setdefault(name, {})[int(seed)] = scores(folder)
    return runs


def summarize(out: Path, dest: Path, reference: str = REFERENCE, arms: tuple[Arm, ...] = ARMS,
              fast_seeds: Path | None = None, against: Path | None = None) -> dict:
    runs = load_runs(out)
    other = load_runs(against) if against else {}  # the same arms run elsewhere (another CPU, another version)
    ref = runs.get(reference, {})
    machines = {json.dumps(s.pop("machine"), sort_keys=True) for seeds in runs.values() for s in seeds.values()}
    result: dict = {"reference": reference, "arms": {},  # every machine the runs were timed on (their run.json)
                    "machines": [json.loads(m) for m in sorted(machines - {"null"})]}
    if against:
        result["against"] = against.as_posix()
    fast = ([s["flip_averaged"] for s in json.loads(fast_seeds.read_text())["seeds"]]
            if fast_seeds and fast_seeds.is_file() else None)  # cifar10-fast's own committed seeds (flip-averaged)
    for a in arms:
        got = runs.get(a.name)
        if not got:
            continue
        row: dict = {"what": a.what, "command": " ".join(a.command("DATA", "OUT", 0)), "seeds": got}
        pair_ref = {**runs.get(a.stand_in, {}), **ref}  # the reference's seeds, its stand-in's where it has none
        for key in ("centre", "flip", "tta", "wall_s", "epoch_s"):
            vals = [s[key] for s in got.values() if s[key] is not None]
            row[f"{key}_mean"] = sum(vals) / len(vals) if vals else None
            row[f"{key}_median"] = statistics.median(vals) if vals else None
            row[f"{key}_range"] = [min(vals), max(vals)] if vals else None
            if key in ("centre", "flip", "tta") and a.name != reference:
                row[f"{key}_vs_reference"] = paired(got, pair_ref, key)
                if a.base and a.base in runs:  # and against the arm it is one change away from, by seed
                    row["base"], row[f"{key}_vs_base"] = a.base, paired(got, runs[a.base], key)
                    if key == "flip":  # and over all its seeds, whether or not the base ran them: unpaired
                        row["flip_vs_base_runs"] = welch(flips(got), flips(runs[a.base]))
        gains = [s["flip"] - s["centre"] for s in got.values() if None not in (s["flip"], s["centre"])]
        row["flip_gain"] = t_interval(gains) if gains else None  # flip averaging over the centre crop, per seed
        gains = [s["tta"] - s["flip"] for s in got.values() if None not in (s["tta"], s["flip"])]
        row["tta_gain"] = t_interval(gains) if gains else None  # airbench's 6-view TTA over flip averaging, per seed
        theirs = a.elsewhere or a.name
        if other.get(theirs):  # the same arm × seed in ``against``, paired by seed: what the other place changed
            row["vs_against"] = {key: paired(got, other[theirs], key) for key in ("centre", "flip", "wall_s", "steps")}
            if a.elsewhere:
                row["against_arm"] = a.elsewhere
        if fast:  # every arm against cifar10-fast's committed seeds, which share no runs with it: unpaired
            row["flip_vs_cifar10_fast_seeds"] = welch(flips(got), fast)
        result["arms"][a.name] = row
    if fast and ref:
        result["reference_vs_cifar10_fast_seeds"] = {
            "file": fast_seeds.as_posix(), "cifar10_fast_flip": fast,
            "reference_flip": [s["flip"] for s in ref.values()], "flip": welch([s["flip"] for s in ref.values()], fast),
            "reference_tta": [s["tta"] for s in ref.values() if s["tta"] is not None],
            "tta_vs_fast_flip": welch([s["tta"] for s in ref.values() if s["tta"] is not None], fast)}
    dest.write_text(json_text(result))
    return result


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("list", "run", "summarize"):
        print(__doc__)
        return 2
    flags = [a for a in argv[1:] if a.startswith("--")]
    opts = {a: argv[argv.index(a) + 1] for a in flags if a != "--json" and argv.index(a) + 1 < len(argv)}
    reference, arms = arm_set(opts)
    pos = [a for i, a in enumerate(argv[1:], 1) if not a.startswith("--") and not argv[i - 1].startswith("--")]
    if argv[0] == "list":
        print(list_arms(arms))
        if "--json" in argv:  # the estimates as data, for the docs
            Path(argv[argv.index("--json") + 1]).write_text(json_text(estimates(arms)))
        return 0
    if len(pos) != 2:
        need = "DATA OUT" if argv[0] == "run" else "OUT RESULTS.json"
        raise SystemExit(f"airbench_steps.py {argv[0]} needs {need}, got {' '.join(pos) or 'nothing'}")
    if argv[0] == "summarize":
        fast = Path(opts["--fast-seeds"]) if "--fast-seeds" in opts else None
        against = Path(opts["--against"]) if "--against" in opts else None
        if against and not against.is_dir():
            raise SystemExit(f"--against {against}: no such folder of runs")
        print(json.dumps(summarize(Path(pos[0]), Path(pos[1]), reference, arms, fast, against), indent=1))
        return 0
    seeds = [int(s) for s in opts.get("--seeds", "0").split(",")]
    names = opts["--arms"].split(",") if "--arms" in opts else None
    return run_arms(pos[0], Path(pos[1]), seeds, names, arms)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
