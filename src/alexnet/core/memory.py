"""How the C allocator hands out large buffers during training (Linux, glibc).

glibc serves every block above its mmap threshold (at most 32 MB) with a fresh ``mmap`` and gives
it back with ``munmap`` when freed. The paper's network at batch 32 has activation maps just above
that (conv1/LRN1: 32×96×55×55 fp32 = 37 MB), so every training step faults in and zeroes those
pages anew. Measured on 2 cores of an AMD EPYC (avx512_bf16, no AMX), `alexnet` training steps at
batch 32, channels_last (benchmarks/paper_vs_owt.md against paper_vs_owt_no_mmap.md, the same
comparison with glibc kept from mmapping): fp32 52.5 → 71.0 img/s, bf16 60.8 → 109.7 img/s; and
the bf16 probe of `--amp auto` for the paper network 1.1× → 1.7× (docs/runs/paper-amp-auto).

`keep_large_buffers` turns that off for the process: no mmap for large blocks, and up to 1 GiB
kept free at the top of the heap for the next step instead of being trimmed. It is called when
training starts; ``ALEXNET_MALLOC=system`` leaves glibc's defaults alone. Elsewhere (another C
library, another OS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4  # glibc's mallopt parameters (malloc.h)
SETTINGS = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 1 << 30), (M_TOP_PAD, 256 << 20))
_done: list[str] = []


def _glibc():
    """glibc's handle, or None where the C library is another one (musl, macOS, Windows)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # only glibc has it
    except (OSError, AttributeError):
        return None
    return libc


def keep_large_buffers() -> str:
    """Keep large freed buffers in the heap for reuse (see the module docstring); once per process.
    Returns what was done, in words."""
    if _done:
        return _done[0]
    if os.environ.get("ALEXNET_MALLOC", "").lower() == "system":
        what = "glibc defaults (ALEXNET_MALLOC=system)"
    elif (libc := _glibc()) is None:
        what = "the C library's defaults (not glibc)"
    else:
        ok = all(libc.mallopt(param, value) == 1 for param, value in SETTINGS)
        what = "large buffers kept in the heap" if ok else "glibc defaults (mallopt refused)"
    _done.append(what)
    return what
