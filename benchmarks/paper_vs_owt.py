"""The paper's network against torchvision's layout, side by side in one process: training img/s.

    python benchmarks/paper_vs_owt.py                   # fp32 and bf16 autocast, channels_last
    python benchmarks/paper_vs_owt.py --former-lrn      # also the layer LRN replaced, in the same run
    python benchmarks/paper_vs_owt.py --quick           # tiny, seconds: checks that it runs
    python benchmarks/paper_vs_owt.py --device cuda --batch 128 -o benchmarks/paper_vs_owt_gpu

Groups, each timed in interleaved rounds (best of ``--repeats`` rounds of ``--steps`` training
steps after a warm-up; SGD with momentum, synthetic data, channels_last):

- ``alexnet`` (grouped conv2/4/5, LRN) and ``alexnet towers=2`` vs ``alexnet-owt`` (no LRN, one
  tower), batch 32 at their own input sizes (227², 224²); their MACs differ by 1.4 %;
- ``cifar4`` and ``alexnet-mini`` with LRN vs the same network with ``lrn=False``, batch 128
  (the experiments' batch).

``--former-lrn`` adds each LRN network once more with ``F.local_response_norm`` applied per tower
(``chunk``/``cat``), the layer `alexnet.models.lrn` replaced: before and after in one run.
The targets (stated for an AMX CPU): alexnet within 15 % of alexnet-owt in each precision, and
bf16 ≥ 1.7× fp32; the same ratios with and without LRN for the small networks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))
from alexnet.models import LRN, build_model  # noqa: E402
from profile_paper_net import machine  # noqa: E402
from train_step import make_step  # noqa: E402


class FormerLRN(nn.Module):
    """``F.local_response_norm`` on each tower's ``chunk``, then ``cat``: the layer before `models.lrn`."""

    def __init__(self, lrn: LRN):
        super().__init__()
        self.size, self.beta, self.k, self.groups = lrn.size, lrn.beta, lrn.k, lrn.groups
        self.alpha = lrn.alpha if lrn.alpha_mode == "per-n" else lrn.alpha * lrn.size  # torch divides by n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.local_response_norm(c, self.size, self.alpha, self.beta, self.k)
                          for c in x.chunk(self.groups, 1)], 1)


def with_former_lrn(model: nn.Module) -> nn.Module:
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, LRN):
                setattr(parent, name, FormerLRN(child))
    return model


@dataclass
class Contender:
    label: str
    model: str
    kwargs: dict
    batch: int
    former: bool = False


def groups(quick: bool, former: bool, batch: int | None = None) -> list[list[Contender]]:
    big = {"width": 0.125, "fc_width": 32} if quick else {}
    small = {"width": 0.25} if quick else {}
    b_big, b_small = (2, 8) if quick else (batch or 32, 128)
    paper = [Contender("alexnet", "alexnet", big, b_big),
             Contender("alexnet towers=2", "alexnet", {**big, "towers": 2}, b_big),
             Contender("alexnet-owt", "alexnet-owt", {}, b_big)]
    if quick:
        paper.pop()  # full-size owt is too slow for a check
    out = [paper]
    for name in ("cifar4", "alexnet-mini"):
        out.append([Contender(name, name, small, b_small), Contender(f"{name} lrn=False", name,
                                                                     {**small, "lrn": False}, b_small)])
    if former:
        for g in out:
            g.insert(1, Contender(f"{g[0].label}, former LRN", g[0].model, g[0].kwargs, g[0].batch, True))
    return out


def race(group: list[Contender], bf16: bool, steps: int, repeats: int, device: str = "cpu") -> dict[str, float]:
    """Best img/s of each contender over ``repeats`` interleaved rounds of ``steps`` steps."""
    from alexnet.models import model_cfg

    fns = {}
    for c in group:
        build = (lambda c=c: (with_former_lrn if c.former else lambda m: m)(
            build_model(c.model, num_classes=10, **c.kwargs)))
        fns[c.label] = (make_step(build, model_cfg(c.model).input_size, c.batch, True,
                                  torch.bfloat16 if bf16 else None, device=device), c.batch)
    best = {k: 0.0 for k in fns}
    for _ in range(repeats):
        for k, (fn, batch) in fns.items():
            t = time.perf_counter()
            for _ in range(steps):
                fn()
            best[k] = max(best[k], batch * steps / (time.perf_counter() - t))
    return best


def compare(quick: bool = False, former: bool = False, steps: int = 2, repeats: int = 3,
            device: str = "cpu", batch: int | None = None) -> list[dict]:
    """One row per contender: img/s in fp32 and bf16, bf16/fp32, and the ratio to its group's reference."""
    rows = []
    for group in groups(quick, former, batch):
        rates = {p: race(group, p == "bf16", steps, repeats, device) for p in ("fp32", "bf16")}
        ref = group[-1].label  # alexnet-owt, or the network without LRN
        for c in group:
            f, b = rates["fp32"][c.label], rates["bf16"][c.label]
            rows.append({**asdict(c), "fp32": f, "bf16": b, "bf16_over_fp32": b / f, "reference": ref,
                         "fp32_vs_ref": f / rates["fp32"][ref], "bf16_vs_ref": b / rates["bf16"][ref]})
            print(f"{c.label}: fp32 {f:.1f}, bf16 {b:.1f} img/s", file=sys.stderr, flush=True)
    return rows


def markdown(rows: list[dict]) -> list[str]:
    lines = ["| model | batch | fp32 img/s | bf16 img/s | bf16 / fp32 | fp32 vs ref | bf16 vs ref | ref |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['batch']} | {r['fp32']:.1f} | {r['bf16']:.1f} | {r['bf16_over_fp32']:.2f}× "
                     f"| {r['fp32_vs_ref']:.2f} | {r['bf16_vs_ref']:.2f} | {r['reference']} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--former-lrn", action="store_true", help="add each LRN network with the former LRN layer")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (timings wait for the GPU)")
    ap.add_argument("--batch", type=int, default=None, help="batch of the 227²/224² networks (default 32)")
    ap.add_argument("--note", default="", help="a paragraph for the report (e.g. the malloc settings)")
    ap.add_argument("-o", "--output", default=str(HERE / "paper_vs_owt"), help="path without suffix")
    args = ap.parse_args(argv)
    steps, reps = (1, 1) if args.quick else (args.steps, args.repeats)
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    rows = compare(args.quick, args.former_lrn, steps, reps, args.device, args.batch)
    m = machine()
    if args.device.startswith("cuda"):
        m["gpu"] = torch.cuda.get_device_name(0)
    cmd = "python benchmarks/paper_vs_owt.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = ["# The paper's network vs torchvision's layout: training img/s, side by side", "",
             f"`{cmd}`: best of {reps} interleaved rounds of {steps} steps, channels_last, synthetic data.", "",
             f"**Machine:** {m['cpu']}, {m['cpus']} CPUs (torch threads {m['torch_threads']}), flags "
             f"{' '.join(m['cpu_flags']) or '—'}, torch {m['torch']}, {m['date']}"
             + (f"; timed on {m['gpu']}" if "gpu" in m else "") + ".", ""] + markdown(rows)
    if args.note:
        lines += ["", args.note]
    out = Path(args.output)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"command": cmd, "machine": m, "rows": rows, "note": args.note}, indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
