from __future__ import annotations

import pytest
from tests.tls.certkit import Authority


@pytest.fixture(scope="session")
def root() -> Authority:
    return Authority.root()


@pytest.fixture(scope="session")
def inter(root: Authority) -> Authority:
    return root.intermediate()
