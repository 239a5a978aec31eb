"""``python -m alexnet`` (and ``torchrun -m alexnet train …``)."""

import os
import sys

from .cli import entry

rc = entry()
if int(os.environ.get("WORLD_SIZE", "1")) > 1:
    # A process of a distributed run leaves without the interpreter's teardown: now and then a C++
    # thread of the process group, still joinable at static destruction, aborted a rank that had
    # finished its work and written every file (SIGABRT, "terminate called without an active
    # exception"), and torchrun then reported the whole run failed. Everything is written by now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)
sys.exit(rc)
