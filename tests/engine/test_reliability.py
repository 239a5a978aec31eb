"""What survives: a kill while the final files are written, a truncated or foreign checkpoint, a
full or read-only disk, leftover temp files, Ctrl-C (once and twice), bad files in training.

Runs are in-process and tiny (digits, width 0.125: 5 steps an epoch at batch 256)."""

from __future__ import annotations

import csv
import errno
import json
import os
import signal

import pytest
import torch
from safetensors.torch import load_file

import alexnet.core.io as io_mod
import alexnet.engine.rundir as rundir_mod
from alexnet.cli import main
from alexnet.core.errors import UserError
from alexnet.core.io import WriteError, atomic_open, atomic_save, atomic_write, safe_torch_load
from alexnet.engine import make_config
from alexnet.engine.checkpoint import load_checkpoint, save_checkpoint
from alexnet.engine.config import resume_config
from alexnet.engine.schedule import LRSchedule
from alexnet.engine.train import fit

TINY = {"width": 0.125, "fc_width": 16}
TINY_ARGS = ["--model-arg", "width=0.125", "--model-arg", "fc_width=16"]


def run(tmp_path, name: str, **kw):
    kw = {"epochs": 1, "batch_size": 256, "amp": "off", "model_kwargs": TINY, **kw}
    return fit(make_config("digits", output_dir=str(tmp_path), name=name, **kw))


def weights_of(run_dir) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "weights.safetensors"))


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def rows(run_dir) -> list[dict]:
    return list(csv.DictReader((run_dir / "metrics.csv").open()))


def temps(folder) -> list[str]:
    return sorted(p.name for p in folder.glob(".*.tmp"))


class Killed(BaseException):
    """Stands for SIGKILL inside a test process: nothing after it runs, no cleanup of ours."""


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    """An uninterrupted 2-epoch run: what every interrupted-and-resumed run below must equal."""
    out = tmp_path_factory.mktemp("ref")
    return run(out, "ref", epochs=2)


# ----------------------------------------------------------------------------- kills and resume
def test_kill_while_writing_the_final_files_then_resume_completes_them(tmp_path, monkeypatch, ref):
    """Killed after best.pt but before the weights of the last epoch: last.pt must not say
    "finished"; --resume redoes the epoch's end and writes everything, equal to an uninterrupted run,
    with one metrics row per epoch and the running sums of the interrupted epoch kept."""
    real = rundir_mod.save_weights
    calls = {"n": 0}

    def dies_in_epoch_2(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise Killed()
        return real(*a, **k)

    monkeypatch.setattr(rundir_mod, "save_weights", dies_in_epoch_2)
    d = tmp_path / "k"
    with pytest.raises(Killed):
        run(tmp_path, "k", epochs=2, checkpoint_every=3)  # saves at steps 3, 5 (epoch end), 6, 9
    last = safe_torch_load(d / "checkpoints" / "last.pt")
    assert (last["epoch"], last["step_in_epoch"], last["global_step"]) == (1, 4, 9)  # not "finished"
    assert [r["epoch"] for r in rows(d)] == ["1", "2"]  # epoch 2's row was written before the kill
    monkeypatch.setattr(rundir_mod, "save_weights", real)

    res = fit(resume_config(str(d)))
    assert res.epochs_done == 2
    assert same_tensors(weights_of(d), weights_of(ref.run_dir))
    assert same_tensors(safe_torch_load(d / "checkpoints" / "best.pt")["model"],
                        safe_torch_load(ref.run_dir / "checkpoints" / "best.pt")["model"])
    got, want = rows(d), rows(ref.run_dir)
    assert [r["epoch"] for r in got] == ["1", "2"]  # the unfinished epoch's row replaced, not repeated
    for g, w in zip(got, want):  # train loss/accuracy: the sums of steps 6–9 survived the resume
        for col in ("step", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "lr"):
            assert g[col] == w[col], (col, g, w)
    assert res.best_top1 == ref.best_top1


def test_a_finished_run_missing_its_weights_gets_them_on_resume(tmp_path, capsys):
    d = run(tmp_path, "f").run_dir
    best = safe_torch_load(d / "checkpoints" / "best.pt")["model"]
    meta_before = (d / "weights.json").read_text()
    (d / "weights.safetensors").unlink()
    (d / "weights.json").unlink()
    capsys.readouterr()
    res = fit(resume_config(str(d)))
    out = capsys.readouterr().out
    assert "completed the final files" in out and "already finished" in out
    assert same_tensors(weights_of(d), best) and res.epochs_done == 1
    import json

    got, want = json.loads((d / "weights.json").read_text()), json.loads(meta_before)
    assert got["val_top1"] == want["val_top1"] and got["val_top5"] == pytest.approx(want["val_top5"], abs=1e-3)
    assert {k: v for k, v in got.items() if k != "val_top5"} == {k: v for k, v in want.items() if k != "val_top5"}


def test_resume_keeps_the_best_top1_of_the_run(tmp_path):
    """best.pt and the weights change only when a later epoch beats the run's best — also the best
    recorded before a resume."""
    d = run(tmp_path, "b").run_dir
    last = safe_torch_load(d / "checkpoints" / "last.pt")
    last["best_top1"] = 100.0  # as if an earlier epoch had been perfect
    save_checkpoint(d / "checkpoints" / "last.pt", {k: v for k, v in last.items() if k != "version"})
    best_bytes, weights_bytes = (d / "checkpoints" / "best.pt").read_bytes(), (d / "weights.safetensors").read_bytes()
    res = fit(resume_config(str(d), epochs=2))
    assert res.epochs_done == 2 and res.last.top1 < 100.0
    assert res.best_top1 == 100.0
    assert (d / "checkpoints" / "best.pt").read_bytes() == best_bytes
    assert (d / "weights.safetensors").read_bytes() == weights_bytes


def test_resume_after_max_steps_drops_the_partial_epochs_row(tmp_path, ref, capsys):
    d = run(tmp_path, "m", epochs=2, max_steps=3).run_dir
    assert [(r["epoch"], r["step"]) for r in rows(d)] == [("1", "3")]  # a row for the partial epoch
    before = (d / "checkpoints" / "last.pt").read_bytes()
    capsys.readouterr()
    res = fit(resume_config(str(d), max_steps=2))  # already past it: not one step more (it trained one)
    assert res.steps_done == 3 and (d / "checkpoints" / "last.pt").read_bytes() == before
    assert "the run has done 3 steps, --max-steps 2 or more: nothing to train" in capsys.readouterr().out
    fit(resume_config(str(d), max_steps=0))
    assert [(r["epoch"], r["step"]) for r in rows(d)] == [("1", "5"), ("2", "10")]
    # The final weights equal the uninterrupted run's. (weights.safetensors holds the *best*
    # evaluation's weights, and the stopped run's evaluation at step 3 is one more candidate for
    # best, so compare the end of training, last.pt's model.)
    final = lambda run_dir: safe_torch_load(run_dir / "checkpoints" / "last.pt")["model"]  # noqa: E731
    assert same_tensors(final(d), final(ref.run_dir))


# ----------------------------------------------------------------------------- bad checkpoints
def test_truncated_last_pt_resumes_from_the_previous_one(tmp_path, capsys, ref):
    d = run(tmp_path, "t", epochs=2, checkpoint_every=3, max_steps=8).run_dir
    ck = d / "checkpoints"
    assert safe_torch_load(ck / "last.pt")["global_step"] == 8
    assert safe_torch_load(ck / "last.prev.pt")["global_step"] == 6  # rotated, not overwritten
    data = (ck / "last.pt").read_bytes()
    (ck / "last.pt").write_bytes(data[: len(data) // 2])
    capsys.readouterr()
    fit(resume_config(str(d), max_steps=0))
    out = capsys.readouterr().out
    assert "last.pt: not a checkpoint of this tool — the file is truncated" in out
    assert "resuming from the previous checkpoint" in out and "last.prev.pt (epoch 2, step 1, 6 steps done)" in out
    assert same_tensors(weights_of(d), weights_of(ref.run_dir))


@pytest.mark.parametrize("content", ["random", "state_dict", "empty", "text"])
def test_a_file_that_is_not_a_checkpoint_is_one_line_exit_2(tmp_path, capsys, content):
    d = run(tmp_path, "n").run_dir
    last = d / "checkpoints" / "last.pt"
    if content == "random":
        last.write_bytes(os.urandom(4096))
    elif content == "state_dict":
        torch.save(safe_torch_load(last)["model"], last)
    elif content == "empty":
        last.write_bytes(b"")
    else:
        last.write_text("epoch: 3\n")
    capsys.readouterr()
    assert main(["train", "--resume", str(d)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {last}: not a checkpoint of this tool") and err.count("\n") == 1, err
    assert "pickled code" not in err and "KeyError" not in err
    if content == "state_dict":
        assert "a bare state_dict of" in err
    with pytest.raises(UserError, match="not a checkpoint of this tool"):
        load_checkpoint(last)


def test_a_checkpoint_with_pickled_code_is_refused_as_such(tmp_path):
    p = tmp_path / "evil.pt"
    torch.save({"model": {}, "thing": Killed}, p)
    with pytest.raises(UserError, match="holds pickled code"):
        load_checkpoint(p)


def test_a_checkpoint_of_another_model_says_which_layers_differ(tmp_path, capsys):
    small = run(tmp_path, "small").run_dir
    other = run(tmp_path, "other", model_kwargs={"width": 0.25, "fc_width": 16}).run_dir
    (small / "checkpoints" / "last.prev.pt").unlink(missing_ok=True)
    (small / "checkpoints" / "last.pt").write_bytes((other / "checkpoints" / "last.pt").read_bytes())
    capsys.readouterr()
    assert main(["train", "--resume", str(small), "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not fit 'alexnet-mnist'" in err, err
    a = load_checkpoint(other / "checkpoints" / "last.pt")["model"]
    b = safe_torch_load(small / "checkpoints" / "best.pt")["model"]
    first = next(k for k in a if a[k].shape != b[k].shape)
    assert f"{first}: checkpoint {list(a[first].shape)}, model {list(b[first].shape)}" in err


# ----------------------------------------------------------------------------- writes that fail
def test_atomic_open_never_writes_in_place(tmp_path):
    p = tmp_path / "f.bin"
    atomic_write(p, b"old contents")
    with pytest.raises(RuntimeError, match="mid-write"):
        with atomic_open(p) as f:
            f.write(b"new contents, half")
            assert p.read_bytes() == b"old contents"  # nothing reaches the target before the rename
            raise RuntimeError("mid-write")
    assert p.read_bytes() == b"old contents" and temps(tmp_path) == []
    with atomic_open(p) as f:
        f.write(b"new")
    assert p.read_bytes() == b"new" and temps(tmp_path) == []


class FullDisk:
    """A file whose writes fail with ENOSPC once ``budget`` bytes are written."""

    def __init__(self, f, budget: int = 2048):
        self._f, self.budget = f, budget

    def write(self, data):
        self.budget -= len(data)
        if self.budget < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self._f.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._f, name)


def test_disk_full_during_torch_save_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch):
    p = tmp_path / "last.pt"
    atomic_save({"a": torch.ones(3)}, p)
    real_fdopen = os.fdopen
    monkeypatch.setattr(io_mod.os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
    with pytest.raises(WriteError) as e:
        atomic_save({"a": torch.zeros(100_000)}, p)
    assert str(e.value) == f"cannot write {p}: the disk is full (No space left on device, ENOSPC)"
    assert torch.equal(safe_torch_load(p)["a"], torch.ones(3)) and temps(tmp_path) == []


@pytest.mark.parametrize("code,cause", [(errno.ENOSPC, "the disk is full"), (errno.EROFS, "the file system is read-only"),
                                        (errno.EACCES, "permission denied"), (errno.EDQUOT, "the disk quota is exceeded")])
def test_every_write_error_names_the_path_and_the_cause(tmp_path, monkeypatch, code, cause):
    p = tmp_path / "x.json"
    atomic_write(p, "old")

    def fails(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(io_mod.os, "fsync", fails)
    with pytest.raises(WriteError, match=f"cannot write {p}: {cause} "):
        atomic_write(p, "new")
    assert p.read_text() == "old" and temps(tmp_path) == []


def test_read_only_directory(tmp_path, monkeypatch):
    d = tmp_path / "ro"
    d.mkdir()
    if os.geteuid() == 0:  # root writes anyway: make the file system say so instead
        def mkstemp(*a, **k):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))

        monkeypatch.setattr(io_mod.tempfile, "mkstemp", mkstemp)
    else:
        d.chmod(0o555)
    try:
        with pytest.raises(WriteError, match=f"cannot write {d / 'a.txt'}: (the file system is read-only|permission denied)"):
            atomic_write(d / "a.txt", "x")
    finally:
        d.chmod(0o755)
    assert list(d.iterdir()) == []


def test_training_on_a_full_disk_stops_with_one_line_and_the_last_checkpoint_intact(tmp_path, monkeypatch, capsys):
    """The disk fills up at the second checkpoint: exit 2, one line naming last.pt, the first
    checkpoint untouched and loadable, no temp file left; once there is room, --resume finishes."""
    real_save, real_fdopen = rundir_mod.save_checkpoint, os.fdopen
    state = {"calls": 0, "full": False}

    def save_checkpoint_(*a, **k):
        state["calls"] += 1
        state["full"] = state["calls"] >= 2
        return real_save(*a, **k)

    monkeypatch.setattr(rundir_mod, "save_checkpoint", save_checkpoint_)
    monkeypatch.setattr(io_mod.os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)) if state["full"]
                        else real_fdopen(fd, mode))
    d = tmp_path / "full"
    code = main(["train", "--epochs", "1", "-b", "256", "--amp", "off", "--checkpoint-every", "2",
                 "--output-dir", str(tmp_path), "--name", "full", *TINY_ARGS])
    err = capsys.readouterr().err
    assert code == 2 and err == (f"error: cannot write {d / 'checkpoints' / 'last.pt'}: the disk is full "
                                 f"(No space left on device, ENOSPC)\n")
    assert safe_torch_load(d / "checkpoints" / "last.pt")["global_step"] == 2
    assert temps(d / "checkpoints") == [] and temps(d) == []
    monkeypatch.setattr(io_mod.os, "fdopen", real_fdopen)
    assert main(["train", "--resume", str(d)]) == 0
    assert safe_torch_load(d / "checkpoints" / "last.pt")["epoch"] == 1


def test_leftover_temp_files_are_removed_at_the_next_start(tmp_path, capsys):
    d = run(tmp_path, "tmp").run_dir
    (d / "checkpoints" / ".last.pt.k3j_x9a1.tmp").write_bytes(b"\0" * 2**20)
    (d / ".metrics.csv.abcdefgh.tmp").write_text("epoch\n")
    (d / "notes.tmp").write_text("mine")  # not a temp file of ours: kept
    (d / ".keep.tmp").write_text("mine too")
    capsys.readouterr()
    fit(resume_config(str(d)))
    out = capsys.readouterr().out
    assert "removed 2 temp files (1.0 MB) left by an interrupted write" in out
    assert temps(d / "checkpoints") == [] and temps(d) == [".keep.tmp"] and (d / "notes.tmp").read_text() == "mine"


# ----------------------------------------------------------------------------- Ctrl-C
def _interrupt_at(monkeypatch, step: int, times: int, sig: int = signal.SIGINT) -> None:
    """Press Ctrl-C (send ``sig``) ``times`` times while step ``step`` (1-based) sets its learning rate."""
    real = LRSchedule.lr

    def lr(self, global_step):
        if global_step + 1 == step:
            for _ in range(times):
                os.kill(os.getpid(), sig)
        return real(self, global_step)

    monkeypatch.setattr(LRSchedule, "lr", lr)


def test_ctrl_c_saves_the_current_step_and_resumes_exactly(tmp_path, monkeypatch, capsys, ref):
    _interrupt_at(monkeypatch, step=8, times=1)  # epoch 2, step 3
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "c", epochs=2)
    out = capsys.readouterr().out
    assert "Ctrl-C: finishing this step" in out and "resumable checkpoint saved" in out
    ck = safe_torch_load(tmp_path / "c" / "checkpoints" / "last.pt")
    assert (ck["epoch"], ck["step_in_epoch"], ck["global_step"]) == (1, 3, 8)  # the step it was in, finished
    assert ck["epoch_stats"][2] == 3 * 256
    monkeypatch.undo()
    fit(resume_config(str(tmp_path / "c")))
    assert same_tensors(weights_of(tmp_path / "c"), weights_of(ref.run_dir))
    assert [r["train_loss"] for r in rows(tmp_path / "c")] == [r["train_loss"] for r in rows(ref.run_dir)]


def test_a_second_ctrl_c_stops_at_once_without_saving(tmp_path, monkeypatch, capsys):
    _interrupt_at(monkeypatch, step=3, times=2)
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN in a background job
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "cc", epochs=2)
    out = capsys.readouterr().out
    assert "Ctrl-C: finishing this step" in out and "resumable checkpoint saved" not in out
    assert not (tmp_path / "cc" / "checkpoints" / "last.pt").exists() and temps(tmp_path / "cc" / "checkpoints") == []
    assert signal.getsignal(signal.SIGINT) is before  # the run's handler is gone, the caller's is back


def test_sigterm_saves_the_current_step_exits_143_and_resumes_exactly(tmp_path, monkeypatch, capsys, ref):
    """A scheduler's or `kill`'s polite stop is a Ctrl-C: the step finishes, the run is saved there."""
    from alexnet.cli import main

    _interrupt_at(monkeypatch, step=8, times=1, sig=signal.SIGTERM)
    before = signal.getsignal(signal.SIGTERM)
    args = ["train", "--epochs", "2", "-b", "256", "--amp", "off", "--output-dir", str(tmp_path), "--name", "t"]
    args += [a for k, v in TINY.items() for a in ("--model-arg", f"{k}={v}")]
    assert main(args) == 143
    out = capsys.readouterr().out
    assert "SIGTERM: finishing this step" in out and "resumable checkpoint saved" in out
    ck = safe_torch_load(tmp_path / "t" / "checkpoints" / "last.pt")
    assert (ck["epoch"], ck["step_in_epoch"], ck["global_step"]) == (1, 3, 8)
    assert signal.getsignal(signal.SIGTERM) is before
    monkeypatch.undo()
    fit(resume_config(str(tmp_path / "t")))
    assert same_tensors(weights_of(tmp_path / "t"), weights_of(ref.run_dir))


def test_a_run_started_from_another_thread_trains(tmp_path):
    """Only the main thread may set signal handlers: a run started elsewhere (a notebook's or a
    server's thread) trains without them instead of failing."""
    import threading

    result: dict = {}

    def train() -> None:
        try:
            result["run"] = run(tmp_path, "thread", max_steps=2)
        except BaseException as e:  # noqa: BLE001 — shown by the assertion below
            result["error"] = e

    t = threading.Thread(target=train)
    t.start()
    t.join(timeout=120)
    assert "error" not in result, result.get("error")
    assert result["run"].steps_done == 2


# ----------------------------------------------------------------------------- bad files in training
@pytest.fixture
def half_broken(tmp_path, write_image):
    """``train/{a,b}/``: 10 images each, of which 2 in ``a`` unreadable (10 % of training, 8.3 % of all);
    ``val/{a,b}/``: 2 good each."""
    root = tmp_path / "hb"
    for split, n in (("train", 10), ("val", 2)):
        for c, cls in enumerate("ab"):
            for i in range(n):
                write_image(root / split / cls / f"{i}.png", size=(36, 36), seed=100 * c + i + 50 * (split == "val"))
    for i in range(2):
        (root / "train" / "a" / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return root


def test_a_run_with_too_many_bad_files_ends_loudly_with_exit_1(half_broken, tmp_path, capsys):
    args = ["train", "--data", f"folder:{half_broken}", "--model", "alexnet-cifar", "--model-arg", "width=0.125",
            "--epochs", "1", "-b", "4", "--amp", "off", "--output-dir", str(tmp_path)]
    assert main([*args, "--name", "strict"]) == 1
    out = capsys.readouterr().out
    assert "WARNING: 2 of 24 files (8.3 %) could not be read — more than --max-bad-fraction 5 %" in out
    assert len((tmp_path / "strict" / "bad_samples.txt").read_text().splitlines()) == 2
    assert main([*args, "--name", "lenient", "--max-bad-fraction", "0.1"]) == 0
    assert "WARNING" not in capsys.readouterr().out
    assert main([*args, "--name", "x", "--max-bad-fraction", "1.5"]) == 2


def test_a_validation_split_of_bad_files_only_keeps_the_last_weights_and_writes_no_nan(half_broken, tmp_path,
                                                                                       capsys):
    import json

    for p in (half_broken / "val").rglob("*.png"):
        p.write_bytes(b"")
    run_dir = tmp_path / "noval"
    assert main(["train", "--data", f"folder:{half_broken}", "--model", "alexnet-cifar", "--model-arg", "width=0.125",
                 "--epochs", "2", "-b", "4", "--lr", "0.01", "--amp", "off", "--output-dir", str(tmp_path), "--name", "noval",
                 "--max-bad-fraction", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "no validation image could be read (4 files in the validation split, every one bad)" in out
    assert "nan%" not in out and "-inf" not in out
    assert (run_dir / "weights.safetensors").is_file() and (run_dir / "checkpoints" / "best.pt").is_file()
    assert json.loads((run_dir / "weights.json").read_text())["epoch"] == 2  # the last epoch's weights

    def no_constant(name):
        raise AssertionError(f"final.json holds {name}, which is not JSON")

    final = json.loads((run_dir / "final.json").read_text(), parse_constant=no_constant)
    assert final["centre"] == {"top1": None, "top5": None, "loss": None, "n": 0} and final["best_top1"] is None
    assert main(["evaluate", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert "error: no image of" in err and "could be read, so nothing was scored" in err


def test_a_disk_without_room_for_a_checkpoint_beside_the_last_stops_before_the_first_epoch(tmp_path, monkeypatch,
                                                                                         capsys):
    import collections

    from alexnet.engine.rundir import disk_estimate
    from alexnet.models import build_model

    cfg = make_config("digits", epochs=1, batch_size=256, amp="off", model_kwargs=TINY)
    need = disk_estimate(build_model("alexnet-mnist", num_classes=10, **TINY), cfg)
    assert "checkpoints/last.prev.pt" not in need  # one epoch: last.pt is written once, no previous one kept
    two = disk_estimate(build_model("alexnet-mnist", num_classes=10, **TINY), make_config("digits", epochs=2))
    assert two["checkpoints/last.prev.pt"] == two["checkpoints/last.pt"]  # the previous one is kept too
    usage = collections.namedtuple("usage", "total used free")
    # room for every file it keeps, not for the new last.pt written beside the old ones
    monkeypatch.setattr(rundir_mod.shutil, "disk_usage", lambda p: usage(1 << 40, 0, sum(need.values()) + 10))
    assert main(["train", *TINY_ARGS, "--epochs", "1", "-b", "256", "--amp", "off", "--output-dir", str(tmp_path),
                 "--name", "tight"]) == 2
    err = capsys.readouterr().err
    assert "at most while it replaces a checkpoint" in err and err.count("\n") == 1
    assert not (tmp_path / "tight" / "metrics.csv").exists()
    monkeypatch.setattr(rundir_mod.shutil, "disk_usage",
                        lambda p: usage(1 << 40, 0, sum(need.values()) + need["checkpoints/last.pt"] + 10))
    assert main(["train", *TINY_ARGS, "--epochs", "1", "-b", "256", "--amp", "off", "--output-dir", str(tmp_path),
                 "--name", "roomy"]) == 0


@pytest.fixture
def three_classes(tmp_path, write_image):
    root = tmp_path / "d"
    for c, cls in enumerate(("cat", "dog", "fish")):
        for i in range(6):
            write_image(root / cls / f"{i}.png", size=(36, 36), seed=10 * c + i)
    return root


def _small_run(root, out, *more):
    return ["train", "--data", f"folder:{root}", "--model", "alexnet-cifar", "--model-arg", "width=0.125", "--epochs",
            "2", "-b", "4", "--lr", "0.01", "--amp", "off", "--output-dir", str(out), "--name", "r", *more]


def test_a_resume_on_other_classes_is_refused_naming_them(three_classes, tmp_path, write_image, capsys):
    import shutil

    assert main(_small_run(three_classes, tmp_path, "--max-steps", "2")) == 0
    shutil.move(three_classes / "dog", tmp_path / "dog-away")  # a class gone, another come: as many outputs
    for i in range(6):
        write_image(three_classes / "ant" / f"{i}.png", size=(36, 36), seed=90 + i)
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "the data's classes are not the run's (not there now: 'dog'; new: 'ant')" in err and err.count("\n") == 1
    assert json.loads((tmp_path / "r" / "classes.json").read_text()) != ["ant", "cat", "fish"]  # left as it was
    shutil.rmtree(three_classes / "ant")
    shutil.move(tmp_path / "dog-away", three_classes / "dog")
    write_image(three_classes / "cat" / "6.png", size=(36, 36), seed=99)  # the same classes, one image more
    assert main(["train", "--resume", str(tmp_path / "r")]) == 0
    assert "note: the data changed since the run's last checkpoint (15 → 16 train images)" in capsys.readouterr().out


def test_a_resumed_run_decoding_into_memory_reports_files_gone_bad_since(three_classes, tmp_path, capsys):
    assert main(_small_run(three_classes, tmp_path, "--max-steps", "2")) == 0
    for name in ("cat/0.png", "dog/1.png"):
        (three_classes / name).write_bytes(b"")
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "r")]) == 1  # 2 of 18 files: over --max-bad-fraction 5 %
    out = capsys.readouterr().out
    assert "decoded" in out and "2 bad samples skipped in all" in out
    listed = (tmp_path / "r" / "bad_samples.txt").read_text()
    assert "cat/0.png" in listed and "dog/1.png" in listed


def test_a_run_another_process_is_training_is_not_trained_here_too(tmp_path, capsys):
    fcntl = pytest.importorskip("fcntl")
    first = run(tmp_path, "busy", max_steps=2).run_dir
    with open(first / ".lock", "a+") as other:  # another process training it: its own hold on the lock
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        capsys.readouterr()
        assert main(["train", "--resume", str(first)]) == 2
        err = capsys.readouterr().err
        assert "another process is training this run now" in err and err.count("\n") == 1
        assert main(["train", "--resume", "auto", "--name", "busy", "--output-dir", str(tmp_path), *TINY_ARGS,
                     "--amp", "off", "-b", "256"]) == 2
    assert main(["train", "--resume", str(first)]) == 0  # it ended: the run goes on here


def test_a_run_killed_in_its_closing_evaluation_gets_it_on_resume(tmp_path, capsys):
    done = run(tmp_path, "closing", ten_crop=True).run_dir
    before = json.loads((done / "final.json").read_text())
    (done / "final.json").unlink()  # killed after its last checkpoint, before the closing scores were written
    capsys.readouterr()
    assert main(["train", "--resume", str(done)]) == 0
    assert "its closing evaluation did not finish (no final.json): it runs now" in capsys.readouterr().out
    after = json.loads((done / "final.json").read_text())
    assert after["centre"] == before["centre"] and after["ten_crop"] == before["ten_crop"]
    assert main(["train", "--resume", str(done)]) == 0  # and then it is finished: nothing runs
    assert "closing evaluation" not in capsys.readouterr().out


@pytest.mark.parametrize("text, says", [
    ("[1, 2]", "not a run's config (a JSON object of training fields), but a JSON list"),
    ('{"epochs": ', "not valid JSON"),
    (None, "epochs must be a whole number, not 'three'"),
])
def test_a_hand_broken_config_json_is_one_line_on_resume(tmp_path, capsys, text, says):
    done = run(tmp_path, "edited", max_steps=1).run_dir
    cfg = done / "config.json"
    cfg.write_text(text if text is not None else json.dumps({**json.loads(cfg.read_text()), "epochs": "three"}))
    capsys.readouterr()
    assert main(["train", "--resume", str(done)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {cfg}: ") and says in err and err.count("\n") == 1
    if text == '{"epochs": ':
        assert main(["evaluate", str(done)]) == 2 and "not valid JSON" in capsys.readouterr().err


def test_a_hand_damaged_metrics_csv_is_mended_on_resume(tmp_path, capsys):
    """A metrics.csv cut short mid-row (or edited by hand) must not be appended to as it is: the
    resume keeps the whole rows of finished epochs, drops the broken ones, and says so."""
    first = run(tmp_path, "r", epochs=1)
    path = first.run_dir / "metrics.csv"
    whole = path.read_text().splitlines()
    assert len(whole) == 2
    path.write_text("\n".join(whole) + "\n2,10,0.5\nxyz\n")  # a later epoch's row cut short, and junk
    fit(resume_config(str(first.run_dir), epochs=2))
    assert "2 damaged rows; rewritten with 1 whole row" in capsys.readouterr().out
    assert (path.parent / "metrics.csv.damaged").read_text() == "\n".join(whole) + "\n2,10,0.5\nxyz\n"  # kept
    path.write_text(path.read_text() + "junk\n")
    fit(resume_config(str(first.run_dir), epochs=2))  # a second repair keeps the first one's copy too
    assert (path.parent / "metrics.csv.damaged.2").read_text().endswith("junk\n")
    assert (path.parent / "metrics.csv.damaged").read_text().endswith("xyz\n")
    rows = list(csv.DictReader(path.open()))
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(None not in r.values() for r in rows)
    assert rows[0] == next(csv.DictReader(iter(whole)))  # the finished epoch's row is kept as it was


def test_resume_from_another_folder_names_the_relative_data_path(tmp_path, monkeypatch):
    """config.json keeps --data as typed; a resume from another folder says why the data is not
    found and what to do, and --data with the data's path resumes it."""
    from tests.conftest import write_colour_classes

    (tmp_path / "imgs").mkdir()
    write_colour_classes(tmp_path / "imgs", per_class=6)
    monkeypatch.chdir(tmp_path)
    kw = {"model_kwargs": {"width": 0.25, "fc_width": 16}, "batch_size": 8, "amp": "off"}
    first = fit(make_config("cifar10", data="imgs", epochs=2, max_steps=1, output_dir="runs", name="r", **kw))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run_dir = str(tmp_path / first.run_dir)
    with pytest.raises(UserError, match="the run's data 'imgs' .* is not found from .*elsewhere.*resume from there"):
        resume_config(run_dir)
    assert fit(resume_config(run_dir, data=str(tmp_path / "imgs"))).epochs_done == 2
    from alexnet.engine.flag_notes import check_resume_data

    for spec in ("digits", "shards:https://host/data", "cifar10:/abs/path"):  # nothing relative to look for
        check_resume_data(run_dir, spec)


def test_the_readmes_disk_figure_is_the_estimate_the_run_prints():
    """README: "an `alexnet-owt` run of 10 classes: 1.83 GB, of which `last.pt` 685 MB with AdamW's
    state" — the estimate's arithmetic, kept equal to it here."""
    import re
    from pathlib import Path

    from alexnet.engine.rundir import disk_estimate, format_bytes
    from alexnet.models import build_model

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    total, last = re.search(r"an `alexnet-owt` run of 10 classes: ([\d.]+ [MG]B), of which `last.pt` ([\d.]+ [MG]B) "
                            r"with AdamW's state", readme).groups()
    with torch.device("meta"):
        model = build_model("alexnet-owt", num_classes=10)
    need = disk_estimate(model, make_config("photos", model="alexnet-owt", optimizer="adamw"))
    assert (format_bytes(sum(need.values())), format_bytes(need["checkpoints/last.pt"])) == (total, last)


def test_an_epoch_max_steps_cut_short_is_not_the_best_once_an_epoch_has_finished(tmp_path, monkeypatch):
    """weights.safetensors holds the best finished epoch's weights, the score weights.json gives is in
    metrics.csv: an epoch --max-steps cut short stands in only until the first epoch finishes, and its
    score (in no row a resume keeps) does not outrank later epochs. The validation scores are set."""
    from alexnet.engine import train as train_mod
    from alexnet.engine.evaluate import EvalResult

    scores = []
    monkeypatch.setattr(train_mod, "evaluate", lambda *a, **k: EvalResult(1.0, scores.pop(0), 100.0, 10))
    scores[:] = [70.0]  # 5 steps an epoch: cut at step 3 of the first, scored higher than any later epoch
    first = run(tmp_path, "cut", epochs=3, max_steps=3).run_dir
    assert json.loads((first / "weights.json").read_text())["val_top1"] == 70.0  # the run's weights until then
    scores[:] = [40.0, 50.0, 45.0]
    done = run(tmp_path, "cut", epochs=3, resume=str(first)).run_dir
    meta = json.loads((done / "weights.json").read_text())
    assert [float(r["val_top1"]) for r in csv.DictReader((done / "metrics.csv").open())] == [40.0, 50.0, 45.0]
    assert (meta["val_top1"], meta["epoch"]) == (50.0, 2)
    scores[:] = [50.0, 60.0]  # epoch 1 finished, then cut in the second at a higher score: not kept
    whole = run(tmp_path, "whole", epochs=3, max_steps=7).run_dir
    meta = json.loads((whole / "weights.json").read_text())
    assert (meta["val_top1"], meta["epoch"]) == (50.0, 1)
    scores[:] = [50.0, 60.0]  # --max-steps on the second epoch's last step: that epoch is whole, and kept
    edge = run(tmp_path, "edge", epochs=3, max_steps=10).run_dir
    meta = json.loads((edge / "weights.json").read_text())
    assert (meta["val_top1"], meta["epoch"]) == (60.0, 2)
    scores[:] = [55.0]  # resumed: the third epoch starts at its first step (no epoch end done twice)
    run(tmp_path, "edge", epochs=3, resume=str(edge))
    rows = list(csv.DictReader((edge / "metrics.csv").open()))
    assert [(r["epoch"], r["step"]) for r in rows] == [("1", "5"), ("2", "10"), ("3", "15")]  # 10: the edge
