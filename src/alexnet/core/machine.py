"""The machine a run or measurement was made on, for its record: the CPU's model and flags, cores,
GPU, and the torch version (every time the project reports carries one of these)."""

from __future__ import annotations

from typing import Any

from .device import cpu_flags


def machine_spec() -> dict[str, Any]:
    """The machine as fields: CPU model, cores, the bf16 features (AVX512-BF16, AMX), GPU, and the
    torch and torchvision versions."""
    import os
    import platform

    import torch

    try:
        import torchvision

        tv = torchvision.__version__.split("+")[0]
    except ImportError:
        tv = None
    flags = cpu_flags()
    return {"cpu": cpu_model() or platform.machine(), "cores": os.cpu_count(), "avx512_bf16": "avx512_bf16" in flags,
            "amx": bool({"amx_tile", "amx_bf16"} & flags),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch": torch.__version__.split("+")[0], "torchvision": tv}


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("" where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return ""


def machine_line() -> str:
    """CPU model / GPU, core count and torch version, for the record."""
    import os
    import platform

    import torch

    cpu = cpu_model() or platform.processor() or platform.machine()
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{cpu} ({os.cpu_count()} cores{gpu}), torch {torch.__version__.split('+')[0]}"
