"""Fill the figures of README.md and docs/ from the committed artifacts they come from.

Every measured figure in the docs sits between two markers that name its artifact::

    <!-- n:ARTIFACT:KEY[:FMT] -->VALUE<!-- /n -->

- ``ARTIFACT`` is a path relative to the repository root: a ``.json`` file or a ``.csv`` file
  (a run's ``metrics.csv``, for instance).
- ``KEY`` says where the figure is in it (no ``:`` inside):
  - JSON: a dotted path, ``machine.cpu``, ``rows.3.ratio``; a list of objects can also be
    indexed by a field, ``rows[name=training step, alexnet-cifar 32², batch 128].ratio``
    (the first row whose field equals the value), ``[-1]`` is the last element; a key with dots
    in it is bracketed, ``arms[fast-9.9ep].flip``.
  - CSV: ``[SELECTOR].COLUMN`` where SELECTOR picks a row: ``[0]``, ``[-1]`` (last row),
    ``[epoch=8]`` (first row whose column equals the text), ``[max=val_top1]`` (the row with the
    largest value of that column); or an aggregate of a column: ``max(val_top1)``,
    ``min(time)``, ``sum(time)``, ``count()``.
- ``FMT`` (optional) formats the value: steps separated by ``|``, applied left to right —
  ``*N`` / ``/N`` multiply or divide, ``mmss`` writes seconds as ``m:ss``, ``int`` rounds to
  a whole number with thousands separators, anything else is a Python format spec (``.1f``,
  ``,.0f``, ``.2f``). Without FMT the value is written as it is stored.

A whole fenced block can come from a text artifact (a run's console output)::

    <!-- include:ARTIFACT -->
    ```text
    ...the file's content...
    ```
    <!-- /include -->

and a Markdown table from a list of JSON objects (header = the objects' keys)::

    <!-- table:ARTIFACT:KEY -->
    | a | b |
    ...
    <!-- /table -->

``python tools/docs_numbers.py`` rewrites every marked figure from its artifact;
``python tools/docs_numbers.py --check`` changes nothing and exits 1 listing each figure that
differs from its artifact (or whose artifact or key is missing). The models table between
``<!-- models:begin -->`` and ``<!-- models:end -->`` is made separately, from the model registry
(``alexnet.models.catalog.model_table``; ``tests/test_cli.py`` checks it). Markers inside fenced
code blocks or inline code are examples and are left alone. Standard library only: runs without torch.
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

DOC_GLOBS = ("README.md", "docs/**/*.md", "benchmarks/README.md")

NUMBER = re.compile(r"<!-- n:(?P<spec>[^>]*?) -->(?P<value>.*?)<!-- /n -->", re.S)
INCLUDE = re.compile(r"<!-- include:(?P<spec>[^>]*?) -->\n(?P<body>.*?)<!-- /include -->", re.S)
TABLE = re.compile(r"<!-- table:(?P<spec>[^>]*?) -->\n(?P<body>.*?)<!-- /table -->", re.S)


class MarkerError(Exception):
    """A marker whose artifact, key or format cannot be resolved."""


@dataclass
class Mismatch:
    """One marked figure that differs from its artifact."""

    doc: str
    line: int
    spec: str
    found: str
    expected: str

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.spec}: the doc says {self.found!r}, the artifact gives {self.expected!r}"


def split_key(key: str) -> list[str]:
    """``a.b[x=1.5].c`` → ``['a', 'b', '[x=1.5]', 'c']``: dots inside brackets do not split."""
    parts, cur, depth = [], "", 0
    for ch in key:
        if ch == "[":
            if depth == 0 and cur:
                parts.append(cur)
                cur = ""
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "." and depth == 0:
            if cur:
                parts.append(cur)
            cur = ""
            continue
        cur += ch
        if ch == "]" and depth == 0:
            parts.append(cur)
            cur = ""
    if cur:
        parts.append(cur)
    return parts


def as_number(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise MarkerError(f"{text!r} is not a number") from None


def select(items: list, selector: str):
    """One element of a list: ``[3]``, ``[-1]``, ``[field=value]``, ``[max=field]``, ``[min=field]``."""
    inner = selector[1:-1]
    if re.fullmatch(r"-?\d+", inner):
        try:
            return items[int(inner)]
        except IndexError:
            raise MarkerError(f"{selector}: only {len(items)} elements") from None
    field, sep, value = inner.partition("=")
    if not sep:
        raise MarkerError(f"{selector}: expected [N], [field=value], [max=field] or [min=field]")
    if field in ("max", "min"):
        pick = max if field == "max" else min
        return pick(items, key=lambda row: as_number(row[value]))
    for row in items:
        if isinstance(row, dict) and str(row.get(field)) == value:
            return row
    raise MarkerError(f"{selector}: no element with {field} = {value!r}")


def walk(data, parts: list[str]):
    for part in parts:
        if part.startswith("[") and isinstance(data, dict):  # a key with dots in it: arms[fast-9.9ep]
            if part[1:-1] not in data:
                raise MarkerError(f"no key {part[1:-1]!r}")
            data = data[part[1:-1]]
        elif part.startswith("["):
            if not isinstance(data, list):
                raise MarkerError(f"{part}: not a list")
            data = select(data, part)
        elif isinstance(data, list):
            data = select(data, f"[{part}]")
        elif isinstance(data, dict) and part in data:
            data = data[part]
        else:
            raise MarkerError(f"no key {part!r}")
    return data


AGGREGATE = re.compile(r"(?P<fn>max|min|sum|count)\((?P<col>[^)]*)\)")


def csv_value(rows: list[dict], key: str):
    agg = AGGREGATE.fullmatch(key)
    if agg:
        if agg["fn"] == "count":
            return len(rows)
        values = [as_number(row[agg["col"]]) for row in rows if row.get(agg["col"]) not in (None, "")]
        if not values:
            raise MarkerError(f"{key}: no values")
        return {"max": max, "min": min, "sum": sum}[agg["fn"]](values)
    return walk(rows, split_key(key))


def load(root: Path, path: str, cache: dict):
    if path not in cache:
        file = root / path
        if not file.is_file():
            raise MarkerError(f"{path}: no such artifact")
        if path.endswith(".json"):
            cache[path] = json.loads(file.read_text(encoding="utf-8"))
        elif path.endswith(".csv"):
            with file.open(newline="", encoding="utf-8") as f:
                cache[path] = list(csv.DictReader(f))
        else:
            cache[path] = file.read_text(encoding="utf-8")
    return cache[path]


def fmt_value(value, fmt: str) -> str:
    for step in fmt.split("|") if fmt else []:
        if step[:1] in "*/" and len(step) > 1:
            factor = as_number(step[1:])
            value = as_number(value) * factor if step[0] == "*" else as_number(value) / factor
        elif step == "mmss":
            seconds = round(as_number(value))
            value = f"{seconds // 60}:{seconds % 60:02d}"
        elif step == "int":
            value = f"{round(as_number(value)):,}"
        else:
            try:
                value = format(as_number(value), step)
            except ValueError:
                raise MarkerError(f"bad format {step!r}") from None
    return value if isinstance(value, str) else str(value)


def resolve(root: Path, spec: str, cache: dict) -> str:
    """The text a ``n:`` marker's spec stands for."""
    path, sep, rest = spec.partition(":")
    if not sep:
        raise MarkerError(f"{spec!r}: expected ARTIFACT:KEY[:FMT]")
    key, _, fmt = rest.partition(":")
    data = load(root, path, cache)
    value = csv_value(data, key) if path.endswith(".csv") else walk(data, split_key(key))
    if isinstance(value, (dict, list)):
        raise MarkerError(f"{spec}: the key names a {type(value).__name__}, not a figure")
    return fmt_value(value, fmt)


def render_table(rows: list[dict]) -> str:
    if not rows or not all(isinstance(r, dict) for r in rows):
        raise MarkerError("a table needs a non-empty list of objects")
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r.get(h, "")) for h in head) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def render_include(text: str) -> str:
    return "```text\n" + text.rstrip("\n") + "\n```\n"


FENCE = re.compile(r"^```.*?^```[^\n]*$", re.S | re.M)


def in_code(text: str, pos: int) -> bool:
    """Whether ``pos`` lies inside a fenced code block or an inline code span (an example, not a figure)."""
    if any(m.start() <= pos < m.end() for m in FENCE.finditer(text)):
        return True
    line_start = text.rfind("\n", 0, pos) + 1
    return text.count("`", line_start, pos) % 2 == 1


def process(root: Path, doc: Path, cache: dict) -> tuple[str, list[Mismatch], int]:
    """The document with every marker filled in from its artifact, the figures that differed, and
    how many markers it has."""
    text = doc.read_text(encoding="utf-8")
    rel = doc.relative_to(root).as_posix()
    problems: list[Mismatch] = []
    count = 0

    def replacer(kind: str, build):
        def sub(m: re.Match) -> str:
            nonlocal count
            if kind == "n" and in_code(m.string, m.start()):
                return m.group(0)
            count += 1
            spec = m["spec"]
            found = m["value"] if kind == "n" else m["body"]
            line = text.count("\n", 0, m.start()) + 1
            try:
                expected = build(spec)
            except (MarkerError, KeyError, OSError, json.JSONDecodeError) as e:
                problems.append(Mismatch(rel, line, spec, found.strip()[:60], f"error: {e}"))
                return m.group(0)
            if found != expected:
                problems.append(Mismatch(rel, line, spec, found.strip()[:60], expected.strip()[:60]))
            if kind == "n":
                return f"<!-- n:{spec} -->{expected}<!-- /n -->"
            return f"<!-- {kind}:{spec} -->\n{expected}<!-- /{kind} -->"
        return sub

    def include(spec: str) -> str:
        return render_include(str(load(root, spec, cache)))

    def table(spec: str) -> str:
        path, _, key = spec.partition(":")
        return render_table(walk(load(root, path, cache), split_key(key)))

    text = NUMBER.sub(replacer("n", lambda spec: resolve(root, spec, cache)), text)
    text = INCLUDE.sub(replacer("include", include), text)
    return TABLE.sub(replacer("table", table), text), problems, count


def documents(root: Path) -> list[Path]:
    found: list[Path] = []
    for pattern in DOC_GLOBS:
        found += sorted(p for p in root.glob(pattern) if p.is_file())
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a figure differs from its artifact")
    ap.add_argument("--root", default=str(Path(__file__).resolve().parent.parent), help="repository root")
    args = ap.parse_args(argv)
    root = Path(args.root).resolve()
    cache: dict = {}
    problems: list[Mismatch] = []
    markers = 0
    for doc in documents(root):
        text = doc.read_text(encoding="utf-8")
        new, found, n = process(root, doc, cache)
        problems += found
        markers += n
        if not args.check and new != text:
            doc.write_text(new, encoding="utf-8")
    errors = [p for p in problems if p.expected.startswith("error:")]
    if args.check:
        for p in problems:
            print(p)
        print(f"{markers} marked figures, {len(problems)} differ from their artifacts")
        return 1 if problems else 0
    for p in errors:
        print(p)
    print(f"{markers} marked figures, {len(problems) - len(errors)} rewritten, {len(errors)} unresolved")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
