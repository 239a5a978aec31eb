"""Errors a person can fix.

`UserError` is raised for bad input from a person (a flag, a path, a file, a config). The CLI
prints it as one line ``error: …`` on stderr and exits with status 2. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import difflib


class UserError(Exception):
    """Bad input from a person; printed as ``error: <message>`` and exit status 2."""


def did_you_mean(name: str, choices, n: int = 3) -> str:
    """A ``" (did you mean: a, b?)"`` suffix listing close matches of ``name`` in ``choices``."""
    close = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)
    if not close:
        close = [c for c in choices if name.lower() in c.lower()][:n]
    return f" (did you mean: {', '.join(close)}?)" if close else ""
