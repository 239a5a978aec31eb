"""The training step of the networks the CIFAR-10 recipes train, side by side in one process:
`cifar10-fast`'s network against `alexnet-cifar` with batch norm at three widths of its fully
connected layers, each in fp32 and bf16 autocast, with the recipes' own update around it.

    python benchmarks/cifar_recipe_step.py                     # batch 512, fp32 and bf16
    python benchmarks/cifar_recipe_step.py --quick             # tiny, seconds: checks that it runs
    python benchmarks/cifar_recipe_step.py --device cuda       # timings wait for the GPU

A step is what an epoch repeats: forward, label-smoothed loss, backward, SGD with Nesterov momentum
and weight decay, and lookahead every 5 steps (airbench's; the `cifar10-fast` recipe and the
`cifar10` tries on the fast engine use it), on random data already in memory, channels_last.
Each cell is the best of ``--repeats`` interleaved rounds of ``--steps`` steps after a warm-up,
so every contender sees the same machine state. The optimiser's share is timed apart (the update
and lookahead alone, no forward or backward): it grows with the parameter count, which the fully
connected layers dominate in `alexnet-cifar`. The allocator keeps large buffers as `alexnet train`
does (`alexnet.core.memory`). Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))
from alexnet.core.memory import keep_large_buffers  # noqa: E402
from alexnet.engine.optim import Lookahead  # noqa: E402
from alexnet.models import build_model  # noqa: E402
from profile_paper_net import machine  # noqa: E402

CONTENDERS = (  # label, model, model arguments
    ("cifar10-fast's network", "alexnet-cifar-fast", {}),
    ("alexnet-cifar, batch norm, fc 4096", "alexnet-cifar", {"norm": "batch"}),
    ("alexnet-cifar, batch norm, fc 2048", "alexnet-cifar", {"norm": "batch", "fc_width": 2048}),
    ("alexnet-cifar, batch norm, fc 1024", "alexnet-cifar", {"norm": "batch", "fc_width": 1024}),
)


def make(model: str, kwargs: dict, batch: int, bf16: bool, device: str, quick: bool):
    """(step, update, parameters): a whole training step and the update alone, as functions (one
    warm-up each), and the network's parameter count."""
    torch.manual_seed(0)
    if quick:
        kwargs = {**kwargs, "width": 0.125} if model == "alexnet-cifar" else kwargs
    net = build_model(model, num_classes=10, **kwargs).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    look = Lookahead(net, total_steps=10 ** 6)
    x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)
    kind = torch.device(device).type
    sync = torch.cuda.synchronize if kind == "cuda" else (lambda: None)
    count = [0]

    def update():
        opt.step()
        count[0] += 1
        look.step(count[0])

    def step():
        with torch.autocast(kind, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(net(x).float(), y, label_smoothing=0.2)
        opt.zero_grad(set_to_none=False)  # the grads stay allocated, so update() alone has them
        loss.backward()
        update()
        sync()

    def update_only():
        update()
        sync()

    step()
    update_only()
    return step, update_only, sum(p.numel() for p in net.parameters())


def race(batch: int, steps: int, repeats: int, device: str, quick: bool) -> list[dict]:
    fns = {}
    for label, model, kwargs in CONTENDERS:
        for prec in ("fp32", "bf16"):
            fns[(label, prec)] = make(model, kwargs, batch, prec == "bf16", device, quick)
    best = {k: [0.0, float("inf")] for k in fns}  # img/s of the step, seconds of the update
    for _ in range(repeats):
        for k, (step, update, _) in fns.items():
            t = time.perf_counter()
            for _ in range(steps):
                step()
            best[k][0] = max(best[k][0], batch * steps / (time.perf_counter() - t))
            t = time.perf_counter()
            for _ in range(steps):
                update()
            best[k][1] = min(best[k][1], (time.perf_counter() - t) / steps)
    rows = []
    for label, model, kwargs in CONTENDERS:
        f32, b16 = best[(label, "fp32")], best[(label, "bf16")]
        rows.append({"label": label, "model": model, "kwargs": kwargs, "params": fns[(label, "fp32")][2],
                     "batch": batch, "fp32": f32[0], "bf16": b16[0], "bf16_over_fp32": b16[0] / f32[0],
                     "update_s": b16[1], "update_share_bf16": b16[1] / (batch / b16[0])})
        print(f"{label}: fp32 {f32[0]:.0f}, bf16 {b16[0]:.0f} img/s, update {b16[1] * 1e3:.0f} ms", file=sys.stderr,
              flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--quick", action="store_true", help="batch 16, narrow networks, one round of one step")
    ap.add_argument("--note", default="", help="a line for the report (e.g. which cores)")
    ap.add_argument("-o", "--output", default=str(HERE / "cifar_recipe_step"), help="path without suffix")
    args = ap.parse_args(argv)
    batch, steps, reps = (16, 1, 1) if args.quick else (args.batch, args.steps, args.repeats)
    allocator = keep_large_buffers()  # as `alexnet train` does before its first large buffer
    rows = race(batch, steps, reps, args.device, args.quick)
    m = machine()
    if args.device.startswith("cuda"):
        m["gpu"] = torch.cuda.get_device_name(0)
    cmd = "python benchmarks/cifar_recipe_step.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = ["# The CIFAR-10 recipes' networks: one training step, side by side", "",
             f"`{cmd}`: best of {reps} interleaved rounds of {steps} steps at batch {batch}, channels_last, "
             "random data in memory; SGD with Nesterov momentum and weight decay, lookahead every 5 steps.", "",
             f"**Machine:** {m['cpu']}, {m['cpus']} CPUs (torch threads {m['torch_threads']}), flags "
             f"{' '.join(m['cpu_flags']) or '—'}, torch {m['torch']}, {m['date']}"
             + (f"; timed on {m['gpu']}" if "gpu" in m else "") + f"; memory: {allocator}.", "",
             "| network | parameters | fp32 img/s | bf16 img/s | bf16 / fp32 | update alone (bf16 run) | its share of a bf16 step |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['params'] / 1e6:.1f} M | {r['fp32']:.0f} | {r['bf16']:.0f} | "
                     f"{r['bf16_over_fp32']:.2f}× | {r['update_s'] * 1e3:.0f} ms | {r['update_share_bf16'] * 100:.0f} % |")
    if args.note:
        lines += ["", args.note]
    out = Path(args.output)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"command": cmd, "machine": m, "allocator": allocator, "rows": rows,
                                                    "note": args.note},
                                                   indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
