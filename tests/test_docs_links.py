"""Every relative link in README.md and docs/ leads somewhere: the file exists and, for a link to a
Markdown heading (`docs/cifar10.md#a-time-budget---time-budget`), the heading or `<a id>` does."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "benchmarks").glob("*.md"))]
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markers and punctuation dropped, lower case, spaces as hyphens."""
    text = re.sub(r"<!--.*?-->", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    text = FENCE.sub("", doc.read_text(encoding="utf-8"))
    found: dict[str, int] = {}
    out = set(re.findall(r'<a (?:id|name)="([^"]+)"', text))
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        s = slug(heading)
        out.add(s if s not in found else f"{s}-{found[s]}")  # GitHub numbers repeated headings: x, x-1, x-2
        found[s] = found.get(s, 0) + 1
    return out


def links(doc: Path) -> list[str]:
    text = re.sub(r"`[^`\n]*`", "", FENCE.sub("", doc.read_text(encoding="utf-8")))  # code is an example, not a link
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def broken(doc: Path) -> list[str]:
    bad = []
    for target in links(doc):
        path, _, frag = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif frag and dest.suffix == ".md" and frag not in anchors(dest):
            bad.append(f"{target}: no such heading in {dest.name}")
    return bad


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(doc):
    assert broken(doc) == []


def test_the_check_catches_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "b.md").write_text("# Title\n\n## A time budget: `--time-budget`\n\n<a id=\"towers\"></a>\n")
    doc = tmp_path / "a.md"
    doc.write_text("[ok](b.md#a-time-budget---time-budget) [ok](b.md#towers) [ok](#here) [web](https://x.org/#y)\n"
                   "## Here\n[gone](c.md) [no heading](b.md#nope)\n```\n[in code](nowhere.md)\n```\n")
    assert broken(doc) == ["c.md: no such file", "b.md#nope: no such heading in b.md"]
