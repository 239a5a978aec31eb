"""Start-up time of the `alexnet` command: ``--version``, ``--help``, ``train --help``, ``models``.

Each command is run ``--repeats`` times as a fresh process (the console script's own code:
``from alexnet.cli import main``) and the median wall-clock time is printed. Pass several source
trees to compare them side by side in one run (interleaved, so that machine load hits both alike):

    python benchmarks/startup.py --repeats 7 /path/to/old/src src
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS = (["--version"], ["--help"], ["train", "--help"], ["models"])


def once(src: str, argv: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(src)}
    code = "import sys; from alexnet.cli import main; sys.argv[0] = 'alexnet'; sys.exit(main())"
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *argv], env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trees", nargs="*", default=["src"], help="source folders holding the alexnet package")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeats):
        for argv in COMMANDS:
            for tree in args.trees:
                times.setdefault((" ".join(argv), tree), []).append(once(tree, argv))
    w = max(len(" ".join(a)) for a in COMMANDS)
    print(f"{'alexnet …':<{w}}  " + "  ".join(f"{t:>14}" for t in args.trees))
    for argv in COMMANDS:
        cmd = " ".join(argv)
        print(f"{cmd:<{w}}  " + "  ".join(f"{statistics.median(times[(cmd, t)]):>13.2f}s" for t in args.trees))


if __name__ == "__main__":
    main()
