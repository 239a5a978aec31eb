"""alexnet.data imports only alexnet.core among our packages (docs/architecture.md: arrows point down)."""

import ast
from pathlib import Path

import alexnet.data

ALLOWED = {"core", "data"}


def test_data_imports_nothing_above_core():
    root = Path(alexnet.data.__file__).parent
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom):
                if node.level == 2 and node.module:  # from ..x import
                    names.append(node.module.split(".")[0])
                elif node.level == 0 and node.module and node.module.startswith("alexnet."):
                    names.append(node.module.split(".")[1])
                elif node.level == 0 and node.module == "alexnet":
                    names.append("<alexnet>")
            elif isinstance(node, ast.Import):
                names += [a.name.split(".")[1] if a.name.startswith("alexnet.") else "<alexnet>"
                          for a in node.names if a.name.split(".")[0] == "alexnet"]
            for n in names:
                assert n in ALLOWED, f"{path.name} imports alexnet.{n}"


def test_a_spec_naming_the_wrong_kind_of_path_says_what_it_is(tmp_path):
    from alexnet.data.kinds import nothing_there

    (tmp_path / "a.jpg").write_bytes(b"x")
    assert nothing_there(f"folder:{tmp_path / 'a.jpg'}") == (
        f"{tmp_path / 'a.jpg'} is a file, not a folder: folder: takes a folder of class folders "
        f"(list:{tmp_path / 'a.jpg'} for a list file)")
    assert nothing_there(f"list:{tmp_path}") == f"{tmp_path} is a folder, not a list file: folder:{tmp_path} reads its class folders"
    assert nothing_there(f"folder:{tmp_path / 'gone'}") == f"{tmp_path / 'gone'}: no such folder"
    assert nothing_there(f"folder:{tmp_path}") is None and nothing_there(f"cifar10:{tmp_path / 'gone'}") is None
