"""Costs from test folders to ImageNet's size: an ImageNet-shaped tree at 10k, 100k and 1.28M images,
and what each data step costs on it. Never part of the test run (a tiny size is, as a smoke test).

    python benchmarks/scale.py                                  # 10k, 100k, 1.28M under /tmp/alexnet-scale
    python benchmarks/scale.py --sizes 10k 100k --keep          # some sizes; keep the trees afterwards
    python benchmarks/scale.py --sizes tiny --root /tmp/s --out /tmp/s/scale.json --lock ''   # 20 classes × 5

The tree (`generate`): ``train/<wnid>/<wnid>_<k>.JPEG`` for 1,000 classes with plausible WordNet ids,
a flat ``val/ILSVRC2012_val_<n>.JPEG`` (ImageNet's 50,000 : 1,281,167 ratio) and a devkit-style
``ILSVRC2012_devkit_t12.tar.gz`` (``data/meta.mat`` + the validation ground truth), as the
``imagenet:`` kind reads it. Images are small JPEGs (48–64 px a side, a random colour field each),
so 1.28M files take ~5 GB of disk.

Steps, each in its own process (peak RSS from ``os.wait4``; the time counted from when the process
holds the CPU lock, so waiting for it is not measured), in this order:

- ``imagenet-val``: ``alexnet data imagenet-val val/ --devkit …`` (sorts the flat val images);
- ``dataset``: ``build_dataset("imagenet:ROOT")`` train + val (listing, class index) and the
  memory the train split's file list holds (``tracemalloc``, bytes per image);
- ``check``: ``alexnet data check imagenet:ROOT -j 2`` (decodes every image);
- ``cache``: ``alexnet data cache imagenet:ROOT --short-side 32 -j 2`` (a raw cache at 32 px:
  1.28M images are 3.9 GB; at the ``alexnet`` short side 256 they would be 252 GB);
- ``shards``: ``alexnet data shards imagenet:ROOT`` when this checkout has that command, else
  recorded as skipped (the hook is `step_shards`);
- ``loader_folder`` / ``loader_cache``: a training loader (``alexnet-cifar``'s 32×32 input,
  ``--aug paper``, batch 256, one process) on the JPEG tree / on the cache: time from nothing to
  the first batch (the dataset built, the sampler's first order), then img/s over a window of
  batches (``cold``) and over another one later (steady); on the cache also over its whole first
  epoch, which includes faulting in the memory map.

Each (size, step) result is written to ``--out`` as soon as it is measured, so a rerun skips
what is done; generating the tree and building the cache resume where a killed chunk stopped.
Every process runs under ``flock LOCK`` (default the project's shared CPU lock) with at most
``--chunk`` seconds each; sizes up to ``--group-below`` images run all their steps in one hold.
``--report`` rewrites the Markdown beside ``--out`` from the JSON (``--merge`` folds in other runs).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SIZES = {"tiny": 100, "10k": 10_000, "100k": 100_000, "1.28M": 1_281_167}
TINY_CLASSES = 20
VAL_RATIO = 50_000 / 1_281_167  # ILSVRC-2012: validation images per training image
STEPS = ("generate", "imagenet-val", "dataset", "check", "cache", "shards", "loader_folder", "loader_cache")
RESUMABLE = ("generate", "imagenet-val", "cache")  # a killed chunk is continued by the next
CACHE_SIDE = 32
BATCH = 256
WARMUP = 2  # loaders: timed windows apart (× the window), so the second is past a cache's cold start
DEVKIT = "ILSVRC2012_devkit_t12"


# ----------------------------------------------------------------------------- the tree

def layout(size: str) -> tuple[int, int, int]:
    """(training images, classes, validation images) of a size name."""
    n = SIZES[size]
    classes = TINY_CLASSES if size == "tiny" else 1000
    return n, classes, max(classes, round(n * VAL_RATIO))


def wnids(classes: int, seed: int = 0) -> list[str]:
    """``classes`` sorted, distinct WordNet-style ids in ImageNet's range (n01440764 … n15075141)."""
    rng = np.random.default_rng(seed)
    ids = rng.choice(np.arange(1_440_764, 15_075_142), size=classes, replace=False)
    return [f"n{int(i):08d}" for i in sorted(ids)]


def jpeg(rng: np.random.Generator) -> bytes:
    """A small JPEG (48–64 px a side): a random 5×5 colour field, bilinearly enlarged."""
    from PIL import Image

    w, h = (int(v) for v in rng.integers(48, 65, size=2))
    img = Image.fromarray(rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)).resize((w, h), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def write_devkit(root: Path, ids: list[str], val_labels: list[int]) -> None:
    """``ILSVRC2012_devkit_t12.tar.gz``: ``data/meta.mat`` (the leaves with ILSVRC2012_IDs in an order
    that is not the sorted-wnid one, as in the real devkit) and the validation ground truth."""
    import scipy.io

    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "wordnet_height", "num_train_images"]
    order = np.random.default_rng(1).permutation(len(ids))  # ILSVRC2012_ID - 1 of each sorted wnid
    arr = np.zeros((len(ids),), dtype=[(f, object) for f in fields])
    for k, w in enumerate(ids):
        arr[k] = (int(order[k]) + 1, w, f"synset {w}, class {k}", "generated", 0, 0, 1300)
    meta = io.BytesIO()
    scipy.io.savemat(meta, {"synsets": arr})
    gt = "".join(f"{int(order[t]) + 1}\n" for t in val_labels).encode()
    tmp = root / f"{DEVKIT}.tar.gz.partial"
    with tarfile.open(tmp, "w:gz") as tar:
        for name, data in ((f"{DEVKIT}/data/meta.mat", meta.getvalue()),
                           (f"{DEVKIT}/data/ILSVRC2012_validation_ground_truth.txt", gt)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, root / f"{DEVKIT}.tar.gz")


def generate(root: Path, size: str, budget: float) -> dict:
    """Write (more of) the tree of ``size`` under ``root``; stops after ``budget`` seconds at a class
    boundary. Each class folder is written as ``<wnid>.partial`` and renamed when complete, the flat
    val folder likewise, so an interrupted run resumes. Returns ``{"done": bool, "images": written}``."""
    t0 = time.perf_counter()
    n, classes, n_val = layout(size)
    ids = wnids(classes)
    train = root / "train"
    train.mkdir(parents=True, exist_ok=True)
    written = 0
    for k, w in enumerate(ids):
        if (train / w).is_dir():
            continue
        if time.perf_counter() - t0 > budget:
            return {"done": False, "images": written}
        part = train / f"{w}.partial"
        shutil.rmtree(part, ignore_errors=True)
        part.mkdir()
        rng = np.random.default_rng([7, k])
        for i in range(n // classes + (k < n % classes)):
            (part / f"{w}_{i}.JPEG").write_bytes(jpeg(rng))
            written += 1
        os.rename(part, train / w)
    if not (root / "val").is_dir() and not (root / f"{DEVKIT}.tar.gz").is_file():
        part = root / "val.partial"
        shutil.rmtree(part, ignore_errors=True)
        part.mkdir()
        rng = np.random.default_rng([8, n])
        labels = [int(v) for v in rng.integers(0, classes, size=n_val)]
        for j in range(n_val):
            (part / f"ILSVRC2012_val_{j + 1:08d}.JPEG").write_bytes(jpeg(rng))
            written += 1
        write_devkit(root, ids, labels)
        os.rename(part, root / "val")
    return {"done": True, "images": written}


# ----------------------------------------------------------------------------- the steps (in a worker)

def cli(*argv: str) -> dict:
    """Run ``alexnet ARGV`` in this process, its output thrown away; the exit code."""
    from alexnet.cli import main

    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        rc = main(list(argv))
    return {"exit_code": rc}


def step_dataset(root: Path) -> dict:
    import gc
    import tracemalloc

    from alexnet.data import build_dataset

    t = time.perf_counter()
    train = build_dataset(f"imagenet:{root}", "train")
    t_train = time.perf_counter() - t
    val = build_dataset(f"imagenet:{root}", "val")
    out = {"train_s": t_train, "val_s": time.perf_counter() - t - t_train, "train_images": len(train),
           "val_images": len(val), "classes": len(train.classes)}
    del train, val
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    train = build_dataset(f"imagenet:{root}", "train")
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    out["file_list_bytes_per_image"] = held / len(train)
    return out


def step_shards(root: Path, work: Path) -> dict:
    """The shard build, when this checkout has ``alexnet data shards``; else a note."""
    from alexnet.cli import build_parser

    try:
        build_parser().parse_args(["data", "shards", "--help"])
    except SystemExit as e:
        if e.code == 0:  # the command exists (its help was printed)
            out = work / "shards"
            shutil.rmtree(out, ignore_errors=True)
            return cli("data", "shards", f"imagenet:{root}", "-o", str(out))
    return {"skipped": "no `alexnet data shards` command in this checkout"}


def step_loader(spec: str, batches: int, batch: int, full_epoch: bool = False) -> dict:
    """From nothing to the first training batch (dataset, transform, loader), then img/s over the
    next ``batches`` (``cold_img_per_s``: a large cache's memory map is still being faulted in) and
    over ``batches`` more after ``WARMUP`` × ``batches`` (``steady_img_per_s``).
    ``full_epoch``: also the rate over the whole first epoch, cold start included (``epoch_img_per_s``).
    ``alexnet-cifar``'s input (32×32, short side 32), ``--aug paper``, one process."""
    import torch

    from alexnet.data import build_dataset, build_loader, build_transforms
    from alexnet.models import model_cfg

    torch.set_num_threads(1)
    t = time.perf_counter()
    cfg = model_cfg("alexnet-cifar")
    ds = build_dataset(spec, "train", build_transforms(cfg, train=True, aug="paper"))
    loader = build_loader(ds, batch_size=batch, train=True, seed=0, pin_memory=False, defer_lighting=True)

    def epochs():
        for epoch in range(1 << 20):
            loader.sampler.set_epoch(epoch)
            yield from loader

    it = epochs()
    out: dict = {}
    t_epoch = time.perf_counter()
    next(it)
    first = time.perf_counter() - t
    if full_epoch:
        for _ in range(len(loader) - 1):
            next(it)
        out["epoch_img_per_s"] = len(loader) * batch / (time.perf_counter() - t_epoch)
    rates = []
    for window in range(2):
        for _ in range(WARMUP * batches * window):
            next(it)
        t = time.perf_counter()
        seen = sum(len(next(it)[0]) for _ in range(batches))
        rates.append(seen / (time.perf_counter() - t))
    return {**out, "first_batch_s": first, "cold_img_per_s": rates[0], "steady_img_per_s": rates[1], "batches": batches,
            "batch": batch, "fast_path": bool(getattr(ds, "fast_plan", lambda: None)())}


def run_step(step: str, root: Path, work: Path, size: str, budget: float) -> dict:
    """One step of ``size`` (the worker's side); its result."""
    tree = work / "imagenet"
    if step == "generate":
        return generate(tree, size, budget)
    if step == "imagenet-val":
        return cli("data", "imagenet-val", str(tree / "val"), "--devkit", str(tree / f"{DEVKIT}.tar.gz"))
    if step == "dataset":
        return step_dataset(tree)
    if step == "check":
        return cli("data", "check", f"imagenet:{tree}", "-j", "2")
    if step == "cache":
        return cli("data", "cache", f"imagenet:{tree}", "-o", str(work / "cache"), "--short-side", str(CACHE_SIDE),
                   "-j", "2")
    if step == "shards":
        return step_shards(tree, work)
    n = layout(size)[0]
    batch = min(BATCH, n // 4)
    batches = max(1, min(40, n // batch - 1))
    if step == "loader_folder":
        return step_loader(f"imagenet:{tree}", min(batches, 10), batch)
    if step == "loader_cache":
        return step_loader(f"cache:{work / 'cache'}", batches, batch, full_epoch=True)
    raise ValueError(step)


def worker(args: argparse.Namespace) -> int:
    """``--worker STEP``: mark the start (the lock is held now), run, print the result as JSON."""
    Path(args.started).write_text(str(time.time()))
    if args.worker != "generate":
        import torch  # noqa: F401 — in the baseline: every step but generating imports it

        import alexnet.cli  # noqa: F401
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    res = run_step(args.worker, Path(args.root), Path(args.root) / args.size, args.size, args.chunk - 30)
    res["seconds"] = time.perf_counter() - t
    res["rss_at_start_mb"] = base_rss / 1024
    print("RESULT " + json.dumps(res), flush=True)
    return 0


# ----------------------------------------------------------------------------- the driver

def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        cpu = next(ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name"))
        flags = next(ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags"))
    except (OSError, StopIteration):
        flags = []
    return {"cpu": cpu, "cores": os.cpu_count(), "avx512_bf16": "avx512_bf16" in flags,
            "amx": any(f.startswith("amx") for f in flags), "python": platform.python_version(),
            "disk": "a virtual disk (virtio, /dev/vda, ext4)"}


def spawn(step: str, size: str, args: argparse.Namespace) -> tuple[int, dict | None, float, float]:
    """Run one chunk of ``step`` in a worker under the lock (unless this process holds it): (exit
    code, result or None, seconds it ran once it held the lock, peak RSS in MB of it and its children)."""
    started = Path(args.root) / f".started-{os.getpid()}"
    started.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", step, "--size", size, "--root", args.root,
           "--chunk", str(args.chunk), "--started", str(started)]
    cmd = ["timeout", "-s", "KILL", str(args.chunk), *cmd]
    if args.lock and not args.holding:
        cmd = ["flock", args.lock, *cmd]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    end = time.time()
    ran = end - float(started.read_text()) if started.is_file() else 0.0
    started.unlink(missing_ok=True)
    res = next((json.loads(ln[7:]) for ln in out.splitlines() if ln.startswith("RESULT ")), None)
    return os.waitstatus_to_exitcode(status), res, ran, usage.ru_maxrss / 1024


def measure(size: str, step: str, args: argparse.Namespace, results: dict) -> None:
    """Run ``step`` of ``size`` in chunks until it finishes (resumable steps) or one chunk fails;
    record it in ``results`` and write them out."""
    entry = results["sizes"].setdefault(size, {"images": layout(size)[0], "classes": layout(size)[1],
                                               "val_images": layout(size)[2], "steps": {}})
    prev = entry["steps"].get(step, {})
    if prev.get("status") == "done":
        return
    total, peak, chunks = prev.get("seconds_total", 0.0), prev.get("peak_rss_mb", 0.0), prev.get("chunks", 0)
    work = prev.get("work_s", 0.0)
    while True:
        rc, res, ran, rss = spawn(step, size, args)
        total, peak, chunks = total + ran, max(peak, rss), chunks + 1
        work += res["seconds"] if res and "seconds" in res else ran  # a killed chunk: all it ran
        rec = {"seconds_total": total, "work_s": work, "peak_rss_mb": peak, "chunks": chunks}
        if rc == 0 and res is not None and (step != "generate" or res.get("done")):
            rec.update(res, status="done")
        elif step in RESUMABLE and (rc == 0 or ran >= args.chunk - 1):
            rec["status"] = "partial"
            entry["steps"][step] = rec
            save(results, args)
            print(f"[scale] {size} {step}: chunk {chunks} ({ran:.0f} s), continuing", file=sys.stderr, flush=True)
            continue
        else:
            rec.update(res or {}, status="failed", exit_code=rc)
        entry["steps"][step] = rec
        save(results, args)
        print(f"[scale] {size} {step}: {rec['status']} in {total:.1f} s, peak {peak:.0f} MB", file=sys.stderr,
              flush=True)
        return


@contextlib.contextmanager
def cpu_lock(path: str):
    """Hold ``flock(path)`` (the same lock the ``flock`` command takes) for the block; no-op for ''."""
    if not path:
        yield
        return
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def save(results: dict, args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.partial")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(tmp, out)
    out.with_suffix(".md").write_text(markdown(results))


# ----------------------------------------------------------------------------- the report

def step_seconds(rec: dict) -> float | None:
    """The seconds a step's cost is judged by: its work (the process's start and imports left out);
    for ``dataset`` the listing of both splits (its second, traced build only measures memory); for
    a loader the time to its first batch."""
    if rec.get("status") != "done" or "skipped" in rec:
        return None
    if "train_s" in rec:
        return rec["train_s"] + rec["val_s"]
    return rec.get("first_batch_s", rec.get("work_s"))


def growth(results: dict, step: str, small: str = "100k", large: str = "1.28M") -> dict | None:
    """How ``step`` grew from ``small`` to ``large``, over linear: time (per image), time per image of
    the steady loader, peak RSS above the process's start. ≤ 1.3 is the target."""
    s, l_ = (results["sizes"].get(k, {}).get("steps", {}).get(step, {}) for k in (small, large))
    if not s or not l_ or step_seconds(s) is None or step_seconds(l_) is None:
        return None
    n = results["sizes"][large]["images"] / results["sizes"][small]["images"]
    out = {"time": step_seconds(l_) / step_seconds(s) / n}
    if "steady_img_per_s" in s:
        out["steady_time_per_image"] = s["steady_img_per_s"] / l_["steady_img_per_s"]
    if "epoch_img_per_s" in s and "epoch_img_per_s" in l_:
        out["epoch_time_per_image"] = s["epoch_img_per_s"] / l_["epoch_img_per_s"]
    base_s, base_l = s.get("rss_at_start_mb", 0), l_.get("rss_at_start_mb", 0)
    if s["peak_rss_mb"] - base_s > 50:
        out["rss"] = (l_["peak_rss_mb"] - base_l) / (s["peak_rss_mb"] - base_s) / n
    return out


def markdown(results: dict) -> str:
    sizes = [k for k in SIZES if k in results["sizes"]]
    m = results["machine"]
    lines = ["# Costs from test folders to ImageNet's size", "",
             f"`{results['command']}` — {results.get('date', '')}. Machine: {m['cpu']}, {m['cores']} cores "
             f"(avx512_bf16: {'yes' if m['avx512_bf16'] else 'no'}, AMX: {'yes' if m['amx'] else 'no'}), shared with "
             f"other jobs; {m['disk']}. Each step in its own process under the CPU lock; seconds of its work (the "
             "process's start and imports, ~1.5 s, left out; waiting for the lock never counted); peak RSS of the "
             "process (MB; ~510 MB of it is Python, torch and the CLI imported).", "",
             "Images: small JPEGs (48–64 px, ~1.2 kB); cache: raw, 32 px short side; loaders: alexnet-cifar 32×32 "
             f"input, --aug paper, batch {BATCH}, one process, one thread.", "",
             "| step | " + " | ".join(f"{s} ({results['sizes'][s]['images']:,} + "
                                      f"{results['sizes'][s]['val_images']:,} val)" for s in sizes)
             + " | 100k → 1.28M, × linear |",
             "|---|" + "---:|" * len(sizes) + "---|"]
    worst: dict[str, float] = {}
    for step in STEPS:
        cells = [cell(results["sizes"][s]["steps"].get(step)) for s in sizes]
        g = growth(results, step)
        gs = "—" if g is None else ", ".join(f"{k.replace('_', ' ')} {v:.2f}×{' (over 1.3)' if v > 1.3 else ''}"
                                             for k, v in g.items())
        worst.update({f"{step} {k}": v for k, v in (g or {}).items()})
        lines.append(f"| {step} | " + " | ".join(cells) + f" | {gs} |")
    if worst:
        top = max(worst, key=worst.get)
        lines += ["", f"From 100k to 1.28M, {len(worst)} measures compared; the largest growth over linear is "
                      f"{top} at {worst[top]:.2f}× (the target: at most 1.3×). Time is per image; steady time per "
                      "image is the loader's; RSS is the peak above the process's RSS after its imports (a fixed "
                      "few hundred MB of libraries a step loads dominates it at these sizes)."]
    lines += ["", "File list (the train split's `FileDataset.samples`, tracemalloc): " + ", ".join(
        f"{s}: {results['sizes'][s]['steps']['dataset']['file_list_bytes_per_image']:.0f} bytes/image"
        for s in sizes if results["sizes"][s]["steps"].get("dataset", {}).get("status") == "done") + ".", ""]
    lines += [f"- {note}" for note in results.get("notes", [])]
    return "\n".join(lines) + "\n"


def cell(rec: dict | None) -> str:
    if not rec:
        return "not run"
    if rec.get("status") != "done":
        return f"{rec.get('status')} after {rec.get('seconds_total', 0):.0f} s"
    if "skipped" in rec:
        return "skipped: " + rec["skipped"]
    rss = f"{rec['peak_rss_mb']:.0f} MB"
    if "first_batch_s" in rec:
        epoch = f", whole first epoch {rec['epoch_img_per_s']:,.0f} img/s" if "epoch_img_per_s" in rec else ""
        return (f"first batch {rec['first_batch_s']:.2f} s, {rec['steady_img_per_s']:,.0f} img/s "
                f"({rec['cold_img_per_s']:,.0f} cold){epoch}, {rss}")
    if "train_s" in rec:
        return f"{rec['train_s']:.2f} s train + {rec['val_s']:.2f} s val, {rss}"
    return f"{rec['work_s']:.1f} s, {rss}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["10k", "100k", "1.28M"], choices=list(SIZES))
    ap.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS)
    ap.add_argument("--root", default="/tmp/alexnet-scale", help="where the trees and caches go")
    ap.add_argument("--out", default=str(HERE / "scale.json"), help="results JSON (Markdown beside it)")
    ap.add_argument("--lock", default="/tmp/alexnet-cpu.lock", help="flock file each step runs under ('' for none)")
    ap.add_argument("--chunk", type=float, default=340, help="seconds one process may run (default 340)")
    ap.add_argument("--group-below", type=int, default=150_000,
                    help="sizes up to this many images run all their steps in one hold of the lock")
    ap.add_argument("--keep", action="store_true", help="keep each size's tree and cache when its steps are done")
    ap.add_argument("--report", action="store_true", help="only rewrite the Markdown from the JSON")
    ap.add_argument("--redo", nargs="+", default=[], choices=STEPS, help="measure these steps again")
    ap.add_argument("--note", action="append", default=[], help="a line for the report")
    ap.add_argument("--merge", nargs="+", default=[], help="with --report: results JSONs of other runs (e.g. one "
                                                             "size measured separately) to fold in, step by step")
    ap.add_argument("--worker", choices=STEPS, help=argparse.SUPPRESS)
    ap.add_argument("--size", help=argparse.SUPPRESS)
    ap.add_argument("--started", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {"sizes": {}}
    if not args.report or "command" not in results:
        results.update(command="python benchmarks/scale.py " + " ".join(argv or sys.argv[1:]),
                       date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    results["machine"] = machine()
    results["notes"] = list(dict.fromkeys([*results.get("notes", []), *args.note]))
    for size in args.sizes:
        for step in args.redo:
            results["sizes"].get(size, {}).get("steps", {}).pop(step, None)
    if args.report:
        for other in args.merge:
            for size, entry in json.loads(Path(other).read_text())["sizes"].items():
                mine = results["sizes"].setdefault(size, {**entry, "steps": {}})
                mine["steps"].update({k: v for k, v in entry["steps"].items() if v.get("status") == "done"})
        save(results, args)
        return 0
    Path(args.root).mkdir(parents=True, exist_ok=True)
    args.holding = False
    for size in args.sizes:
        # small sizes: every step in one hold of the lock (a minute or two), not one wait per step
        with cpu_lock(args.lock if layout(size)[0] <= args.group_below else ""):
            args.holding = bool(args.lock) and layout(size)[0] <= args.group_below
            for step in args.steps:
                measure(size, step, args, results)
            args.holding = False
        steps = results["sizes"][size]["steps"]
        if not args.keep and all(steps.get(s, {}).get("status") == "done" for s in STEPS):
            shutil.rmtree(Path(args.root) / size, ignore_errors=True)
    save(results, args)
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
