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
