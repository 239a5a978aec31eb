"""Training end to end on the embedded digits with a tiny model: run directory, exact resume after
SIGKILL, DDP equivalence, NaN guard, Ctrl-C, bad flags."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from alexnet.core.io import safe_torch_load
from alexnet.engine import make_config
from alexnet.engine.train import fit
from alexnet.models import load_weights
from subproc import run_logged

TINY = ["--model-arg", "width=0.25", "--model-arg", "fc_width=128"]
ENV = {**os.environ, "ALEXNET_CPU_BF16": "0", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def train_cli(*args: str, env: dict | None = None, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alexnet", "train", *args], capture_output=True, text=True,
                          env={**ENV, **(env or {})}, timeout=timeout)


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    cfg = make_config("digits", epochs=2, batch_size=128, output_dir=str(out), name="short",
                      model_kwargs={"width": 0.25, "fc_width": 128}, amp="off")
    return fit(cfg)


def test_run_directory_contents(short_run):
    d = short_run.run_dir
    for f in ("config.json", "classes.json", "metrics.csv", "checkpoints/last.pt", "checkpoints/best.pt",
              "weights.safetensors", "weights.json"):
        assert (d / f).is_file(), f
    assert list(d.glob("events.out.tfevents.*")), "TensorBoard events (tensorboard is in the dev extra)"
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["model"] == "alexnet-mnist" and cfg["data"] == "digits" and cfg["epochs"] == 2
    assert json.loads((d / "classes.json").read_text())["classes"] == [str(i) for i in range(10)]
    # the weights are best.pt's model, described by weights.json with the best epoch's numbers
    best = safe_torch_load(d / "checkpoints" / "best.pt")
    w = load_file(str(d / "weights.safetensors"))
    assert w.keys() == best["model"].keys() and all(torch.equal(w[k], best["model"][k]) for k in w)
    meta = json.loads((d / "weights.json").read_text())
    rows = list(csv.DictReader((d / "metrics.csv").open()))
    top = max(rows, key=lambda r: float(r["val_top1"]))
    assert meta["model"] == "alexnet-mnist" and meta["model_kwargs"] == {"width": 0.25, "fc_width": 128}
    assert meta["val_top1"] == pytest.approx(float(top["val_top1"]), abs=1e-3) == best["best_top1"]
    assert meta["epoch"] == int(top["epoch"])


def test_metrics_csv_columns_and_monotone_steps(short_run):
    rows = list(csv.DictReader((short_run.run_dir / "metrics.csv").open()))
    assert list(rows[0]) == ["epoch", "step", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5",
                             "lr", "time", "img_per_s"]
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(steps) and steps[0] > 0 and len(set(steps)) == len(steps)
    for r in rows:
        assert 0 <= float(r["val_top1"]) <= float(r["val_top5"]) <= 100


def test_checkpoints_load_weights_only(short_run):
    for name in ("last.pt", "best.pt"):
        ck = safe_torch_load(short_run.run_dir / "checkpoints" / name)
        assert ck["model_name"] == "alexnet-mnist" and ck["num_classes"] == 10
    resume_keys = {"optimizer", "scaler", "schedule", "rng", "sampler"}
    assert {"model", "epoch", "step_in_epoch", *resume_keys} <= set(safe_torch_load(
        short_run.run_dir / "checkpoints" / "last.pt"))
    best = safe_torch_load(short_run.run_dir / "checkpoints" / "best.pt")  # weights only: no optimiser state
    assert {"model", "epoch", "best_top1", "classes"} <= set(best) and not resume_keys & set(best)
    last = safe_torch_load(short_run.run_dir / "checkpoints" / "last.pt")
    assert last["epoch"] == 2 and last["step_in_epoch"] == 0
    model, meta = load_weights(short_run.run_dir)
    assert meta["classes"] == [str(i) for i in range(10)] and meta["model"] == "alexnet-mnist"
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


def _final_model_state(run: Path) -> dict[str, torch.Tensor]:
    return safe_torch_load(run / "checkpoints" / "last.pt")["model"]


@pytest.mark.slow  # three subprocess runs (25 s on 2 cores); mid-epoch resumes stay in the default run
def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path):
    common = ["--epochs", "2", "-b", "128", "--deterministic", "--checkpoint-every", "5", "--amp", "off",
              "--output-dir", str(tmp_path), *TINY]
    ref = train_cli(*common, "--name", "ref")
    assert ref.returncode == 0, ref.stderr
    # Killed with SIGKILL at step 17 (mid-way through epoch 2); the last checkpoint is at step 15.
    # The killed run uses a worker process, the reference none: augmentation must not depend on it.
    killed = train_cli(*common, "--name", "killed", "--workers", "1", env={"ALEXNET_DEBUG_KILL_AT_STEP": "17"})
    assert killed.returncode == -signal.SIGKILL
    ck = safe_torch_load(tmp_path / "killed" / "checkpoints" / "last.pt")
    assert ck["global_step"] == 15 and ck["epoch"] == 1 and 0 < ck["step_in_epoch"] < 12
    resumed = train_cli("--resume", str(tmp_path / "killed"))
    assert resumed.returncode == 0, resumed.stderr
    a, b = _final_model_state(tmp_path / "ref"), _final_model_state(tmp_path / "killed")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # and the metrics have one row per epoch, no duplicates
    rows = list(csv.DictReader((tmp_path / "killed" / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]


def test_two_gloo_processes_equal_one_process_with_same_global_batch(tmp_path):
    # without dropout only (each rank draws its own masks), and up to float rounding (the gradients
    # are averaged in another order): docs/distributed.md
    common = ["--max-steps", "5", "--amp", "off", "--output-dir", str(tmp_path), "--lr-scheduler", "constant",
              *TINY, "--model-arg", "dropout=0", "--deterministic"]
    # --global-batch 64: one process takes 64, each of two takes 32 (the paper recipe keeps 128 so)
    from alexnet.cli import main

    assert main(["train", *common, "--global-batch", "64", "--name", "one"]) == 0  # here: no process to start
    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    two = run_logged([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
                      "-m", "alexnet", "train", *common, "--global-batch", "64", "--name", "two"],
                     # the GPU path (loss read back every 3 steps, a collective nan check at each
                     # read) and a timed progress line due on rank 0 at every step: no rank may
                     # wait at a collective the others skip
                     {**ENV, "ALEXNET_DEBUG_SYNC_EVERY": "3", "ALEXNET_PROGRESS_SECONDS": "1e-9"})
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = load_file(str(tmp_path / "one" / "weights.safetensors")), load_file(str(tmp_path / "two" / "weights.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    assert safe_torch_load(tmp_path / "two" / "checkpoints" / "last.pt")["global_step"] == 5
    assert "step 3/" in two.stdout  # the timed line came at the read after step 3
    assert "global batch 64 kept = 2 processes × 32" in two.stdout  # said at the start of the run


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    from alexnet.cli import main

    monkeypatch.setenv("ALEXNET_DEBUG_NAN_AT_STEP", "5")
    assert main(["train", "--epochs", "1", "-b", "128", "--checkpoint-every", "3", "--output-dir", str(tmp_path),
                 "--name", "nan", "--amp", "off", *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: loss became nan") and "Traceback" not in err
    ck = safe_torch_load(tmp_path / "nan" / "checkpoints" / "last.pt")
    assert ck["global_step"] == 3
    assert f"the last good checkpoint is kept: {tmp_path / 'nan' / 'checkpoints' / 'last.pt'}" in err
    monkeypatch.setenv("ALEXNET_DEBUG_NAN_AT_STEP", "2")
    assert main(["train", "--epochs", "1", "-b", "128", "--output-dir", str(tmp_path), "--name", "nan2", "--amp",
                 "off", *TINY]) == 2
    assert "no checkpoint was written before it" in capsys.readouterr().err  # none to point at


def test_reading_the_loss_back_every_k_steps_changes_nothing(tmp_path, monkeypatch):
    """The GPU path (sums kept on the device, read back every k steps), run on the CPU: same weights and
    train loss as reading back every step; a nan inside a window is caught before anything is saved."""
    import alexnet.engine.loop as loop_mod
    from alexnet.engine.train import DivergedError

    def run(name: str, **kw):
        return fit(make_config("digits", epochs=1, batch_size=64, output_dir=str(tmp_path), name=name,
                               model_kwargs={"width": 0.125, "fc_width": 16}, amp="off", **kw))

    every_step = run("k1")
    monkeypatch.setattr(loop_mod, "CPU_SYNC_EVERY", 4)
    every_4 = run("k4")
    a, b = (load_file(str(r.run_dir / "weights.safetensors")) for r in (every_step, every_4))
    assert all(torch.equal(a[k], b[k]) for k in a)
    la, lb = (float(list(csv.DictReader((r.run_dir / "metrics.csv").open()))[0]["train_loss"])
              for r in (every_step, every_4))
    assert la == pytest.approx(lb, rel=1e-6)

    monkeypatch.setenv("ALEXNET_DEBUG_NAN_AT_STEP", "6")
    with pytest.raises(DivergedError, match="loss became nan/inf in epoch 1, steps 5–8"):
        run("nan", checkpoint_every=4)  # saves after steps 4 and 8: the save at 8 finds the nan first
    assert safe_torch_load(tmp_path / "nan" / "checkpoints" / "last.pt")["global_step"] == 4


def test_a_nan_soon_after_a_resume_points_at_the_checkpoint_before(tmp_path, monkeypatch):
    """A loss that turns nan just after a resume may come from a damaged last.pt (its bytes are not
    checksummed): the message names last.prev.pt, the checkpoint before it, and how to use it."""
    from alexnet.engine.config import resume_config
    from alexnet.engine.train import DivergedError

    kw = dict(batch_size=64, output_dir=str(tmp_path), model_kwargs={"width": 0.125, "fc_width": 16}, amp="off")
    done = fit(make_config("digits", epochs=2, name="r", **kw)).run_dir  # two epochs: last.pt and last.prev.pt
    assert (done / "checkpoints" / "last.prev.pt").is_file()
    monkeypatch.setenv("ALEXNET_DEBUG_NAN_AT_STEP", "50")  # a few steps into epoch 3
    with pytest.raises(DivergedError, match=r"this process resumed from it \d+ steps ago: if it is damaged, "
                                            r".*last\.prev\.pt holds the one before; move it to last\.pt"):
        fit(resume_config(str(done), epochs=3))


def test_a_first_epoch_nan_under_the_papers_init_names_caffes(tmp_path, monkeypatch):
    """The paper's bias 1 makes the first steps large (`--recipe paper` on a small 10-class set went
    nan in its first epoch on a GPU): a nan in the first epoch of such a network names init=caffe;
    other inits get the plain advice."""
    from alexnet.engine.train import DivergedError

    def run(name: str, init: str):
        return fit(make_config("digits", model="alexnet-cifar", epochs=1, batch_size=64, output_dir=str(tmp_path),
                               name=name, model_kwargs={"width": 0.125, "fc_width": 16, "init": init}, amp="off"))

    monkeypatch.setenv("ALEXNET_DEBUG_NAN_AT_STEP", "2")
    with pytest.raises(DivergedError, match=r"--lr or --clip-grad-norm; or --model-arg init=caffe"):
        run("paper", "paper")
    with pytest.raises(DivergedError) as kaiming:
        run("kaiming", "kaiming")
    assert "init=caffe" not in str(kaiming.value)


def test_ctrl_c_saves_resumable_checkpoint(tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "alexnet", "train", "--epochs", "3", "-b", "64", "--print-freq", "1",
                          "--output-dir", str(tmp_path), "--name", "int", *TINY],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.time() + 120
    for line in p.stdout:
        if "step 3 " in line or time.time() > deadline:
            break
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "resumable checkpoint saved" in out
    ck = safe_torch_load(tmp_path / "int" / "checkpoints" / "last.pt")
    assert ck["global_step"] >= 3
    from alexnet.cli import main

    assert main(["train", "--resume", str(tmp_path / "int"), "--epochs", "1"]) == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
            "-m", "alexnet", "train", *args]


def _interrupt_torchrun(cmd: list[str], whom: str, after_step: int) -> str:
    """Start ``cmd`` (torchrun) in its own process group, wait for rank 0's line of ``after_step``, then
    Ctrl-C: ``whom="group"`` as a terminal sends it (every process of the group: torchrun, which
    passes it on, and both ranks), ``"rank0"`` to rank 0 alone. Returns the output; never waits forever."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                         env={**ENV, "ALEXNET_PROGRESS_SECONDS": "1e-9", "ALEXNET_DEBUG_STEP_SLEEP": "0.25"})
    out, deadline = [], time.time() + 120
    for line in p.stdout:
        out.append(line)
        if f"step {after_step} " in line or time.time() > deadline:
            break
    if whom == "group":
        os.killpg(p.pid, signal.SIGINT)
    else:
        ranks = [int(c) for c in Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split()]
        rank0 = [c for c in ranks if b"RANK=0" in Path(f"/proc/{c}/environ").read_bytes().split(b"\0")]
        os.kill(rank0[0], signal.SIGINT)
    try:
        rest, _ = p.communicate(timeout=90)
    except subprocess.TimeoutExpired:  # the hang this guards against
        os.killpg(p.pid, signal.SIGKILL)
        rest, _ = p.communicate()
        pytest.fail("the ranks did not stop after Ctrl-C:\n" + "".join(out) + rest[-3000:])
    return "".join(out) + rest


@pytest.mark.slow  # torchrun and its ranks (12-45 s on 2 cores); the default run keeps other torchrun tests
def test_ctrl_c_under_torchrun_saves_on_every_rank_and_resumes_exactly(tmp_path):
    """Ctrl-C in a terminal reaches torchrun and both ranks (and torchrun passes it on again): the
    ranks agree on a step, save together, and the run resumes to the weights of an uninterrupted
    one. A Ctrl-C that reaches rank 0 alone stops both ranks the same way, with no hang."""
    common = ["--epochs", "2", "-b", "64", "--print-freq", "1", "--deterministic", "--amp", "off",
              "--output-dir", str(tmp_path), *TINY]  # 24 steps of 0.25 s or more (a debug sleep): time to stop it
    ref = run_logged(_torchrun(*common, "--name", "ref"), ENV)
    assert ref.returncode == 0, ref.stderr[-3000:]
    for whom in ("group", "rank0"):
        out = _interrupt_torchrun(_torchrun(*common, "--name", whom), whom, after_step=4)
        assert "stopped: resumable checkpoint saved to" in out and "--resume" in out, out[-3000:]
        assert "Traceback" not in out.split("stopped: resumable")[0], out[-3000:]  # torchrun's own comes after
        ck = safe_torch_load(tmp_path / whom / "checkpoints" / "last.pt")
        assert 4 <= ck["global_step"] < 2 * 12  # saved where it stopped, before the end
    resumed = run_logged(_torchrun("--resume", str(tmp_path / "rank0")), ENV)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _final_model_state(tmp_path / "ref"), _final_model_state(tmp_path / "rank0")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow  # torchrun and its ranks (9 s on 2 cores); the two-gloo test stays in the default run
def test_a_rank_killed_under_torchrun_is_one_line_on_the_others(tmp_path):
    r = run_logged(_torchrun("--epochs", "2", "-b", "64", "--checkpoint-every", "5", "--amp", "off",
                             "--output-dir", str(tmp_path), "--name", "k", *TINY),
                   {**ENV, "ALEXNET_DEBUG_KILL_AT_STEP": "7", "ALEXNET_DEBUG_KILL_RANK": "1"})
    assert r.returncode != 0
    line = next(ln for ln in r.stderr.splitlines() if ln.startswith("error: "))
    assert "another process of this torchrun group stopped during step 8" in line
    assert line.endswith(f"The last checkpoint is kept: torchrun --nproc-per-node 2 -m alexnet train --resume "
                         f"{tmp_path / 'k'}")
    assert "[rank0]: Traceback" not in r.stderr


@pytest.mark.slow  # two torchrun commands (about 20 s on 2 cores)
def test_an_error_every_rank_meets_is_printed_once_under_torchrun(tmp_path):
    """A budget too short for one epoch (rank 0 plans, every rank stops) is one line, not one per
    rank; a run another process holds (rank 0 holds the lock) stops rank 1 too, in rank 0's words,
    without the process group's traceback."""
    short = run_logged(_torchrun("--time-budget", "1s", "-b", "64", "--amp", "off", "--output-dir", str(tmp_path),
                                 "--name", "short", *TINY), ENV)
    errors = [ln for ln in short.stderr.splitlines() if ln.startswith("error: ")]
    assert short.returncode != 0 and len(errors) == 1 and "too short for one epoch" in errors[0], short.stderr[-3000:]
    uneven = run_logged(_torchrun("--global-batch", "127", "--output-dir", str(tmp_path), *TINY), ENV)  # a flag
    errors = [ln for ln in uneven.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "does not split evenly over 2 processes" in errors[0], uneven.stderr[-3000:]
    fcntl = pytest.importorskip("fcntl")
    done = run_logged(_torchrun("--max-steps", "2", "-b", "64", "--amp", "off", "--output-dir", str(tmp_path),
                                "--name", "held", *TINY), ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "held" / "config.json").read_text())["processes"] == 2
    with open(tmp_path / "held" / ".lock", "a+") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held = run_logged(_torchrun("--resume", str(tmp_path / "held")), ENV)
    errors = [ln for ln in held.stderr.splitlines() if ln.startswith("error: ")]
    assert held.returncode != 0 and len(errors) == 1 and "another process is training" in errors[0], held.stderr[-3000:]
    assert "alexnet/engine/" not in held.stderr, held.stderr[-3000:]  # no rank's traceback (torchrun prints its own)


@pytest.mark.parametrize("args,msg", [
    (["--lr", "-1"], "--lr must be positive"),
    (["--model", "alexnett"], "unknown model 'alexnett'"),
    (["--recipe", "papr"], "unknown recipe 'papr'"),
    (["--data", "/no/such/dir"], "no such"),
    (["--recipe", "cifar10"], "needs a location"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--resume", "/no/such/run"], "no such folder"),
    (["--test-only"], "--test-only evaluates a trained run"),
])
def test_bad_flags_exit_2_one_line(args, msg, tmp_path):
    r = train_cli(*args, "--output-dir", str(tmp_path))
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: ") and msg in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_test_only_evaluates_resumed_run(short_run, capsys):
    from alexnet.engine.config import resume_config

    capsys.readouterr()
    res = fit(resume_config(str(short_run.run_dir), test_only=True))
    assert "nothing to train" not in capsys.readouterr().out  # it was asked to evaluate, not to train
    assert res.last is not None and res.last.n == 359 and res.last.top1 == pytest.approx(
        float(list(csv.DictReader((short_run.run_dir / "metrics.csv").open()))[-1]["val_top1"]), abs=1e-3)


def test_resume_a_finished_run_and_train_it_longer(tmp_path, capsys):
    from alexnet.engine.config import resume_config

    fit(make_config("digits", epochs=1, batch_size=256, output_dir=str(tmp_path), name="done",
                    model_kwargs={"width": 0.125, "fc_width": 16}, amp="off"))
    run = tmp_path / "done"
    before = (run / "checkpoints" / "last.pt").read_bytes()
    capsys.readouterr()
    res = fit(resume_config(str(run)))
    assert "already finished its 1 epoch: nothing to train" in capsys.readouterr().out
    assert res.epochs_done == 1 and (run / "checkpoints" / "last.pt").read_bytes() == before
    res = fit(resume_config(str(run), epochs=2))
    assert "the onecycle schedule was laid out for 1 epoch and is now laid out for 2" in capsys.readouterr().out
    assert res.epochs_done == 2 and len((run / "metrics.csv").read_text().splitlines()) == 3


def test_compile_without_a_cpp_compiler_is_a_one_line_error(tmp_path, monkeypatch):
    import shutil

    from alexnet.core.errors import UserError

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="--compile on a CPU needs a C\\+\\+ compiler"):
        fit(make_config("digits", epochs=1, compile=True, output_dir=str(tmp_path), name="c", device="cpu"))


@pytest.mark.slow
def test_compiled_training_matches_eager(tmp_path):
    """--compile (inductor; ≈1 min on 2 cores to build) trains to the same numbers as eager, within
    float tolerance. Without dropout: compiled code draws its dropout masks from a different generator."""
    kw = dict(epochs=1, max_steps=4, batch_size=64, output_dir=str(tmp_path), amp="off", device="cpu",
              model_kwargs={"width": 0.25, "fc_width": 64, "dropout": 0.0})
    eager, compiled = fit(make_config("digits", name="eager", **kw)), fit(make_config("digits", name="c", compile=True, **kw))
    a, b = (load_file(str(r.run_dir / "weights.safetensors")) for r in (eager, compiled))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-3, atol=1e-4)


def test_log_without_terminal_gets_progress_lines(tmp_path, capsys, monkeypatch):
    """stdout to a file or pipe: no progress bar, but a line every $ALEXNET_PROGRESS_SECONDS (default 60)
    with an ETA; a bad value is a one-line error."""
    monkeypatch.setenv("ALEXNET_PROGRESS_SECONDS", "1e-9")
    fit(make_config("digits", epochs=1, batch_size=256, output_dir=str(tmp_path), name="log",
                    model_kwargs={"width": 0.125, "fc_width": 16}, amp="off"))
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "epoch ETA" in ln]
    assert len(lines) == 4  # 1,438 images // 256 → 5 full batches; no line after the last
    assert lines[0].split()[:4] == ["epoch", "1/1", "step", "1/5"] and "img/s" in lines[0]
    from alexnet.cli import main

    monkeypatch.setenv("ALEXNET_PROGRESS_SECONDS", "soon")  # in this process: stdout is captured, not a terminal
    assert main(["train", "--epochs", "1", "--output-dir", str(tmp_path), "--name", "bad", *TINY]) == 2
    assert "error: ALEXNET_PROGRESS_SECONDS must be a positive number" in capsys.readouterr().err
    from alexnet.engine.progress import clock

    assert clock(83) == "1:23" and clock(4000) == "1:06:40"


def test_resume_with_different_model_refused(short_run):
    r = train_cli("--resume", str(short_run.run_dir), "--model", "alexnet-cifar")
    assert r.returncode == 2 and "cannot continue it as 'alexnet-cifar'" in r.stderr


@pytest.mark.timeout(900)  # ~20 s alone; minutes on a shared, loaded machine
def test_default_digits_run_reaches_95_percent(tmp_path):
    """README command (a): `alexnet train` with no arguments. The one accuracy asserted in tests."""
    res = fit(make_config(output_dir=str(tmp_path), name="default"))
    assert res.best_top1 >= 95.0
    assert res.last is not None and res.last.n == 359  # the fixed 20 % hold-out


def test_only_a_process_group_error_is_a_lost_peer():
    from alexnet.engine.loop import peer_lost

    gloo = RuntimeError("[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:545] Read error [127.0.0.1]:727: "
                        "Connection reset by peer")
    assert peer_lost(gloo) == "connection reset by peer"
    assert peer_lost(RuntimeError("https://host/shard-0001.tar: Connection refused")) == ""  # the data's error
