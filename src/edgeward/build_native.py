"""`python -m edgeward.build_native`: compile the data plane in place (edgeward._native.build;
needs mypy and a C compiler). The exit status is the compiler's (0: built)."""

import sys

from edgeward._native import build

sys.exit(build())
