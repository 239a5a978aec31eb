"""Training-step throughput of ``alexnet-cifar-fast`` by width and precision (the measurements
behind the ``cifar10-fast`` recipe's width and ``--amp auto``; docs/cifar10.md).

    python benchmarks/cifar_fast_step.py                       # 64-128-128 and 64-256-256, fp32 / bf16
    python benchmarks/cifar_fast_step.py --widths 64,256,256 --modes fp32 bf16 compile
    python benchmarks/cifar_fast_step.py --quick               # tiny, seconds: checks that it runs

Each cell is the median of ``--steps`` timed steps (forward, loss, backward, SGD step) after two
warm-up steps, on random data already in memory, channels_last, batch 512: the machine's limit for
this network, which a real epoch (augmentation, evaluation) approaches from below. Ratios are to
fp32 at the same width. Run it on an otherwise idle machine: another job on the same cores turns
the ratios upside down (seen: bf16 at 0.24× fp32 under load, 3.1× idle).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from alexnet.models.cifar_fast import CifarFast  # noqa: E402

MODES = ("fp32", "bf16", "compile", "compile-bf16")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def step_rate(widths: tuple[int, ...], mode: str, batch: int, steps: int) -> float:
    """Images per second of one training step, median over ``steps``."""
    torch.manual_seed(0)
    model = CifarFast(widths=widths).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.85, nesterov=True)
    net = torch.compile(model) if mode.startswith("compile") else model
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    times = []
    for i in range(steps + 2):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode.endswith("bf16")):
            loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= 2:
            times.append(time.perf_counter() - t)
    return batch / statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--widths", nargs="+", default=["64,128,128", "64,256,256"], help="e.g. 64,256,256")
    ap.add_argument("--modes", nargs="+", default=["fp32", "bf16"], choices=MODES)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--quick", action="store_true", help="widths 8,8,8, batch 8, one step")
    a = ap.parse_args(argv)
    if a.quick:
        a.widths, a.batch, a.steps = ["8,8,8"], 8, 1
    flags = " ".join(sorted({"avx512_bf16", "amx_bf16", "avx512f", "avx2"} & set(
        Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else [])))
    print(f"{cpu_name()} ({flags or 'no AVX flags read'}) · {torch.get_num_threads()} threads · "
          f"torch {torch.__version__} · batch {a.batch} · median of {a.steps} steps")
    print("\n| widths | " + " | ".join(a.modes) + " |")
    print("|---|" + "---|" * len(a.modes))
    for w in a.widths:
        widths = tuple(int(v) for v in w.split(","))
        rates = [step_rate(widths, m, a.batch, a.steps) for m in a.modes]
        base = rates[a.modes.index("fp32")] if "fp32" in a.modes else None
        cells = [f"{r:,.0f} img/s" + (f" ({r / base:.2f}×)" if base and m != "fp32" else "")
                 for m, r in zip(a.modes, rates)]
        print(f"| {'-'.join(map(str, widths))} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
