"""The ``alexnet`` command. Parses flags, calls library functions, prints, sets exit codes.

Each sub-command lives in ``alexnet/commands/<name>.py`` and defines ``register(subparsers)``,
which adds its parser and sets ``func=run`` (``run(args) -> int``). Modules are discovered, so a
new command is one new file. Exit codes: 0 ok, 1 the job ran and found a problem (bad files,
failed predictions), 2 bad input from a person (`UserError`), 130 interrupted.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import pkgutil
import sys
from typing import Any

from .core.errors import EveryProcessHereError, EveryRankError, UserError, worker_death_line, worker_died


def quiet_here(var: str) -> bool:
    """Under torchrun (``WORLD_SIZE`` > 1): whether this process leaves a message that every process
    meets alike to another, ``var`` (``RANK`` or ``LOCAL_RANK``) not being 0. Outside torchrun — a
    command started from inside a torchrun job inherits ``LOCAL_RANK`` — every process speaks."""
    world = os.environ.get("WORLD_SIZE", "").strip()
    return world.isdigit() and int(world) > 1 and os.environ.get(var, "0").strip() not in ("", "0")


class Parser(argparse.ArgumentParser):
    """argparse's parser with the one-line errors of every other mistake (``error: …``, exit 2), not
    the command's whole usage first (forty lines for ``train``), a did-you-mean for a misspelt
    command, and whole flag names only (``--epoch`` is not taken for ``--epochs``). Sub-command
    parsers are of this class too (argparse makes them of their parent's)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def _parse_optional(self, arg_string):  # type: ignore[override]
        """``-5m``, ``-0.5s`` are values (for the flag's own check to refuse in its words), not
        unknown flags: no flag here starts with a dash and a digit. argparse itself only lets pass
        what parses as a negative number."""
        if len(arg_string) > 1 and arg_string[0] == "-" and arg_string[1].isdigit():
            return None
        return super()._parse_optional(arg_string)

    def error(self, message: str):  # type: ignore[override]
        import difflib
        import re

        bad = re.match(r"argument (\S+): invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if bad:
            choices = re.findall(r"'([^']*)'", bad.group(3))
            listed = {a.dest for act in self._actions if isinstance(act, argparse._SubParsersAction)
                      for a in act._choices_actions}  # a sub-command kept for an old name has no help line
            choices = [c for c in choices if c in listed] if listed and not bad.group(1).startswith("-") else choices
            close = difflib.get_close_matches(bad.group(2), choices, n=1, cutoff=0.6)
            what = "a command" if not bad.group(1).startswith("-") else f"a choice of {bad.group(1)}"
            message = (f"{bad.group(2)!r} is not {what}{f' (did you mean {close[0]}?)' if close else ''}: "
                       f"one of {', '.join(choices)}")
        if quiet_here("LOCAL_RANK"):  # under torchrun: one line a machine
            self.exit(2)
        self.exit(2, f"error: {self.prog}: {message} ({self.prog} --help says more)\n")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__, commands

    parser = Parser(
        prog="alexnet",
        description="AlexNet (Krizhevsky, Sutskever & Hinton, 2012) and the ILSVRC winners that "
                    "followed it: train, evaluate, predict, visualise, search, export, serve.")
    parser.add_argument("--version", action="version", version=f"alexnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    mods = [importlib.import_module(f"{commands.__name__}.{m.name}")
            for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")]
    for mod in sorted(mods, key=lambda m: (getattr(m, "ORDER", 50), m.__name__)):
        mod.register(sub)
    return parser


def _subparser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The innermost sub-command parser that ``args`` went through (``index build``, ``train``, …)."""
    found = parser
    while True:
        subs = [a for a in found._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            return found
        name = getattr(args, subs[0].dest, None)
        if name not in subs[0].choices:
            return found
        found = subs[0].choices[name]


def _unrecognized(sub: argparse.ArgumentParser, extras: list[str]) -> str:
    """``unrecognized arguments: --epocs 3 (did you mean --epochs?)``: close matches among ``sub``'s flags."""
    import difflib

    flags = [o for a in sub._actions for o in a.option_strings if o.startswith("--")]
    hints = []
    for x in extras:
        if x.startswith("--"):
            hints += difflib.get_close_matches(x.split("=", 1)[0], flags, n=1, cutoff=0.7)
    msg = f"unrecognized arguments: {' '.join(extras)}"
    return msg + (f" (did you mean {' '.join(hints)}?)" if hints else "")


# One rule for every command: counts a person types are checked here, before any work starts.
_AT_LEAST = {"batch_size": ("--batch-size", 1), "workers": ("--workers", 0)}


def _check_counts(args: argparse.Namespace) -> None:
    for dest, (flag, low) in _AT_LEAST.items():
        v = getattr(args, dest, None)
        if isinstance(v, int) and v < low:
            raise UserError(f"{flag} must be at least {low}, not {v}")


def _check_png_output(sub: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A command whose ``-o`` is a PNG figure (its default ends in ``.png``: the visualise commands,
    ``index query``) writes PNG only: another suffix (``-o f.jpg``) is refused rather than quietly
    written as ``f.png``; a name without a suffix gets ``.png``; a folder (``-o figs/``, or one
    that exists) gets the default name inside it (``figs/filters.png``)."""
    default, out = sub.get_default("output"), getattr(args, "output", None)
    if isinstance(default, str) and default.endswith(".png") and isinstance(out, str):
        if out.endswith(("/", os.sep)) or os.path.isdir(out):
            args.output = out = os.path.join(out, os.path.basename(default))
        suffix = os.path.splitext(out)[1]
        if suffix and suffix.lower() != ".png":
            raise UserError(f"-o {out}: figures are written as PNG; give a name ending in .png (not {suffix})")


def _check_empty(sub: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A text flag given empty (``--data-path "$DATA"`` with ``DATA`` unset) is refused, not read as
    left out: the run would otherwise quietly train on the default data, from scratch, or without its
    budget. Flags whose own type reads ``""`` (``--report-at ""``: none) are theirs to read."""
    for action in sub._actions:
        if action.type not in (None, str) or action.nargs == 0:  # not --help, --flag switches, typed values
            continue
        v = getattr(args, action.dest, None)
        values = v if isinstance(v, list) else [v]
        if any(isinstance(x, str) and not x.strip() for x in values) and v != sub.get_default(action.dest):
            if not action.option_strings:  # a positional: RUN, IMAGE, …
                name = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
                raise UserError(f"{name} is empty (an unset shell variable?): give a value")
            flag = max(action.option_strings, key=len)
            raise UserError(f"{flag} is empty (an unset shell variable?): give a value, or leave {flag} out")


_TEXT_NOT_PATH = {"name", "labels"}  # text values that name nothing on disk: a run's name, legend labels


def _expand_home(args: argparse.Namespace) -> None:
    """A path typed with ``~`` in quotes (``--data '~/photos'``, a script's ``"$HOME"``-less line) is
    the home folder, as the shell would have made it unquoted: every text value that starts with
    ``~/`` (or is ``~``) is expanded, so each command reads the same path the person meant."""
    def home(x: Any) -> Any:
        return os.path.expanduser(x) if isinstance(x, str) and (x == "~" or x.startswith("~/")) else x

    for key, v in vars(args).items():
        if key not in _TEXT_NOT_PATH:
            setattr(args, key, [home(x) for x in v] if isinstance(v, list) else home(v))


WEIGHTS_COMMANDS = ("predict", "evaluate", "export", "serve")  # their first argument: a run or weights file


def _check_weights_path(args: argparse.Namespace) -> None:
    """A run directory or weights file that is not there at all is said at once, before torch is
    imported (seconds on a small machine); what is there is checked by the command itself."""
    path = getattr(args, "weights", None)
    if getattr(args, "command", None) not in WEIGHTS_COMMANDS or not isinstance(path, str) or not path:
        return
    path = os.path.expanduser(path)  # "~/runs/x" quoted, as a script passes it: the commands expand it too
    if os.path.splitext(path)[1].lower() not in ("", ".safetensors", ".json"):
        return  # a .pth, .onnx, .pt …: the command says what such a file is and what to do with it
    if not any(os.path.exists(p) for p in (path, path + ".safetensors", path + ".json")):
        raise UserError(f"{args.weights}: no such file (give a run directory or a weights.safetensors file)")


def user_message(e: UserError) -> str:
    """The one line of a `UserError`. One raised in a DataLoader worker comes back wrapped in the
    worker's traceback ("Caught UserError in DataLoader worker process 0. Original Traceback …"):
    its own message is the last line."""
    msg = str(e).strip()
    if "\n" in msg and "Original Traceback" in msg:
        last = msg.splitlines()[-1]
        msg = last.split("UserError: ", 1)[1] if "UserError: " in last else last
    return msg


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:  # the sub-command's name and a "did you mean", not the top-level command's
        _subparser(parser, args).error(_unrecognized(_subparser(parser, args), extras))
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        try:  # the command as typed: every process of a torchrun machine reads it alike
            _check_counts(args)
            _check_png_output(_subparser(parser, args), args)
            _check_empty(_subparser(parser, args), args)
            _expand_home(args)
            _check_weights_path(args)
        except UserError as e:
            raise EveryProcessHereError(str(e)) from None
        return int(args.func(args) or 0)
    except UserError as e:
        if not (isinstance(e, EveryRankError) and quiet_here(e.printed_by)):
            print(f"error: {user_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # a training run stopped by SIGTERM says 143
        print("interrupted", file=sys.stderr)
        return getattr(e, "exit_code", 130)
    except RuntimeError as e:  # evaluate, predict, index …: a loader worker killed (training says more itself)
        if not worker_died(e):
            raise
        print(f"error: {worker_death_line(e)}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `alexnet models | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def entry() -> int:
    """The ``alexnet`` console script and ``python -m alexnet``: `main`, then a quick exit. With torch
    imported, the interpreter's last collection of cyclic garbage took 1.45 s of a ``train``
    command's exit on 2 CPU cores (0.30 s without it): time every command paid, and that a
    ``--time-budget`` run had to set aside. Every file is written and closed by the time `main`
    returns; the standard streams are still flushed and ``atexit`` handlers (data-loader workers,
    process groups) still run: `gc.freeze` only spares the collector its walk over every object
    still alive. Not in `main` itself: a process that calls it many times (the tests, a notebook)
    keeps collecting its garbage.

    A process of a distributed run (``torchrun -m alexnet``, or ``torchrun --no-python alexnet``)
    leaves here without the interpreter's teardown: now and then a C++ thread of the process group,
    still joinable at static destruction, aborted a rank that had finished its work and written every
    file (SIGABRT, "terminate called without an active exception"), and torchrun then reported the
    whole run failed."""
    rc = main()
    gc.freeze()
    world = os.environ.get("WORLD_SIZE", "").strip()
    if world.isdigit() and int(world) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    return rc


if __name__ == "__main__":
    sys.exit(entry())
