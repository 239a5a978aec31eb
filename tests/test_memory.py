"""The allocator setting applied when training starts (core/memory.py): what it asks glibc for,
once per process, and how to leave glibc's defaults alone."""

import pytest

import alexnet.core.memory as mem


class FakeGlibc:
    def __init__(self, answer=1):
        self.calls, self.answer = [], answer

    def mallopt(self, param, value):
        self.calls.append((param, value))
        return self.answer


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    monkeypatch.setattr(mem, "_done", [])
    monkeypatch.delenv("ALEXNET_MALLOC", raising=False)


def test_large_blocks_stay_in_the_heap_once_per_process(monkeypatch):
    libc = FakeGlibc()
    monkeypatch.setattr(mem, "_glibc", lambda: libc)
    assert mem.keep_large_buffers() == "large buffers kept in the heap"
    assert (mem.M_MMAP_MAX, 0) in libc.calls and dict(libc.calls)[mem.M_TRIM_THRESHOLD] >= 1 << 30
    mem.keep_large_buffers()
    assert len(libc.calls) == len(mem.SETTINGS)  # the second call changes nothing


def test_the_system_defaults_on_request_or_elsewhere(monkeypatch):
    libc = FakeGlibc()
    monkeypatch.setattr(mem, "_glibc", lambda: libc)
    monkeypatch.setenv("ALEXNET_MALLOC", "system")
    assert "ALEXNET_MALLOC=system" in mem.keep_large_buffers() and libc.calls == []
    monkeypatch.setattr(mem, "_done", [])
    monkeypatch.delenv("ALEXNET_MALLOC")
    monkeypatch.setattr(mem, "_glibc", lambda: None)
    assert "not glibc" in mem.keep_large_buffers()
    monkeypatch.setattr(mem, "_done", [])
    monkeypatch.setattr(mem, "_glibc", lambda: FakeGlibc(answer=0))
    assert "refused" in mem.keep_large_buffers()


def test_this_linux_has_glibc_and_accepts_the_settings():
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("glibc is Linux's")
    libc = mem._glibc()
    if libc is None:
        pytest.skip("another C library")
    assert all(libc.mallopt(p, v) == 1 for p, v in mem.SETTINGS)
