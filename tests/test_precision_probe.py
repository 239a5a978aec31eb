"""The bf16 probes behind --amp auto: interleaved medians, the caller's random stream untouched,
and a recorded decision that can be rebuilt without measuring again."""

import pytest
import torch

from alexnet.core import device as dev
from alexnet.core.errors import UserError


def test_matmul_probe_leaves_the_random_stream_alone(monkeypatch):
    # a small probe: a CPU without bf16 instructions emulates them, and the full one takes 15 s there
    monkeypatch.setattr(dev, "BF16_PROBE_SIZE", 64)
    dev.cpu_bf16_speedup.cache_clear()
    try:
        torch.manual_seed(123)
        expected = torch.rand(3)
        torch.manual_seed(123)
        assert dev.cpu_bf16_speedup() > 0
        assert torch.equal(torch.rand(3), expected)
    finally:
        dev.cpu_bf16_speedup.cache_clear()  # later tests measure the full probe, not this one


def test_median_speedup_ignores_one_slow_outlier():
    # the "fast" side is slowed once, by a burst of load: the best-of or mean would move, the median not
    import time

    calls = {"n": 0}

    def slow():
        time.sleep(0.02)

    def fast():
        calls["n"] += 1
        time.sleep(0.2 if calls["n"] == 3 else 0.002)

    # 10× apart; a busy machine's late wake-ups (a few ms each) narrow it, but not to 3×. The mean
    # of the fast side (0.042 s) would put it at 0.5×, the best-of at 10× whatever the outlier.
    r = dev.median_speedup(slow, fast, rounds=5)
    assert 3.0 < r < 30.0


def test_precision_named_rebuilds_a_recorded_decision():
    p = dev.precision_named("bf16", "recorded")
    assert p.dtype == torch.bfloat16 and not p.use_scaler and p.name == "bf16"
    assert dev.precision_named("fp32", "r").dtype is None
    assert dev.precision_named("fp16", "r").use_scaler
    with pytest.raises(UserError):
        dev.precision_named("fp8", "r")
