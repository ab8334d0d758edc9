"""Shared fixtures: a real origin server and a real gateway process proxying to it.

Both are module-scoped: one origin thread and one `edgeward proxy` process per test module.
Helpers live in tests/support/ (importable as `support.*` from any test module).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from support.gateway import GatewayProcess  # noqa: E402
from support.origin import Origin  # noqa: E402


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    with Origin() as o:
        yield o


@pytest.fixture(scope="module")
def gateway(origin: Origin) -> Iterator[GatewayProcess]:
    """`edgeward proxy` on a free port, forwarding everything to `origin`."""
    with GatewayProcess.proxy(origin.address) as gw:
        yield gw
