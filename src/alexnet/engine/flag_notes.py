"""What the flags given do to a recipe, said at the start of a run: ``-b`` without ``--lr`` keeps
the rate per batch (`batch_rate_note`); ``--model-arg`` replaces the recipe's model arguments
(`model_args_note`); and two checks of what was typed against what the run will do
(`check_resume_data`, `check_pca_scale_flag`). Plain Python, as `alexnet.engine.config`: the CLI
prints these before torch."""

from __future__ import annotations

import os
from typing import Any

from ..core.errors import UserError
from ..core.text import counted
from .config import PCA_AUGS
from .recipes import RECIPES


def batch_rate_note(recipe: str, file_values: dict[str, Any] | None, given: dict[str, Any], world: int = 1) -> str:
    """A one-line note when ``-b`` changes the batch the rate was set for and no rate is given: SGD's rate
    is per batch, so the recipe's rate at another batch is another rate per image (batch 64 on
    `cifar10`'s 0.2 for 512 is 8× the step per image). The run keeps what it was given; the note
    says which ``--lr`` keeps the rate per image (linear scaling: Goyal et al., 2017). Under torchrun
    the batch is ``-b`` × ``world`` processes, and ``--scale-lr`` multiplies the rate by ``world``.
    Adam's rates do not scale that way: no note. Plain Python; "" when there is nothing to say."""
    if recipe not in RECIPES or "batch_size" not in given or given.get("lr") is not None:
        return ""
    base = {**RECIPES[recipe], **(file_values or {})}
    rated = base if "lr" in (file_values or {}) else RECIPES[recipe]  # the values the rate was set with
    was = rated.get("global_batch") or rated.get("batch_size")
    batch, scaled = given["batch_size"] * world, bool(given.get("scale_lr", base.get("scale_lr")))
    optimizer = given.get("optimizer") or base.get("optimizer", "sgd")
    if "lr" not in base or not was or batch == was or not str(optimizer).startswith("sgd"):
        return ""
    whose = "--config's" if "lr" in (file_values or {}) else f"the {recipe} recipe's"
    lr = base["lr"] * batch / was / (world if scaled else 1)  # what --lr gives the recipe's rate per image
    total = f"a batch of {batch} ({world} processes × -b {given['batch_size']})" if world > 1 else f"-b {batch}"
    times = f" (× {world} with --scale-lr)" if scaled and world > 1 else ""
    return (f"note: {total} keeps {whose} rate {base['lr']:g}{times}, set for batch {was}; the same rate per "
            f"image would be --lr {lr:.3g}")


def model_args_note(recipe: str, file_values: dict[str, Any] | None, given: dict[str, Any]) -> str:
    """A one-line note when ``--model-arg`` replaces model arguments the recipe (or ``--config``) set
    for the same model: ``model_kwargs`` is one field, so the ones not given again are dropped (the
    `cifar10` recipe's batch norm, say). Plain Python; "" when nothing is dropped."""
    base = {**RECIPES.get(recipe, {}), **(file_values or {})}
    if "model_kwargs" not in given or given.get("model", base.get("model")) != base.get("model"):
        return ""
    dropped = {k: v for k, v in (base.get("model_kwargs") or {}).items() if k not in given["model_kwargs"]}
    if not dropped:
        return ""
    args = " ".join(f"--model-arg {k}={','.join(map(str, v)) if isinstance(v, list) else v}"
                    for k, v in dropped.items())
    whose = "--config's" if "model_kwargs" in (file_values or {}) else f"the {recipe} recipe's"
    return f"note: --model-arg replaces {whose} model arguments; to keep the others, add {args}"


def processes_note(file_values: dict[str, Any] | None, given: dict[str, Any], world: int = 1) -> str:
    """A one-line note when ``--config RUN`` trained with another number of processes and its batch
    was per process (``-b``): the same fields here make another global batch (2 processes × 64 on
    one process is a batch of 64, not 128), so another run. ``--global-batch`` keeps the batch; a
    ``-b`` or ``--global-batch`` given is the person's choice: no note. Plain Python."""
    values = {**(file_values or {}), **given}
    was, batch = (file_values or {}).get("processes"), values.get("batch_size")
    if not was or was == world or not batch or values.get("global_batch") or "batch_size" in given:
        return ""
    def procs(n: int) -> str:
        return counted(n, "process", "processes")

    return (f"note: --config's run trained with {procs(was)} × -b {batch} (a batch of {was * batch}); "
            f"{procs(world)} × -b {batch} here make a batch of {world * batch}: for the same batch give "
            f"--global-batch {was * batch}")


def unused_flags_note(recipe: str, file_values: dict[str, Any] | None, given: dict[str, Any]) -> str:
    """A one-line note when a flag given does nothing with the optimiser the run has: ``--nesterov``
    with ``sgd-paper`` (§5's rule is plain momentum) or Adam, ``--momentum`` with Adam. The run
    records what was given; the note says it is not used. Plain Python; "" when all are used."""
    base = {**RECIPES.get(recipe, {}), **(file_values or {})}
    optimizer = str(given.get("optimizer") or base.get("optimizer", "sgd"))
    unused = [f"--{k}" for k in ("nesterov", "momentum") if k in given and (
        optimizer.startswith("adam") or (k == "nesterov" and optimizer == "sgd-paper" and given[k]))]
    if not unused:
        return ""
    why = "§5's update is plain momentum" if optimizer == "sgd-paper" else "Adam has its own"
    verb = "do" if len(unused) > 1 else "does"
    return f"note: {' and '.join(unused)} {verb} nothing with --optimizer {optimizer} ({why})"


def start_notes(recipe: str, file_values: dict[str, Any] | None, given: dict[str, Any], world: int = 1) -> list[str]:
    """The notes on what the flags given do to the recipe: `batch_rate_note`, `model_args_note`,
    `processes_note`, `unused_flags_note`."""
    return [n for n in (batch_rate_note(recipe, file_values, given, world), model_args_note(recipe, file_values, given),
                        processes_note(file_values, given, world), unused_flags_note(recipe, file_values, given)) if n]


def check_resume_data(run_dir: str, spec: str, command: str = "--resume") -> None:
    """The run's data as ``config.json`` records it (as typed): a relative path that is not there
    from this folder was most likely typed in another one; one line that says so and what to do
    (``command``: ``--resume`` or ``evaluate``, which reads the run's own data the same way)."""
    kind, sep, rest = spec.partition(":")
    path = rest if sep and len(kind) > 1 else spec
    if (not path or spec == "digits" or "://" in path or os.path.isabs(os.path.expanduser(path))
            or os.path.exists(path)):
        return  # nothing local to find (digits, remote shards), or found
    raise UserError(f"{command} {run_dir}: the run's data {spec!r} (as config.json records it) is not found "
                    f"from {os.getcwd()}; a relative path is read from the folder the run was started in: "
                    f"{'resume' if command == '--resume' else 'run it'} from there, or give --data with the data's path")


def check_pca_scale_flag(given: str | None, aug: str | None) -> None:
    """``--pca-scale`` typed on the command line for a run without PCA lighting (``aug``, the run's
    augmentation) is a slip (a recipe's own setting is not: the experiments' arms without lighting
    keep their base's)."""
    if given and aug not in PCA_AUGS:
        raise UserError(f"--pca-scale {given} is read only by PCA lighting (--aug paper); --aug {aug} has "
                        f"none: leave --pca-scale out")
