"""Text tables that stay aligned when names hold wide characters (CJK class names take two
columns of a terminal each, combining accents none): `cells` counts columns, `ljust`/`rjust` pad
to them; `counted` says a count in words ("2 processes"). Standard library only."""

from __future__ import annotations

import unicodedata


def cells(s: str) -> int:
    """The terminal columns ``s`` takes: 2 for a wide or full-width character, 0 for a combining one."""
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)


def ljust(s: str, width: int) -> str:
    return s + " " * max(0, width - cells(s))


def rjust(s: str, width: int) -> str:
    return " " * max(0, width - cells(s)) + s


def counted(n: int, word: str, many: str | None = None) -> str:
    """``1 process``, ``2 processes``: ``n`` and ``word``, or its plural ``many`` (default: ``word`` + s)."""
    return f"{n} {word if n == 1 else many or word + 's'}"
