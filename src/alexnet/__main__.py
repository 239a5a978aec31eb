"""``python -m alexnet`` (and ``torchrun -m alexnet train …``)."""

import sys

from .cli import main

sys.exit(main())
