"""A data-loader worker that dies (the out-of-memory killer's SIGKILL, here sent by the worker to
itself): the run stops with one line that says so and what to do, saved where it stopped, and the
resumed run ends with the weights of a run that never lost a worker."""

from __future__ import annotations

import csv
import os
import signal
import time

import pytest
import torch
from torch.utils.data import get_worker_info

from alexnet.core.io import safe_torch_load
from alexnet.data.loader import SafeDataset
from alexnet.engine import make_config
from alexnet.engine.config import resume_config
from alexnet.engine.loop import LoaderDiedError
from alexnet.engine.train import fit
from conftest import write_colour_classes

TINY = {"width": 0.25, "fc_width": 32}


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    write_colour_classes(root, per_class=12)  # 120 images of 32×32
    return str(root)


def config(tmp_path, data, name, **kw):
    kw = {"epochs": 3, **kw}
    return make_config("cifar10", data=data, model_kwargs=TINY, batch_size=16, lr=0.01, aug="light",
                       resident=False, workers=2, deterministic=True, amp="off", output_dir=str(tmp_path),
                       name=name, val_split=0.2, **kw)


def kill_a_worker_once(monkeypatch, flag, *, training: bool, epoch: int, after: int = 0, linger: float = 0.0):
    """The first worker to load its ``after + 1``-th sample of ``epoch`` from the training (or
    validation) split kills itself, ``linger`` seconds later; the flag file makes it once in all."""
    flag.write_text("armed")
    real = SafeDataset.__getitem__
    seen = [0]  # in each worker process, its own count

    def getitem(self, key):
        ep = int(key[1]) if isinstance(key, (tuple, list)) else 0
        if get_worker_info() is not None and self.substitute == training and ep == epoch:
            seen[0] += 1
            if seen[0] > after:
                try:
                    os.remove(flag)
                except FileNotFoundError:
                    pass
                else:
                    time.sleep(linger)
                    os.kill(os.getpid(), signal.SIGKILL)
        return real(self, key)

    monkeypatch.setattr(SafeDataset, "__getitem__", getitem)


def final_weights(run) -> dict[str, torch.Tensor]:
    return safe_torch_load(run / "checkpoints" / "last.pt")["model"]


@pytest.mark.slow  # two runs and a resume (9 s on 2 cores); a validation worker's death stays in the default run
def test_a_training_worker_dies_the_run_is_saved_and_resumes_to_the_same_weights(tmp_path, colours, monkeypatch):
    ref = fit(config(tmp_path, colours, "ref")).run_dir
    # 100 training images, batches of 16: 6 steps an epoch, the two workers taking turns, two batches
    # ahead. The first dies on its third batch of the second epoch (batch 4, asked for once batch 0
    # is taken), two seconds after it began it: by then the loop has taken batches 1-3 and waits for
    # batch 4 (a batch a dead worker made but the loop had not taken dies with it, which would make
    # the step it stops at depend on the order the batches arrived in). So the run stops after step
    # 4 of that epoch, the losses of steps not yet read back (every 4th step here) on the device.
    kill_a_worker_once(monkeypatch, tmp_path / "flag", training=True, epoch=1, after=32, linger=2.0)
    monkeypatch.setenv("ALEXNET_DEBUG_SYNC_EVERY", "4")
    with pytest.raises(LoaderDiedError) as err:
        fit(config(tmp_path, colours, "killed"))
    msg = str(err.value)
    assert "data-loader worker process died (DataLoader worker (pid" in msg and "\n" not in msg
    assert f"continue with: alexnet train --resume {tmp_path / 'killed'}" in msg and "--workers" in msg
    assert not (tmp_path / "flag").exists()  # a worker did die
    ck = safe_torch_load(tmp_path / "killed" / "checkpoints" / "last.pt")
    assert (ck["epoch"], ck["step_in_epoch"], ck["global_step"]) == (1, 4, 10)  # saved mid-epoch, where it stopped
    assert f"Stopped at step 10: resumable checkpoint saved to {tmp_path / 'killed' / 'checkpoints' / 'last.pt'}" in msg
    monkeypatch.undo()
    fit(resume_config(str(tmp_path / "killed")))
    a, b = final_weights(ref), final_weights(tmp_path / "killed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = [list(csv.DictReader((tmp_path / n / "metrics.csv").open())) for n in ("ref", "killed")]
    assert [r["train_loss"] for r in rows[0]] == [r["train_loss"] for r in rows[1]]  # no step's loss lost


def test_the_loop_takes_a_workers_death_between_steps_not_from_pytorchs_sigchld_handler(monkeypatch):
    """PyTorch's SIGCHLD handler raises a worker's death at whatever line runs — mid-step — so the
    loop sets it aside once its loader has started, and puts back the handler it had wrapped."""
    import torch.utils.data._utils.signal_handling as torch_signals
    from torch.utils.data import DataLoader

    from alexnet.engine.loop import defer_worker_deaths

    monkeypatch.setattr(torch_signals, "_SIGCHLD_handler_set", False)  # PyTorch sets it once a process

    def mine(signum, frame):
        pass

    previous = signal.signal(signal.SIGCHLD, mine)
    try:
        it = iter(DataLoader(list(range(8)), batch_size=2, num_workers=1))
        assert signal.getsignal(signal.SIGCHLD).__module__ == torch_signals.__name__  # PyTorch's, wrapping mine
        defer_worker_deaths()
        assert signal.getsignal(signal.SIGCHLD) is mine
        assert [int(x) for b in it for x in b] == list(range(8))
    finally:
        signal.signal(signal.SIGCHLD, previous)


@pytest.mark.parametrize("after, said", [
    pytest.param(0, "No checkpoint was written yet: start the run again",  # in the first validation: none yet
                 marks=pytest.mark.slow),  # 6 s; the death itself is the second case's, in the default run
    (16, "The last checkpoint is kept: alexnet train --resume "),  # 20 images, batch 16: the second one
])
def test_a_validation_worker_dies_the_last_checkpoint_is_kept(tmp_path, colours, monkeypatch, after, said):
    kill_a_worker_once(monkeypatch, tmp_path / "flag", training=False, epoch=0, after=after)
    with pytest.raises(LoaderDiedError) as err:
        fit(config(tmp_path, colours, "run"))
    msg = str(err.value)
    assert "data-loader worker process died" in msg and "\n" not in msg and said in msg
    assert (tmp_path / "run" / "checkpoints" / "last.pt").exists() == (after > 0)


def test_evaluate_with_a_worker_killed_says_so_in_one_line(tmp_path, colours, monkeypatch, capsys):
    from alexnet.cli import main

    run = fit(config(tmp_path, colours, "run", epochs=1)).run_dir
    capsys.readouterr()
    kill_a_worker_once(monkeypatch, tmp_path / "flag", training=False, epoch=0, after=4)
    assert main(["evaluate", str(run), "--data", colours, "--split", "all", "--workers", "2"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: a data-loader worker process died (DataLoader worker (pid")
    assert "--workers" in err and "\n" not in err and not (tmp_path / "flag").exists()


def test_an_error_raised_in_a_worker_is_not_taken_for_its_death(monkeypatch):
    """A bug in a worker keeps its traceback: only the loader's report of a dead worker is one line."""
    from alexnet.cli import main
    from alexnet.core.errors import worker_died

    assert worker_died(RuntimeError("DataLoader worker (pid(s) 12) exited unexpectedly"))
    assert not worker_died(RuntimeError("Caught RuntimeError in DataLoader worker process 0."))
    assert not worker_died(ValueError("DataLoader worker (pid 12) is killed by signal: Killed."))
    import alexnet.commands.models as models

    def boom(args):
        raise RuntimeError("Caught RuntimeError in DataLoader worker process 0.")

    monkeypatch.setattr(models, "run_models", boom, raising=False)
    with pytest.raises(RuntimeError, match="Caught RuntimeError in DataLoader worker"):
        main(["models"])


SITE = '''# Python runs this file at start-up (it is sitecustomize on PYTHONPATH): in rank 0 of a torchrun
# run, the first loader worker to load its 21st training sample of the second epoch kills itself.
import os
if os.environ.get("RANK") == "0" and os.environ.get("KILL_FLAG"):
    import signal
    from torch.utils.data import get_worker_info
    from alexnet.data.loader import SafeDataset
    real, seen = SafeDataset.__getitem__, [0]

    def getitem(self, key):
        ep = int(key[1]) if isinstance(key, (tuple, list)) else 0
        if get_worker_info() is not None and self.substitute and ep == 1:
            seen[0] += 1
            if seen[0] > 20:
                try:
                    os.remove(os.environ["KILL_FLAG"])
                except FileNotFoundError:
                    pass
                else:
                    os.kill(os.getpid(), signal.SIGKILL)
        return real(self, key)

    SafeDataset.__getitem__ = getitem
'''


@pytest.mark.slow  # torchrun and its ranks (12-45 s on 2 cores); the default run keeps other torchrun tests
def test_under_torchrun_a_dead_worker_ends_every_rank_and_keeps_the_last_checkpoint(tmp_path):
    """A real two-process torchrun run whose rank 0 loses a loader worker in its second epoch: rank 0
    says so in one line with the command that resumes, torchrun ends the other rank, no process of
    the run is left, and the last checkpoint (the first epoch's) resumes to the end."""
    import socket
    import sys

    from subproc import processes_with, run_logged

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SITE)
    (tmp_path / "flag").write_text("armed")
    env = {**os.environ, "ALEXNET_CPU_BF16": "0", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "KILL_FLAG": str(tmp_path / "flag"),
           "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    run = tmp_path / "two"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           "-m", "alexnet", "train", "--data", "digits", "--epochs", "3", "--amp", "off", "--workers", "2",
           "--model-arg", "width=0.125", "--model-arg", "fc_width=16", "--global-batch", "64",
           "--output-dir", str(tmp_path), "--name", "two"]
    res = run_logged(cmd, env)
    out = res.stdout + res.stderr
    assert res.returncode != 0 and not (tmp_path / "flag").exists(), out[-3000:]  # a worker did die
    said = [line for line in out.splitlines() if line.startswith("error: a data-loader worker process died")]
    resume = f"torchrun --nproc-per-node 2 -m alexnet train --resume {run}"  # as many processes as it had
    assert len(said) == 1 and said[0].endswith(f"The last checkpoint is kept: {resume}"), out[-3000:]
    left = processes_with(str(tmp_path))
    assert not left, f"{len(left)} processes of the torchrun run outlived it: {left}"
    ck = safe_torch_load(run / "checkpoints" / "last.pt")
    assert (ck["epoch"], ck["step_in_epoch"], ck["global_step"]) == (1, 0, 22)  # 1,438 images, 64 a step
    env.pop("KILL_FLAG")
    res = run_logged([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
                      "-m", "alexnet", "train", "--resume", str(run)], env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert [r["epoch"] for r in csv.DictReader((run / "metrics.csv").open())] == ["1", "2", "3"]


def test_the_command_that_resumes_names_as_many_processes_as_the_run_had(monkeypatch):
    from alexnet.engine.distributed import World, resume_command

    assert resume_command("runs/a", World()) == "alexnet train --resume runs/a"
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert resume_command("runs/a", World(1, 2, 1)) == "torchrun --nproc-per-node 2 -m alexnet train --resume runs/a"
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert resume_command("runs/a", World(5, 8, 1)) == \
        "torchrun --nnodes 2 --nproc-per-node 4 … -m alexnet train --resume runs/a"
