"""The paper network's two costly layer kinds, timed alternative by alternative (forward + backward).

    python benchmarks/paper_layers.py                 # batch 32, fp32 and bf16, channels_last and NCHW
    python benchmarks/paper_layers.py --quick         # tiny shapes, one repeat: checks that it runs

LRN (§3.3) at lrn1's and lrn2's shapes (96×55×55, 256×27×27, two towers):

- ``torch per tower``: ``F.local_response_norm`` on each tower's ``chunk`` and ``cat`` (the old layer);
- ``ours (grouped 1×1-conv window)``: `alexnet.models.lrn.local_response_norm`, one pass, analytic backward;
- ``ours, shifted-slice window``: the same function with the window summed by ``size`` shifted adds;
- ``ours, dense block-diagonal 1×1 conv``: the same with one (C, C) matrix instead of one per tower.

Grouped convolutions (conv2, conv4, conv5 of Figure 2, groups=2):

- ``grouped``: one ``nn.Conv2d(groups=2)``;
- ``per tower``: two convolutions on the channel halves (weight slices of the same parameter), ``cat``;
- each in channels_last and NCHW, fp32 and bf16 autocast.

Each cell: the best of ``--repeats`` rounds of ``--steps`` forward+backward passes, the contenders
of one row interleaved in one process. Writes ``--output``.md/.json beside this script.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))
from alexnet.models import lrn as lrn_mod  # noqa: E402
from profile_paper_net import machine  # noqa: E402

SIZE, ALPHA, BETA, K = 5, 1e-4, 0.75, 2.0


def lrn_torch(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([F.local_response_norm(c, SIZE, ALPHA, BETA, K) for c in x.chunk(2, dim=1)], dim=1)


def lrn_ours(x: torch.Tensor) -> torch.Tensor:
    return lrn_mod.local_response_norm(x, SIZE, ALPHA / SIZE, BETA, K, groups=2)


def _slices_window(t, size, groups, scale=1.0, shift=0.0, transpose=False):
    n, c, h, w = t.shape
    v = t.unflatten(1, (groups, c // groups))
    s = v.clone()
    before, after = size // 2, (size - 1) // 2
    if transpose:
        before, after = after, before
    for dd in range(1, before + 1):
        s[:, :, dd:] += v[:, :, :-dd]
    for dd in range(1, after + 1):
        s[:, :, :-dd] += v[:, :, dd:]
    s = s.flatten(1, 2)
    return s.mul_(scale).add_(shift) if (scale != 1.0 or shift) else s


def _dense_window(t, size, groups, scale=1.0, shift=0.0, transpose=False):
    c = t.shape[1]
    band = lrn_mod.window_matrix(c // groups, size, 1, transpose, t.device, t.dtype)[..., 0, 0]
    w = torch.block_diag(*[band] * groups)[..., None, None] * scale
    return F.conv2d(t, w, torch.full((c,), shift, dtype=t.dtype) if shift else None)


def with_window(window):
    def run(x: torch.Tensor) -> torch.Tensor:
        saved = lrn_mod.window_sum
        lrn_mod.window_sum = window
        try:
            return lrn_mod.local_response_norm(x, SIZE, ALPHA / SIZE, BETA, K, groups=2)
        finally:
            lrn_mod.window_sum = saved
    return run


def conv_per_tower(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    n = conv.out_channels // 2
    xs = x.chunk(2, dim=1)
    return torch.cat([F.conv2d(xs[i], conv.weight[i * n:(i + 1) * n], conv.bias[i * n:(i + 1) * n],
                               conv.stride, conv.padding) for i in (0, 1)], dim=1)


def time_fb(fn, x: torch.Tensor, bf16: bool, steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
        xi = x.detach().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = fn(xi)
        y.float().sum().backward()
    return (time.perf_counter() - t) / steps * 1e3


def race(fns: dict, x, bf16: bool, steps: int, repeats: int) -> dict:
    for f in fns.values():
        time_fb(f, x, bf16, 1)
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            best[k] = min(best[k], time_fb(f, x, bf16, steps))
    return {k: round(v, 2) for k, v in best.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", choices=("lrn", "conv"), default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("-o", "--output", default=str(HERE / "paper_layers"))
    args = ap.parse_args(argv)
    b, steps, reps = (2, 1, 1) if args.quick else (args.batch, args.steps, args.repeats)
    div = 4 if args.quick else 1
    rows = []
    for cl in (True, False):
        fmt = torch.channels_last if cl else torch.contiguous_format
        for bf16 in (False, True):
            prec = f"{'bf16' if bf16 else 'fp32'}, {'channels_last' if cl else 'NCHW'}"
            if args.only in (None, "lrn"):
                for name, (c, hw) in {"lrn1": (96, 55), "lrn2": (256, 27)}.items():
                    x = torch.randn(b, c // div, hw, hw).relu().contiguous(memory_format=fmt)
                    r = race({"torch per tower": lrn_torch, "ours (grouped 1×1-conv window)": lrn_ours,
                              "ours, shifted-slice window": with_window(_slices_window),
                              "ours, dense block-diagonal 1×1 conv": with_window(_dense_window)}, x, bf16, steps, reps)
                    rows.append({"layer": name, "precision": prec, "ms": r})
                    print(name, prec, r, file=sys.stderr, flush=True)
            if args.only in (None, "conv"):
                for name, (cin, cout, k, hw) in {"conv2": (96, 256, 5, 27), "conv4": (384, 384, 3, 13),
                                                 "conv5": (384, 256, 3, 13)}.items():
                    conv = nn.Conv2d(cin // div, cout // div, k, padding=k // 2, groups=2).to(memory_format=fmt)
                    x = torch.randn(b, cin // div, hw, hw).contiguous(memory_format=fmt)
                    r = race({"grouped": conv, "per tower": lambda x, conv=conv: conv_per_tower(conv, x)},
                             x, bf16, steps, reps)
                    rows.append({"layer": name, "precision": prec, "ms": r})
                    print(name, prec, r, file=sys.stderr, flush=True)
    res = {"machine": machine(), "batch": b, "steps": steps, "repeats": reps, "rows": rows,
           "command": "python benchmarks/paper_layers.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    out = Path(args.output)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    m = res["machine"]
    lines = ["# The paper network's LRN and grouped convolutions, alternative by alternative", "",
             f"`{res['command']}`: forward + backward, batch {b}, ms per pass, best of {reps} rounds of {steps}.", "",
             f"**Machine:** {m['cpu']}, {m['cpus']} CPUs (torch threads {m['torch_threads']}), flags "
             f"{' '.join(m['cpu_flags']) or '—'}, torch {m['torch']}, {m['date']}.", "",
             "| layer | precision, layout | contenders (ms) | fastest |", "|---|---|---|---|"]
    for r in rows:
        best = min(r["ms"], key=r["ms"].get)
        lines.append(f"| {r['layer']} | {r['precision']} | " + "; ".join(f"{k} {v:.1f}" for k, v in r["ms"].items())
                     + f" | {best} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
