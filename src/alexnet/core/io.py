"""Atomic file writes and safe loading.

Every file the project writes that a later run depends on (checkpoints, weights, metadata) goes
through `atomic_write`: the bytes land in a temporary file in the same folder, are flushed and
fsync'd, then renamed over the target, so a crash never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import UserError


TEMP_SUFFIX = ".tmp"

# errno → what a person should read; the rest use os.strerror
_WRITE_CAUSES = {
    errno.ENOSPC: "the disk is full",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EDQUOT: "the disk quota is exceeded",
}


class WriteError(UserError):
    """A file could not be written (disk full, read-only, no permission, quota): one line naming
    the path and the cause. The file's previous version, if any, is left as it was."""

    def __init__(self, path: str | os.PathLike, err: OSError):
        self.path = Path(path)
        self.errno = err.errno
        cause = _WRITE_CAUSES.get(err.errno) if err.errno is not None else None
        detail = err.strerror or str(err) or type(err).__name__
        name = errno.errorcode.get(err.errno, "") if err.errno is not None else ""
        text = f"{cause} ({detail}" + (f", {name})" if name else ")") if cause else (
            f"{detail}" + (f" ({name})" if name else ""))
        super().__init__(f"cannot write {self.path}: {text}")


class _RecordingFile:
    """A file wrapper that remembers the first `OSError` its writes raised: ``torch.save`` turns
    such an error into a RuntimeError that no longer says why (``unexpected pos 64 vs 0``)."""

    def __init__(self, f: Any):
        self._f = f
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._f.write(data)
        except OSError as e:
            if self.error is None:
                self.error = e
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


# Kernel file systems that hold no files a program writes (their statvfs may say writable)
VIRTUAL_FS = frozenset({"proc", "sysfs", "cgroup", "cgroup2", "devpts", "debugfs", "tracefs", "securityfs",
                        "pstore", "bpf", "configfs", "fusectl", "mqueue", "efivarfs", "binfmt_misc"})


def nearest_existing(path: str | os.PathLike) -> Path:
    """``path`` (made absolute, as given: ``~`` is the shell's to expand), or the closest folder
    above it that exists."""
    there = Path(os.path.abspath(os.fspath(path)))
    while not there.exists() and there.parent != there:
        there = there.parent
    return there


def _fs_type(path: Path) -> str:
    """The type of the file system ``path`` is on (Linux's /proc/self/mounts), or ""."""
    try:
        with open("/proc/self/mounts") as f:
            mounts = [line.split()[1:3] for line in f if len(line.split()) > 2]
    except OSError:
        return ""
    real = os.path.realpath(path)
    best = ("", "")
    for point, kind in mounts:
        point = point.replace("\\040", " ")
        if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) >= len(best[0]):
            best = (point, kind)
    return best[1]


def why_not_a_folder(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be (or become) a folder this process writes into, or None. Looks only,
    creates nothing: what a command checks from its arguments before any work."""
    start = Path(os.path.abspath(os.fspath(path)))
    there = nearest_existing(start)
    for p in [start, *start.parents]:  # a link on the way to a target that is not there
        if p == there:
            break
        if os.path.islink(p):
            return f"{p} is a link to {os.readlink(p)}, which does not exist"
    if not there.is_dir():
        return f"{there} is a file, not a folder"
    kind = _fs_type(there)
    if kind in VIRTUAL_FS:
        return f"{there} is not on a disk (a {kind} file system)"
    try:
        if os.statvfs(there).f_flag & os.ST_RDONLY:
            return f"{there} is on a read-only file system"
    except (OSError, AttributeError):
        pass
    if not os.access(there, os.W_OK | os.X_OK):
        return f"cannot write in {there} (permission denied)"
    return None


def check_output_folder(path: str | os.PathLike, flag: str) -> None:
    """A one-line `UserError` (``flag path: why``) when ``path`` cannot be an output folder."""
    why = why_not_a_folder(path)
    if why:
        raise UserError(f"{flag} {path}: {why}; give a folder you can write to")


def check_output_file(path: str | os.PathLike, flag: str) -> None:
    """A one-line `UserError` when the folder ``path`` would be written in cannot be one."""
    why = why_not_a_folder(Path(os.path.abspath(os.fspath(path))).parent)
    if why:
        raise UserError(f"{flag} {path}: {why}; give a path in a folder you can write to")


def make_output_folder(path: str | os.PathLike, flag: str) -> Path:
    """``path`` as a folder, made with its parents: `check_output_folder` first, and an `OSError`
    while making it is a one-line `WriteError`."""
    check_output_folder(path, flag)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise WriteError(path, e) from None
    return Path(path)


def temp_files(path: str | os.PathLike) -> list[Path]:
    """The temp files `atomic_open` makes for ``path`` (``.NAME.*.tmp`` beside it) that are still there."""
    path = Path(path)
    return sorted(path.parent.glob(f".{glob_escape(path.name)}.*{TEMP_SUFFIX}"))


def glob_escape(name: str) -> str:
    import glob

    return glob.escape(name)


def remove_stale_temps(folder: str | os.PathLike) -> list[tuple[Path, int]]:
    """Remove the temp files (``.NAME.XXXXXXXX.tmp``) that writes killed half-way left in
    ``folder``; returns ``[(path, bytes)]`` of those removed. Call only when no other process is
    writing there (the start of a run)."""
    removed: list[tuple[Path, int]] = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.glob(f".*{TEMP_SUFFIX}"):
        # exactly what mkstemp(prefix=".NAME.", suffix=".tmp") makes: ".NAME." + 8 characters + ".tmp"
        stem = p.name[1:-len(TEMP_SUFFIX)]
        if "." not in stem or len(stem.rsplit(".", 1)[1]) != 8 or not p.is_file():
            continue
        try:
            size = p.stat().st_size
            p.unlink()
        except OSError:
            continue
        removed.append((p, size))
    return removed


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", keep_previous: str | os.PathLike | None = None
                ) -> Iterator[Any]:
    """Open a temporary file next to ``path``; on success fsync and rename it over ``path``.

    ``keep_previous``: first move the file ``path`` held (if any) to this name, so the last good
    version survives even if the new one later turns out unreadable. Each step is a rename, so at
    every moment ``path`` or ``keep_previous`` holds a whole file.

    Any `OSError` on the way (disk full, read-only, permission, quota) removes the temp file,
    leaves ``path`` as it was and is raised as a one-line `WriteError`.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, mode) as raw:
            f = _RecordingFile(raw)
            try:
                yield f
            except RuntimeError:
                if f.error is not None:  # torch.save wrapped our OSError: give the real cause
                    raise f.error from None
                raise
            raw.flush()
            os.fsync(raw.fileno())
        if keep_previous is not None and path.is_file():
            os.replace(path, keep_previous)
        os.replace(tmp, path)
        tmp = None
        with contextlib.suppress(OSError):  # make the rename itself durable
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    except OSError as e:
        raise WriteError(path, e) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename)."""
    with atomic_open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_save(obj: Any, path: str | os.PathLike, writer: Callable[[Any, Any], None] | None = None,
                keep_previous: str | os.PathLike | None = None) -> None:
    """``torch.save`` through `atomic_open` (or any ``writer(obj, file)``)."""
    import torch

    with atomic_open(path, "wb", keep_previous=keep_previous) as f:
        (writer or torch.save)(obj, f)


class UnreadableFileError(UserError):
    """A file torch cannot read at all (truncated, damaged, of another kind); ``detail`` says what
    torch found."""

    def __init__(self, path: str | os.PathLike, detail: str, message: str | None = None):
        self.path, self.detail = Path(path), detail
        super().__init__(message or f"{path}: not a readable PyTorch file — truncated, damaged or of another kind "
                                    f"({detail})")


SYSTEM_MODULES = {"os", "posix", "nt", "subprocess", "builtins", "__builtin__", "sys", "shutil", "socket", "runpy",
                  "pty", "importlib", "pickle", "code", "ctypes", "webbrowser", "operator", "functools", "codecs",
                  "io", "pathlib", "tempfile", "signal", "multiprocessing", "threading", "asyncio", "http", "urllib"}


@contextlib.contextmanager
def one_at_a_time(folder: str | os.PathLike, what: str, say: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``folder/.<what>.lock`` while the block runs: the processes of one
    job (torchrun's ranks, several jobs on one data folder) that each find a dataset still packed
    take turns, so one unpacks or downloads it and the others, once the lock is theirs, find it
    done. ``say`` tells a process that waits why. An advisory ``flock`` (on NFS, Linux emulates it
    with a byte-range lock); where there is none (Windows), the block runs without it. The lock file
    is removed when the block ends."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path, said = os.path.join(folder, f".{what}.lock"), False
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except PermissionError:  # another user's lock file: a lock needs no write access to it
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError as e:
                raise WriteError(folder, e) from None
        except OSError as e:  # a read-only folder, or one not there: it cannot be unpacked into either
            raise WriteError(folder, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if say and not said:
                say(f"waiting: another process holds {path} ({what})")
                said = True
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:  # the holder before removed the file it locked: lock the one that is there now
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # while still held, so nothing is left in the data folder
        os.close(fd)


def looks_like_a_class(name: str) -> bool:
    """Whether a pickled global (``module.name``) could be what a checkpoint holds (a model's class,
    numpy values): anything but the modules that run commands or touch files (``posix.system``,
    ``builtins.eval``), for which the refusal gives no hint to load the file."""
    return name.split(".")[0] not in SYSTEM_MODULES


def safe_torch_load(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """Load a ``.pt``/``.pth`` file with ``weights_only=True``.

    Files that hold pickled code (classes, functions) are refused with a `UserError` instead of
    being executed; any other file torch cannot read (truncated, random bytes, text) is a
    `UserError` saying it is not a readable PyTorch file.
    """
    import re

    import torch

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder; give the checkpoint file itself (a .pt/.pth)")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))  # torch's message carries terminal bold codes
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if not found and "Unsupported global" not in text:  # junk bytes, not code
            raise UnreadableFileError(path, "not a pickle torch can read") from None
        name = found.group(1) if found else ""
        what = f"pickled code ({name})" if name else "pickled code"
        head = (f"{path}: refused to load — it holds {what}, not just tensors (loaded with weights_only=True, "
                f"so no code in it runs)")
        if not looks_like_a_class(name):  # a function such as os.system: no model is pickled like that
            raise UserError(f"{head}; that is not a model's class: do not load this file with "
                            f"weights_only=False unless you know what it runs") from None
        raise UserError(
            f"{head}; if it is a whole model saved with torch.save(model) and you trust it, "
            f"save its state_dict() instead: "
            f"torch.save(torch.load('{path.name}', weights_only=False).state_dict(), 'weights.pth')"
        ) from None
    except MemoryError:
        raise UnreadableFileError(path, "it claims more memory than there is") from None
    except Exception as e:  # noqa: BLE001 — the unpickler raises KeyError, IndexError, … on non-PyTorch bytes
        if path.stat().st_size == 0:
            raise UnreadableFileError(path, "the file is empty") from None
        with path.open("rb") as f:
            head = f.read(4)
        if not (head.startswith(b"PK") or head[:1] == b"\x80"):  # a zip archive or a pickle
            raise UnreadableFileError(path, "torch.save writes a zip archive; this is not one",
                                      f"{path}: not a PyTorch file (torch.save writes a zip archive; this is not one)"
                                      ) from None
        msg = str(e).strip().splitlines()[0].split(". ")[0] if str(e).strip() else ""
        raise UnreadableFileError(path, (msg if msg and not isinstance(e, KeyError) else "unexpected content")[:160]) from None
