"""Devices and precision: pick the fastest correct settings for the machine, and say why.

- CUDA: bf16 autocast where the GPU supports it (Ampere and newer), else fp16 with a grad scaler.
- CPU: bf16 autocast only where the CPU has native bf16 arithmetic (AVX512-BF16 or AMX); on other
  CPUs bf16 is emulated and slower than fp32, so fp32 is used.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch

from .errors import UserError

AMP_CHOICES = ("auto", "off", "bf16", "fp16")
# ``--amp auto`` takes bf16 on a CPU only when it measured at least this many times faster than
# fp32: a margin, so that timing noise around 1× does not flip the choice
BF16_MARGIN = 1.2


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags from /proc/cpuinfo (empty where that file does not exist)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """True where the CPU has bf16 instructions (AVX512-BF16 or AMX-BF16)."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


BF16_PROBE_SIZE = 1024  # the probe's square matrices: large enough for the kernels' steady speed


@functools.lru_cache(maxsize=1)
def cpu_bf16_speedup() -> float:
    """Measured bf16/fp32 matmul throughput ratio on this CPU (a ~0.3 s probe, cached per process).

    Having the instructions is not enough: whether PyTorch's kernels use them depends on the build
    and the library versions (seen on one AVX512-BF16 machine: bf16 at 0.55× fp32), so the choice is
    made by measuring, not by reading flags. The operands are drawn under a forked random stream, so
    the caller's random numbers are untouched.
    """

    n = BF16_PROBE_SIZE
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        a32, b32 = torch.randn(n, n), torch.randn(n, n)
    a16, b16 = a32.bfloat16(), b32.bfloat16()
    return median_speedup(lambda: a32 @ b32, lambda: a16 @ b16, rounds=5)


def median_speedup(slow, fast, rounds: int) -> float:
    """How many times faster ``fast`` runs than ``slow``: the ratio of their median times over
    ``rounds`` interleaved rounds (each called once untimed first; the order alternates per round),
    so a burst of load from another process lands on both sides instead of deciding the ratio."""
    import statistics
    import time

    slow(), fast()
    times: tuple[list[float], list[float]] = ([], [])
    for r in range(rounds):
        for i in ((0, 1) if r % 2 == 0 else (1, 0)):
            t = time.perf_counter()
            (slow, fast)[i]()
            times[i].append(time.perf_counter() - t)
    return statistics.median(times[0]) / statistics.median(times[1])


def cpu_has_fast_bf16() -> bool:
    """True where bf16 autocast will be faster than fp32 on this CPU: native bf16 instructions
    and a measured matmul speed-up of at least `BF16_MARGIN`."""
    if os.environ.get("ALEXNET_CPU_BF16") in ("0", "1"):  # override for tests and odd machines
        return os.environ["ALEXNET_CPU_BF16"] == "1"
    return cpu_has_native_bf16() and cpu_bf16_speedup() >= BF16_MARGIN


def resolve_device(name: str | None = None) -> torch.device:
    """``None``/``"auto"`` → the local CUDA device if there is one, else CPU."""
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", 0))
            return torch.device("cuda", local % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r} (use cpu, cuda, cuda:N or auto)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} asked for, but CUDA is not available on this machine")
    return dev


@dataclass(frozen=True)
class Precision:
    """What autocast does on a device, and why (printed at the start of a run)."""

    dtype: torch.dtype | None  # None: plain fp32
    use_scaler: bool
    reason: str

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self, device: torch.device):
        return torch.autocast(device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None)


PRECISION_NAMES = ("fp32", "bf16", "fp16")


def precision_named(name: str, reason: str) -> Precision:
    """The `Precision` called ``name`` (fp32, bf16, fp16), as recorded by a run that decided it
    earlier: a resumed run and every rank of a distributed one reuse rank 0's first decision
    instead of measuring again (a timing probe need not give the same answer twice)."""
    if name not in PRECISION_NAMES:
        raise UserError(f"unknown precision {name!r} (recorded precisions: {', '.join(PRECISION_NAMES)})")
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
    return Precision(dtype, name == "fp16", reason)


def model_bf16_speedup(model: torch.nn.Module, input_size: tuple[int, int, int], batch_size: int,
                       channels_last: bool = False, rounds: int = 5) -> float:
    """Measured bf16/fp32 speed of ``model``'s own training step (forward, loss, backward) on CPU.

    A matmul says little about a convolution's speed (seen on one AVX512-BF16 machine: bf16 matmul at
    0.55× fp32; on AMX machines matmul and training step differ by several times), so ``--amp auto``
    times the step it will run: the median of ``rounds`` interleaved steps in each precision after a
    warm-up step each (`median_speedup`). The probe works on a copy of the model with random data
    under a forked RNG: the run's weights, batch-norm statistics and random stream are untouched.
    The batch is the run's, capped at 512 images of 32×32 worth of pixels so a large input stays a
    few seconds. Still a measurement: the run records the precision it chose and keeps it on resume.
    """
    import copy

    c, h, w = input_size
    b = max(2, min(batch_size, (512 * 32 * 32) // max(1, h * w)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        probe = copy.deepcopy(model).cpu().train()
        x = torch.randn(b, c, h, w)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)

        def step(bf16: bool) -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                y = probe(x)
            y.float().square().mean().backward()
            probe.zero_grad(set_to_none=True)

        return median_speedup(lambda: step(False), lambda: step(True), rounds)


def resolve_precision(amp: str, device: torch.device, step_speedup=None) -> Precision:
    """Map ``--amp {auto,off,bf16,fp16}`` to a `Precision` for ``device``.

    ``step_speedup``: on a CPU with native bf16, a callable returning the measured bf16/fp32 speed
    of the run's own training step (`model_bf16_speedup`); without it ``auto`` goes by a matmul.
    """
    if amp not in AMP_CHOICES:
        raise UserError(f"--amp must be one of {', '.join(AMP_CHOICES)}, not {amp!r}")
    if amp == "off":
        return Precision(None, False, "mixed precision off (--amp off)")
    if device.type == "cuda":
        bf16_ok = torch.cuda.is_bf16_supported()
        if amp == "bf16" and not bf16_ok:
            raise UserError("--amp bf16: this GPU has no bf16 support; use --amp fp16")
        if amp == "fp16":
            return Precision(torch.float16, True, "fp16 autocast with a grad scaler (--amp fp16)")
        if bf16_ok:
            return Precision(torch.bfloat16, False, "bf16 autocast: the GPU supports bf16")
        return Precision(torch.float16, True, "fp16 autocast + grad scaler: the GPU has no bf16")
    if device.type == "cpu":
        if amp == "fp16":
            raise UserError("--amp fp16 is not supported on CPU; use bf16 or off")
        if amp == "bf16":
            return Precision(torch.bfloat16, False, "bf16 autocast (--amp bf16)")
        if os.environ.get("ALEXNET_CPU_BF16") in ("0", "1"):
            fast = os.environ["ALEXNET_CPU_BF16"] == "1"
            return Precision(torch.bfloat16 if fast else None, False,
                             f"{'bf16 autocast' if fast else 'fp32'} (ALEXNET_CPU_BF16={os.environ['ALEXNET_CPU_BF16']})")
        if not cpu_has_native_bf16():
            return Precision(None, False, "fp32: the CPU has no native bf16 (bf16 would be emulated, slower)")
        what = "matmul"
        speedup = cpu_bf16_speedup()
        if speedup >= BF16_MARGIN and step_speedup is not None:
            what, speedup = "this model's training step", step_speedup()
        if speedup >= BF16_MARGIN:
            return Precision(torch.bfloat16, False, f"bf16 autocast: native bf16, measured {speedup:.1f}× fp32 {what}")
        return Precision(None, False, f"fp32: the CPU has native bf16 but bf16 measured {speedup:.2f}× fp32 "
                                      f"for {what} here (--amp bf16 forces it)")
    return Precision(None, False, f"fp32 on {device.type}")


def use_channels_last(device: torch.device) -> bool:
    """channels_last is faster for convolutions on CUDA (tensor cores) and oneDNN CPUs."""
    return device.type == "cuda" or (device.type == "cpu" and bool({"avx512f", "avx2"} & cpu_flags()))
