"""Per-layer profile of the paper network's training step (forward and backward) with torch.profiler.

    python benchmarks/profile_paper_net.py --tag before            # alexnet, batch 32, 4 configurations
    python benchmarks/profile_paper_net.py --tag after --steps 3
    python benchmarks/profile_paper_net.py --quick                 # tiny, seconds: checks that it runs

Configurations: fp32 and bf16 autocast, each in channels_last and NCHW; synthetic 227×227 images,
SGD with momentum, the model in training mode. Each configuration is warmed up, then ``--steps``
steps run under the profiler. A layer's forward time is its module call (hooks open a
``record_function`` range around it); its backward time is the sum of the autograd nodes its forward
ops created (matched by sequence number), so casts and copies made inside a layer count for it.
Times are milliseconds per step, the mean over the profiled steps; ``step`` is the best unprofiled
step of the same process (profiling adds a little). Writes ``--output``.md and .json beside this
script; each ``--tag`` is kept, so "before" and "after" sit side by side in one table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.profiler import record_function

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
from alexnet.models import build_model  # noqa: E402

CONFIGS = ("fp32-cl", "bf16-cl", "fp32-nchw", "bf16-nchw")
BWD = "autograd::engine::evaluate_function: "


def machine() -> dict:
    """CPU model, the flags that decide the fast paths, threads, torch version, date."""
    cpu, flags = platform.processor() or platform.machine(), []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                flags = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")
                         if f in have]
                break
    except OSError:
        pass
    return {"cpu": cpu, "cpu_flags": flags, "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def _hook_layers(model: nn.Module) -> list[str]:
    """Open a ``record_function("L:<name>")`` range around every leaf module's forward."""
    names = []
    for name, m in model.named_modules():
        if list(m.children()) or not name:
            continue
        names.append(name)
        ranges: list = []

        def pre(mod, args, name=name, ranges=ranges):
            r = record_function(f"L:{name}")
            r.__enter__()
            ranges.append(r)

        def post(mod, args, out, ranges=ranges):
            ranges.pop().__exit__(None, None, None)

        m.register_forward_pre_hook(pre)
        m.register_forward_hook(post)
    return names


def make_step(model: nn.Module, batch: int, hw: int, cl: bool, bf16: bool):
    x = torch.randn(batch, 3, hw, hw)
    y = torch.randint(0, 10, (batch,))
    if cl:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        with record_function("L:loss"):
            loss = F.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with record_function("L:optimizer"):
            opt.step()

    return step


def _layer_of(evt) -> str | None:
    p = evt
    while p is not None:
        if p.name.startswith("L:"):
            return p.name[2:]
        p = p.cpu_parent
    return None


def attribute(events, steps: int) -> dict[str, dict[str, float]]:
    """{layer: {"fwd": ms, "bwd": ms}} per step from the profiler's event list."""
    seq_layer: dict[int, str] = {}
    out: dict[str, dict[str, float]] = {}
    bwd_events = []
    for e in events:
        if e.name.startswith(BWD):
            bwd_events.append(e)
        elif e.name.startswith("L:"):
            if _layer_of(e.cpu_parent) is None:  # outermost range only
                out.setdefault(e.name[2:], {"fwd": 0.0, "bwd": 0.0})["fwd"] += e.cpu_time_total / 1e3 / steps
        elif e.sequence_nr >= 0:
            layer = _layer_of(e)
            if layer is not None:
                seq_layer.setdefault(e.sequence_nr, layer)
    for e in bwd_events:
        if e.cpu_parent is not None and any(p.name.startswith(BWD) for p in _parents(e)):
            continue  # nested under another node's evaluation
        layer = seq_layer.get(e.sequence_nr, "(other backward: AccumulateGrad, views)")
        out.setdefault(layer, {"fwd": 0.0, "bwd": 0.0})["bwd"] += e.cpu_time_total / 1e3 / steps
    return out


def _parents(e):
    p = e.cpu_parent
    while p is not None:
        yield p
        p = p.cpu_parent


def profile_config(model_name: str, cfg: str, batch: int, hw: int, steps: int, kwargs: dict) -> dict:
    torch.manual_seed(0)
    model = build_model(model_name, num_classes=10, **kwargs).train()
    layers = _hook_layers(model)
    step = make_step(model, batch, hw, cl=cfg.endswith("-cl"), bf16=cfg.startswith("bf16"))
    step()
    best = float("inf")
    for _ in range(max(steps, 2)):
        t = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    per = attribute(prof.events(), steps)
    order = [n for n in layers + ["loss", "optimizer"] if n in per] + sorted(n for n in per if n.startswith("(other"))
    rows = [{"layer": n, "fwd_ms": round(per[n]["fwd"], 2), "bwd_ms": round(per[n]["bwd"], 2)} for n in order]
    return {"config": cfg, "step_ms": round(best * 1e3, 1), "img_per_s": round(batch / best, 2), "rows": rows}


def write_markdown(path: Path, res: dict) -> None:
    m = res["machine"]
    lines = ["# Per-layer profile of the paper network's training step", "",
             f"`{res['command']}`; model `{res['model']}`, batch {res['batch']}, {res['hw']}² synthetic images, "
             f"{res['steps']} profiled steps per configuration after warm-up; ms per step (mean).", "",
             f"**Machine:** {m['cpu']}, {m['cpus']} CPUs (torch threads {m['torch_threads']}), flags "
             f"{' '.join(m['cpu_flags']) or '—'}, torch {m['torch']}, {m['date']}.", ""]
    for tag, runs in res["tags"].items():
        lines += [f"## {tag}", "", "| layer | " + " | ".join(f"{r['config']} fwd | bwd" for r in runs) + " |",
                  "|---|" + "---:|---:|" * len(runs)]
        names = list(dict.fromkeys(row["layer"] for r in runs for row in r["rows"]))
        for n in names:
            cells = []
            for r in runs:
                row = next((x for x in r["rows"] if x["layer"] == n), None)
                cells += [f"{row['fwd_ms']:.1f}" if row else "—", f"{row['bwd_ms']:.1f}" if row else "—"]
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        lines.append("| **step (best unprofiled)** | " + " | ".join(f"**{r['step_ms']:.0f}** | {r['img_per_s']:.1f} img/s"
                                                                  for r in runs) + " |")
        if res.get("notes", {}).get(tag):
            lines += ["", res["notes"][tag]]
        lines.append("")
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="alexnet")
    ap.add_argument("--towers", type=int, default=1, help="2: the two-tower form (AlexNetTowers)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    ap.add_argument("--tag", default="now", help="name of this run in the table (e.g. before, after)")
    ap.add_argument("--note", default="", help="a line printed under this run's table")
    ap.add_argument("--quick", action="store_true", help="width 0.25, batch 2, one step: checks that it runs")
    ap.add_argument("-o", "--output", default=str(HERE / "profile_paper_net"), help="path without suffix")
    args = ap.parse_args(argv)
    kwargs, batch, steps = ({"width": 0.25, "fc_width": 64}, 2, 1) if args.quick else ({}, args.batch, args.steps)
    if args.towers != 1:
        kwargs["towers"] = args.towers
    hw = 227
    out = Path(args.output)
    js = out.with_suffix(".json")
    res = json.loads(js.read_text()) if js.is_file() and not args.quick else {"tags": {}, "notes": {}}
    res.update({"machine": machine(), "model": args.model, "batch": batch, "hw": hw, "steps": steps,
                "command": "python benchmarks/profile_paper_net.py " + " ".join(argv if argv is not None else sys.argv[1:])})
    runs = []
    for cfg in args.configs:
        print(f"[profile] {cfg} …", file=sys.stderr, flush=True)
        runs.append(profile_config(args.model, cfg, batch, hw, steps, kwargs))
    res["tags"][args.tag] = runs
    res.setdefault("notes", {})[args.tag] = f"{res['machine']['cpu']} {res['machine']['date']}. {args.note}".strip()
    js.write_text(json.dumps(res, indent=1) + "\n")
    write_markdown(out.with_suffix(".md"), res)
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
