"""tools/slurm/train.sbatch (docs/distributed.md): valid bash, and the command it runs parses — the
torchrun flags with torchrun's own parser, the training flags with `alexnet train`'s checks."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from torch.distributed.run import parse_args as torchrun_args

from alexnet.cli import build_parser
from alexnet.commands.train import check_flags

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "slurm" / "train.sbatch"
SAMPLE = {"SLURM_JOB_NUM_NODES": "2", "GPUS": "8", "HEAD": "node001", "PORT": "29500", "SLURM_JOB_ID": "4242",
          "DATA": "/datasets/ilsvrc2012", "OUTPUT": "runs", "NAME": "alexnet-paper"}


def srun_command() -> list[str]:
    text = SCRIPT.read_text().replace("\\\n", " ")
    line = next(ln for ln in text.splitlines() if ln.startswith("srun "))
    line = re.sub(r'\$(\w+)', lambda m: SAMPLE[m.group(1)], line)
    return shlex.split(line)


def test_the_slurm_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_the_slurm_script_runs_torchrun_with_rendezvous_and_a_run_that_resumes():
    cmd = srun_command()
    launch = torchrun_args(cmd[cmd.index("torchrun") + 1:])
    assert (launch.nnodes, launch.nproc_per_node, launch.rdzv_backend) == ("2", "8", "c10d")
    assert launch.rdzv_endpoint == "node001:29500" and launch.max_restarts == 3 and launch.module
    assert launch.training_script == "alexnet" and launch.training_script_args[0] == "train"
    args = build_parser().parse_args(launch.training_script_args)
    check_flags(args)  # every value as `alexnet train` checks it before starting
    assert (args.resume, args.name, args.recipe) == ("auto", "alexnet-paper", "paper")
