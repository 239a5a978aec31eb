"""Training-step throughput, side by side in one run: our defaults vs the plain eager fp32 loop,
our paper AlexNet vs torchvision's, and the machine's own limit (GEMM GFLOP/s).

    python benchmarks/train_step.py [--repeats 5] [--models alexnet-cifar alexnet-mnist alexnet-owt]

Reports medians of ``--repeats`` timed runs (each ``--steps`` steps after warm-up) and ratios.
The machine may be shared: trust the ratios, not the absolute numbers. Never run by the tests.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from alexnet.core.device import resolve_precision, use_channels_last
from alexnet.models import build_model, model_cfg, summarize


def gemm_gflops(dtype: torch.dtype, n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def make_step(model_fn, shape, batch: int, channels_last: bool, dtype, train: bool = True, device: str = "cpu"):
    """One training step (``train``) or one forward pass, as a function, after one warm-up call.
    On a GPU the function waits for the device, so that a wall-clock timer around it is honest."""
    torch.manual_seed(0)
    model = model_fn().to(device)
    kind = torch.device(device).type
    if not train:
        model = model.eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch, *shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    sync = torch.cuda.synchronize if kind == "cuda" else (lambda: None)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def step():
        with torch.autocast(kind, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()

    def fwd():
        with torch.inference_mode(), torch.autocast(kind, dtype=dtype or torch.float32, enabled=dtype is not None):
            model(x)
        sync()

    fn = step if train else fwd
    fn()
    return fn


def _rate(fn, batch: int, steps: int, repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(steps):
            fn()
        rates.append(batch * steps / (time.perf_counter() - t))
    return statistics.median(rates)


def step_rate(model_fn, shape, batch: int, steps: int, repeats: int, channels_last: bool, dtype) -> float:
    return _rate(make_step(model_fn, shape, batch, channels_last, dtype), batch, steps, repeats)


def infer_rate(model_fn, shape, batch: int, steps: int, repeats: int, channels_last: bool, dtype) -> float:
    """Forward-only images/s (eval mode, ``inference_mode``), median of ``repeats`` after a warm-up."""
    return _rate(make_step(model_fn, shape, batch, channels_last, dtype, train=False), batch, steps, repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["alexnet-mnist", "alexnet-cifar", "alexnet-owt"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    cpu = torch.device("cpu")
    prec = resolve_precision("auto", cpu)
    cl = use_channels_last(cpu)
    fp32, bf16 = gemm_gflops(torch.float32), gemm_gflops(torch.bfloat16)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; auto precision: {prec.reason}")
    print(f"GEMM 2048³: fp32 {fp32:.0f} GFLOP/s, bf16 {bf16:.0f} GFLOP/s (median of 5)\n")
    print(f"{'model':<14} {'batch':>5} {'plain fp32 NCHW':>16} {'ours (auto)':>12} {'ratio':>6} {'% of fp32 GEMM':>15}")
    for name in args.models:
        cfg = model_cfg(name)
        batch = 128 if cfg.input_size[1] <= 32 else 32
        macs = summarize(build_model(name, num_classes=10), cfg.input_size).total_macs
        fn = lambda name=name: build_model(name, num_classes=10)  # noqa: E731
        plain = step_rate(fn, cfg.input_size, batch, args.steps, args.repeats, False, None)
        ours = step_rate(fn, cfg.input_size, batch, args.steps, args.repeats, cl, prec.dtype)
        flops = 6 * macs * ours  # forward + backward ≈ 3× forward MACs, 2 FLOP per MAC
        print(f"{name:<14} {batch:>5} {plain:>12.0f} img/s {ours:>7.0f} img/s {ours / plain:>5.2f}× "
              f"{100 * flops / 1e9 / fp32:>14.0f}%")
    # our paper-layout single tower vs torchvision's module on the same input
    import torchvision

    tv = step_rate(lambda: torchvision.models.alexnet(num_classes=10), (3, 224, 224), 32, args.steps,
                   args.repeats, False, None)
    ours = step_rate(lambda: build_model("alexnet-owt", num_classes=10), (3, 224, 224), 32, args.steps,
                     args.repeats, cl, prec.dtype)
    print(f"\ntorchvision alexnet (eager fp32): {tv:.0f} img/s; alexnet-owt with our defaults: {ours:.0f} img/s "
          f"({ours / tv:.2f}×)")


if __name__ == "__main__":
    main()
