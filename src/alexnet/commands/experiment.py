"""``alexnet experiment``: the paper's claims, re-run (see `alexnet.experiments`)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

ORDER = 80


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "experiment", help="re-run one of the paper's claims (ReLU vs tanh, LRN, pooling, depth, …)",
        description="Re-run a claim of the paper on CIFAR-10 and write OUT/NAME.md (table, the paper's figure "
                    "beside ours), OUT/NAME.json and OUT/NAME.png. Finished runs are cached by config under "
                    "OUT/runs/: a re-run trains only what is missing and an interrupted one resumes. "
                    "`alexnet experiment list` names them.")
    p.add_argument("name", help="an experiment name; `list` names them, `all` runs every one, `index` writes "
                                "OUT/experiments.md from the results in OUT, `report` derives every verdict in OUT "
                                "again from its recorded runs (no training) and rewrites the pages and the index")
    p.add_argument("--data", help="dataset spec, e.g. cifar10:~/data/cifar10/train: class folders of the training "
                                  "images, 10 %% held out (given the python batches it validates on the test split)")
    p.add_argument("--data-path", help="same as --data cifar10:PATH")
    p.add_argument("--fast", action="store_true", help="tiny runs (seconds; for checking the machinery, not the claim)")
    p.add_argument("--seeds", type=int, help="how many seeds per arm, a count: seeds 0…N-1 (default: the experiment's, "
                                             "3 or more)")
    p.add_argument("--epochs", type=int, help="epochs per run (default: the experiment's)")
    p.add_argument("--train-subset", type=int, metavar="N", help="training images per run (0: all)")
    p.add_argument("--out", default="experiments", help="output folder (default: experiments)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("-j", "--workers", type=int, help="data loading worker processes")
    from ..engine.config import AMP_MODES  # plain Python: the help stays free of torch

    p.add_argument("--amp", choices=AMP_MODES,
                   help="precision of every arm (default: auto — measured once at an experiment's start, recorded "
                        "beside its runs and pinned for all its arms)")
    p.add_argument("--index", metavar="PATH", help="index/report: where experiments.md goes (default OUT/experiments.md)")
    p.add_argument("--runs", metavar="DIR", help="report: copy each run's config.json, metrics.csv and result.json "
                                                 "from DIR/<run key> (or its recorded folder) to OUT/runs/")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..core.io import check_output_file, check_output_folder

    if args.name == "index" and args.index:  # reads OUT's records, writes the index file only
        check_output_file(args.index, "--index")
    elif args.name != "list":
        check_output_folder(args.out, "--out")  # before torch loads
    if args.runs and args.name != "report":
        from ..core.errors import UserError

        raise UserError(f"--runs is read by `alexnet experiment report` only, not by {args.name!r}")
    if args.index and args.name not in ("index", "report"):
        from ..core.errors import UserError

        raise UserError(f"--index is read by `alexnet experiment index` and `report` only; {args.name!r} writes "
                        f"its page in --out (then `alexnet experiment index --index {args.index}`)")
    if args.runs and not os.path.isdir(os.path.expanduser(args.runs)):
        from ..core.errors import UserError

        raise UserError(f"--runs {args.runs}: no such folder")
    if args.name not in ("list", "index", "report") and args.data:
        from ..core.errors import UserError
        from ..data.kinds import nothing_there

        if nothing_there(args.data):  # a mistyped folder: said before the plan, and before anything is written
            raise UserError(nothing_there(args.data))
    from ..experiments import list_experiments, report, run_all, write_index
    from ..experiments import run as run_experiment

    if args.name == "list":
        rows = [(e.name, e.section, e.claim) for e in list_experiments()]
        w0, w1 = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
        for name, sec, claim in rows:
            print(f"{name:<{w0}}  {sec:<{w1}}  {claim}")
        return 0
    if args.name == "index":
        print(f"wrote {write_index(args.out, index=args.index)}")
        return 0
    if args.name == "report":
        print(f"wrote {report(args.out, index=args.index, runs_from=args.runs)}")
        return 0
    data = args.data or (f"cifar10:{args.data_path}" if args.data_path else None)
    command = "alexnet " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["experiment"] else ""
    kw = dict(data=data, fast=args.fast, seeds=args.seeds, epochs=args.epochs, train_subset=args.train_subset,
              out=args.out, device=args.device, workers=args.workers, command=command, amp=args.amp)
    import signal

    def term(signum, frame):  # between two runs (a run's training catches its own and saves first)
        stop = KeyboardInterrupt()
        stop.exit_code = 128 + signum  # type: ignore[attr-defined]
        raise stop

    previous = signal.signal(signal.SIGTERM, term)
    try:
        if args.name == "all":
            run_all(**kw)
        else:
            run_experiment(args.name, **kw)
            index = os.path.join(os.path.expanduser(args.out), "experiments.md")
            if os.path.isfile(index):  # written by `all` or `index` before this verdict: said, not rewritten
                print(f"note: {index} still shows the verdicts of its last writing; `alexnet experiment index "
                      f"--out {args.out}` brings in this one", file=sys.stderr)
    except KeyboardInterrupt as e:
        from ..engine.loop import StoppedBySignal

        if not isinstance(e, StoppedBySignal):  # a stopped run has said how to continue
            print(f"stopped between runs: run the same command again ({command or 'alexnet experiment ' + args.name}) "
                  f"to continue; finished runs are kept", file=sys.stderr)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
