"""The shape docs/architecture.md promises a newcomer: files that fit in one reading, functions
that fit on a screen, and modules that share only public names."""

import ast
from pathlib import Path

import alexnet

ROOT = Path(alexnet.__file__).parent
SOURCES = sorted(ROOT.rglob("*.py"))
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 80
WHY_LONGER = "longer than"  # a docstring that says why a function must be longer than the rule


def test_the_package_is_scanned():
    assert len(SOURCES) > 50 and (ROOT / "engine" / "train.py") in SOURCES


def test_no_source_file_over_the_limit():
    long = {str(p.relative_to(ROOT)): n for p in SOURCES if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES}
    assert not long, f"split these files (over {MAX_FILE_LINES} lines): {long}"


def test_no_function_over_the_limit_without_a_reason():
    long = []
    for p in SOURCES:
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES and WHY_LONGER not in (ast.get_docstring(node) or ""):
                    long.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_no_private_name_or_module_imported_across_modules():
    """A name or module with a leading underscore stays where it is: what another module needs is
    public (``__future__`` and ``__version__`` aside)."""
    bad = []
    for p in SOURCES:
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("alexnet")):
                parts = (node.module or "").split(".")
                names = [a.name for a in node.names if a.name.startswith("_") and a.name != "__version__"]
                mods = [m for m in parts if m.startswith("_")]
                if names or mods:
                    bad.append(f"{p.relative_to(ROOT)}: from {'.' * node.level}{node.module or ''} "
                               f"import {', '.join(a.name for a in node.names)}")
    assert not bad, "private imports across modules:\n" + "\n".join(bad)
