"""Commands the tests run as a person would (``python -m alexnet …``, ``torchrun …``), with their
output in files rather than pipes: a pipe stays open while any process holds it (a rank's orphaned
loader worker did, and the test waited on it), a file does not. On a timeout every process of the
command's tree dumps its Python stacks (faulthandler, on SIGABRT) and is killed, and the test fails
with the output's tail: a hang in CI says where it hung."""

from __future__ import annotations

import os
import signal
import sys
import subprocess
import tempfile
import time

import pytest


def _children() -> dict[int, list[int]]:
    """Each process's children, from Linux's /proc."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):  # gone meanwhile
            continue
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    kids, tree, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(kids.get(p, []))
    return tree


def processes_with(marker: str) -> list[int]:
    """The processes whose command line holds ``marker`` (orphans too, whoever their parent now is)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and marker.encode() in open(f"/proc/{entry}/cmdline", "rb").read():
                found.append(int(entry))
        except OSError:
            pass
    return found


def run_logged(cmd: list[str], env: dict[str, str], timeout: float = 240, **kw) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True)`` with the output kept in files."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env={**env, "PYTHONFAULTHANDLER": "1"}, **kw)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            tree = process_tree(proc.pid)
            for sig in (signal.SIGABRT, signal.SIGKILL):
                for pid in tree:
                    try:
                        os.kill(pid, sig)
                    except OSError:
                        pass
                time.sleep(3)
            proc.wait()
            out.seek(0), err.seek(0)
            pytest.fail(f"{' '.join(map(str, cmd[:8]))} … timed out after {timeout:g} s; {len(tree)} processes "
                        f"dumped their stacks and were killed.\nstdout ended:\n{out.read()[-3000:]}\n"
                        f"stderr ended:\n{err.read()[-8000:]}")
        out.seek(0), err.seek(0)
        return subprocess.CompletedProcess(cmd, rc, out.read(), err.read())


def _rank_then_leave(rank: int, fn, args: tuple) -> None:
    """Run one rank's ``fn``, then leave without the interpreter's teardown: now and then a spawned
    gloo rank aborted there, after its work and files were done (SIGABRT, "terminate called without
    an active exception", no Python frame: a C++ thread of the process group still joinable at
    static destruction). ``python -m alexnet`` leaves the same way under torchrun. A failure still
    fails: its traceback is printed and the rank exits 1."""
    import traceback

    rc = 0
    try:
        fn(rank, *args)
    except BaseException:  # noqa: BLE001 - reported, then the rank's exit code says it
        traceback.print_exc()
        rc = 1
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(rc)


def spawn_ranks(fn, nprocs: int, args: tuple = ()) -> None:
    """``torch.multiprocessing`` spawns ``fn(rank, *args)`` in ``nprocs`` processes and waits; a
    rank that fails fails the call."""
    import torch.multiprocessing as mp

    mp.start_processes(_rank_then_leave, args=(fn, args), nprocs=nprocs, join=True, start_method="spawn")
