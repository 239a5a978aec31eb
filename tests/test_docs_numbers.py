"""The figures in README.md and docs/ agree with the committed artifacts they name
(`tools/docs_numbers.py`; the marker format is described there and in docs/architecture.md)."""
from __future__ import annotations

import csv
import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_tool():
    spec = importlib.util.spec_from_file_location("docs_numbers", ROOT / "tools" / "docs_numbers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


tool = load_tool()


def copy_repo_docs(dest: Path) -> None:
    """README, docs/ and benchmarks' docs and results: every document and artifact the markers use."""
    shutil.copy(ROOT / "README.md", dest / "README.md")
    shutil.copytree(ROOT / "docs", dest / "docs")
    (dest / "benchmarks").mkdir()
    for f in (ROOT / "benchmarks").iterdir():
        if f.suffix in (".md", ".json"):
            shutil.copy(f, dest / "benchmarks" / f.name)


def markers(path: Path) -> list[str]:
    return [m["spec"] for m in tool.NUMBER.finditer(path.read_text(encoding="utf-8"))]


def test_docs_agree_with_their_artifacts(capsys):
    assert tool.main(["--check", "--root", str(ROOT)]) == 0, capsys.readouterr().out


def test_readme_headline_figures_are_marked():
    specs = markers(ROOT / "README.md")
    assert len(specs) >= 10
    assert any("benchmarks/results.json" in s for s in specs)
    assert any(s.startswith("docs/runs/") for s in specs)


def test_a_changed_json_artifact_is_reported(tmp_path, capsys):
    copy_repo_docs(tmp_path)
    spec = next(s for s in markers(tmp_path / "README.md")
                if s.startswith("benchmarks/results.json:") and s.count(":") == 2)
    path, key, _ = spec.split(":")
    data = json.loads((tmp_path / path).read_text(encoding="utf-8"))
    parts = tool.split_key(key)
    parent = tool.walk(data, parts[:-1])
    parent[parts[-1]] = parent[parts[-1]] * 3 + 1
    (tmp_path / path).write_text(json.dumps(data), encoding="utf-8")

    assert tool.main(["--check", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "README.md:" in out and spec in out


def test_a_changed_run_metrics_file_is_reported_and_rewritten(tmp_path, capsys):
    copy_repo_docs(tmp_path)
    spec = next(s for s in markers(tmp_path / "README.md") if ".csv:" in s)
    path = spec.split(":")[0]
    with (tmp_path / path).open(newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for col in row:
            if col != "epoch" and re.fullmatch(r"[-+.\deE]+", row[col] or ""):
                row[col] = str(float(row[col]) * 0.5 + 0.25)
    with (tmp_path / path).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    assert tool.main(["--check", "--root", str(tmp_path)]) == 1
    assert spec in capsys.readouterr().out
    assert tool.main(["--root", str(tmp_path)]) == 0  # rewriting fills in the new figures
    assert tool.main(["--check", "--root", str(tmp_path)]) == 0


def test_a_missing_artifact_or_key_is_reported(tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.json").write_text(json.dumps({"rows": [{"name": "x", "v": 1.2345}]}))
    (tmp_path / "README.md").write_text(
        "ok <!-- n:docs/a.json:rows[name=x].v:.2f -->1.23<!-- /n -->\n"
        "bad key <!-- n:docs/a.json:rows[name=y].v -->1<!-- /n -->\n"
        "no file <!-- n:docs/b.json:v -->1<!-- /n -->\n")
    assert tool.main(["--check", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "README.md:2:" in out and "README.md:3:" in out and "README.md:1:" not in out


@pytest.mark.parametrize("value, fmt, text", [
    (0.7948, ".2f", "0.79"), (16569.67, "int", "16,570"), (724.0, "mmss", "12:04"),
    (744.0, "/60|.1f", "12.4"), ("98.61", "", "98.61"), (0.5, "*100|.0f", "50"),
])
def test_formats(value, fmt, text):
    assert tool.fmt_value(value, fmt) == text


def test_a_json_key_with_dots_is_bracketed():
    data = {"arms": {"fast-9.9ep": {"flip": 90.1}, "fast": {"flip": 90.5}}, "rows": [{"a": 1}, {"a": 2}]}
    assert tool.walk(data, tool.split_key("arms[fast-9.9ep].flip")) == 90.1
    assert tool.walk(data, tool.split_key("arms.fast.flip")) == 90.5
    assert tool.walk(data, tool.split_key("rows[-1].a")) == 2  # on a list a bracket still picks an element
    with pytest.raises(tool.MarkerError, match="no key 'fast-16ep'"):
        tool.walk(data, tool.split_key("arms[fast-16ep].flip"))
    with pytest.raises(tool.MarkerError, match="no key 'fast-9'"):
        tool.walk(data, tool.split_key("arms.fast-9.9ep.flip"))  # unbracketed, the dot splits it


def test_csv_selectors_and_aggregates():
    rows = [{"epoch": "1", "val_top1": "50.0", "time": "2.0"}, {"epoch": "2", "val_top1": "70.5", "time": "3.0"},
            {"epoch": "3", "val_top1": "65.0", "time": "2.5"}]
    assert tool.csv_value(rows, "[-1].val_top1") == "65.0"
    assert tool.csv_value(rows, "[epoch=2].val_top1") == "70.5"
    assert tool.csv_value(rows, "[max=val_top1].epoch") == "2"
    assert tool.csv_value(rows, "max(val_top1)") == 70.5
    assert tool.csv_value(rows, "sum(time)") == 7.5
