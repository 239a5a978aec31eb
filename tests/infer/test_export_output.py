"""`alexnet export -o` mistakes are answered before the weights are even loaded."""

import pytest

from alexnet.core.errors import UserError
from alexnet.infer.export import export_model


@pytest.mark.parametrize("fmt", ["onnx", "pt2", "torchscript"])
def test_an_existing_folder_is_refused_first(tmp_path, fmt):
    with pytest.raises(UserError, match="is a folder; give a file name"):
        export_model(tmp_path / "no-such-run", fmt, tmp_path)  # the weights would fail later


def test_a_parent_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder"):
        export_model(tmp_path / "no-such-run", "onnx", tmp_path / "f" / "m.onnx")


def test_a_disk_that_fills_is_one_line_and_leaves_nothing(tmp_path, tiny_run):
    """Files capped at 100 kB (``ulimit -f``, as a full disk: the write fails) while each export is
    about 2 MB: one ``error:`` line and exit 2 for each format, no temp file beside ``-o`` — where
    torch's own writer aborted the process (exit 134) or raised a traceback. The three exports run in
    one capped process (one start of torch, not three)."""
    import json
    import resource
    import signal
    import subprocess
    import sys

    def cap():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    formats = [("onnx", ".onnx"), ("pt2", ".pt2"), ("torchscript", ".pt")]
    argvs = []
    for fmt, suffix in formats:
        (tmp_path / fmt).mkdir()
        argvs.append(["export", str(tiny_run), "--format", fmt, "-o", str(tmp_path / fmt / f"m{suffix}"),
                      "--no-verify"])
    code = ("import json, sys\nfrom alexnet.cli import main\n"
            "for argv in json.loads(sys.argv[1]):\n"
            "    rc = main(argv)\n"
            "    print(rc, file=sys.stderr, flush=True)\n")
    r = subprocess.run([sys.executable, "-c", code, json.dumps(argvs)], capture_output=True, text=True,
                       preexec_fn=cap, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2 * len(formats), r.stderr[-2000:]  # per export: its one line, then its exit status
    for (fmt, _), line, rc in zip(formats, lines[::2], lines[1::2]):
        assert rc == "2" and line.startswith("error: cannot write ") and "File too large" in line, (fmt, line, rc)
        assert list((tmp_path / fmt).iterdir()) == [], fmt


def test_the_temp_files_of_killed_exports_are_removed(tmp_path, tiny_run):
    out = tmp_path / "m.pt"
    left = [tmp_path / ".m.pt.k3j9xq0a.tmp", tmp_path / ".m.pt.a8b7c6d5.pt"]  # now's and the older naming
    for p in left:
        p.write_bytes(b"half an export")
    (tmp_path / "mine.pt").write_bytes(b"not ours")
    export_model(tiny_run, "torchscript", out, verify=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "m.pt.json", "mine.pt"]


def test_an_output_on_proc_is_one_line_before_anything_is_exported(tiny_run, capsys, monkeypatch):
    """/proc is writable to root, so the writability check passed and the export ran for seconds first."""
    import os

    from alexnet.cli import main
    from alexnet.infer import export as ex

    if not os.path.isdir("/proc"):
        pytest.skip("no /proc here")
    monkeypatch.setattr(ex, "export_model", lambda *a, **k: pytest.fail("exported before the check"))
    assert main(["export", str(tiny_run), "-o", "/proc/alexnet-model.onnx"]) == 2
    assert capsys.readouterr().err.strip() == ("error: -o /proc/alexnet-model.onnx: /proc is not on a disk (a proc file "
                                               "system); give a path in a folder you can write to")
