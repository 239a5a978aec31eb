"""The benchmark suite: every side-by-side comparison in one run → ``benchmarks/results.md`` + ``.json``.

    python -m benchmarks                  # the full suite (~5–10 min on 2 CPU cores), from the repo root
    python -m benchmarks --quick -o /tmp/r.md   # tiny inputs, one repeat: checks the plumbing (tests run it)

Comparisons (each: ours, the baseline, their ratio, the machine's limit where one applies):

1. GEMM limit: fp32 and bf16 matrix products (`train_step.gemm_gflops`), the roof for 2–4.
2. Data pipeline per core (`data_pipeline.compare_loaders`): the tutorial's ``ImageFolder`` + PIL
   (``RandomResizedCrop`` + flip + ``ToTensor`` + ``Normalize``) vs ours on the JPEG folder, ours on
   a ``raw`` cache (``--aug light`` and ``--aug paper``), and the GPU decode path when there is a GPU.
3. Training step (`train_step.step_rate`): our defaults vs plain fp32 eager torchvision AlexNet /
   the same model NCHW fp32, as % of the GEMM limit of the precision used.
4. Inference (`train_step.infer_rate`): the same, forward only.
5. One end-to-end epoch on an image folder: `alexnet.engine.fit` vs the tutorial's training loop.
6. Retrieval (`retrieval_bench.compare`): ``FeatureIndex.search`` and ``knn`` vs ``torch.cdist``.
7. Serving (`serve_load`): ``alexnet serve`` under concurrent clients vs the same `Predictor` called
   in-process, one image at a time.
8. The paper's network (`paper_vs_owt.compare`): ``alexnet`` (and ``towers=2``) vs ``alexnet-owt``
   training img/s in fp32 and bf16, bf16 vs fp32; ``cifar4`` and ``alexnet-mini`` with vs without LRN.

Every number is a median of ``--repeats`` (default 5; ``--quick``: 1) timed runs after a warm-up;
contenders of one comparison are timed in the same process, one after the other. The machine is
shared: trust ratios more than absolute numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the scripts import each other as plain modules

import data_pipeline  # noqa: E402
import paper_vs_owt  # noqa: E402
import profile_paper_net  # noqa: E402
import retrieval_bench  # noqa: E402
import serve_load  # noqa: E402
import train_step  # noqa: E402

SECTIONS = ("gemm", "data", "train", "inference", "epoch", "retrieval", "serving", "paper")


def row(section: str, name: str, ours: float | None, baseline: float | None, unit: str, *, ours_label: str = "",
        baseline_label: str = "", limit: float | None = None, limit_unit: str = "", ours_of_limit: float | None = None,
        baseline_of_limit: float | None = None, higher_is_better: bool = True, note: str = "") -> dict:
    ratio = None
    if ours is not None and baseline:
        ratio = ours / baseline if higher_is_better else baseline / ours
    return {"section": section, "name": name, "ours": ours, "baseline": baseline, "unit": unit, "ratio": ratio,
            "ours_label": ours_label, "baseline_label": baseline_label, "limit": limit, "limit_unit": limit_unit,
            "ours_pct_of_limit": ours_of_limit, "baseline_pct_of_limit": baseline_of_limit, "note": note}


def machine() -> dict:
    """The CPU and its fast-path flags (`profile_paper_net.machine`), plus GPU, versions and load."""
    import torchvision

    return {**profile_paper_net.machine(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
            "torchvision": torchvision.__version__, "python": platform.python_version(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


# ----------------------------------------------------------------------------- the comparisons

def bench_gemm(q: bool, reps: int, ctx: dict) -> list[dict]:
    n = 256 if q else 2048
    fp32 = train_step.gemm_gflops(torch.float32, n, max(reps, 1))
    bf16 = train_step.gemm_gflops(torch.bfloat16, n, max(reps, 1))
    ctx["gemm"] = {"fp32": fp32, "bf16": bf16}
    return [row("gemm", f"GEMM {n}³ bf16 vs fp32 (the machine's limit)", bf16, fp32, "GFLOP/s",
                ours_label="bf16", baseline_label="fp32", limit=max(fp32, bf16), limit_unit="GFLOP/s",
                note=f"{torch.get_num_threads()} threads")]


def bench_data(q: bool, reps: int, ctx: dict) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        if q:
            photos = data_pipeline.make_realistic_photos(Path(tmp) / "p", 16, (48, 40), classes=2, source=None)
            r = data_pipeline.compare_loaders(photos, Path(tmp) / "c", model="alexnet-cifar", batch=8, repeats=reps)
            what = "16 generated 48×40 JPEGs, alexnet-cifar"
        else:
            photos = data_pipeline.make_realistic_photos(Path(tmp) / "p", 640)
            r = data_pipeline.compare_loaders(photos, Path(tmp) / "c", model="alexnet", batch=64, repeats=reps)
            what = ("640 ImageNet-sized JPEGs (~400×350: real CIFAR-10 images upscaled + noise), alexnet "
                    f"{r['crop']} crops")
    torch.set_num_threads(ctx["threads"])
    base = "tutorial: ImageFolder + PIL RandomResizedCrop + flip + ToTensor + Normalize"
    out = [
        row("data", "ours on the JPEG folder (turbo decode, uint8 crops+flip, CPU normalise)", r["ours_jpeg"],
            r["tutorial"], "img/s per core", baseline_label=base, note=what),
        row("data", "ours on a raw cache (uint8 batch out, normalised on the training device)", r["cache_uint8"],
            r["tutorial"], "img/s per core", baseline_label=base,
            note=f"alexnet data cache, built once in {r['cache_build_s']:.1f} s (not timed)"),
        row("data", "ours on a raw cache + normalise on this CPU", r["cache"], r["tutorial"], "img/s per core",
            baseline_label=base, note="float conversion of the batch dominates"),
        row("data", "raw cache, --aug paper vs --aug light (uint8 out; PCA lighting added on the training device)",
            r["cache_paper_uint8"], r["cache_uint8"], "img/s per core", ours_label="paper", baseline_label="light",
            note="the lighting drawn with the crops, added while normalising (target: within 1.5× of light)"),
        row("data", "raw cache, --aug paper vs --aug light, both normalised on this CPU", r["cache_paper"], r["cache"],
            "img/s per core", ours_label="paper", baseline_label="light",
            note="the lighting folded into the normalisation"),
        row("data", "raw cache, --aug paper: lighting on the device vs on the uint8 batch", r["cache_paper_uint8"],
            r["cache_paper_lit_uint8"], "img/s per core", ours_label="lighting on the device",
            baseline_label="x + 255·shift, rounded and clipped, on the uint8 batch (the way before)"),
    ]
    if r.get("gpu") is not None:
        out.append(row("data", "GPU path: CPU reads bytes, nvJPEG decode + crop/flip/PCA on CUDA", r["gpu"],
                       r["tutorial"], "img/s (1 CPU core + GPU)", baseline_label=base))
    return out


def _limit(ctx: dict, dtype) -> tuple[float, str]:
    g = ctx["gemm"]
    return (g["bf16"], "bf16 GEMM") if dtype == torch.bfloat16 else (g["fp32"], "fp32 GEMM")


def _run_steps(fn, steps: int) -> int:
    for _ in range(steps):
        fn()
    return steps


def bench_train_and_infer(q: bool, reps: int, ctx: dict) -> tuple[list[dict], list[dict]]:
    import torchvision

    from alexnet.core.device import resolve_precision, use_channels_last
    from alexnet.models import build_model, model_cfg, summarize

    cpu = torch.device("cpu")
    prec = resolve_precision("auto", cpu)
    cl = use_channels_last(cpu)
    cases = [("alexnet-cifar", "the same model, eager fp32 NCHW", None, 4)] if q else [
        ("alexnet-owt", "torchvision.models.alexnet, eager fp32 NCHW", lambda: torchvision.models.alexnet(num_classes=10), 32),
        ("alexnet-cifar", "the same model, eager fp32 NCHW", None, 128)]
    train_rows, infer_rows = [], []
    steps = 1 if q else 2
    for name, base_label, base_fn, batch in cases:
        mcfg = model_cfg(name)
        fn = lambda name=name: build_model(name, num_classes=10)  # noqa: E731
        base_fn = base_fn or fn
        macs = summarize(build_model(name, num_classes=10), mcfg.input_size).total_macs
        limit, lname = _limit(ctx, prec.dtype)
        fp32 = ctx["gemm"]["fp32"]
        # the four contenders (train/infer × ours/baseline) timed in interleaved rounds
        mk = train_step.make_step
        shape = mcfg.input_size
        ib = batch * (2 if not q else 1)
        fns = {"ours": (mk(fn, shape, batch, cl, prec.dtype), batch),
               "base": (mk(base_fn, shape, batch, False, None), batch),
               "ours_i": (mk(fn, shape, ib, cl, prec.dtype, train=False), ib),
               "base_i": (mk(base_fn, shape, ib, False, None, train=False), ib)}
        r = data_pipeline.interleaved_rates({k: (lambda f=f, b=b: _run_steps(f, steps) * b)
                                             for k, (f, b) in fns.items()}, reps)
        ours, base, ours_i, base_i = r["ours"], r["base"], r["ours_i"], r["base_i"]
        pct = lambda r, lim: 100 * 6 * macs * r / 1e9 / lim  # noqa: E731 — fwd+bwd ≈ 3× fwd MACs, 2 FLOP/MAC
        ours_label = f"{name}, {prec.dtype or 'fp32'}{' + channels_last' if cl else ''} ({prec.reason})"
        train_rows.append(row("train", f"training step, {name} {mcfg.input_size[1]}², batch {batch}", ours, base,
                              "img/s", ours_label=ours_label, baseline_label=base_label, limit=limit,
                              limit_unit=f"GFLOP/s ({lname})", ours_of_limit=pct(ours, limit),
                              baseline_of_limit=pct(base, fp32)))
        pct_i = lambda r, lim: 100 * 2 * macs * r / 1e9 / lim  # noqa: E731
        infer_rows.append(row("inference", f"inference, {name} {mcfg.input_size[1]}², batch {ib}", ours_i, base_i,
                              "img/s", ours_label=ours_label, baseline_label=base_label.replace("fp32", "fp32 inference_mode"),
                              limit=limit, limit_unit=f"GFLOP/s ({lname})", ours_of_limit=pct_i(ours_i, limit),
                              baseline_of_limit=pct_i(base_i, fp32)))
    return train_rows, infer_rows


def _tutorial_epoch(photos: Path, model_fn, size: int, batch: int, out: Path, mean, std) -> int:
    """The PyTorch tutorial's loop: ImageFolder + PIL transforms, fp32 eager, SGD, save at the end."""
    import torch.nn.functional as F
    import torchvision
    from torch.utils.data import DataLoader
    from torchvision import transforms as T

    tf = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)])
    ds = torchvision.datasets.ImageFolder(str(photos), transform=tf)
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=0, drop_last=True)
    torch.manual_seed(0)
    model = model_fn()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    model.train()
    n = 0
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        n += len(y)
    torch.save(model.state_dict(), out)
    return n


def bench_epoch(q: bool, reps: int, ctx: dict) -> list[dict]:
    import torchvision

    from alexnet.engine import make_config
    from alexnet.engine.train import fit
    from alexnet.models import build_model, model_cfg

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if q:
            model, kwargs, n, batch = "alexnet-cifar", {"width": 0.125}, 16, 8
            photos = data_pipeline.make_realistic_photos(tmp / "p", n, (48, 40), classes=2, source=None)
            base_fn = lambda: build_model(model, num_classes=2, **kwargs)  # noqa: E731
            base_label = "tutorial loop, the same model in eager fp32"
        else:
            model, kwargs, n, batch = "alexnet-owt", {}, 128, 32
            photos = data_pipeline.make_realistic_photos(tmp / "p", n)
            base_fn = lambda: torchvision.models.alexnet(num_classes=10)  # noqa: E731
            base_label = "tutorial loop: ImageFolder + PIL + torchvision alexnet, eager fp32"
        mcfg = model_cfg(model)
        classes = len([d for d in photos.iterdir() if d.is_dir()])
        if not q:
            base_fn = lambda: torchvision.models.alexnet(num_classes=classes)  # noqa: E731
        times_ours, times_base = [], []
        for r in range(reps + 1):
            cfg = make_config("cifar10" if q else "photos", model=model, data=f"folder:{photos}", epochs=1, batch_size=batch, val_split=0,
                              workers=0, output_dir=str(tmp / "runs"), name=f"ours{r}", model_kwargs=kwargs,
                              ten_crop=False, lr=0.01)
            t = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                fit(cfg)
            dt = time.perf_counter() - t
            t = time.perf_counter()
            seen = _tutorial_epoch(photos, base_fn, mcfg.input_size[1], batch, tmp / f"tut{r}.pt", mcfg.mean, mcfg.std)
            db = time.perf_counter() - t
            if r:  # the first round warms up both
                times_ours.append(dt)
                times_base.append(db)
    ours, base = n // batch * batch / statistics.median(times_ours), seen / statistics.median(times_base)
    return [row("epoch", f"one epoch end to end, {n} JPEGs, {model}, batch {batch}", ours, base, "img/s",
                ours_label="alexnet train (fit: our loader, defaults, checkpoints, weights)",
                baseline_label=base_label, note="wall time of the whole call, run directory and checkpoint included")]


def bench_retrieval(q: bool, reps: int, ctx: dict) -> list[dict]:
    n, dim, nq, naive = (2000, 256, 4, 200) if q else (100_000, 4096, 8, 2000)
    rows, t_knn, _ = retrieval_bench.compare(n, dim, nq, 8, naive, "cpu", repeat=reps)
    t = {name.split(" ")[0]: (secs, ok) for name, secs, ok in rows}
    cd = t["torch.cdist"][0]
    what = f"{nq} queries, k=8, {n:,} × {dim} float16 vectors"
    return [
        row("retrieval", "FeatureIndex.search (memory-mapped shards) vs torch.cdist", nq / t["FeatureIndex.search"][0],
            nq / cd, "queries/s", note=f"{what}; same neighbours: {t['FeatureIndex.search'][1]}"),
        row("retrieval", "knn (chunked matmul + running top-k) vs torch.cdist", nq / t["knn:"][0], nq / cd,
            "queries/s", note=f"same neighbours: {t['knn:'][1]}"),
        row("retrieval", "knn vs a naive per-vector loop", nq / t["knn:"][0], nq / t["naive"][0], "queries/s",
            note=f"the loop timed on {naive} vectors and extrapolated"),
    ]


def bench_serving(q: bool, reps: int, ctx: dict) -> list[dict]:
    from alexnet.infer import Predictor

    n, c = (8, 2) if q else (1000, 8)
    with tempfile.TemporaryDirectory() as tmp:
        weights = serve_load.tiny_weights(Path(tmp))
        size = (500, 375)
        data = serve_load.photo(*size)
        r = subprocess.run([sys.executable, str(HERE / "serve_load.py"), "--weights", str(weights), "-n", str(n),
                            "-c", str(c), "--warmup", "2" if q else "32", "--json"],
                           capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                               p for p in (os.environ.get("PYTHONPATH"), str(HERE.parent / "src")) if p)})
        if r.returncode != 0:
            raise RuntimeError(f"serve_load failed: {r.stderr[-2000:]}")
        res = json.loads(r.stdout)
        # One torch thread: with two intra-op threads on a shared 2-core machine, a tiny model's
        # forward took 150 ms instead of 2 ms (threads spinning against the other load)
        torch.set_num_threads(1)
        p = Predictor(weights, device="cpu", batch_size=1, workers=0)
        p.predict_bytes(data, 5)
        rates = []
        m = 4 if q else 50
        for _ in range(max(reps, 1)):
            t = time.perf_counter()
            for _ in range(m):
                p.predict_bytes(data, 5)
            rates.append(m / (time.perf_counter() - t))
    return [row("serving", f"alexnet serve, {res['clients']} clients × POST /api/predict ({res['image']})",
                res["requests_per_s"], statistics.median(rates), "requests/s",
                ours_label="HTTP server (FastAPI, 2 threads), tiny alexnet-cifar",
                baseline_label="the same Predictor in-process, one image at a time, 1 torch thread",
                note=f"p50 {res['p50_ms']} ms, p99 {res['p99_ms']} ms, errors {res['errors']}, "
                     f"{res['requests']} requests")]


def bench_paper(q: bool, reps: int, ctx: dict) -> list[dict]:
    rows = []
    for r in paper_vs_owt.compare(q, steps=1 if q else 2, repeats=reps):
        what = f"{r['label']}, batch {r['batch']}, channels_last"
        rows.append(row("paper", f"{what}: bf16 vs fp32", r["bf16"], r["fp32"], "img/s", ours_label="bf16 autocast",
                        baseline_label="fp32", note="target (AMX CPU): ≥ 1.7× for alexnet"))
        if r["label"] != r["reference"]:
            for p in ("fp32", "bf16"):
                rows.append(row("paper", f"{what}, {p}: vs {r['reference']}", r[p], r[p] / r[f"{p}_vs_ref"], "img/s",
                                ours_label=r["label"], baseline_label=r["reference"],
                                note="target (AMX CPU): ≥ 0.85 for alexnet vs alexnet-owt"))
    return rows


# ----------------------------------------------------------------------------- the report

def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
    return str(v)


def write_markdown(path: Path, res: dict) -> None:
    m = res["machine"]
    lines = [f"# Benchmark results{' (--quick: tiny inputs, plumbing only — not measurements)' if res['quick'] else ''}",
             "", f"`{res['command']}` — {m['date']}, {res['seconds']:.0f} s. Medians of {res['repeats']} timed runs "
             "after a warm-up; contenders of one comparison timed in the same process. The limit is the GEMM in "
             "ours' precision; the fp32 baseline's share is of the fp32 GEMM (the GEMM limit row's baseline).", "",
             "**Machine:** " + f"{m['cpu']}, {m['cpus']} CPUs (torch threads {m['torch_threads']}); flags "
             f"{' '.join(m['cpu_flags']) or '—'}; GPU: {m['gpu']}; torch {m['torch']}, torchvision {m['torchvision']}, "
             f"Python {m['python']}; load average at start {m['load_average']}.", ""]
    if res.get("context"):
        lines += [res["context"], ""]
    titles = {"gemm": "GEMM limit", "data": "Data pipeline per core", "train": "Training step",
              "inference": "Inference", "epoch": "One epoch end to end", "retrieval": "Retrieval",
              "serving": "Serving", "paper": "The paper's network vs torchvision's layout"}
    for sec in SECTIONS:
        rows = [r for r in res["rows"] if r["section"] == sec]
        if sec in res["errors"]:
            lines += [f"## {titles[sec]}", "", f"not measured: {res['errors'][sec]}", ""]
            continue
        if not rows:
            continue
        lines += [f"## {titles[sec]}", "", "| comparison | ours | baseline | unit | ratio | limit | ours % of limit "
                  "| baseline % of the fp32 GEMM | notes |", "|---|---:|---:|---|---:|---:|---:|---:|---|"]
        for r in rows:
            who = "; ".join(x for x in (f"ours: {r['ours_label']}" if r["ours_label"] else "",
                                          f"baseline: {r['baseline_label']}" if r["baseline_label"] else "",
                                          r["note"]) if x)
            lim = f"{_fmt(r['limit'])} {r['limit_unit']}" if r["limit"] else "—"
            pct = lambda v: f"{v:.0f} %" if v is not None else "—"  # noqa: E731
            ratio = f"{r['ratio']:.2f}×" if r["ratio"] else "—"
            lines.append(f"| {r['name']} | {_fmt(r['ours'])} | {_fmt(r['baseline'])} | {r['unit']} | "
                         f"{ratio} | "
                         f"{lim} | {pct(r['ours_pct_of_limit'])} | {pct(r['baseline_pct_of_limit'])} | {who} |")
        lines.append("")
    if res["skipped"]:
        lines += ["## Not measured here", ""] + [f"- {s}" for s in res["skipped"]] + [""]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny inputs, one repeat (seconds; for the tests)")
    ap.add_argument("-o", "--output", default=str(HERE / "results.md"),
                    help="Markdown file to write (default benchmarks/results.md); the JSON goes beside it")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per number (default 5; --quick 1)")
    ap.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these comparisons")
    ap.add_argument("--context", default="", help="a line for the report (e.g. what else ran on the machine)")
    args = ap.parse_args(argv)
    reps = args.repeats or (1 if args.quick else 5)
    t0 = time.perf_counter()
    ctx = {"threads": torch.get_num_threads()}
    res: dict = {"quick": args.quick, "repeats": reps, "machine": machine(), "rows": [], "errors": {},
                 "skipped": [], "context": args.context,
                 "command": "python -m benchmarks" + (" --quick" if args.quick else "")}
    wanted = args.only or SECTIONS
    if "gemm" not in wanted and any(s in wanted for s in ("train", "inference")):
        wanted = ("gemm", *wanted)  # their limit
    if not torch.cuda.is_available():
        res["skipped"].append("GPU data path (nvJPEG decode + augmentation on CUDA) and its GPU throughput targets: "
                              "no CUDA device on this machine")
    for sec in SECTIONS:
        if sec not in wanted or (sec == "inference" and "train" in wanted):
            continue  # inference is measured with the training step (same models, same setup)
        print(f"[benchmarks] {sec} …", file=sys.stderr, flush=True)
        ts = time.perf_counter()
        try:
            if sec == "gemm":
                res["rows"] += bench_gemm(args.quick, reps, ctx)
            elif sec == "data":
                res["rows"] += bench_data(args.quick, reps, ctx)
            elif sec in ("train", "inference"):
                tr, inf = bench_train_and_infer(args.quick, reps, ctx)
                res["rows"] += (tr if sec == "train" else []) + inf
            elif sec == "epoch":
                res["rows"] += bench_epoch(args.quick, reps, ctx)
            elif sec == "retrieval":
                res["rows"] += bench_retrieval(args.quick, reps, ctx)
            elif sec == "serving":
                res["rows"] += bench_serving(args.quick, reps, ctx)
            elif sec == "paper":
                res["rows"] += bench_paper(args.quick, reps, ctx)
        except ImportError as e:  # an optional extra (serve) missing: say so, run the rest
            res["errors"][sec] = f"{type(e).__name__}: {e}"
        torch.set_num_threads(ctx["threads"])
        res.setdefault("section_seconds", {})[sec] = round(time.perf_counter() - ts, 2)
    res["seconds"] = time.perf_counter() - t0
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_markdown(out, res)
    out.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    print(out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
