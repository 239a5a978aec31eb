"""Errors a person can fix.

`UserError` is raised for bad input from a person (a flag, a path, a file, a config). The CLI
prints it as one line ``error: …`` on stderr and exits with status 2. A data-loader worker that
died (`worker_died`: killed, on Linux most often by the out-of-memory killer) is not a bug either:
one line too (`worker_death_line`). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib


class UserError(Exception):
    """Bad input from a person; printed as ``error: <message>`` and exit status 2."""


class EveryRankError(UserError):
    """A `UserError` that every process of a distributed run raises alike, from one decision rank 0
    made and broadcast (a time budget too short, a disk too full): only rank 0 prints it, so the
    person reads it once, not once per process. Exit status 2 on every rank."""

    printed_by = "RANK"  # the environment variable (torchrun's) whose 0 prints it


class EveryProcessHereError(EveryRankError):
    """A `UserError` that every process on one machine raises alike, before they meet (a flag's value,
    a path that is not there): printed by each machine's first process (``LOCAL_RANK`` 0), so that
    a machine where it differs (its data missing) still says so."""

    printed_by = "LOCAL_RANK"


def did_you_mean(name: str, choices, n: int = 3) -> str:
    """A ``" (did you mean: a, b?)"`` suffix listing close matches of ``name`` in ``choices``."""
    close = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)
    if not close:
        close = [c for c in choices if name.lower() in c.lower()][:n]
    return f" (did you mean: {', '.join(close)}?)" if close else ""


def worker_died(e: BaseException) -> bool:
    """Whether ``e`` is a DataLoader's report that one of its worker processes died, rather than an
    error a worker raised and passed on (those keep their own type and traceback)."""
    return isinstance(e, RuntimeError) and str(e).startswith("DataLoader worker")


def worker_death_line(e: BaseException) -> str:
    """What a worker's death (``e``) means and what to do about it, in one line."""
    return (f"a data-loader worker process died ({str(e).strip().rstrip('.')}), most often at the hands of the "
            f"out-of-memory killer: fewer --workers or a smaller -b need less memory.")
