"""``alexnet serve``: flags reach the app, one-line errors (missing extra, port in use, bad flags)."""

from __future__ import annotations

import socket

import pytest

from alexnet.cli import main


def test_help_lists_the_flags(capsys):
    with pytest.raises(SystemExit) as e:
        main(["serve", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--index", "--host", "--port", "--max-upload-mb", "--max-pixels", "--device", "--body-timeout"):
        assert flag in out
    assert "127.0.0.1" in out


def test_missing_extra_is_one_line(monkeypatch, capsys, weights):
    import alexnet.serve as serve

    monkeypatch.setattr(serve, "missing_dependencies", lambda: ["fastapi", "uvicorn"])
    assert main(["serve", str(weights)]) == 2
    err = capsys.readouterr().err
    assert err == "error: the web server needs fastapi, uvicorn: pip install 'alexnet[serve]'\n"


def test_missing_dependencies_finds_what_is_installed():
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    from alexnet.serve import missing_dependencies

    assert missing_dependencies() == []


@pytest.mark.parametrize("flags, words", [
    (["--max-upload-mb", "0"], "--max-upload-mb must be positive"),
    (["--max-pixels", "0"], "--max-pixels must be at least 1"),
    (["--threads", "0"], "--threads must be at least 1"),
    (["--body-timeout", "0"], "--body-timeout must be a positive number of seconds"),
    (["--port", "70000"], "--port must be between 0 and 65535"),
    (["--host", "192.0.2.1"], "cannot listen on 192.0.2.1:8000"),  # TEST-NET-1: not this machine
])
def test_bad_flags_exit_2(weights, capsys, flags, words):
    pytest.importorskip("fastapi")
    assert main(["serve", str(weights), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and err.count("\n") == 1


def test_bad_weights_and_index_exit_2(tmp_path, weights, capsys):
    pytest.importorskip("fastapi")
    assert main(["serve", str(tmp_path)]) == 2
    assert "no weights.safetensors" in capsys.readouterr().err
    assert main(["serve", str(weights), "--index", str(tmp_path)]) == 2
    assert "not an index" in capsys.readouterr().err


def test_port_in_use_is_one_line(weights, capsys):
    pytest.importorskip("fastapi")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", str(weights), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot listen on 127.0.0.1:{port}") and "--port 0" in err


def test_flags_reach_the_app(monkeypatch, capsys, weights, index, make_client):
    pytest.importorskip("fastapi")
    import alexnet.serve.server as server

    seen = {}

    def fake_serve(app, sock, log_level="info", access_log=True):
        seen.update(app=app, addr=sock.getsockname(), log_level=log_level)
        sock.close()

    monkeypatch.setattr(server, "serve_forever", fake_serve)
    argv = ["serve", str(weights), "--index", str(index.path), "--port", "0", "--max-upload-mb", "0.5",
            "--max-pixels", "4000", "--device", "cpu", "--metric", "cosine", "--log-level", "warning"]
    assert main(argv) == 0
    assert seen["addr"][0] == "127.0.0.1" and seen["addr"][1] > 0 and seen["log_level"] == "warning"
    err = capsys.readouterr().err
    assert f"http://127.0.0.1:{seen['addr'][1]}/" in err and "9 indexed images" in err and "warning" not in err
    d = make_client(seen["app"]).get("/api/model").json()
    assert d["limits"]["max_upload_bytes"] == 512 * 1024 and d["limits"]["max_pixels"] == 4000
    assert d["index"]["count"] == 9 and d["index"]["metric"] == "cosine" and d["device"] == "cpu"


def test_other_hosts_are_warned_about(monkeypatch, capsys, weights):
    pytest.importorskip("fastapi")
    import alexnet.serve.server as server

    monkeypatch.setattr(server, "serve_forever", lambda app, sock, **kw: sock.close())
    assert main(["serve", str(weights), "--host", "0.0.0.0", "--port", "0", "--device", "cpu"]) == 0
    assert "other machines on the network can reach this server" in capsys.readouterr().err


def test_serve_sits_above_infer_and_below_the_cli():
    """docs/architecture.md: arrows point down; nothing imports the CLI."""
    import ast
    from pathlib import Path

    import alexnet.serve

    root = Path(alexnet.serve.__file__).parent
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 2 and node.module:
                assert node.module.split(".")[0] in {"core", "data", "infer", "models"}, (path.name, node.module)
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                assert not node.module.startswith(("alexnet.cli", "alexnet.commands")), (path.name, node.module)
