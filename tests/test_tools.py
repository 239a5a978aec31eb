"""The scripts in tools/ that the docs tell users to run answer ``--help`` with their usage, not a
traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TOOLS = [p for p in sorted((Path(__file__).resolve().parents[1] / "tools").glob("*.py"))
         if '__name__ == "__main__"' in p.read_text()]  # the scripts, not the modules they import


@pytest.mark.parametrize("tool", TOOLS, ids=lambda p: p.name)
def test_help_is_usage_not_a_traceback(tool, tmp_path):
    r = subprocess.run([sys.executable, str(tool), "--help"], capture_output=True, text=True, timeout=120,
                       cwd=tmp_path)
    assert "Traceback" not in r.stderr, r.stderr[-1500:]
    assert (r.stdout + r.stderr).strip()  # something a person can read
    assert not any(tmp_path.iterdir())  # and nothing written


def _tool(name: str):
    import importlib

    sys.path.insert(0, str(TOOLS[0].parent))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def test_the_tools_intervals_are_the_verdict_rules():
    """The measuring tools' intervals (their results JSONs back the docs' differences) are the
    project's verdict rule to the digit: a paired Student-t interval, and Welch's at the exact
    Welch–Satterthwaite degrees of freedom; any number of seeds; no interval without spread."""
    from alexnet.experiments.verdict import compare

    ema, steps = _tool("ema_measure"), _tool("airbench_steps")
    a = [90.1, 90.5, 89.9, 90.3]
    b = [89.2, 90.0, 89.8, 89.1, 89.7]
    c = compare(dict(enumerate(b)), dict(enumerate(a)), what="", paired=False)
    w = steps.welch(a, b)
    assert (w["low"], w["high"]) == pytest.approx((c.low, c.high), abs=1e-9)
    d = [0.3, -0.1, 0.4, 0.2, 0.5, 0.1, 0.0, 0.6, 0.2, 0.3, 0.4, -0.2]  # 12 seeds: past any short table
    cp = compare(dict(enumerate([0.0] * 12)), dict(enumerate(d)), what="", paired=True)
    t = ema.t_interval(d)
    assert (t["low"], t["high"]) == pytest.approx((cp.low, cp.high), abs=1e-9)
    flat = ema.t_interval([0.25, 0.25, 0.25])
    assert flat["half_width"] != flat["half_width"] and "no spread" in ema.verdict(flat)  # nan: no interval
    assert steps.welch([1.0, 1.0], [2.0, 2.0])["low"] != steps.welch([1.0, 1.0], [2.0, 2.0])["low"]
