"""The backend contract: the test backend satisfies it and endpoint_view reads Endpoint."""

from __future__ import annotations

import inspect
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from adminkit import MemoryBackend  # noqa: E402

from edgeward.admin.backend import AdminBackend, endpoint_view  # noqa: E402
from edgeward.balance.endpoint import Endpoint  # noqa: E402


def test_memory_backend_implements_every_method_with_matching_kind() -> None:
    wanted = {n for n in vars(AdminBackend) if not n.startswith("_")}
    assert wanted == {"ready", "metrics_text", "config_view", "apply_config", "routes_view",
                      "upstreams_view", "ratelimits_view", "certificates_view",
                      "reloads_view", "canaries_view", "canary_command", "drain",
                      "stats_sample", "cache_view", "purge_cache"}
    for name in wanted:
        ours = getattr(MemoryBackend, name)
        assert inspect.iscoroutinefunction(ours) == (name in ("apply_config", "purge_cache")), \
            name
    backend: AdminBackend = MemoryBackend()  # mypy-style structural check at runtime
    assert backend.ready()


def test_endpoint_view_reports_live_counters_and_flags() -> None:
    ep = Endpoint("::1", 8080, weight=3)
    ep.active = 4
    ep.ejected = True
    assert endpoint_view(ep, breaker="half_open", ewma_ms=3.25) == {
        "address": "[::1]:8080", "weight": 3, "healthy": True, "health_checked": False,
        "ejected": True,
        "breaker": "half_open", "in_flight": 4, "ewma_ms": 3.25,
    }
