"""``python -m alexnet`` (and ``torchrun -m alexnet train …``)."""

import sys

from .cli import entry

sys.exit(entry())
